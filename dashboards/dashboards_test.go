package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
)

func demoBoards(t *testing.T) (*config.Config, []Dashboard) {
	t.Helper()
	cfg, err := config.Demo()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, ds
}

// The JSON is what Grafana 10+ needs: schema version, unique panel ids,
// a grid position for every panel, the data source by uid through the
// ${datasource} variable, modern panel types, units, thresholds and
// descriptions on every panel, and variables that refresh.
func TestDashboardsAreModernAndComplete(t *testing.T) {
	_, ds := demoBoards(t)
	wantUIDs := []string{UIDOverview, UIDTickets, UIDTelephony, UIDSurveys, UIDSLO, UIDHealth}
	if len(ds) != len(wantUIDs) {
		t.Fatalf("%d dashboards, want %d", len(ds), len(wantUIDs))
	}
	modern := map[string]bool{"timeseries": true, "stat": true, "gauge": true, "bargauge": true, "table": true, "row": true}
	for i, d := range ds {
		if d.UID != wantUIDs[i] {
			t.Errorf("dashboard %d uid %q, want %q", i, d.UID, wantUIDs[i])
		}
		var m struct {
			UID           string `json:"uid"`
			Title         string `json:"title"`
			SchemaVersion int    `json:"schemaVersion"`
			ID            any    `json:"id"`
			Rows          any    `json:"rows"`
			Panels        []struct {
				ID          int               `json:"id"`
				Type        string            `json:"type"`
				Title       string            `json:"title"`
				Description string            `json:"description"`
				Datasource  map[string]string `json:"datasource"`
				GridPos     struct{ H, W, X, Y *int }
				FieldConfig struct {
					Defaults struct {
						Unit       string
						Thresholds struct{ Steps []any }
					}
				} `json:"fieldConfig"`
				Targets []map[string]any `json:"targets"`
				Span    any              `json:"span"`
			} `json:"panels"`
			Templating struct {
				List []map[string]any `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(d.JSON, &m); err != nil {
			t.Fatalf("%s: %v", d.UID, err)
		}
		if m.UID != d.UID || m.SchemaVersion != SchemaVersion || m.ID != nil || m.Rows != nil {
			t.Errorf("%s: uid %q schemaVersion %d id %v rows %v", d.UID, m.UID, m.SchemaVersion, m.ID, m.Rows)
		}
		ids := map[int]bool{}
		type cell struct{ x, y int }
		used := map[cell]string{}
		for _, p := range m.Panels {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel id %d repeated or zero", d.UID, p.ID)
			}
			ids[p.ID] = true
			if !modern[p.Type] {
				t.Errorf("%s/%s: panel type %q", d.UID, p.Title, p.Type)
			}
			g := p.GridPos
			if g.H == nil || g.W == nil || g.X == nil || g.Y == nil || *g.X+*g.W > 24 {
				t.Errorf("%s/%s: gridPos %+v", d.UID, p.Title, g)
				continue
			}
			for x := *g.X; x < *g.X+*g.W; x++ {
				for y := *g.Y; y < *g.Y+*g.H; y++ {
					if other, ok := used[cell{x, y}]; ok {
						t.Errorf("%s: panels %q and %q overlap at %d,%d", d.UID, other, p.Title, x, y)
					}
					used[cell{x, y}] = p.Title
				}
			}
			if p.Span != nil {
				t.Errorf("%s/%s: legacy span", d.UID, p.Title)
			}
			if p.Type == "row" {
				continue
			}
			if p.Description == "" || p.FieldConfig.Defaults.Unit == "" || len(p.FieldConfig.Defaults.Thresholds.Steps) == 0 {
				t.Errorf("%s/%s: description %q unit %q thresholds %v", d.UID, p.Title, p.Description, p.FieldConfig.Defaults.Unit, p.FieldConfig.Defaults.Thresholds.Steps)
			}
			if p.Datasource["uid"] != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("%s/%s: datasource %v, %d targets", d.UID, p.Title, p.Datasource, len(p.Targets))
			}
			for _, tg := range p.Targets {
				if ds, _ := tg["datasource"].(map[string]any); ds["uid"] != "${datasource}" || tg["expr"] == "" || tg["refId"] == "" {
					t.Errorf("%s/%s: target %v", d.UID, p.Title, tg)
				}
			}
		}
		if len(m.Templating.List) == 0 || m.Templating.List[0]["name"] != "datasource" || m.Templating.List[0]["type"] != "datasource" {
			t.Errorf("%s: first variable must be the datasource: %v", d.UID, m.Templating.List)
		}
		for _, v := range m.Templating.List[1:] {
			if v["refresh"] != float64(2) || v["type"] != "query" {
				t.Errorf("%s: variable %v does not refresh on time range change", d.UID, v["name"])
			}
		}
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	_, a := demoBoards(t)
	_, b := demoBoards(t)
	for i := range a {
		if !bytes.Equal(a[i].JSON, b[i].JSON) {
			t.Errorf("%s differs between two renders", a[i].UID)
		}
	}
}

// The files for Grafana's file provisioning: dashboards, the provider and
// the alert rules, in the documented formats.
func TestWriteFiles(t *testing.T) {
	cfg, _ := demoBoards(t)
	dir := t.TempDir()
	files, err := WriteFiles(cfg, dir, DefaultFileOptions)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 9 {
		t.Errorf("wrote %v", files)
	}
	var provider struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Folder, FolderUID, Type string
			Options                       struct{ Path string }
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "provisioning/dashboards/servq.yaml"))
	if err := yaml.Unmarshal(b, &provider); err != nil || provider.APIVersion != 1 || len(provider.Providers) != 1 ||
		provider.Providers[0].Type != "file" || provider.Providers[0].Options.Path != DefaultFileOptions.DashboardsPath {
		t.Errorf("provider = %+v %v\n%s", provider, err, b)
	}
	var alerts struct {
		APIVersion int `yaml:"apiVersion"`
		Groups     []struct {
			OrgID    int `yaml:"orgId"`
			Name     string
			Folder   string
			Interval string
			Rules    []AlertRule
		}
	}
	b, _ = os.ReadFile(filepath.Join(dir, "provisioning/alerting/servq.yaml"))
	if err := yaml.Unmarshal(b, &alerts); err != nil || alerts.APIVersion != 1 || len(alerts.Groups) != 1 {
		t.Fatalf("alerts = %+v %v", alerts, err)
	}
	g := alerts.Groups[0]
	if g.Folder != "servq" || g.Interval != "1m" || g.OrgID != 1 {
		t.Errorf("group = %+v", g)
	}
	// Demo: 6 SLOs with page and ticket alerts each, 4 KPI targets, and
	// the rule that the SLO recordings are there.
	if len(g.Rules) != 17 {
		t.Errorf("%d rules, want 17", len(g.Rules))
	}
	uids := map[string]bool{}
	for _, r := range g.Rules {
		if uids[r.UID] || len(r.UID) > 40 || r.Condition != "C" || len(r.Data) != 2 || r.Data[0].DatasourceUID != "prometheus" || r.Labels["severity"] == "" {
			t.Errorf("rule %+v", r)
		}
		uids[r.UID] = true
		for _, a := range r.Annotations {
			if strings.Contains(a, "$value ") || strings.Contains(a, "$value|") {
				t.Errorf("rule %s: Prometheus $value left in annotation %q", r.Title, a)
			}
		}
	}
}

func TestGrafanaTemplate(t *testing.T) {
	for in, want := range map[string]string{
		"now: {{ $value | humanizePercentage }}.":   "now: {{ humanizePercentage $values.A.Value }}.",
		`is {{ $value | printf "%.2f" }}, target 3`: `is {{ printf "%.2f" $values.A.Value }}, target 3`,
		"{{ $value }} calls on {{ $labels.queue }}": "{{ $values.A.Value }} calls on {{ $labels.queue }}",
	} {
		if got := grafanaTemplate(in); got != want {
			t.Errorf("grafanaTemplate(%q) = %q, want %q", in, got, want)
		}
	}
}

// dashboards/README.md lists every dashboard and panel.
func TestReadmeListsEveryPanel(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	cfg, _ := demoBoards(t)
	boards, err := Boards(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, bd := range boards {
		if !strings.Contains(readme, "### "+bd.Title+" (`"+bd.UID+"`)") {
			t.Errorf("README lacks dashboard %s", bd.Title)
		}
		for _, p := range bd.panels {
			if !strings.Contains(readme, p.Title) {
				t.Errorf("README lacks panel %q of %s", p.Title, bd.UID)
			}
		}
	}
}

// The Grafana rule that watches for missing SLO recordings names each SLO
// whose recordings the data source lacks, and nothing once they are there
// (promtool evaluates its query with and without sloth_slo_info).
func TestRecordingsMissingRule(t *testing.T) {
	cfg, err := config.Parse([]byte(`
global: {service: svc}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: a, indicator: call_abandonment, objective: 99, window: 30d}
  - {name: b, indicator: call_abandonment, objective: 95, window: 7d}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := AlertRules(cfg, "prom", "servq")
	if err != nil {
		t.Fatal(err)
	}
	r := rs[len(rs)-1]
	if r.Title != "ServqSLORecordingsMissing (ticket)" || r.Data[0].DatasourceUID != "prom" {
		t.Fatalf("last rule %+v", r)
	}
	expr := r.Data[0].Model["expr"].(string)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty.yml"), []byte("groups: []\n"), 0o644)
	test := fmt.Sprintf(`rule_files: [empty.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'sloth_slo_info{sloth_id="svc-a"}', values: '1x10'}
    promql_expr_test:
      - {expr: '%[1]s', eval_time: 5m, exp_samples: [{labels: '{sloth_id="svc-b"}', value: 1}]}
  - interval: 1m
    input_series:
      - {series: 'sloth_slo_info{sloth_id="svc-a"}', values: '1x10'}
      - {series: 'sloth_slo_info{sloth_id="svc-b"}', values: '1x10'}
    promql_expr_test:
      - {expr: '%[1]s', eval_time: 5m, exp_samples: []}
`, expr)
	os.WriteFile(filepath.Join(dir, "test.yml"), []byte(test), 0o644)
	out, err := exec.Command(testenv.Binary(t, "promtool"), "test", "rules", filepath.Join(dir, "test.yml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
}
