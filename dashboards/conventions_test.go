package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	promql "github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// strictDecode decodes a dashboard into the Grafana Foundation SDK's types
// (the dashboard schema Grafana itself is generated from) strictly: an
// unknown field, a field of the wrong type or a missing required field is
// an error, in the dashboard, its variables, links and panels, each
// panel's options and fieldConfig.defaults.custom (decoded by the panel
// plugin's own types: timeseries, stat, gauge, bargauge, table) and its
// Prometheus queries. The SDK decodes fieldConfig itself loosely, apart
// from custom: it is decoded strictly on its own.
func strictDecode(raw []byte) error {
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := sdkErr(d.UnmarshalJSONStrict(raw)); err != nil {
		return err
	}
	var panels struct {
		Panels []struct {
			Title       string          `json:"title"`
			FieldConfig json.RawMessage `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &panels); err != nil {
		return err
	}
	for _, p := range panels.Panels {
		if p.FieldConfig == nil {
			continue
		}
		var fc dashboard.FieldConfigSource
		if err := sdkErr(fc.UnmarshalJSONStrict(p.FieldConfig)); err != nil {
			return fmt.Errorf("panel %q: fieldConfig: %w", p.Title, err)
		}
	}
	return nil
}

// Every generated dashboard decodes strictly into the Grafana Foundation
// SDK's dashboard types.
func TestDashboardsDecodeStrictlyIntoTheFoundationSDK(t *testing.T) {
	_, ds := demoBoards(t)
	for _, d := range ds {
		if err := strictDecode(d.JSON); err != nil {
			t.Errorf("%s: %v", d.UID, err)
		}
	}
}

// sdkErr turns the SDK's empty error list (a non-nil error of no errors)
// into nil.
func sdkErr(err error) error {
	if be, ok := err.(cog.BuildErrors); ok && len(be) == 0 {
		return nil
	}
	return err
}

// Strict decoding fails on what Grafana would ignore or misread: unknown
// fields and wrong types anywhere, the panel plugins' options included.
func TestStrictDecodeRejectsUnknownAndMistypedFields(t *testing.T) {
	_, ds := demoBoards(t)
	var tickets []byte
	for _, d := range ds {
		if d.UID == UIDTickets {
			tickets = d.JSON
		}
	}
	for name, edit := range map[string]func(m map[string]any){
		"unknown dashboard field": func(m map[string]any) { m["refreshh"] = "1m" },
		"mistyped gridPos":        func(m map[string]any) { panel(m, 1)["gridPos"].(map[string]any)["w"] = "12" },
		"unknown panel field":     func(m map[string]any) { panel(m, 1)["spann"] = 4 },
		"unknown option":          func(m map[string]any) { panel(m, 1)["options"].(map[string]any)["legendd"] = true },
		"mistyped stat option": func(m map[string]any) {
			for _, p := range m["panels"].([]any) {
				if pm := p.(map[string]any); pm["type"] == "stat" {
					pm["options"].(map[string]any)["wideLayout"] = "yes"
					return
				}
			}
			t.Fatal("no stat panel")
		},
		"unknown custom field config": func(m map[string]any) {
			fieldDefaults(panel(m, 1))["custom"].(map[string]any)["lineWidht"] = 2
		},
		"unknown field config": func(m map[string]any) { fieldDefaults(panel(m, 1))["unti"] = "s" },
		"unknown query field": func(m map[string]any) {
			panel(m, 1)["targets"].([]any)[0].(map[string]any)["exprr"] = "up"
		},
		"unknown variable field": func(m map[string]any) {
			m["templating"].(map[string]any)["list"].([]any)[1].(map[string]any)["multii"] = true
		},
	} {
		var m map[string]any
		if err := json.Unmarshal(tickets, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		if err := strictDecode(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func panel(m map[string]any, i int) map[string]any { return m["panels"].([]any)[i].(map[string]any) }

func fieldDefaults(p map[string]any) map[string]any {
	return p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)
}

// The dashboards' "editable" is the file provider's allowUiUpdates: an
// editable dashboard Grafana refuses to save, or a UI edit the next
// provisioning overwrites, confuses users.
func TestEditableAgreesWithTheProvider(t *testing.T) {
	cfg, _ := demoBoards(t)
	dir := t.TempDir()
	if _, err := WriteFiles(cfg, dir, DefaultFileOptions); err != nil {
		t.Fatal(err)
	}
	var provider struct {
		Providers []struct {
			AllowUIUpdates *bool `yaml:"allowUiUpdates"`
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "provisioning/dashboards/servq.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &provider); err != nil || len(provider.Providers) != 1 || provider.Providers[0].AllowUIUpdates == nil {
		t.Fatalf("provider %s: %v", b, err)
	}
	allow := *provider.Providers[0].AllowUIUpdates
	files, _ := filepath.Glob(filepath.Join(dir, "dashboards", "*.json"))
	for _, f := range files {
		var d struct{ Editable *bool }
		b, _ := os.ReadFile(f)
		if err := json.Unmarshal(b, &d); err != nil || d.Editable == nil || *d.Editable != allow {
			t.Errorf("%s: editable %v, the provider's allowUiUpdates %v (%v)", f, d.Editable, allow, err)
		}
	}
}

// No query names a job: the $job variable chooses.
func TestNoHardCodedJob(t *testing.T) {
	_, ds := demoBoards(t)
	for _, d := range ds {
		s := strings.ReplaceAll(string(d.JSON), `job=~\"$job\"`, "")
		if i := strings.Index(s, "job="); i >= 0 || strings.Contains(s, "job!") {
			t.Errorf("%s: a job matcher other than $job: %s", d.UID, s[max(0, i-80):min(len(s), i+80)])
		}
	}
}

// Every series a query reads passes through max or min before any other
// aggregation, grouped so that the copies of a series (two servq
// instances, two scrape jobs, two Prometheus replicas) collapse into one:
// no sum or count sees a copy.
func TestEverySeriesIsDeduplicatedBeforeAggregation(t *testing.T) {
	cfg, _ := demoBoards(t)
	boards, err := Boards(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boards {
		for _, pn := range b.Panels() {
			for i, tg := range pn.Targets {
				node, err := promql.ParseExpr(lintExpand(tg.Expr))
				if err != nil {
					t.Fatalf("%s/%s: %v", b.UID, pn.Title, err)
				}
				promql.Inspect(node, func(n promql.Node, path []promql.Node) error {
					vs, ok := n.(*promql.VectorSelector)
					if !ok {
						return nil
					}
					for j := len(path) - 1; j >= 0; j-- {
						agg, ok := path[j].(*promql.AggregateExpr)
						if !ok {
							continue
						}
						if !collapsesCopies(agg) {
							t.Errorf("%s/%s target %d: %s reaches %s with its copies\n%s", b.UID, pn.Title, i, vs, agg.ShortString(), tg.Expr)
						}
						return nil
					}
					t.Errorf("%s/%s target %d: %s is never aggregated\n%s", b.UID, pn.Title, i, vs, tg.Expr)
					return nil
				})
			}
		}
	}
}

func collapsesCopies(agg *promql.AggregateExpr) bool {
	if agg.Op != promql.MAX && agg.Op != promql.MIN {
		return false
	}
	for _, l := range DedupLabels {
		if slices.Contains(agg.Grouping, l) != agg.Without {
			return false
		}
	}
	return true
}
