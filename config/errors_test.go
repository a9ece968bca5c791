package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Each file in testdata/errors breaks one validation rule; its first line
// says the exact error servq must print for it.
func TestEveryRuleHasItsExactError(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yml")
	if err != nil || len(files) < 40 {
		t.Fatalf("found %d error fixtures (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, _ := os.ReadFile(f)
			first, _, _ := strings.Cut(string(b), "\n")
			want := "testdata/errors/" + strings.TrimPrefix(first, "# want: ")
			_, err := Load(f)
			if err == nil {
				t.Fatalf("accepted; want %s", want)
			}
			if err.Error() != want {
				t.Errorf("\n got %s\nwant %s", err, want)
			}
		})
	}
}

func TestAllProblemsReportedInLineOrder(t *testing.T) {
	_, err := Parse([]byte(`slos:
  - {name: b, indicator: ticket_fcr, objective: 100}
global:
  label_limit: -3
collectors:
  - {name: c, type: demo}
`), "multi.yml")
	want := `multi.yml:2: slos[0].objective: 100 leaves no error budget: every single miss would exhaust it; use e.g. 99.9
multi.yml:4: global.label_limit: must be at least 1, got -3
multi.yml:6: collectors[0].schedule: is required (a cron spec such as "*/5 * * * *" or "@every 1m")`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

// yaml.v3 stops at a duplicate key or a bad explicit tag, which would show
// one problem per run of servq check; every decode problem of the file
// comes out at once, each on its line and key (on a line of several keys,
// the key whose value is wrong).
func TestEveryDecodeProblemReportedAtOnce(t *testing.T) {
	_, err := Parse([]byte(`global:
  service: a
  service: b
  label_limit: lots
  retention: !!binary aGVsbG8=
  time_zone: !!int UTC
slos:
  - {name: x, indicator: ticket_fcr, objective: high, window: 7d}
collectors:
  - name: c
    type: demo
    schedule: "@every 1m"
    timeout: soon
`), "all.yml")
	want := `all.yml:3: global.service: field is set twice
all.yml:4: global.label_limit: cannot unmarshal !!str ` + "`lots`" + ` into int
all.yml:5: global.retention: explicit tag !!binary is not supported: write the plain value (only the core tags !!str, !!int, !!float, !!bool and !!null are)
all.yml:6: global.time_zone: "UTC" is not a valid !!int
all.yml:8: slos[0].objective: cannot unmarshal !!str ` + "`high`" + ` into float64
all.yml:13: collectors[0].timeout: "soon" is not a duration (use e.g. 30s, 5m, 1h, 7d)`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("SERVQ_T_SERVICE", "helpdesk")
	t.Setenv("SERVQ_T_TRICKY", "a: b\n- c")
	cfg, err := Parse([]byte(`global:
  service: "${SERVQ_T_SERVICE}-$$1"
push:
  url: http://vm:8428/api/v1/import/prometheus
  extra_labels: {note: "${SERVQ_T_TRICKY}"}
`), "env.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Global.Service != "helpdesk-$1" {
		t.Errorf("service = %q", cfg.Global.Service)
	}
	// A value is never parsed as YAML: structure cannot be injected.
	if cfg.Push.ExtraLabels["note"] != "a: b\n- c" {
		t.Errorf("note = %q", cfg.Push.ExtraLabels["note"])
	}
}

func TestSecretsNeverShowThemselves(t *testing.T) {
	s := Secret("hunter2")
	y, _ := yaml.Marshal(map[string]Secret{"p": s})
	j, _ := json.Marshal(map[string]Secret{"p": s})
	for _, out := range []string{s.String(), fmt.Sprintf("%v %s %#v %+v", s, s, s, s), string(y), string(j)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret shown: %s", out)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Error("Reveal lost the value")
	}
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("from-file\r\n"), 0o600)
	got, err := ResolveSecret("", file)
	if err != nil || got.Reveal() != "from-file" {
		t.Errorf("ResolveSecret from file = %q, %v", got.Reveal(), err)
	}
	if _, err := ResolveSecret("x", file); err == nil {
		t.Error("value and file both set must be an error")
	}
	if _, err := ResolveSecret("", filepath.Join(t.TempDir(), "missing")); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("missing secret file: %v", err)
	}
}

type pluginSpec struct {
	Path  string   `yaml:"path"`
	Every Duration `yaml:"every"`
	Auth  struct {
		Token     Secret `yaml:"token"`
		TokenFile string `yaml:"token_file"`
	} `yaml:"auth"`
}

func TestCollectorSpecIsStrictAndLocated(t *testing.T) {
	cfg, err := Parse([]byte(`collectors:
  - name: a
    type: x
    schedule: "@every 1m"
    path: /tmp/q
    every: 2m
    auth:
      token: t0k
      tokne_file: /x
`), "plug.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Collectors[0]
	var spec pluginSpec
	err = c.DecodeSpec(&spec)
	if err == nil || err.Error() != `plug.yml:9: collectors[0].auth.tokne_file: unknown field "tokne_file" (known: token, token_file)` {
		t.Errorf("DecodeSpec error = %v", err)
	}
	if spec.Path != "/tmp/q" || spec.Every.D() != 2*time.Minute || spec.Auth.Token.Reveal() != "t0k" {
		t.Errorf("decoded spec = %+v", spec)
	}
	if e := c.Errorf("path", "cannot open %s", "it"); e.Error() != "plug.yml:5: collectors[0].path: cannot open it" {
		t.Errorf("Errorf = %v", e)
	}
	if e := c.Errorf("nothing_here", "missing"); e.Error() != "plug.yml:2: collectors[0].nothing_here: missing" {
		t.Errorf("Errorf for an absent key = %v (want the collector's line)", e)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`collectors:
  - {name: a, type: demo, schedule: "@every 1m"}
slos:
  - {name: sl, indicator: call_service_level, threshold: 30s, objective: 80}
  - {name: r, indicator: ticket_resolution, threshold: 8h, objective: 80}
  - {name: r2, indicator: ticket_resolution, threshold: 2h, objective: 80}
push:
  url: http://vm/api/v1/import/prometheus
`), "d.yml")
	if err != nil {
		t.Fatal(err)
	}
	g, m := cfg.Global, cfg.Model
	checks := map[string][2]any{
		"label_limit":        {g.LabelLimit, 100},
		"time_zone":          {g.TimeZone, "UTC"},
		"service":            {g.Service, "customer-service"},
		"collector_timeout":  {g.CollectorTimeout, DefaultCollectorTimeout},
		"retention":          {g.Retention, Duration(90 * 24 * time.Hour)},
		"csat_satisfied_min": {m.CSATSatisfiedMin, 4.0},
		"csat_scale_max":     {m.CSATScaleMax, 5.0},
		"ces_scale_max":      {m.CESScaleMax, 7.0},
		"short_abandon":      {m.ShortAbandon, Duration(5 * time.Second)},
		"collector timeout":  {cfg.Collectors[0].Timeout, DefaultCollectorTimeout},
		"slo window":         {cfg.SLOs[0].Window, Duration(28 * 24 * time.Hour)},
		"abandon_policy":     {cfg.SLOs[0].AbandonPolicy, AbandonCountAsBad},
		"push interval":      {cfg.Push.Interval, Duration(30 * time.Second)},
		"call_wait buckets":  {len(m.Buckets.CallWait), len(DefaultCallWaitBuckets)},
	}
	for name, c := range checks {
		if fmt.Sprint(c[0]) != fmt.Sprint(c[1]) {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	if got := cfg.SLOThresholds("ticket_resolution"); fmt.Sprint(got) != "[7200 28800]" {
		t.Errorf("SLOThresholds = %v", got)
	}
}

func TestDemoConfigIsValid(t *testing.T) {
	cfg, err := Demo()
	if err != nil {
		t.Fatal(err)
	}
	indicators := map[string]bool{}
	for _, s := range cfg.SLOs {
		indicators[s.Indicator] = true
	}
	for ind := range Indicators {
		if ind != "custom" && !indicators[ind] {
			t.Errorf("the demo has no SLO on %s", ind)
		}
	}
	if len(cfg.Collectors) != 1 || cfg.Collectors[0].Type != "demo" || cfg.Model.BusinessHours != "office" {
		t.Errorf("demo config = %+v", cfg)
	}
}
