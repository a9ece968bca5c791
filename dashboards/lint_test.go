package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promql "github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// grafanaUnits are the unit ids of Grafana's value formats, read from the
// units package of the Grafana Foundation SDK (generated from Grafana's
// own list): every constant of units/types_gen.go.
func grafanaUnits(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/grafana/grafana-foundation-sdk/go").Output()
	if err != nil {
		t.Fatalf("locating the Grafana Foundation SDK: %v", err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(strings.TrimSpace(string(out)), "units", "types_gen.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	units := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for _, v := range vs.Values {
				if bl, ok := v.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					u, _ := strconv.Unquote(bl.Value)
					units[u] = true
				}
			}
		}
		return true
	})
	if len(units) < 200 || !units["percentunit"] || !units["s"] {
		t.Fatalf("read %d units from the SDK, expected Grafana's list", len(units))
	}
	return units
}

// lintPanel and lintVar are the parts of the dashboard JSON the linter
// reads.
type lintVar struct {
	Name, Label, Type, AllValue string
	Multi, IncludeAll           bool
	Refresh                     int
	Datasource                  map[string]string
	Query                       any
}

type lintDashboard struct {
	Title      string
	Editable   *bool
	Templating struct{ List []lintVar }
	Panels     []struct {
		Type, Title, Description string
		Datasource               map[string]string
		FieldConfig              struct {
			Defaults struct{ Unit string }
			// Overrides may set units too.
			Overrides []struct {
				Properties []struct {
					ID    string
					Value any
				}
			}
		}
		Targets []struct{ Expr string }
	}
}

// lint checks a dashboard against the rules of grafana/dashboard-linter,
// written from its documentation:
//   - template-datasource-rule: one data source variable, named datasource,
//     labelled "Data Source", for Prometheus;
//   - template-job-rule, template-instance-rule: query variables named and
//     labelled job and instance, on the $datasource, from a Prometheus
//     label_values query, multi-select with "All" = .+;
//   - template-label-promql-rule: every label_values selector is PromQL;
//   - template-on-time-change-reload-rule: query variables refresh when
//     the time range changes;
//   - panel-datasource-rule: panels use the $datasource;
//   - panel-title-description-rule: every panel has a title and a
//     description;
//   - panel-units-rule: every panel has a unit, and it is one of Grafana's
//     (rows excepted);
//   - target-promql-rule: every query is PromQL once Grafana's variables
//     are substituted;
//   - target-rate-interval-rule: rate and irate read $__rate_interval;
//   - target-job-rule, target-instance-rule: every selector matches
//     job=~"$job" and instance=~"$instance".
//
// Exclusions are those of the linter's .lint file (LintFile): a rule
// excluded for a dashboard, panel and target index is not reported there.
// Also template-uneditable-rule: the dashboard is not editable in the UI.
func lint(raw []byte, units map[string]bool, lf *LintFile) []string {
	var d lintDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	report := func(rule, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("[%s] %s: ", rule, d.Title)+fmt.Sprintf(format, args...))
	}
	excluded := func(rule, panel string, idx int) bool {
		if lf == nil || lf.Exclusions[rule] == nil {
			return false
		}
		for _, e := range lf.Exclusions[rule].Entries {
			if e.Dashboard == d.Title && e.Panel == panel && e.TargetIdx == strconv.Itoa(idx) {
				return true
			}
		}
		return false
	}
	if d.Editable == nil || *d.Editable {
		report("template-uneditable-rule", "editable %v", d.Editable)
	}
	isDatasource := func(ds map[string]string) bool {
		return ds["uid"] == "$datasource" || ds["uid"] == "${datasource}"
	}
	vars := map[string]lintVar{}
	datasources := 0
	for _, v := range d.Templating.List {
		vars[v.Name] = v
		if v.Type == "datasource" {
			datasources++
			if v.Name != "datasource" || v.Label != "Data Source" || v.Query != "prometheus" {
				report("template-datasource-rule", "data source variable %+v", v)
			}
			continue
		}
		if v.Refresh != 2 {
			report("template-on-time-change-reload-rule", "variable %s refresh %d", v.Name, v.Refresh)
		}
		q, _ := v.Query.(map[string]any)["query"].(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			report("template-label-promql-rule", "variable %s: %q is not label_values(selector, label)", v.Name, q)
		} else if _, err := promql.ParseExpr(lintExpand(m[1])); err != nil {
			report("template-label-promql-rule", "variable %s: %v", v.Name, err)
		}
	}
	if datasources != 1 {
		report("template-datasource-rule", "%d data source variables", datasources)
	}
	for _, name := range []string{"job", "instance"} {
		v, ok := vars[name]
		rule := "template-" + name + "-rule"
		switch {
		case !ok:
			report(rule, "no %s variable", name)
		case v.Label != name || v.Type != "query" || !isDatasource(v.Datasource):
			report(rule, "variable %s: label %q, type %q, data source %v", name, v.Label, v.Type, v.Datasource)
		case !v.Multi || !v.IncludeAll || v.AllValue != ".+":
			report(rule, "variable %s: multi %v, includeAll %v, allValue %q", name, v.Multi, v.IncludeAll, v.AllValue)
		}
	}
	for _, pn := range d.Panels {
		if pn.Type == "row" {
			continue
		}
		if pn.Title == "" || pn.Description == "" {
			report("panel-title-description-rule", "panel %q: description %q", pn.Title, pn.Description)
		}
		if !isDatasource(pn.Datasource) {
			report("panel-datasource-rule", "panel %q: data source %v", pn.Title, pn.Datasource)
		}
		if !units[pn.FieldConfig.Defaults.Unit] {
			report("panel-units-rule", "panel %q: unit %q", pn.Title, pn.FieldConfig.Defaults.Unit)
		}
		for _, o := range pn.FieldConfig.Overrides {
			for _, pr := range o.Properties {
				if u, _ := pr.Value.(string); pr.ID == "unit" && !units[u] {
					report("panel-units-rule", "panel %q: override unit %q", pn.Title, u)
				}
			}
		}
		for i, tg := range pn.Targets {
			where := fmt.Sprintf("panel %q, target %d", pn.Title, i)
			node, err := promql.ParseExpr(lintExpand(tg.Expr))
			if err != nil {
				report("target-promql-rule", "%s: %v", where, err)
				continue
			}
			promql.Inspect(node, func(n promql.Node, _ []promql.Node) error {
				switch n := n.(type) {
				case *promql.Call:
					if n.Func.Name != "rate" && n.Func.Name != "irate" {
						break
					}
					for _, a := range n.Args {
						if ms, ok := a.(*promql.MatrixSelector); ok && ms.Range != lintRateInterval {
							report("target-rate-interval-rule", "%s: %s does not read $__rate_interval", where, n)
						}
					}
				case *promql.VectorSelector:
					for _, l := range []string{"job", "instance"} {
						if !hasMatcher(n.LabelMatchers, l) && !excluded("target-"+l+"-rule", pn.Title, i) {
							report("target-"+l+"-rule", "%s: %s has no %s=~\"$%s\"", where, n, l, l)
						}
					}
				}
				return nil
			})
		}
	}
	return problems
}

// The linter substitutes $__rate_interval with a duration of its own to
// recognise it after parsing; so does lint.
const lintRateInterval = 1111 * 24 * 3600 * 1e9

// Other variables appear only in matcher strings, where they parse as
// they are.
func lintExpand(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1111d", "$__range", "1h").Replace(expr)
}

func hasMatcher(ms []*labels.Matcher, l string) bool {
	for _, m := range ms {
		if m.Name == l && m.Type == labels.MatchRegexp && m.Value == "$"+l {
			return true
		}
	}
	return false
}

// demoLint is the .lint of the demo's dashboards, as WriteFiles writes it.
func demoLint(t *testing.T) *LintFile {
	t.Helper()
	cfg, _ := demoBoards(t)
	dir := t.TempDir()
	if _, err := WriteFiles(cfg, dir, DefaultFileOptions); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "dashboards", ".lint"))
	if err != nil {
		t.Fatal(err)
	}
	var lf LintFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&lf); err != nil {
		t.Fatalf(".lint: %v\n%s", err, b)
	}
	return &lf
}

// Every generated dashboard passes the dashboard-linter rules, with the
// exclusions of the .lint written next to them.
func TestDashboardsPassTheLinterRules(t *testing.T) {
	units := grafanaUnits(t)
	lf := demoLint(t)
	_, ds := demoBoards(t)
	for _, d := range ds {
		for _, p := range lint(d.JSON, units, lf) {
			t.Error(p)
		}
	}
}

// The .lint excludes only what it must: the job and instance rules, for
// targets that read no raw metric at all (only recorded series and
// ALERTS), each named by dashboard, panel and target index.
func TestLintExclusionsAreJustified(t *testing.T) {
	lf := demoLint(t)
	_, ds := demoBoards(t)
	targets := map[LintEntry]string{}
	for _, d := range ds {
		var m lintDashboard
		if err := json.Unmarshal(d.JSON, &m); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Panels {
			for i, tg := range p.Targets {
				targets[LintEntry{Dashboard: m.Title, Panel: p.Title, TargetIdx: strconv.Itoa(i)}] = tg.Expr
			}
		}
	}
	// Without them, the linter reports those targets and nothing else.
	units := grafanaUnits(t)
	reported := 0
	for _, d := range ds {
		for _, p := range lint(d.JSON, units, nil) {
			reported++
			if !strings.HasPrefix(p, "[target-job-rule]") && !strings.HasPrefix(p, "[target-instance-rule]") {
				t.Errorf("without exclusions: %s", p)
			}
		}
	}
	if reported == 0 {
		t.Error("nothing to exclude: the .lint is not needed")
	}
	if len(lf.Exclusions) != 2 {
		t.Errorf("exclusions of %d rules, want target-job-rule and target-instance-rule", len(lf.Exclusions))
	}
	for rule, ex := range lf.Exclusions {
		if rule != "target-job-rule" && rule != "target-instance-rule" || ex.Reason == "" || len(ex.Entries) == 0 {
			t.Errorf("%s: %+v", rule, ex)
			continue
		}
		for _, e := range ex.Entries {
			expr, ok := targets[e]
			if !ok {
				t.Errorf("%s: %+v names no target", rule, e)
				continue
			}
			node, err := promql.ParseExpr(lintExpand(expr))
			if err != nil {
				t.Fatal(err)
			}
			for _, ms := range promql.ExtractSelectors(node) {
				for _, m := range ms {
					if m.Name == labels.MetricName && isRawMetric(m.Value) {
						t.Errorf("%s: %+v reads the raw metric %s", rule, e, m.Value)
					}
				}
			}
		}
	}
}

// The lint catches each kind of violation.
func TestLintCatchesViolations(t *testing.T) {
	units := grafanaUnits(t)
	lf := demoLint(t)
	_, ds := demoBoards(t)
	var tickets []byte
	for _, d := range ds {
		if d.UID == UIDTickets {
			tickets = d.JSON
		}
	}
	target := func(m map[string]any) map[string]any { return panel(m, 1)["targets"].([]any)[0].(map[string]any) }
	vars := func(m map[string]any) []any { return m["templating"].(map[string]any)["list"].([]any) }
	for rule, edit := range map[string]func(m map[string]any){
		"template-datasource-rule": func(m map[string]any) { vars(m)[0].(map[string]any)["label"] = "Data source" },
		"template-job-rule":        func(m map[string]any) { vars(m)[1].(map[string]any)["allValue"] = ".*" },
		"template-instance-rule":   func(m map[string]any) { vars(m)[2].(map[string]any)["name"] = "host" },
		"template-label-promql-rule": func(m map[string]any) {
			vars(m)[3].(map[string]any)["query"].(map[string]any)["query"] = "label_values(up{, job)"
		},
		"template-on-time-change-reload-rule": func(m map[string]any) { vars(m)[3].(map[string]any)["refresh"] = 1 },
		"panel-title-description-rule":        func(m map[string]any) { panel(m, 1)["description"] = "" },
		"panel-datasource-rule":               func(m map[string]any) { panel(m, 1)["datasource"] = map[string]any{"uid": "prometheus"} },
		"panel-units-rule":                    func(m map[string]any) { fieldDefaults(panel(m, 1))["unit"] = "x" },
		"target-promql-rule":                  func(m map[string]any) { target(m)["expr"] = "sum(rate(" },
		"target-rate-interval-rule": func(m map[string]any) {
			target(m)["expr"] = `sum(rate(servq_x{job=~"$job",instance=~"$instance"}[5m]))`
		},
		"target-job-rule":      func(m map[string]any) { target(m)["expr"] = `sum(servq_x{job="servq",instance=~"$instance"})` },
		"target-instance-rule": func(m map[string]any) { target(m)["expr"] = `sum(servq_x{job=~"$job"})` },
	} {
		var m map[string]any
		if err := json.Unmarshal(tickets, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		found := false
		for _, p := range lint(b, units, lf) {
			found = found || strings.HasPrefix(p, "["+rule+"]")
		}
		if !found {
			t.Errorf("%s: not reported", rule)
		}
	}
}
