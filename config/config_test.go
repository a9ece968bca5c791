package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// mustFail parses src and returns its error text, failing the test when
// the config was accepted.
func mustFail(t *testing.T, src, file string) string {
	t.Helper()
	_, err := Parse([]byte(src), file)
	if err == nil {
		t.Fatalf("%s was accepted", file)
	}
	return err.Error()
}

func mustParse(t *testing.T, src, file string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(src), file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

// unsetEnv makes sure name is unset for this test and restored after it.
func unsetEnv(t *testing.T, name string) {
	t.Setenv(name, "")
	os.Unsetenv(name)
}

// Decoding problems (unknown keys, wrong types, bad durations, duplicate
// keys) are all reported at once, not just the first one yaml.v3 meets.
func TestDecodeProblemsAllReportedByLine(t *testing.T) {
	got := mustFail(t, `global:
  label_limit: many
  retention: forever
  servise: helpdesk
model:
  short_abandon: 5 seconds
slos:
  - name: a
    filters: {queue: a, queue: b}
`, "m.yml")
	want := strings.Join([]string{
		"m.yml:2: global.label_limit: cannot unmarshal !!str `many` into int",
		`m.yml:3: global.retention: "forever" is not a duration (use e.g. 30s, 5m, 1h, 7d)`,
		`m.yml:4: global.servise: unknown field "servise" (known: collector_timeout, label_limit, new_series_delay, retention, service, time_zone, watermark_wait)`,
		`m.yml:6: model.short_abandon: "5 seconds" is not a duration (use e.g. 30s, 5m, 1h, 7d)`,
		`m.yml:9: slos[0].filters.queue: key is set twice`,
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// Callers (servq check, the landing page) take the errors apart.
func TestErrorsAreStructured(t *testing.T) {
	_, err := Parse([]byte("global:\n  label_limit: -2\n  retention: 1h\n"), "s.yml")
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("err = %#v, want 2 Errors", err)
	}
	want := Error{File: "s.yml", Line: 3, Path: "global.retention", Msg: "must be at least 1d, got 1h"}
	if *es[1] != want {
		t.Errorf("second error = %+v, want %+v", *es[1], want)
	}
	// An error without line or path leaves their separators out.
	if s := (&Error{File: "f.yml", Msg: "config is empty"}).Error(); s != "f.yml: config is empty" {
		t.Errorf("bare error = %q", s)
	}
	if Errors(nil).Err() != nil {
		t.Error("no errors must be a nil error")
	}
}

// yaml.v3 numbers parser errors from 0 (scanner errors from 1); servq
// reports both with the line of the file.
func TestSyntaxErrorLines(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		// The flow sequence that never closes starts on line 2.
		{"global:\n  service: [helpdesk\n", "y.yml:2: did not find expected ',' or ']'"},
		// A badly indented key breaks the top-level mapping, which starts
		// on line 2 after the comment.
		{"# c\nglobal:\n  service: x\n bad: y\n", "y.yml:2: did not find expected key"},
		// When the broken construct starts on line 1, yaml.v3 names the
		// line of the problem instead: the key on line 3.
		{"global:\n  service: x\n bad: y\n", "y.yml:3: did not find expected key"},
		// Scanner error: the tab is on line 2.
		{"global:\n\tservice: x\n", "y.yml:2: found character that cannot start any token"},
		{"global:\n  service: a: b\n", "y.yml:2: mapping values are not allowed in this context"},
	} {
		if got := mustFail(t, c.src, "y.yml"); got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.src, got, c.want)
		}
	}
}

func TestEmptyConfigs(t *testing.T) {
	for _, src := range []string{"", "# nothing yet\n", "---\n", "~\n", "\n\n"} {
		if got := mustFail(t, src, "e.yml"); got != "e.yml:1: config is empty" {
			t.Errorf("%q: %s", src, got)
		}
	}
}

func TestEnvExpansionTypesPlainScalarsAfterwards(t *testing.T) {
	t.Setenv("SERVQ_T_LIMIT", "50")
	t.Setenv("SERVQ_T_RET", "30d")
	t.Setenv("SERVQ_T_MIN", "3.5")
	t.Setenv("SERVQ_T_EVERY", "1m")
	t.Setenv("SERVQ_T_OFF", "true")
	t.Setenv("SERVQ_T_OBJ", "99.5")
	t.Setenv("SERVQ_T_PAGE", "false")
	t.Setenv("SERVQ_T_TEAM", "a: b")
	cfg := mustParse(t, `global:
  label_limit: ${SERVQ_T_LIMIT}
  retention: ${SERVQ_T_RET}
model:
  csat_satisfied_min: ${SERVQ_T_MIN}
collectors:
  - name: c
    type: demo
    schedule: "@every ${SERVQ_T_EVERY}"
    disabled: ${SERVQ_T_OFF}
slos:
  - name: s
    indicator: ticket_fcr
    objective: ${SERVQ_T_OBJ}
    alerting:
      page: ${SERVQ_T_PAGE}
      labels:
        team: ${SERVQ_T_TEAM}
`, "t.yml")
	c, s := cfg.Collectors[0], cfg.SLOs[0]
	if cfg.Global.LabelLimit != 50 || cfg.Global.Retention.D() != 30*24*time.Hour || cfg.Model.CSATSatisfiedMin != 3.5 {
		t.Errorf("global/model = %+v %+v", cfg.Global, cfg.Model)
	}
	if c.Schedule != "@every 1m" || !c.Disabled {
		t.Errorf("collector = %+v", c)
	}
	if s.Objective != 99.5 || s.Alerting.Page == nil || *s.Alerting.Page {
		t.Errorf("slo = %+v, page %v", s, s.Alerting.Page)
	}
	// The value "a: b" is text, not a nested mapping.
	if s.Alerting.Labels["team"] != "a: b" {
		t.Errorf("team = %q", s.Alerting.Labels["team"])
	}
}

func TestEnvExpansionQuotedStaysString(t *testing.T) {
	t.Setenv("SERVQ_T_LIMIT", "50")
	got := mustFail(t, "global:\n  label_limit: \"${SERVQ_T_LIMIT}\"\n", "q.yml")
	if want := "q.yml:2: global.label_limit: cannot unmarshal !!str `50` into int"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// A value cannot inject structure: a flow list in a variable stays a
// string, so it does not fit a list field.
func TestEnvExpansionCannotInjectStructure(t *testing.T) {
	t.Setenv("SERVQ_T_LIST", "[support, sales]")
	cfg := mustParse(t, `collectors:
  - name: c
    type: x
    schedule: "@hourly"
    queues: ${SERVQ_T_LIST}
`, "i.yml")
	var spec struct {
		Queues []string `yaml:"queues"`
	}
	err := cfg.Collectors[0].DecodeSpec(&spec)
	if err == nil || err.Error() != "i.yml:5: collectors[0].queues: cannot unmarshal !!str `[suppor...` into []string" {
		t.Errorf("err = %v", err)
	}
}

func TestEnvExpansionEscapesAndSinglePass(t *testing.T) {
	t.Setenv("SERVQ_T_HOST", "vm")
	t.Setenv("SERVQ_T_REF", "${SERVQ_T_HOST}")
	t.Setenv("SERVQ_T_EMPTY", "")
	cfg := mustParse(t, `global:
  service: ${SERVQ_T_REF}
  label_limit: ${SERVQ_T_EMPTY}
push:
  url: http://${SERVQ_T_HOST}:8428/api/v1/import/prometheus
  extra_labels:
    price: cost $$5 ($$$${SERVQ_T_HOST})
    raw: "$${SERVQ_T_HOST} $5 ${not-a-name}"
  password: p$$w
`, "e.yml")
	checks := []struct{ name, got, want string }{
		// The value of a variable is not expanded again.
		{"service", cfg.Global.Service, "${SERVQ_T_HOST}"},
		{"url", cfg.Push.URL, "http://vm:8428/api/v1/import/prometheus"},
		// $$ is one $; $$$$ two.
		{"price", cfg.Push.ExtraLabels["price"], "cost $5 ($${SERVQ_T_HOST})"},
		// A $ that starts no ${NAME} is kept as it is.
		{"raw", cfg.Push.ExtraLabels["raw"], "${SERVQ_T_HOST} $5 ${not-a-name}"},
		{"password", cfg.Push.Password.Reveal(), "p$w"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	// An empty plain value is null: the default applies.
	if cfg.Global.LabelLimit != DefaultLabelLimit {
		t.Errorf("label_limit = %d, want the default %d", cfg.Global.LabelLimit, DefaultLabelLimit)
	}
}

func TestEnvExpansionEveryUnsetVariableReported(t *testing.T) {
	unsetEnv(t, "SERVQ_T_UNSET_A")
	unsetEnv(t, "SERVQ_T_UNSET_B")
	unsetEnv(t, "SERVQ_T_UNSET_C")
	got := mustFail(t, `global:
  service: ${SERVQ_T_UNSET_A}-${SERVQ_T_UNSET_B}
collectors:
  - name: c
    type: demo
    schedule: "${SERVQ_T_UNSET_C}"
`, "u.yml")
	want := `u.yml:2: global.service: environment variable SERVQ_T_UNSET_A is not set
u.yml:2: global.service: environment variable SERVQ_T_UNSET_B is not set
u.yml:6: collectors[0].schedule: environment variable SERVQ_T_UNSET_C is not set`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSecretHiddenInEveryFormat(t *testing.T) {
	t.Setenv("SERVQ_T_PW", "hunter2")
	cfg := mustParse(t, `push:
  url: http://vm:8428/api/v1/import/prometheus
  username: u
  password: ${SERVQ_T_PW}
  bearer_token: hunter2
`, "s.yml")
	p := cfg.Push
	if p.Password.Reveal() != "hunter2" || p.BearerToken.Reveal() != "hunter2" {
		t.Fatalf("secrets lost: %q %q", p.Password.Reveal(), p.BearerToken.Reveal())
	}
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Password
	outs := map[string]string{
		"String": s.String(), "%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%q": fmt.Sprintf("%q", s),
		"%x": fmt.Sprintf("%x", s), "%#v": fmt.Sprintf("%#v", s), "%-12s": fmt.Sprintf("%-12s", s),
		"struct %+v": fmt.Sprintf("%+v", p), "struct %#v": fmt.Sprintf("%#v", *p),
		"json": string(j), "yaml": string(y),
	}
	for name, out := range outs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("%s shows the secret: %s", name, out)
		}
	}
	// Set secrets say so; unset ones stay empty, so a dump tells them apart.
	var back map[string]any
	if err := json.Unmarshal(j, &back); err != nil || back["Password"] != "<secret>" || back["PasswordFile"] != "" {
		t.Errorf("json %s does not mark the set password (%v)", j, err)
	}
	if !strings.Contains(string(y), "\n    password: <secret>\n    password_file: \"\"\n") {
		t.Errorf("yaml does not mark the set password:\n%s", y)
	}
	if Secret("").String() != "" || fmt.Sprintf("%#v", Secret("")) != "" {
		t.Error("an empty secret must render empty")
	}
}

func TestResolveSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, c := range []struct {
		value   Secret
		file    string
		want    string
		wantErr string
	}{
		{value: "inline", want: "inline"},
		{file: write("lf", "tok\n"), want: "tok"},
		{file: write("crlf", "tok\r\n"), want: "tok"},
		{file: write("many", "tok\n\n"), want: "tok"},
		// Only trailing line breaks go: spaces and inner newlines are part
		// of the secret.
		{file: write("inner", " a\nb \n"), want: " a\nb "},
		{value: "inline", file: write("both", "tok\n"), wantErr: "set either the value or the _file variant, not both"},
	} {
		got, err := ResolveSecret(c.value, c.file)
		switch {
		case c.wantErr != "":
			if err == nil || err.Error() != c.wantErr {
				t.Errorf("%q/%s: err = %v, want %s", c.value.Reveal(), c.file, err, c.wantErr)
			}
		case err != nil || got.Reveal() != c.want:
			t.Errorf("%q/%s = %q, %v; want %q", c.value.Reveal(), c.file, got.Reveal(), err, c.want)
		}
	}
	_, err := ResolveSecret("", filepath.Join(dir, "missing"))
	if err == nil || !strings.HasPrefix(err.Error(), "reading secret file: ") {
		t.Errorf("missing file: %v", err)
	}
}

type testSpec struct {
	Path    string            `yaml:"path"`
	Queues  []string          `yaml:"queues"`
	Every   Duration          `yaml:"every"`
	Limit   int               `yaml:"limit"`
	Mapping map[string]string `yaml:"mapping"`
	Auth    struct {
		Token Secret `yaml:"token"`
	} `yaml:"auth"`
	// A plugin never sees the common keys, even under their names.
	Schedule string `yaml:"schedule"`
}

func TestDecodeSpecDecodesPluginKeys(t *testing.T) {
	t.Setenv("SERVQ_T_DIR", "/var/log/asterisk")
	cfg := mustParse(t, `collectors:
  - name: a
    type: x
    schedule: "@every 1m"
    timeout: 1m
    path: ${SERVQ_T_DIR}/queue_log
    queues: [support, sales]
    every: 90s
    limit: 3
    mapping: {id: Ticket ID, created_at: Created}
    auth:
      token: t0k
  - name: b
    type: y
    schedule: "@hourly"
`, "p.yml")
	a := cfg.Collectors[0]
	var spec testSpec
	if err := a.DecodeSpec(&spec); err != nil {
		t.Fatal(err)
	}
	want := testSpec{Path: "/var/log/asterisk/queue_log", Queues: []string{"support", "sales"}, Every: Duration(90 * time.Second),
		Limit: 3, Mapping: map[string]string{"id": "Ticket ID", "created_at": "Created"}}
	want.Auth.Token = "t0k"
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("spec = %+v\nwant %+v", spec, want)
	}
	// Decoding again (a rebuild) gives the same spec.
	var again testSpec
	if err := a.DecodeSpec(&again); err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("second DecodeSpec = %+v, %v", again, err)
	}
	// A collector without plugin keys decodes to the zero spec.
	var none testSpec
	if err := cfg.Collectors[1].DecodeSpec(&none); err != nil || !reflect.DeepEqual(none, testSpec{}) {
		t.Errorf("empty spec = %+v, %v", none, err)
	}
	// Errorf points at the plugin key, a nested key, or the collector.
	for field, want := range map[string]string{
		"path":       "p.yml:6: collectors[0].path: boom",
		"auth.token": "p.yml:12: collectors[0].auth.token: boom",
		"mapping.id": "p.yml:10: collectors[0].mapping.id: boom",
		"":           "p.yml:2: collectors[0]: boom",
	} {
		if got := a.Errorf(field, "%s", "boom").Error(); got != want {
			t.Errorf("Errorf(%q) = %s, want %s", field, got, want)
		}
	}
	if got := cfg.Collectors[1].Errorf("path", "is required").Error(); got != "p.yml:13: collectors[1].path: is required" {
		t.Errorf("Errorf on the second collector = %s", got)
	}
}

func TestDecodeSpecIsStrictAndLocated(t *testing.T) {
	cfg := mustParse(t, `collectors:
  - {name: first, type: demo, schedule: "@every 1m"}
  - name: second
    type: x
    schedule: "@every 1m"
    every: soon
    limit: lots
    mapping:
      id: a
      id: b
    colour: red
`, "p.yml")
	var spec testSpec
	err := cfg.Collectors[1].DecodeSpec(&spec)
	want := strings.Join([]string{
		`p.yml:6: collectors[1].every: "soon" is not a duration (use e.g. 30s, 5m, 1h, 7d)`,
		"p.yml:7: collectors[1].limit: cannot unmarshal !!str `lots` into int",
		`p.yml:10: collectors[1].mapping.id: key is set twice`,
		`p.yml:11: collectors[1].colour: unknown field "colour" (known: auth, every, limit, mapping, path, queues, schedule)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != 4 {
		t.Errorf("DecodeSpec must return Errors, got %T", err)
	}
}

// A duplicate below a field of type any, where walk cannot look, is still
// reported (yaml.v3 would otherwise drop the whole mapping silently).
func TestDuplicateBelowUntypedFieldReported(t *testing.T) {
	cfg := mustParse(t, `collectors:
  - name: a
    type: x
    schedule: "@hourly"
    extra:
      inner: {x: 1, x: 2}
`, "a.yml")
	var spec struct {
		Extra map[string]any `yaml:"extra"`
	}
	err := cfg.Collectors[0].DecodeSpec(&spec)
	if want := `a.yml:6: collectors[0].extra.inner: mapping key "x" already defined at line 6`; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestSetDefaultsFillsEveryUnsetKey(t *testing.T) {
	cfg := mustParse(t, `collectors:
  - {name: a, type: demo, schedule: "@every 1m"}
slos:
  - {name: sl, indicator: call_service_level, threshold: 20s, objective: 80}
  - {name: c, indicator: csat, objective: 80}
push:
  url: http://vm:8428/api/v1/import/prometheus
`, "d.yml")
	g, m := cfg.Global, cfg.Model
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"global.label_limit", g.LabelLimit, 100},
		{"global.time_zone", g.TimeZone, "UTC"},
		{"global.service", g.Service, "customer-service"},
		{"global.collector_timeout", g.CollectorTimeout.D(), 5 * time.Minute},
		{"global.retention", g.Retention.D(), 90 * 24 * time.Hour},
		{"model.csat_satisfied_min", m.CSATSatisfiedMin, 4.0},
		{"model.csat_scale_max", m.CSATScaleMax, 5.0},
		{"model.ces_scale_max", m.CESScaleMax, 7.0},
		{"model.short_abandon", m.ShortAbandon.D(), 5 * time.Second},
		{"model.business_hours", m.BusinessHours, ""},
		// 5m .. 7d
		{"model.buckets.first_reply", m.Buckets.FirstReply, []float64{300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600, 604800}},
		// 1h .. 30d
		{"model.buckets.resolution", m.Buckets.Resolution, []float64{3600, 14400, 28800, 86400, 172800, 259200, 432000, 604800, 1209600, 2592000}},
		{"model.buckets.call_wait", m.Buckets.CallWait, []float64{5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600}},
		{"model.buckets.call_handle", m.Buckets.CallHandle, []float64{30, 60, 120, 180, 300, 420, 600, 900, 1200, 1800, 3600}},
		{"collectors[0].timeout", cfg.Collectors[0].Timeout.D(), 5 * time.Minute},
		{"collectors[0].disabled", cfg.Collectors[0].Disabled, false},
		{"slos[0].window", cfg.SLOs[0].Window.D(), 28 * 24 * time.Hour},
		{"slos[0].abandon_policy", cfg.SLOs[0].AbandonPolicy, "count_as_bad"},
		// Only call_service_level has a policy to default.
		{"slos[1].abandon_policy", cfg.SLOs[1].AbandonPolicy, ""},
		{"slos[1].window", cfg.SLOs[1].Window.D(), 28 * 24 * time.Hour},
		{"push.interval", cfg.Push.Interval.D(), 30 * time.Second},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The defaults are copies: a caller changing its config cannot change
	// the next config's defaults.
	m.Buckets.CallWait[0] = 1
	if DefaultCallWaitBuckets[0] != 5 {
		t.Error("config shares its buckets with DefaultCallWaitBuckets")
	}
	if c := mustParse(t, "global: {service: x}\n", "n.yml"); c.Push != nil || len(c.Collectors) != 0 || len(c.SLOs) != 0 {
		t.Errorf("absent sections must stay absent: %+v", c)
	}
}

func TestSetDefaultsKeepsWhatIsSet(t *testing.T) {
	cfg := mustParse(t, `global:
  label_limit: 7
  time_zone: Europe/Berlin
  service: helpdesk
  collector_timeout: 2m
  retention: 30d
model:
  csat_satisfied_min: 9
  csat_scale_max: 10
  ces_scale_max: 5
  short_abandon: 10s
  buckets: {call_wait: [20, 40]}
collectors:
  - {name: a, type: demo, schedule: "@every 1m"}
  - {name: b, type: demo, schedule: "@every 1m", timeout: 30s}
slos:
  - {name: sl, indicator: call_service_level, threshold: 20s, abandon_policy: exclude_all, objective: 80, window: 7d}
push:
  url: http://vm:8428/api/v1/import/prometheus
  interval: 1m
`, "k.yml")
	g, m := cfg.Global, cfg.Model
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"label_limit", g.LabelLimit, 7},
		{"time_zone", g.TimeZone, "Europe/Berlin"},
		{"service", g.Service, "helpdesk"},
		{"retention", g.Retention.D(), 30 * 24 * time.Hour},
		{"csat_satisfied_min", m.CSATSatisfiedMin, 9.0},
		{"csat_scale_max", m.CSATScaleMax, 10.0},
		{"ces_scale_max", m.CESScaleMax, 5.0},
		{"short_abandon", m.ShortAbandon.D(), 10 * time.Second},
		{"call_wait", m.Buckets.CallWait, []float64{20, 40}},
		// Buckets not set keep their own defaults.
		{"call_handle", len(m.Buckets.CallHandle), len(DefaultCallHandleBuckets)},
		// A collector without a timeout inherits the configured global one.
		{"collectors[0].timeout", cfg.Collectors[0].Timeout.D(), 2 * time.Minute},
		{"collectors[1].timeout", cfg.Collectors[1].Timeout.D(), 30 * time.Second},
		{"abandon_policy", cfg.SLOs[0].AbandonPolicy, "exclude_all"},
		{"window", cfg.SLOs[0].Window.D(), 7 * 24 * time.Hour},
		{"push.interval", cfg.Push.Interval.D(), time.Minute},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestSLOThresholds(t *testing.T) {
	cfg := mustParse(t, `slos:
  - {name: fr4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: fr30, indicator: ticket_first_reply, threshold: 30m, objective: 80}
  - {name: res, indicator: ticket_resolution, threshold: 1d, objective: 80}
  - {name: sl30, indicator: call_service_level, threshold: 30s, objective: 80}
  - {name: sl20, indicator: call_service_level, threshold: 20s, objective: 80}
  - {name: fcr, indicator: ticket_fcr, objective: 70}
`, "t.yml")
	for ind, want := range map[string][]float64{
		"ticket_first_reply": {1800, 14400}, // 30m = 1800 s, 4h = 14400 s, sorted
		"ticket_resolution":  {86400},       // 1d = 86400 s
		"call_service_level": {20, 30},      // sorted although written 30s first
		"ticket_fcr":         nil,           // no threshold
		"csat":               nil,           // no SLO at all
	} {
		if got := cfg.SLOThresholds(ind); !slices.Equal(got, want) {
			t.Errorf("SLOThresholds(%s) = %v, want %v", ind, got, want)
		}
	}
}

func TestLocate(t *testing.T) {
	cfg := mustParse(t, `slos:
  - name: a
    indicator: ticket_first_reply
    threshold: 4h
    objective: 90
`, "l.yml")
	for path, want := range map[string]int{
		"slos[0].threshold": 4,
		"slos[0].window":    2, // not written: the SLO's own line
		"push.url":          1, // nothing of it written: the document's line
	} {
		if got := cfg.Locate(path); got != want {
			t.Errorf("Locate(%s) = %d, want %d", path, got, want)
		}
	}
}

// setExampleEnv sets the environment variables example.yml's secrets
// name, as a user would before `servq check`.
func setExampleEnv(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ReferencedEnv(b) {
		t.Setenv(v, "example-"+strings.ToLower(v))
	}
}

func TestExampleParses(t *testing.T) {
	setExampleEnv(t, "example.yml")
	cfg, err := Load("example.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Which plugins it shows is checked in cmd/servq, where they are
	// registered (every one must be in the example).
	indicators := map[string]bool{}
	for _, s := range cfg.SLOs {
		indicators[s.Indicator] = true
	}
	for ind := range Indicators {
		if !indicators[ind] {
			t.Errorf("example.yml has no SLO on %s", ind)
		}
	}
	if cfg.Push == nil || cfg.Model.BusinessHours == "" || len(cfg.BusinessHours) == 0 || len(cfg.Model.ServqualWeights) != 5 {
		t.Errorf("example.yml misses a section: %+v", cfg)
	}
}

// keyPaths lists the key paths a config can set, sequence indexes left
// out: slos.alerting.page.
func keyPaths(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for name, f := range yamlFields(t) {
		p := joinPath(prefix, name)
		out[p] = true
		keyPaths(f.Type, p, out)
	}
}

// firstKeys maps each key path of a YAML tree to the line it is first
// written on.
func firstKeys(n *yaml.Node, prefix string, out map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			firstKeys(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(prefix, n.Content[i].Value)
			if _, ok := out[p]; !ok {
				out[p] = n.Content[i].Line
			}
			firstKeys(n.Content[i+1], p, out)
		}
	}
}

// The reference config shows every key of the main config, each with a
// comment (on its line or right above it). Keys that exclude a key shown
// (password and password_file) appear commented out.
func TestExampleShowsAndExplainsEveryKey(t *testing.T) {
	text, err := os.ReadFile("example.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(text), "\n")
	written := map[string]int{}
	firstKeys(&doc, "", written)
	all := map[string]bool{}
	keyPaths(reflect.TypeOf(Config{}), "", all)
	if len(all) < 50 {
		t.Fatalf("only %d key paths found: %v", len(all), all)
	}
	commentedOut := map[string]bool{"push.password": true, "push.bearer_token": true, "push.bearer_token_file": true, "slos.custom.good_query": true}
	for _, p := range sortedKeys(all) {
		leaf := p[strings.LastIndex(p, ".")+1:]
		if commentedOut[p] {
			if !regexp.MustCompile(`(?m)^\s*#\s*` + leaf + `: `).Match(text) {
				t.Errorf("%s is not shown commented out", p)
			}
			continue
		}
		line, ok := written[p]
		if !ok {
			t.Errorf("example.yml does not show %s", p)
			continue
		}
		own := lines[line-1]
		above := ""
		if line >= 2 {
			above = strings.TrimSpace(lines[line-2])
		}
		if !strings.Contains(own, " # ") && !strings.HasPrefix(above, "#") {
			t.Errorf("example.yml:%d: %s has no comment", line, p)
		}
	}
}

func TestDecodeSpecWithInlineSharedKeys(t *testing.T) {
	type shared struct {
		Timeout Duration `yaml:"request_timeout"`
	}
	type spec struct {
		URL    string `yaml:"url"`
		shared `yaml:",inline"`
	}
	cfg, err := Parse([]byte("collectors:\n  - name: a\n    type: x\n    schedule: \"@every 1m\"\n    url: http://x\n    request_timeout: 5s\n"), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	if err := cfg.Collectors[0].DecodeSpec(&s); err != nil || s.URL != "http://x" || s.shared.Timeout.D() != 5*time.Second {
		t.Errorf("spec = %+v, err %v", s, err)
	}
	cfg, _ = Parse([]byte("collectors:\n  - name: a\n    type: x\n    schedule: \"@every 1m\"\n    request_timeot: 5s\n"), "t.yml")
	if err := cfg.Collectors[0].DecodeSpec(&s); err == nil || !strings.Contains(err.Error(), `t.yml:5: collectors[0].request_timeot: unknown field "request_timeot" (known: request_timeout, url)`) {
		t.Errorf("typo: %v", err)
	}
}

func TestReferencedEnv(t *testing.T) {
	got := ReferencedEnv([]byte("a: ${ONE}\n# b: ${IN_COMMENT}\nc: \"x#${TWO}\" # ${ALSO_COMMENT}\nd: $$literal ${ONE}\n"))
	if want := []string{"ONE", "TWO"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ReferencedEnv = %v, want %v", got, want)
	}
}
