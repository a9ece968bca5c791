package main

import (
	"bytes"
	"encoding/json"
	"github.com/servq/servq/collectors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/internal/redact"
	"github.com/servq/servq/internal/redact/echotest"
)

// --web.config.file works the exporter-toolkit way: basic auth guards every
// endpoint.
func TestWebConfigBasicAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildServq(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	os.WriteFile(webCfg, []byte("basic_auth_users:\n  ops: "+string(hash)+"\n"), 0o600)
	addr := testenv.FreeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--web.config.file="+webCfg,
		"--storage.path="+filepath.Join(dir, "data"))
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	var code int
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without credentials = %d, want 401\n%s", code, logs.String())
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.SetBasicAuth("ops", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics with credentials = %d", resp.StatusCode)
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("collectors:\n  - name: x\n    type: nosuch\n    schedule: \"@every 1m\"\n  - name: x\n    type: demo\n    schedule: \"61 * * * *\"\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", bad}, &out, &errb); code != 1 {
		t.Fatalf("check of a bad config exited %d", code)
	}
	// The plugin sections are checked even though the main part has
	// problems: every problem of the file in one run.
	want := []string{
		bad + ":3: collectors[0].type: unknown collector type \"nosuch\"",
		bad + ":5: collectors[1].name: collector \"x\" is defined twice",
		bad + ":7: collectors[1].schedule: invalid cron schedule \"61 * * * *\"",
		"3 problem(s) found",
	}
	for _, w := range want {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("check output lacks %q:\n%s", w, errb.String())
		}
	}
	// The embedded demo is valid, plugin sections included.
	out.Reset()
	errb.Reset()
	if code := run([]string{"check"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "<embedded demo>: OK") {
		t.Errorf("check of the demo = %d %q %q", code, out.String(), errb.String())
	}
	// The commented reference config is valid, every plugin section
	// included, with the secrets it names in the environment; it shows
	// every registered source type.
	out.Reset()
	errb.Reset()
	example, err := os.ReadFile("../../config/example.yml")
	if err != nil {
		t.Fatal(err)
	}
	testenv.SetConfigEnv(t, "../../config/example.yml")
	if code := run([]string{"check", "../../config/example.yml"}, &out, &errb); code != 0 {
		t.Errorf("check of config/example.yml = %d: %s", code, errb.String())
	}
	for _, typ := range collectors.Types() {
		if !strings.Contains(string(example), "    type: "+typ+"\n") {
			t.Errorf("config/example.yml has no collector of type %s", typ)
		}
	}
	// A plugin's own keys are checked too, with their location.
	os.WriteFile(bad, []byte("collectors:\n  - name: x\n    type: nosuch\n    schedule: \"@every 1m\"\n"), 0o644)
	errb.Reset()
	run([]string{"check", bad}, &out, &errb)
	if !strings.Contains(errb.String(), bad+":3: collectors[0].type: unknown collector type \"nosuch\"") {
		t.Errorf("unknown type not reported with its location:\n%s", errb.String())
	}
	// A decode problem of the main part (a bad duration) and of a plugin
	// section (tickets_file's time_format a list) both come out; a key
	// set twice in a plugin section, seen by both, once.
	os.WriteFile(bad, []byte("global:\n  retention: soon\ncollectors:\n  - name: t\n    type: tickets_file\n    schedule: \"@every 1m\"\n    path: /x\n    path: /y\n    mapping: {id: id, created_at: c}\n    time_format: [a]\n"), 0o644)
	errb.Reset()
	run([]string{"check", bad}, &out, &errb)
	for _, w := range []string{
		bad + ":2: global.retention: \"soon\" is not a duration",
		bad + ":8: collectors[0].path: field is set twice",
		bad + ":10: collectors[0].time_format: cannot unmarshal !!seq into string",
		"3 problem(s) found",
	} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("check output lacks %q:\n%s", w, errb.String())
		}
	}
	// A valid config whose alert pairs were adjusted to a short window
	// passes with the notes servq rules prints.
	week := filepath.Join(dir, "week.yml")
	os.WriteFile(week, []byte("global: {service: s}\ncollectors:\n  - {name: pbx, type: demo, schedule: \"@every 1m\"}\nslos:\n  - {name: week, indicator: call_abandonment, objective: 99, window: 7d}\n"), 0o644)
	out.Reset()
	errb.Reset()
	code := run([]string{"check", week}, &out, &errb)
	if want := "note: slo week (window 1w): the 3d/6h ticket alert burns at 1.2×"; code != 0 || !strings.Contains(errb.String(), want) {
		t.Errorf("check of a 7d SLO = %d, stderr %q, want a note %q", code, errb.String(), want)
	}
}

// SIGHUP reloads the config file, like POST /-/reload.
func TestSIGHUPReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildServq(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte("collectors:\n  - {name: one, type: demo, schedule: \"@every 1m\"}\n"), 0o644)
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if err := testenv.WaitHTTP("http://"+addr+"/-/ready", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte("collectors:\n  - {name: one, type: demo, schedule: \"@every 1m\"}\n  - {name: two, type: demo, schedule: \"@every 1m\", seed: 2}\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, 20*time.Second, "collector two after SIGHUP", func() bool {
		resp, err := http.Get("http://" + addr + "/api/v1/collectors")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		return strings.Contains(body.String(), `"name":"two"`)
	})
}

// collect --once prints what the collectors produce and, without
// --commit, leaves the store untouched.
func TestCollectOnce(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "t.csv")
	os.WriteFile(csv, []byte("id,created\n7,2026-11-02T09:00:00Z\n8,not-a-time\n"), 0o644)
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte("collectors:\n  - name: f\n    type: tickets_file\n    schedule: \"@hourly\"\n    path: "+csv+"\n    mapping: {id: id, created_at: created}\n"), 0o644)
	store := filepath.Join(dir, "data")
	for i := 0; i < 2; i++ { // a dry run twice: the same output, nothing committed
		var out, errb bytes.Buffer
		if code := run([]string{"--config.file=" + cfg, "collect", "--once", "--storage.path=" + store}, &out, &errb); code != 0 {
			t.Fatalf("collect --once = %d: %s", code, errb.String())
		}
		o := out.String()
		if !strings.Contains(o, `"collector":"f"`) || !strings.Contains(o, `"id":"7"`) || !strings.Contains(o, `"reason":"bad_time","position":"`+csv+`:3"`) {
			t.Fatalf("output:\n%s", o)
		}
		// The documented schema: snake_case, RFC 3339 times, unknown
		// times absent (not 0001-01-01), what the batch does to the
		// metrics, and a dry run says it committed nothing.
		var line map[string]any
		if err := json.Unmarshal(out.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		ticket := line["tickets"].([]any)[0].(map[string]any)
		if ticket["created_at"] != "2026-11-02T09:00:00Z" || ticket["first_reply_at"] != nil || line["committed"] != false {
			t.Errorf("ticket %v, committed %v", ticket, line["committed"])
		}
		if strings.Contains(o, "0001-01-01") || regexp.MustCompile(`"[A-Z][A-Za-z]+":`).MatchString(o) {
			t.Errorf("zero times or PascalCase keys in:\n%s", o)
		}
		found := false
		for _, e := range line["effect"].([]any) {
			e := e.(map[string]any)
			if strings.HasPrefix(e["series"].(string), "servq_tickets_created_total{") && e["increase"] == 1.0 {
				found = true
			}
		}
		if !found {
			t.Errorf("effect lacks servq_tickets_created_total +1: %v", line["effect"])
		}
	}
	var out, errb bytes.Buffer
	run([]string{"--config.file=" + cfg, "collect", "--once", "--commit", "--storage.path=" + store}, &out, &errb)
	if !strings.Contains(out.String(), `"committed":true`) {
		t.Errorf("--commit output does not say committed:\n%s", out.String())
	}
	out.Reset()
	run([]string{"--config.file=" + cfg, "collect", "--storage.path=" + store}, &out, &errb) // --once is the default
	if strings.Contains(out.String(), `"id":"7"`) {
		t.Errorf("after --commit the next run must start after the committed cursor:\n%s", out.String())
	}
}

// servq collect --once prints what the collectors got, errors included: a
// vendor echoing the request does not put the credentials on the terminal.
func TestCollectOnceRedactsEchoedCredentials(t *testing.T) {
	for _, asJSON := range []bool{true, false} {
		echo := echotest.Server(t, asJSON)
		dir := t.TempDir()
		cfg := filepath.Join(dir, "servq.yml")
		os.WriteFile(cfg, []byte(echotest.Config(echo.URL)), 0o644)
		var out, errb bytes.Buffer
		if code := run([]string{"--config.file=" + cfg, "collect", "--once", "--storage.path=" + filepath.Join(dir, "data")}, &out, &errb); code != 1 {
			t.Fatalf("collect --once against a failing vendor = %d, want 1: %s", code, errb.String())
		}
		if n := strings.Count(out.String(), strings.Trim(redact.Placeholder, "<>")); n < 4 { // JSON escapes < and >
			t.Errorf("json=%v: %d redactions in the output, want the echo of each collector's credentials:\n%s", asJSON, n, out.String())
		}
		for what, text := range map[string]string{"output": out.String(), "log": errb.String()} {
			if leaks := echotest.Leaks(text); len(leaks) > 0 {
				t.Errorf("json=%v: the %s shows %s", asJSON, what, strings.Join(leaks, ", "))
			}
		}
	}
}

// servq report quotes the Prometheus API's error: a proxy echoing the
// request does not put the bearer token on the terminal.
func TestReportRedactsEchoedToken(t *testing.T) {
	echo := echotest.Server(t, true)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(echotest.HTTPJSONToken+"\n"), 0o600)
	var out, errb bytes.Buffer
	code := run([]string{"report", "--period=2026-10", "--prometheus.url=" + echo.URL,
		"--prometheus.bearer-token-file=" + tokenFile, "-o", dir}, &out, &errb)
	// The registry is process-wide: when an earlier test registered
	// "Bearer TOKEN" whole, the scheme goes with it.
	if code == 0 || !strings.Contains(errb.String(), "Authorization: "+redact.Placeholder) && !strings.Contains(errb.String(), "Bearer "+redact.Placeholder) {
		t.Errorf("report against an echoing proxy = %d, stderr %q: want the echoed token redacted", code, errb.String())
	}
	if leaks := echotest.Leaks(errb.String() + out.String()); len(leaks) > 0 {
		t.Errorf("servq report shows %s", strings.Join(leaks, ", "))
	}
}
