package rules

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	slothmodel "github.com/slok/sloth/pkg/common/model"
	slothlib "github.com/slok/sloth/pkg/lib"
	"gopkg.in/yaml.v3"

	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/slo/sli"
)

// slothConformanceConfig has SLOs of both kinds with SLO labels and
// alerting labels; objective 90 has capped page pairs.
const slothConformanceConfig = `
global: {service: svc}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - name: calls
    indicator: call_abandonment
    objective: 99
    window: %[1]s
    labels: {team: phones, tier: "1"}
    alerting: {name: CallsBurn, labels: {category: availability}}
  - name: reply
    indicator: ticket_first_reply
    threshold: 1h
    objective: 99.5
    window: %[1]s
    labels: {team: desk}
  - name: answered
    indicator: call_abandonment
    objective: 90
    window: %[1]s
`

// The differences from Sloth that servq keeps on purpose, each documented
// in the README ("Sloth compatibility"):
var (
	// sloth_slo_info says who made the rules (servq, servq/v1) and has no
	// sloth_version, so that a rule file changes only with its config;
	// servq_* labels add the indicator, window and threshold.
	infoValuesOwn = []string{"sloth_mode", "sloth_spec"}
	infoLabelsNot = []string{"sloth_version"}
	// Alerts carry sloth_id, sloth_service, sloth_slo and the SLO labels
	// as static labels too (Sloth's alerts get them from the expression,
	// which keeps every label of the ratio but sloth_window): the same
	// values.
	alertLabelsExtra = []string{"sloth_id", "sloth_service", "sloth_slo"}
)

// Sloth's own generator (github.com/slok/sloth v0.16.0) on SLOs equal to
// servq's, with servq's SLI queries as Sloth's error and total queries:
// the same recordings with the same labels (SLO labels on SLI and metadata
// recordings, sloth_window kept on the burn rates), the same sloth_slo_info
// labels but for the documented ones, the same alerts, labels and
// thresholds but for the capped pairs, and the same values in promtool.
func TestSlothConformance(t *testing.T) {
	for _, window := range []string{"30d", "28d"} {
		t.Run(window, func(t *testing.T) {
			cfgText := fmt.Sprintf(slothConformanceConfig, window)
			cfg, err := config.Parse([]byte(cfgText), "servq.yml")
			if err != nil {
				t.Fatal(err)
			}
			ours, err := Generate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			theirs := map[string]slothmodel.PromSLORules{}
			for _, s := range cfg.SLOs {
				theirs[s.Name] = slothRules(t, cfg, s)
				compareAlerts(t, ours, s, theirs[s.Name])
			}
			sameSeries(t, cfg, ours, theirs)
			sameValues(t, cfg, ours)
		})
	}
}

// slothRules generates Sloth's rules for one servq SLO.
func slothRules(t *testing.T, cfg *config.Config, s *config.SLO) slothmodel.PromSLORules {
	t.Helper()
	ind, err := sli.For(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	spec := map[string]any{
		"version": "prometheus/v1",
		"service": cfg.Global.Service,
		"slos": []any{map[string]any{
			"name":      s.Name,
			"objective": s.Objective,
			"labels":    s.Labels,
			"sli": map[string]any{"events": map[string]any{
				// Without servq's "or vector(0)": Sloth divides without
				// a guard, so a window without traffic (the first
				// evaluation) would be NaN and stay in its averaged
				// period ratio for the whole window.
				"error_query": strings.ReplaceAll(ind.BadRate("{{.window}}"), " or vector(0)", ""),
				"total_query": strings.ReplaceAll(ind.TotalRate("{{.window}}"), " or vector(0)", ""),
			}},
			"alerting": map[string]any{
				"name":         AlertName(s),
				"labels":       s.Alerting.Labels,
				"page_alert":   map[string]any{"labels": map[string]string{"severity": "page"}},
				"ticket_alert": map[string]any{"labels": map[string]string{"severity": "ticket"}},
			},
		}},
	}
	raw, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := slothlib.NewPrometheusSLOGenerator(slothlib.PrometheusSLOGeneratorConfig{DefaultSLOPeriod: s.Window.D()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := gen.GenerateFromRaw(context.Background(), raw)
	if err != nil {
		t.Fatalf("sloth: %v\n%s", err, raw)
	}
	if len(res.SLOResults) != 1 {
		t.Fatalf("sloth made %d SLOs", len(res.SLOResults))
	}
	return res.SLOResults[0].PrometheusRules
}

func oursFor(f *File, s *config.SLO, match func(Rule) bool) []Rule {
	var out []Rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Labels["sloth_slo"] == s.Name && match(r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// conformanceInput is the calls of the conformance tests: 0.5 % of them
// abandoned, half the calls SLO's budget.
const conformanceInput = `    input_series:
      - {series: 'servq_calls_offered_total{collector="pbx",channel="phone",queue="q"}', values: '0+1000x180'}
      - {series: 'servq_calls_abandoned_total{collector="pbx",channel="phone",queue="q"}', values: '0+5x180'}
      - {series: 'servq_calls_abandoned_short_total{collector="pbx",channel="phone",queue="q"}', values: '0x180'}
`

// sameSeries evaluates servq's rule file in promtool and finds every
// series Sloth's rules record for each SLO, with the same full label set
// (the SLO labels, sloth_window kept on the burn rates from the ratio
// they read), and every SLI window Sloth's detailed dashboard (grafana.com
// 14348) offers, which it shows as 100 % when missing. servq records all
// SLOs with one rule per series name, so the series, not the rules, are
// what can be compared.
func sameSeries(t *testing.T, cfg *config.Config, ours *File, theirs map[string]slothmodel.PromSLORules) {
	t.Helper()
	type check struct{ expr, labels string }
	var checks []check
	seen := map[string]bool{}
	add := func(expr string, ls map[string]string) {
		if seen[expr] {
			return
		}
		seen[expr] = true
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(ls)) {
			parts = append(parts, k+"="+strconv.Quote(ls[k]))
		}
		checks = append(checks, check{expr, "{" + strings.Join(parts, ",") + "}"})
	}
	windowOf := regexp.MustCompile(`ratio_rate(\w+)`)
	for _, s := range cfg.SLOs {
		th := theirs[s.Name]
		id := strconv.Quote(ID(cfg, s))
		rules := append(slices.Clone(th.SLIErrorRecRules.Rules), th.MetadataRecRules.Rules...)
		if len(rules) < 10 {
			t.Fatalf("slo %s: Sloth made only %d recordings", s.Name, len(rules))
		}
		for _, r := range rules {
			want := maps.Clone(r.Labels)
			switch r.Record {
			case recInfo:
				for _, k := range infoLabelsNot {
					delete(want, k)
				}
				for _, k := range infoValuesOwn {
					if want[k] == "" {
						t.Errorf("slo %s: Sloth's sloth_slo_info has no %s", s.Name, k)
					}
				}
				want["sloth_mode"], want["sloth_spec"] = "servq", "servq/v1"
				add(fmt.Sprintf("group by (%s) (%s{sloth_id=%s})", strings.Join(slices.Sorted(maps.Keys(want)), ", "), recInfo, id), want)
				continue
			case recCurrentBurn, recPeriodBurn, recRemaining:
				// The ratio's window, which Sloth's expression keeps.
				m := windowOf.FindStringSubmatch(r.Expr)
				if r.Record == recRemaining {
					m = windowOf.FindStringSubmatch(th.SLIErrorRecRules.Rules[len(th.SLIErrorRecRules.Rules)-1].Record)
				}
				if m == nil {
					t.Fatalf("slo %s: no window in Sloth's %s: %s", s.Name, r.Record, r.Expr)
				}
				want["sloth_window"] = m[1]
			}
			add(fmt.Sprintf("group without () (%s{sloth_id=%s})", r.Record, id), want)
		}
		for _, w := range strings.Split("5m,30m,1h,2h,6h,1d,3d,30d", ",") {
			add(fmt.Sprintf("group without () (%s%s{sloth_id=%s})", recErrorRatio, w, id), merge(sloLabels(cfg, s), map[string]string{"sloth_window": w}))
		}
	}
	f := &File{Groups: slices.Clone(ours.Groups)}
	inputRecordings(cfg)(f)
	var order []string
	for _, g := range f.Groups {
		order = append(order, strconv.Quote(g.Name))
	}
	var tests strings.Builder
	for _, c := range checks {
		fmt.Fprintf(&tests, "      - {expr: %s, eval_time: 150m, exp_samples: [{labels: %s, value: 1}]}\n", strconv.Quote(c.expr), strconv.Quote(c.labels))
	}
	dir := t.TempDir()
	b, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "rules.yml"), b, 0o644)
	test := `rule_files: [rules.yml]
evaluation_interval: 1m
group_eval_order: [` + strings.Join(order, ", ") + `]
tests:
  - interval: 1m
` + conformanceInput + `    promql_expr_test:
` + tests.String()
	os.WriteFile(filepath.Join(dir, "test.yml"), []byte(test), 0o644)
	out, err := exec.Command(testenv.Binary(t, "promtool"), "test", "rules", filepath.Join(dir, "test.yml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("servq's series against Sloth's (%d checks): promtool: %v\n%s", len(checks), err, out)
	}
}

// pairRE finds one window condition of a burn-rate alert: the window and
// the threshold, as factor × budget or (capped) a number.
var pairRE = regexp.MustCompile(`ratio_rate(\w+)\{[^}]*\} > (?:\(([0-9.]+) \* ([0-9.e-]+)\)|([0-9.e-]+))\)`)

type windowThreshold struct {
	window    string
	threshold float64
}

func thresholds(t *testing.T, expr string) []windowThreshold {
	t.Helper()
	var out []windowThreshold
	for _, m := range pairRE.FindAllStringSubmatch(expr, -1) {
		var th float64
		if m[4] != "" {
			th, _ = strconv.ParseFloat(m[4], 64)
		} else {
			f, _ := strconv.ParseFloat(m[2], 64)
			b, _ := strconv.ParseFloat(m[3], 64)
			th = f * b
		}
		out = append(out, windowThreshold{m[1], th})
	}
	if len(out) == 0 {
		t.Fatalf("no window conditions found in\n%s", expr)
	}
	return out
}

func compareAlerts(t *testing.T, ours *File, s *config.SLO, theirs slothmodel.PromSLORules) {
	t.Helper()
	budget := (100 - s.Objective) / 100
	if len(theirs.AlertRules.Rules) != 2 {
		t.Fatalf("slo %s: Sloth made %d alerts", s.Name, len(theirs.AlertRules.Rules))
	}
	for _, want := range theirs.AlertRules.Rules {
		sev := want.Labels["sloth_severity"]
		got := oursFor(ours, s, func(r Rule) bool { return r.Alert != "" && r.Labels["sloth_severity"] == sev })
		if len(got) != 1 || got[0].Alert != want.Alert {
			t.Errorf("slo %s: Sloth alert %s (%s), servq %+v", s.Name, want.Alert, sev, got)
			continue
		}
		gotLabels := maps.Clone(got[0].Labels)
		for _, k := range append(slices.Sorted(maps.Keys(s.Labels)), alertLabelsExtra...) {
			if gotLabels[k] == "" {
				t.Errorf("slo %s: alert %s lacks %s", s.Name, want.Alert, k)
			}
			delete(gotLabels, k)
		}
		if !maps.Equal(gotLabels, want.Labels) {
			t.Errorf("slo %s: alert %s (%s) labels\nservq %v\nSloth %v", s.Name, want.Alert, sev, got[0].Labels, want.Labels)
		}
		// Thresholds window by window: equal, or capped at halfway from
		// the budget to 100 % where Sloth's factor × budget is beyond it.
		wt, gt := thresholds(t, want.Expr), thresholds(t, got[0].Expr)
		if len(wt) != len(gt) {
			t.Errorf("slo %s: alert %s (%s): servq windows %v, Sloth %v", s.Name, want.Alert, sev, gt, wt)
			continue
		}
		capAt := (1 + budget) / 2
		for i := range wt {
			same := gt[i].window == wt[i].window && near(gt[i].threshold, wt[i].threshold)
			capped := gt[i].window == wt[i].window && near(gt[i].threshold, capAt) && wt[i].threshold > capAt
			if !same && !capped {
				t.Errorf("slo %s: alert %s (%s): servq %v, Sloth %v", s.Name, want.Alert, sev, gt[i], wt[i])
			}
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Abs(b) }

// sameValues runs promtool on both rule files with the same input and the
// same expected series, full label sets included: servq's recordings are
// where Sloth's dashboards look for them.
func sameValues(t *testing.T, cfg *config.Config, ours *File) {
	t.Helper()
	promtool := testenv.Binary(t, "promtool")
	dir := t.TempDir()
	s := cfg.SLOs[0] // calls: 0.5 % abandoned, half the budget
	var sloth File
	theirs := slothRules(t, cfg, s)
	for _, g := range []slothmodel.PromRuleGroup{theirs.SLIErrorRecRules, theirs.MetadataRecRules} {
		var rs []Rule
		for _, r := range g.Rules {
			rs = append(rs, Rule{Record: r.Record, Expr: r.Expr, Labels: r.Labels})
		}
		sloth.Groups = append(sloth.Groups, Group{Name: "sloth-" + strconv.Itoa(len(sloth.Groups)), Rules: rs})
	}
	// servq's recordings of every SLO (one rule per series name for all
	// of them), without the alerts; the checks select this SLO's series.
	mine := File{}
	for _, g := range ours.Groups {
		if !strings.HasSuffix(g.Name, "-alerts") && g.Name != "servq-operational" {
			mine.Groups = append(mine.Groups, g)
		}
	}
	// servq's steps read the SLO inputs: recorded here from the raw
	// counters, before the steps (see inputRecordings).
	inputRecordings(cfg)(&mine)
	var order []string
	for _, g := range append(append([]Group(nil), mine.Groups...), sloth.Groups...) {
		order = append(order, strconv.Quote(g.Name))
	}
	w := sli.Window(s.Window.D())
	labels := func(extra string) string {
		return `sloth_id="svc-calls",sloth_service="svc",sloth_slo="calls",team="phones",tier="1"` + extra
	}
	test := fmt.Sprintf(`rule_files: [rules.yml]
evaluation_interval: 1m
group_eval_order: [`+strings.Join(order, ", ")+`]
tests:
  - interval: 1m
`+conformanceInput+`    promql_expr_test:
      - {expr: 'round(slo:sli_error:ratio_rate1h{sloth_slo="calls"} * 1e9) / 1e9', eval_time: 150m, exp_samples: [{labels: '{%[1]s}', value: 0.005}]}
      - {expr: 'round(slo:current_burn_rate:ratio{sloth_slo="calls"} * 1e9) / 1e9', eval_time: 150m, exp_samples: [{labels: '{%[2]s}', value: 0.5}]}
      - {expr: 'round(slo:period_burn_rate:ratio{sloth_slo="calls"} * 1e9) / 1e9', eval_time: 150m, exp_samples: [{labels: '{%[3]s}', value: 0.5}]}
      - {expr: 'round(slo:period_error_budget_remaining:ratio{sloth_slo="calls"} * 1e9) / 1e9', eval_time: 150m, exp_samples: [{labels: '{%[3]s}', value: 0.5}]}
      - {expr: 'slo:objective:ratio{sloth_slo="calls"}', eval_time: 150m, exp_samples: [{labels: 'slo:objective:ratio{%[4]s}', value: 0.99}]}
      - {expr: 'round(slo:error_budget:ratio{sloth_slo="calls"} * 1e9) / 1e9', eval_time: 150m, exp_samples: [{labels: '{%[4]s}', value: 0.01}]}
      - {expr: 'slo:time_period:days{sloth_slo="calls"}', eval_time: 150m, exp_samples: [{labels: 'slo:time_period:days{%[4]s}', value: %[5]g}]}
`, labels(`,sloth_window="1h"`), labels(`,sloth_window="5m"`), labels(`,sloth_window="`+w+`"`), labels(""), s.Window.D().Hours()/24)
	for name, f := range map[string]File{"servq": mine, "sloth": sloth} {
		sub := filepath.Join(dir, name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := yaml.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(sub, "rules.yml"), b, 0o644)
		os.WriteFile(filepath.Join(sub, "test.yml"), []byte(test), 0o644)
		out, err := exec.Command(promtool, "test", "rules", filepath.Join(sub, "test.yml")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("%s rules: promtool: %v\n%s", name, err, out)
		}
	}
}

// servq:slo_window_coverage:ratio is the share of the SLO window that the
// step recordings the window sums cover: evaluated hourly from 0 to 6h,
// 7 steps of an hour (the first one, at 0, counts the hour before it) of
// a 1-day window are 7/24, and it stays 1 once the window is full.
func TestWindowCoverage(t *testing.T) {
	dir := t.TempDir()
	rules := promtoolRules(t, dir, `
global: {service: svc}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: day, indicator: call_abandonment, objective: 99, window: 1d}
rules: {interval: 1h}
`)
	test := fmt.Sprintf(`rule_files: [%s]
evaluation_interval: 1h
tests:
  - interval: 1h
    input_series:
      - {series: 'servq_build_info{job="servq",instance="a"}', values: '1x40'}
    promql_expr_test:
      - {expr: servq:slo_window_coverage:ratio, eval_time: 6h, exp_samples: [{labels: 'servq:slo_window_coverage:ratio{sloth_id="svc-day",sloth_service="svc",sloth_slo="day"}', value: 0.2916666666666667}]}
      - {expr: servq:slo_window_coverage:ratio, eval_time: 30h, exp_samples: [{labels: 'servq:slo_window_coverage:ratio{sloth_id="svc-day",sloth_service="svc",sloth_slo="day"}', value: 1}]}
`, rules)
	file := filepath.Join(dir, "test.yml")
	os.WriteFile(file, []byte(test), 0o644)
	out, err := exec.Command(testenv.Binary(t, "promtool"), "test", "rules", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
}
