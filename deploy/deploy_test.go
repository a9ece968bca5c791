package deploy_test

// These tests check the deployment examples in this directory with the
// programs that read them: promtool, amtool, a real Alertmanager,
// systemd-analyze and servq itself. A missing promtool or Alertmanager
// skips a test, or fails it when SERVQ_INTEGRATION=require (deploy/test.sh
// sets it after installing them); systemd-analyze and kubectl are not
// installed by the test script, so their tests skip when they are absent.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/servq/servq/collectors"
	_ "github.com/servq/servq/collectors/sources" // the plugins the ConfigMap's collectors use
	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/slo/rules"
)

// The files under test, relative to this directory (go test runs here).
const (
	promConfigFile = "prometheus/prometheus.yml"
	amConfigFile   = "alertmanager/alertmanager.yml"
	unitFile       = "systemd/servq.service"
	k8sDir         = "kubernetes"

	// Where prometheus.yml expects the file `servq rules --output` writes.
	ruleFilePath = "/etc/prometheus/rules/servq.rules.yml"
	// The example receivers' webhook base in alertmanager.yml.
	exampleWebhook = "http://127.0.0.1:9094"
	// The binary path in the unit's ExecStart.
	installedBinary = "/usr/local/bin/servq"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodeYAML(t *testing.T, name string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// buildServq builds the servq binary into a temporary directory.
func buildServq(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "servq")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/servq/servq/cmd/servq").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// --- Prometheus ---

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusConfigContent checks what prometheus.yml promises: the
// intervals, the servq job on servq's default port (its name is the
// default rules.job of the generated ServqDown alerts), the rule file
// `servq rules --output` writes and the Alertmanager.
func TestPrometheusConfigContent(t *testing.T) {
	var c promConfig
	decodeYAML(t, promConfigFile, &c)
	if c.Global.ScrapeInterval != "30s" || c.Global.EvaluationInterval != "1m" {
		t.Errorf("global intervals = %q/%q, want 30s/1m", c.Global.ScrapeInterval, c.Global.EvaluationInterval)
	}
	if !slices.Equal(c.RuleFiles, []string{ruleFilePath}) {
		t.Errorf("rule_files = %q, want [%q]", c.RuleFiles, ruleFilePath)
	}
	if len(c.Alerting.Alertmanagers) != 1 || len(c.Alerting.Alertmanagers[0].StaticConfigs) != 1 ||
		!slices.Equal(c.Alerting.Alertmanagers[0].StaticConfigs[0].Targets, []string{"localhost:9093"}) {
		t.Errorf("alerting = %+v, want one Alertmanager at localhost:9093", c.Alerting)
	}
	found := false
	for _, sc := range c.ScrapeConfigs {
		if sc.JobName != config.DefaultJob {
			continue
		}
		found = true
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path = %q, want servq's default /metrics", sc.JobName, sc.MetricsPath)
		}
		if len(sc.StaticConfigs) != 1 || !slices.Equal(sc.StaticConfigs[0].Targets, []string{"localhost:9817"}) {
			t.Errorf("job %s: static_configs = %+v, want the target localhost:9817", sc.JobName, sc.StaticConfigs)
		}
	}
	if !found {
		t.Errorf("no scrape job %q (the job the generated ServqDown/ServqAbsent alerts select)", config.DefaultJob)
	}
}

// TestPrometheusConfigPromtool runs `promtool check config` on
// prometheus.yml. The rule file it names exists only once `servq rules`
// has written it; where it does not, promtool rejects the config for that
// alone, and the check is repeated on a copy whose rule_files entry points
// at a temporary rule file: an empty one, and the ones servq generates
// for the Kubernetes example's config and for config/example.yml.
func TestPrometheusConfigPromtool(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	out, err := exec.Command(promtool, "check", "config", promConfigFile).CombinedOutput()
	if err == nil {
		t.Logf("promtool check config %s (with the installed rule file):\n%s", promConfigFile, out)
		return
	}
	if !strings.Contains(string(out), ruleFilePath) {
		t.Fatalf("promtool check config %s: %v\n%s", promConfigFile, err, out)
	}
	t.Logf("%s does not exist here (%s); checking copies that point at temporary rule files", ruleFilePath, strings.TrimSpace(string(out)))

	ruleFiles := map[string][]byte{"empty": []byte("groups: []\n")}
	for name, load := range map[string]func() (*config.Config, error){
		"configmap": func() (*config.Config, error) { return config.Parse(configMapServqYAML(t), "servq.yml") },
		"example": func() (*config.Config, error) {
			testenv.SetConfigEnv(t, "../config/example.yml")
			return config.Load("../config/example.yml")
		},
	} {
		cfg, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := rules.Generate(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ruleFiles[name], err = rules.Marshal(f, name); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range ruleFiles {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ruleFile := filepath.Join(dir, "servq.rules.yml")
			writeFile(t, ruleFile, content)
			cfgFile := filepath.Join(dir, "prometheus.yml")
			writeFile(t, cfgFile, withRuleFile(t, readFile(t, promConfigFile), ruleFile))
			out, err := exec.Command(promtool, "check", "config", cfgFile).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool check config (rule file %s): %v\n%s", name, err, out)
			}
			if !strings.Contains(string(out), "SUCCESS: 1 rule files found") {
				t.Errorf("promtool did not check the rule file:\n%s", out)
			}
		})
	}
}

// withRuleFile returns prometheus.yml with its only rule_files entry
// replaced by ruleFile; everything else, comments included, is kept.
func withRuleFile(t *testing.T, data []byte, ruleFile string) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	replaced := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "rule_files" {
			continue
		}
		seq := root.Content[i+1]
		if seq.Kind != yaml.SequenceNode || len(seq.Content) != 1 || seq.Content[0].Value != ruleFilePath {
			t.Fatalf("rule_files is not [%q]", ruleFilePath)
		}
		seq.Content[0].Value = ruleFile
		replaced = true
	}
	if !replaced {
		t.Fatal("prometheus.yml has no rule_files")
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// --- Alertmanager ---

type amRoute struct {
	Receiver       string    `yaml:"receiver"`
	Matchers       []string  `yaml:"matchers"`
	GroupBy        []string  `yaml:"group_by"`
	GroupWait      string    `yaml:"group_wait"`
	GroupInterval  string    `yaml:"group_interval"`
	RepeatInterval string    `yaml:"repeat_interval"`
	Routes         []amRoute `yaml:"routes"`
}

// TestAlertmanagerConfig runs `amtool check-config` on alertmanager.yml and
// checks the grouping and repeat intervals: pages remind hourly, tickets
// twice a day.
func TestAlertmanagerConfig(t *testing.T) {
	var c struct {
		Route amRoute `yaml:"route"`
	}
	decodeYAML(t, amConfigFile, &c)
	if c.Route.Receiver != "support-tickets" {
		t.Errorf("default receiver = %q, want support-tickets", c.Route.Receiver)
	}
	if !slices.Equal(c.Route.GroupBy, []string{"alertname", "sloth_id", "queue"}) {
		t.Errorf("group_by = %q", c.Route.GroupBy)
	}
	repeat := map[string]string{}
	for _, r := range c.Route.Routes {
		repeat[r.Receiver] = r.RepeatInterval
	}
	if repeat["oncall-pager"] != "1h" || repeat["support-tickets"] != "12h" {
		t.Errorf("repeat_interval by receiver = %v, want oncall-pager 1h, support-tickets 12h", repeat)
	}

	amtool := testenv.Binary(t, "amtool")
	out, err := exec.Command(amtool, "check-config", amConfigFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("amtool check-config %s: %v\n%s", amConfigFile, err, out)
	}
	t.Logf("%s", out)
}

// TestAlertmanagerRoutes asks amtool which receiver alerts with servq's
// labels reach: pages the on-call pager, tickets and anything without a
// severity the support queue.
func TestAlertmanagerRoutes(t *testing.T) {
	amtool := testenv.Binary(t, "amtool")
	for _, tc := range []struct {
		labels []string
		want   string
	}{
		{[]string{"severity=page", "alertname=X"}, "oncall-pager"},
		{[]string{"severity=ticket", "alertname=X"}, "support-tickets"},
		{[]string{"alertname=X"}, "support-tickets"},
		{[]string{"alertname=FirstReply4hErrorBudgetBurn", "severity=page", "sloth_severity=page",
			"sloth_id=customer-service-first-reply-4h", "sloth_service=customer-service", "sloth_slo=first-reply-4h"}, "oncall-pager"},
		{[]string{"alertname=ServqDown", "severity=ticket", "instance=localhost:9817", "job=servq"}, "support-tickets"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + amConfigFile}, tc.labels...)
		cmd := exec.Command(amtool, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("amtool %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
			continue
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%v routes to %q, want %q", tc.labels, got, tc.want)
		}
	}
}

// amAlert is an alert as Alertmanager's API v2 lists it.
type amAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

// TestAlertmanagerInhibitsAndNotifies runs a real Alertmanager with
// alertmanager.yml (only the webhook URLs point at a test server) and
// posts servq-like alerts: a page inhibits the ticket alert of the same
// SLO but not that of another SLO, ServqDown inhibits the collector alerts
// of its own instance only, and the page reaches the oncall-pager webhook.
func TestAlertmanagerInhibitsAndNotifies(t *testing.T) {
	amBin := testenv.Binary(t, "prometheus-alertmanager", "alertmanager")

	var mu sync.Mutex
	notified := map[string][]string{} // webhook path -> receiver of each notification
	var firstPage []map[string]string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Receiver string `json:"receiver"`
			Alerts   []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook %s: %v", r.URL.Path, err)
		}
		mu.Lock()
		defer mu.Unlock()
		notified[r.URL.Path] = append(notified[r.URL.Path], m.Receiver)
		if r.URL.Path == "/page" && firstPage == nil {
			for _, a := range m.Alerts {
				firstPage = append(firstPage, a.Labels)
			}
		}
	}))
	defer hook.Close()

	cfg := string(readFile(t, amConfigFile))
	if n := strings.Count(cfg, exampleWebhook); n != 2 {
		t.Fatalf("%s has %d webhook URLs under %s, want 2 (page and ticket)", amConfigFile, n, exampleWebhook)
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, cfgFile, []byte(strings.ReplaceAll(cfg, exampleWebhook, hook.URL)))
	addr := testenv.FreeAddr(t)
	am := testenv.Start(t, addr, "/-/ready", amBin, "--config.file="+cfgFile,
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--cluster.listen-address=")

	burn := func(slo, severity string) map[string]string {
		return map[string]string{"alertname": "SloErrorBudgetBurn", "severity": severity, "sloth_severity": severity,
			"sloth_id": "svc-" + slo, "sloth_service": "svc", "sloth_slo": slo}
	}
	servq := func(alertname, instance string) map[string]string {
		return map[string]string{"alertname": alertname, "severity": "ticket", "job": "servq", "instance": instance, "collector": "demo"}
	}
	posted := []map[string]string{
		burn("reply", "page"),
		burn("reply", "ticket"),
		burn("other", "ticket"),
		servq("ServqDown", "host-a:9817"),
		servq("ServqCollectorFailing", "host-a:9817"),
		servq("ServqCollectorStale", "host-b:9817"),
	}
	// The inhibited alerts, by index in posted.
	wantSuppressed := map[int]bool{1: true, 4: true}

	var body []map[string]any
	for _, l := range posted {
		body = append(body, map[string]any{"labels": l, "annotations": map[string]string{"summary": "test"}})
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post(am.URL+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s\n%s", resp.Status, msg)
	}

	key := func(l map[string]string) string {
		return l["alertname"] + "/" + l["severity"] + "/" + l["sloth_id"] + "/" + l["instance"]
	}
	var last string
	ok := eventually(30*time.Second, func() bool {
		alerts, err := listAlerts(am.URL)
		if err != nil {
			last = err.Error()
			return false
		}
		states := map[string]amAlert{}
		for _, a := range alerts {
			states[key(a.Labels)] = a
		}
		var bad []string
		for i, l := range posted {
			a, found := states[key(l)]
			want := "active"
			if wantSuppressed[i] {
				want = "suppressed"
			}
			if !found || a.Status.State != want || (want == "suppressed") != (len(a.Status.InhibitedBy) > 0) {
				bad = append(bad, fmt.Sprintf("%s: %+v (want %s)", key(l), a.Status, want))
			}
		}
		last = strings.Join(bad, "\n")
		return len(bad) == 0
	})
	if !ok {
		t.Fatalf("inhibition states after 30s:\n%s\n%s", last, am.Log())
	}

	// The page group waits group_wait (10s), then notifies the pager.
	if !eventually(40*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(notified["/page"]) > 0
	}) {
		t.Fatalf("no notification at the pager webhook; notifications: %v", notified)
	}
	mu.Lock()
	defer mu.Unlock()
	if notified["/page"][0] != "oncall-pager" || len(firstPage) != 1 || firstPage[0]["sloth_id"] != "svc-reply" || firstPage[0]["severity"] != "page" {
		t.Errorf("page notification: receiver %q, alerts %v", notified["/page"][0], firstPage)
	}
}

func listAlerts(base string) ([]amAlert, error) {
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v2/alerts: %s", resp.Status)
	}
	var alerts []amAlert
	err = json.NewDecoder(resp.Body).Decode(&alerts)
	return alerts, err
}

func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// --- systemd ---

// unitDirectives returns the unit's directives by name, in order (a
// directive may be repeated), ignoring sections and comments.
func unitDirectives(t *testing.T) map[string][]string {
	t.Helper()
	d := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, unitFile)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a directive: %q", unitFile, line)
		}
		d[k] = append(d[k], v)
	}
	return d
}

// execStartArgs returns the arguments of the unit's ExecStart after the
// binary.
func execStartArgs(t *testing.T) []string {
	t.Helper()
	es := unitDirectives(t)["ExecStart"]
	if len(es) != 1 {
		t.Fatalf("ExecStart = %q, want one", es)
	}
	f := strings.Fields(es[0])
	if f[0] != installedBinary {
		t.Fatalf("ExecStart runs %s, want %s", f[0], installedBinary)
	}
	return f[1:]
}

// TestSystemdUnitDirectives checks the settings the unit depends on: the
// command line, reload by SIGHUP, a persistent state directory for the
// bbolt store, the optional environment file and the hardening.
func TestSystemdUnitDirectives(t *testing.T) {
	d := unitDirectives(t)
	want := map[string]string{
		"ExecStart":              installedBinary + " run --config.file=/etc/servq/servq.yml --storage.path=/var/lib/servq --web.listen-address=:9817",
		"ExecReload":             "/bin/kill -HUP $MAINPID",
		"DynamicUser":            "yes",
		"StateDirectory":         "servq",
		"ConfigurationDirectory": "servq",
		"EnvironmentFile":        "-/etc/default/servq",
		"Restart":                "on-failure",
		"NoNewPrivileges":        "yes",
		"ProtectSystem":          "strict",
		"ProtectHome":            "yes",
		"PrivateTmp":             "yes",
		"CapabilityBoundingSet":  "",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	// StateDirectory=servq is /var/lib/servq: the store must be there to
	// survive restarts (with DynamicUser, nothing else is writable).
	if !slices.Contains(execStartArgs(t), "--storage.path=/var/lib/"+d["StateDirectory"][0]) {
		t.Errorf("--storage.path is not the StateDirectory /var/lib/%s", d["StateDirectory"][0])
	}
}

// TestSystemdUnitVerify runs `systemd-analyze verify` on the unit and
// `systemd-analyze security --offline` for its exposure score. verify
// rejects an ExecStart binary that does not exist, and servq is not
// installed at /usr/local/bin here, so a copy of the unit runs a servq
// built for the test instead (the real binary rather than /bin/true, so
// that the check is of the program the unit starts).
func TestSystemdUnitVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (package systemd); the unit is not verified")
	}
	bin := buildServq(t)
	unit := copyUnit(t, bin)

	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	// verify exits 0 on unknown keys and unparsable values, only printing
	// them, so any line about the unit counts as a failure. Lines about
	// other units of this machine are not the example's concern.
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, "servq.service") {
			problems = append(problems, line)
		}
	}
	if err != nil || len(problems) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if len(out) > 0 {
		t.Logf("systemd-analyze verify (other units):\n%s", out)
	}

	t.Run("security", func(t *testing.T) {
		// Exposure 0 (locked down) to 10 (unprotected); the unit scores
		// 1.4 with systemd 252. --threshold counts in tenths (0-100): the
		// command fails above 2.0.
		out, err := exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", unit).CombinedOutput()
		if err != nil && (strings.Contains(string(out), "unrecognized option") || strings.Contains(string(out), "Unknown option")) {
			t.Skipf("systemd-analyze is too old for security --offline (systemd 250+): %s", strings.TrimSpace(string(out)))
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil {
			t.Fatalf("systemd-analyze security: %v\n%s", err, out)
		}
		t.Log(lines[len(lines)-1])
	})
}

// copyUnit writes the unit with ExecStart running bin into a temporary
// directory and returns its path.
func copyUnit(t *testing.T, bin string) string {
	t.Helper()
	var b strings.Builder
	replaced := 0
	for _, line := range strings.SplitAfter(string(readFile(t, unitFile)), "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart="+installedBinary+" "); ok {
			line = "ExecStart=" + bin + " " + rest
			replaced++
		}
		b.WriteString(line)
	}
	if replaced != 1 {
		t.Fatalf("%s: %d ExecStart lines running %s, want 1", unitFile, replaced, installedBinary)
	}
	unit := filepath.Join(t.TempDir(), "servq.service")
	writeFile(t, unit, []byte(b.String()))
	return unit
}

// TestSystemdCommandLineRunsServq starts the servq binary with the unit's
// ExecStart arguments (the config, state directory and address moved into
// a temporary directory), with the Kubernetes example's config: servq must
// accept every flag, become ready, and reload on SIGHUP as ExecReload
// sends it.
func TestSystemdCommandLineRunsServq(t *testing.T) {
	bin := buildServq(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "servq.yml")
	writeFile(t, cfgFile, configMapServqYAML(t))
	addr := testenv.FreeAddr(t)
	var args []string
	for _, a := range execStartArgs(t) {
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "--config.file":
			a = name + "=" + cfgFile
		case "--storage.path":
			a = name + "=" + filepath.Join(dir, "state")
		case "--web.listen-address":
			a = name + "=" + addr
		}
		args = append(args, a)
	}

	log := &testenv.LogBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("servq %s\n%s", strings.Join(args, " "), log.String())
		}
	}()
	base := "http://" + addr
	if err := testenv.WaitHTTP(base+"/-/ready", 60*time.Second); err != nil {
		t.Fatalf("servq did not become ready: %v", err)
	}
	if err := testenv.WaitHTTP(base+"/-/healthy", 5*time.Second); err != nil {
		t.Fatalf("/-/healthy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Errorf("no state store in --storage.path: %v", err)
	}

	before := metricValue(t, base, "servq_config_last_reload_success_timestamp_seconds")
	time.Sleep(1100 * time.Millisecond) // the timestamp has second resolution at least
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool {
		return metricValue(t, base, "servq_config_last_reload_success_timestamp_seconds") > before
	}) {
		t.Fatalf("SIGHUP did not reload the config (last reload timestamp stays %v)", before)
	}
	if v := metricValue(t, base, "servq_config_last_reload_successful"); v != 1 {
		t.Errorf("servq_config_last_reload_successful = %v after SIGHUP", v)
	}
	select {
	case err := <-done:
		t.Fatalf("servq exited on SIGHUP: %v", err)
	default:
	}
}

// metricValue returns the value of an unlabelled metric from /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// --- Kubernetes ---

type objectMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type k8sObject struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	file       string
	node       *yaml.Node
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type deploymentSpec struct {
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				SecurityContext struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					PersistentVolumeClaim *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type serviceSpec struct {
	Spec struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type serviceMonitorSpec struct {
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Endpoints []struct {
			Port     string `yaml:"port"`
			Path     string `yaml:"path"`
			Interval string `yaml:"interval"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

type kustomization struct {
	Resources []string `yaml:"resources"`
}

// loadObjects decodes every document of every YAML file in the
// Kubernetes directory except kustomization.yaml.
func loadObjects(t *testing.T) []*k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []*k8sObject
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, f)))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(n.Content) == 0 || n.Content[0].ShortTag() == "!!null" {
				continue // an empty document between "---" separators
			}
			o := &k8sObject{file: f, node: &n}
			if err := n.Decode(o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

// one returns the only object of a kind, decoded into v.
func one(t *testing.T, objs []*k8sObject, kind string, v any) *k8sObject {
	t.Helper()
	var found *k8sObject
	for _, o := range objs {
		if o.Kind != kind {
			continue
		}
		if found != nil {
			t.Fatalf("two %s objects: %s and %s", kind, found.Metadata.Name, o.Metadata.Name)
		}
		found = o
	}
	if found == nil {
		t.Fatalf("no %s in %s", kind, k8sDir)
	}
	if err := found.node.Decode(v); err != nil {
		t.Fatalf("%s: %v", found.file, err)
	}
	return found
}

// configMapServqYAML returns servq.yml from the example ConfigMap.
func configMapServqYAML(t *testing.T) []byte {
	t.Helper()
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	one(t, loadObjects(t), "ConfigMap", &cm)
	s, ok := cm.Data["servq.yml"]
	if !ok {
		t.Fatalf("the ConfigMap has no servq.yml")
	}
	return []byte(s)
}

// subset reports whether every label of sel is in labels (a selector
// matching an object), and sel is not empty.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestKubernetesManifests decodes every manifest and checks that the
// objects fit together: kustomization lists them all, the Deployment's
// probes use the named port the Service exposes, the Service and the
// ServiceMonitor select what they should, the volumes are the ConfigMap
// and the PersistentVolumeClaim mounted where the flags point, and the
// ConfigMap's config is valid for servq.
func TestKubernetesManifests(t *testing.T) {
	objs := loadObjects(t)
	files := map[string]bool{}
	names := map[string]string{} // kind -> name
	for _, o := range objs {
		files[filepath.Base(o.file)] = true
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: an object without apiVersion, kind or metadata.name: %+v", o.file, o)
		}
		names[o.Kind] = o.Metadata.Name
	}

	t.Run("kustomization", func(t *testing.T) {
		var k kustomization
		decodeYAML(t, filepath.Join(k8sDir, "kustomization.yaml"), &k)
		for _, r := range k.Resources {
			if r == "prometheusrule.yaml" {
				continue // written by `servq rules --format=prometheusrule`
			}
			if !files[r] {
				t.Errorf("kustomization lists %s, which is not in %s", r, k8sDir)
			}
		}
		for f := range files {
			if !slices.Contains(k.Resources, f) {
				t.Errorf("%s is not listed in kustomization.yaml", f)
			}
		}
		if !slices.Contains(k.Resources, "prometheusrule.yaml") {
			t.Errorf("kustomization.yaml does not list prometheusrule.yaml")
		}
	})

	var dep deploymentSpec
	one(t, objs, "Deployment", &dep)
	var svc serviceSpec
	svcObj := one(t, objs, "Service", &svc)
	var sm serviceMonitorSpec
	smObj := one(t, objs, "ServiceMonitor", &sm)

	pod := dep.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	t.Run("deployment", func(t *testing.T) {
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
			t.Errorf("replicas = %v, want 1 (the bbolt state store has one writer)", dep.Spec.Replicas)
		}
		if dep.Spec.Strategy.Type != "Recreate" {
			t.Errorf("strategy = %q, want Recreate", dep.Spec.Strategy.Type)
		}
		if !subset(dep.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
			t.Errorf("selector %v does not match the pod labels %v", dep.Spec.Selector.MatchLabels, pod.Metadata.Labels)
		}
		if !slices.Equal(c.Args, execStartArgs(t)) {
			t.Errorf("args %q differ from the systemd unit's %q", c.Args, execStartArgs(t))
		}
		ports := map[string]int{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if ports["http-metrics"] != 9817 {
			t.Errorf("container ports = %v, want http-metrics 9817", ports)
		}
		if _, port, _ := net.SplitHostPort(flagValue(c.Args, "--web.listen-address")); port != "9817" {
			t.Errorf("--web.listen-address port = %q, want the container port 9817", port)
		}
		for name, tc := range map[string]struct {
			p    *probe
			path string
		}{"readinessProbe": {c.ReadinessProbe, "/-/ready"}, "livenessProbe": {c.LivenessProbe, "/-/healthy"}} {
			if tc.p == nil || tc.p.HTTPGet == nil {
				t.Errorf("%s: no httpGet", name)
				continue
			}
			if tc.p.HTTPGet.Path != tc.path || tc.p.HTTPGet.Port != "http-metrics" {
				t.Errorf("%s: GET %s on port %v, want %s on http-metrics", name, tc.p.HTTPGet.Path, tc.p.HTTPGet.Port, tc.path)
			}
		}
		if v := pod.Spec.SecurityContext.RunAsNonRoot; v == nil || !*v {
			t.Errorf("pod securityContext.runAsNonRoot is not true")
		}
		sc := c.SecurityContext
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			!slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("container securityContext = %+v, want a read-only root, no privilege escalation, all capabilities dropped", sc)
		}
		for _, r := range []string{"cpu", "memory"} {
			if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
				t.Errorf("resources: no %s request and limit: %+v", r, c.Resources)
			}
		}
		secret := false
		for _, e := range c.EnvFrom {
			secret = secret || e.SecretRef != nil && e.SecretRef.Name == "servq-secrets"
		}
		if !secret {
			t.Errorf("envFrom does not take the Secret servq-secrets")
		}

		// Volumes: the ConfigMap where --config.file is, the claim where
		// --storage.path is.
		mounts := map[string]string{} // volume -> mount path
		for _, m := range c.VolumeMounts {
			if m.SubPath != "" {
				t.Errorf("volume %s is mounted with subPath: ConfigMap updates would not reach it", m.Name)
			}
			mounts[m.Name] = m.MountPath
		}
		var configMount, dataMount string
		for _, v := range pod.Spec.Volumes {
			switch {
			case v.ConfigMap != nil:
				if v.ConfigMap.Name != names["ConfigMap"] {
					t.Errorf("volume %s uses ConfigMap %q, want %q", v.Name, v.ConfigMap.Name, names["ConfigMap"])
				}
				configMount = mounts[v.Name]
			case v.PersistentVolumeClaim != nil:
				if v.PersistentVolumeClaim.ClaimName != names["PersistentVolumeClaim"] {
					t.Errorf("volume %s uses claim %q, want %q", v.Name, v.PersistentVolumeClaim.ClaimName, names["PersistentVolumeClaim"])
				}
				dataMount = mounts[v.Name]
			}
		}
		if configMount != "/etc/servq" || path.Dir(flagValue(c.Args, "--config.file")) != configMount {
			t.Errorf("ConfigMap mounted at %q, --config.file=%s", configMount, flagValue(c.Args, "--config.file"))
		}
		if dataMount != "/var/lib/servq" || flagValue(c.Args, "--storage.path") != dataMount {
			t.Errorf("claim mounted at %q, --storage.path=%s", dataMount, flagValue(c.Args, "--storage.path"))
		}
	})

	t.Run("service", func(t *testing.T) {
		if svc.Spec.Type != "ClusterIP" {
			t.Errorf("type = %q, want ClusterIP", svc.Spec.Type)
		}
		if svcObj.Metadata.Labels["app.kubernetes.io/name"] != "servq" {
			t.Errorf("labels = %v, want app.kubernetes.io/name: servq", svcObj.Metadata.Labels)
		}
		if !subset(svc.Spec.Selector, pod.Metadata.Labels) {
			t.Errorf("selector %v does not match the pod labels %v", svc.Spec.Selector, pod.Metadata.Labels)
		}
		// The probes' named port is the port the Service exposes.
		found := false
		for _, p := range svc.Spec.Ports {
			if p.Name == "http-metrics" {
				found = true
				if p.Port != 9817 || (p.TargetPort != "http-metrics" && p.TargetPort != 9817) {
					t.Errorf("port http-metrics: %d -> %v, want 9817 -> the container port http-metrics", p.Port, p.TargetPort)
				}
			}
		}
		if !found {
			t.Errorf("no port named http-metrics: %+v", svc.Spec.Ports)
		}
		// The Prometheus Operator names the job after the Service; the
		// generated ServqDown/ServqAbsent alerts select job="servq".
		if svcObj.Metadata.Name != config.DefaultJob {
			t.Errorf("Service name %q is not the default rules.job %q", svcObj.Metadata.Name, config.DefaultJob)
		}
	})

	t.Run("servicemonitor", func(t *testing.T) {
		if smObj.APIVersion != "monitoring.coreos.com/v1" {
			t.Errorf("apiVersion = %q", smObj.APIVersion)
		}
		if !subset(sm.Spec.Selector.MatchLabels, svcObj.Metadata.Labels) {
			t.Errorf("selector %v does not match the Service labels %v", sm.Spec.Selector.MatchLabels, svcObj.Metadata.Labels)
		}
		if len(sm.Spec.Endpoints) != 1 {
			t.Fatalf("endpoints = %+v, want one", sm.Spec.Endpoints)
		}
		e := sm.Spec.Endpoints[0]
		if e.Port != "http-metrics" || e.Interval != "30s" || (e.Path != "" && e.Path != "/metrics") {
			t.Errorf("endpoint = %+v, want port http-metrics, path /metrics, interval 30s", e)
		}
	})

	t.Run("prometheusrule", func(t *testing.T) {
		have, err := os.ReadFile(filepath.Join(k8sDir, "prometheusrule.yaml"))
		if err != nil {
			t.Fatalf("%v: kustomization.yaml lists it; generate it with\n  %s", err, regeneratePrometheusRule)
		}
		if !bytes.Equal(have, generatedPrometheusRule(t)) {
			t.Errorf("%s/prometheusrule.yaml is not what servq generates for the ConfigMap's config; regenerate it with\n  %s", k8sDir, regeneratePrometheusRule)
		}
		// The rule groups load in Prometheus.
		var pr struct {
			Spec yaml.Node `yaml:"spec"`
		}
		if err := yaml.Unmarshal(have, &pr); err != nil {
			t.Fatal(err)
		}
		spec, err := yaml.Marshal(&pr.Spec)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "rules.yml")
		writeFile(t, file, spec)
		promtool := testenv.Binary(t, "promtool")
		if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules (the PrometheusRule's spec): %v\n%s", err, out)
		}
	})

	t.Run("configmap", func(t *testing.T) {
		if names["ConfigMap"] != "servq-config" || names["PersistentVolumeClaim"] != "servq-data" {
			t.Errorf("names = %v, want ConfigMap servq-config and PersistentVolumeClaim servq-data", names)
		}
		if base := path.Base(flagValue(c.Args, "--config.file")); base != "servq.yml" {
			t.Errorf("--config.file names %s, not the ConfigMap key servq.yml", base)
		}
		cfg, err := config.Parse(configMapServqYAML(t), "configmap.yaml")
		if err != nil {
			t.Fatalf("config.Parse: %v", err)
		}
		// As `servq check` does: the plugin sections too.
		if err := collectors.CheckAll(cfg, collectors.Env{}); err != nil {
			t.Fatalf("collectors: %v", err)
		}
		if len(cfg.Collectors) != 1 || cfg.Collectors[0].Type != "demo" || len(cfg.SLOs) != 1 || cfg.SLOs[0].Name != "first-reply-4h" {
			t.Errorf("config: %d collectors, %d SLOs; want the demo collector and first-reply-4h", len(cfg.Collectors), len(cfg.SLOs))
		}
	})
}

// regeneratePrometheusRule is how prometheusrule.yaml is made, with
// servq.yml holding the ConfigMap's servq.yml.
const regeneratePrometheusRule = "servq rules --config.file=servq.yml --format=prometheusrule --prometheusrule.label=release=kube-prometheus-stack --output=deploy/kubernetes/prometheusrule.yaml"

// selectorLabels are the labels kube-prometheus-stack's Prometheus selects
// rules and ServiceMonitors by (release: <helm release name>).
var selectorLabels = map[string]string{"release": "kube-prometheus-stack"}

// generatedPrometheusRule returns what regeneratePrometheusRule writes.
func generatedPrometheusRule(t *testing.T) []byte {
	t.Helper()
	cfg, err := config.Parse(configMapServqYAML(t), "servq.yml")
	if err != nil {
		t.Fatal(err)
	}
	g, err := rules.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := rules.MarshalPrometheusRule(g, "servq.yml", "servq", "", selectorLabels)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

// TestKustomizeBuild renders the kustomization with `kubectl kustomize`
// (prometheusrule.yaml is generated into the copy if it is missing).
// kubectl is not among the tools deploy/test.sh installs, so the test
// skips without it.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; the kustomization is checked by TestKubernetesManifests only")
	}
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		writeFile(t, filepath.Join(dir, filepath.Base(f)), readFile(t, f))
	}
	if _, err := os.Stat(filepath.Join(dir, "prometheusrule.yaml")); err != nil {
		writeFile(t, filepath.Join(dir, "prometheusrule.yaml"), generatedPrometheusRule(t))
	}

	cmd := exec.Command(kubectl, "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderr.String())
	}
	kinds := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kustomize output: %v", err)
		}
		kinds[o.Kind] = true
	}
	for _, k := range []string{"ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "ServiceMonitor", "PrometheusRule"} {
		if !kinds[k] {
			t.Errorf("kustomize output has no %s", k)
		}
	}
}
