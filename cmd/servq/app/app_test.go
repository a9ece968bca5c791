package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	srccollectors "github.com/servq/servq/collectors"
	_ "github.com/servq/servq/collectors/sources"
	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
)

const demoConfig = `
global: {service: test}
collectors:
  - name: sim
    type: demo
    schedule: "@every 1s"
    backfill: 24h # a whole simulated day, so that even sparse series (SERVQUAL) exist
slos:
  - {name: reply, indicator: ticket_first_reply, threshold: 4h, objective: 90}
`

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startService(t *testing.T, cfgText string) (*Service, *httptest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "servq.yml")
	if err := os.WriteFile(file, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{ConfigFile: file, StoragePath: filepath.Join(dir, "data"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	srv := httptest.NewServer(svc.Handler("/metrics"))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Shutdown(ctx)
	})
	return svc, srv, file
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	svc, srv, _ := startService(t, demoConfig)
	testenv.Eventually(t, 20*time.Second, "first collection", func() bool { return svc.Runner().Ready() })
	if code, body := get(t, srv.URL+"/-/healthy"); code != 200 || !strings.Contains(body, "Healthy") {
		t.Errorf("/-/healthy = %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/-/ready"); code != 200 {
		t.Errorf("/-/ready = %d", code)
	}
	code, body := get(t, srv.URL+"/")
	if code != 200 || !strings.Contains(body, ">sim<") || !strings.Contains(body, ">reply<") {
		t.Errorf("landing page = %d, does not list collector and SLO:\n%s", code, body)
	}
	code, body = get(t, srv.URL+"/api/v1/collectors")
	if code != 200 || !strings.Contains(body, `"name":"sim"`) {
		t.Errorf("/api/v1/collectors = %d %s", code, body)
	}
	if code, _ := get(t, srv.URL+"/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload = %d, want 405", code)
	}
	// OpenMetrics is negotiable.
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("Content-Type = %q, want OpenMetrics", ct)
	}
}

// promtool's linter must accept servq's whole output.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	svc, srv, _ := startService(t, demoConfig)
	testenv.Eventually(t, 20*time.Second, "first collection", func() bool { return svc.Runner().Ready() })
	_, body := get(t, srv.URL+"/metrics")
	if !strings.Contains(body, "servq_calls_offered_total") || !strings.Contains(body, "servq_servqual_score_bucket") {
		t.Fatalf("demo metrics missing from output:\n%.2000s", body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestReloadKeepsRunningConfigOnError(t *testing.T) {
	svc, srv, file := startService(t, demoConfig)
	bad := strings.Replace(demoConfig, `schedule: "@every 1s"`, `schedule: "every second"`, 1)
	os.WriteFile(file, []byte(bad), 0o644)
	code, body := post(t, srv.URL+"/-/reload")
	if code != 500 || !strings.Contains(body, file+":6: collectors[0].schedule: invalid cron schedule") {
		t.Fatalf("reload of bad config = %d %q", code, body)
	}
	if n := svc.Runner().Names(); len(n) != 1 || n[0] != "sim" {
		t.Fatalf("collectors after failed reload = %v", n)
	}
	_, metrics := get(t, srv.URL+"/metrics")
	if !strings.Contains(metrics, "servq_config_last_reload_successful 0") {
		t.Error("failed reload not reported in servq_config_last_reload_successful")
	}
	_, landing := get(t, srv.URL+"/")
	if !strings.Contains(landing, "Last reload failed") {
		t.Error("landing page does not say the reload failed")
	}
	good := demoConfig + "  - {name: fast, indicator: ticket_first_reply, threshold: 1h, objective: 80}\n"
	good = strings.Replace(good, "collectors:\n", "collectors:\n  - {name: sim2, type: demo, schedule: \"@every 1s\", seed: 2}\n", 1)
	os.WriteFile(file, []byte(good), 0o644)
	if code, body := post(t, srv.URL+"/-/reload"); code != 200 {
		t.Fatalf("reload of good config = %d %q", code, body)
	}
	if n := svc.Runner().Names(); len(n) != 2 {
		t.Fatalf("collectors after reload = %v", n)
	}
	_, metrics = get(t, srv.URL+"/metrics")
	if !strings.Contains(metrics, "servq_config_last_reload_successful 1") {
		t.Error("successful reload not reported")
	}
	// The new SLO threshold (1h = 3600s) is now a bucket bound.
	testenv.Eventually(t, 20*time.Second, "sim2 metrics", func() bool {
		_, m := get(t, srv.URL+"/metrics")
		return strings.Contains(m, `servq_ticket_first_reply_seconds_bucket{channel=`) && strings.Contains(m, `collector="sim2"`)
	})
}

// A real Prometheus scrapes a running servq.
func TestPrometheusScrapesServq(t *testing.T) {
	svc, srv, _ := startService(t, demoConfig)
	testenv.Eventually(t, 20*time.Second, "first collection", func() bool { return svc.Runner().Ready() })
	target := strings.TrimPrefix(srv.URL, "http://")
	prom := testenv.StartPrometheus(t, `
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: servq
    static_configs: [{targets: ["`+target+`"]}]
`, nil)
	testenv.Eventually(t, 60*time.Second, "Prometheus to scrape servq", func() bool {
		s, err := testenv.QueryE(prom.URL, `up{job="servq"} == 1 and on() count(servq_calls_offered_total) > 0`)
		return err == nil && len(s) == 1
	})
	// What Prometheus stored equals what servq serves for a counter that
	// the scrape and our read both see at rest: the config reload gauge.
	s := testenv.Query(t, prom.URL, `servq_config_last_reload_successful{job="servq"}`)
	if len(s) != 1 || s[0].Value != 1 {
		t.Errorf("servq_config_last_reload_successful in Prometheus = %+v", s)
	}
	s = testenv.Query(t, prom.URL, `servq_collector_up{job="servq",collector="sim",type="demo"}`)
	if len(s) != 1 || s[0].Value != 1 {
		t.Errorf("servq_collector_up in Prometheus = %+v", s)
	}
}

// The same metrics are pushed to a real VictoriaMetrics, with extra labels.
func TestPushToVictoriaMetrics(t *testing.T) {
	vmp := testenv.StartVictoriaMetrics(t)
	cfg := demoConfig + `
push:
  url: ` + vmp.URL + `/api/v1/import/prometheus
  interval: 1s
  extra_labels: {site: lab, instance: servq-test}
`
	svc, _, _ := startService(t, cfg)
	testenv.Eventually(t, 20*time.Second, "first collection", func() bool { return svc.Runner().Ready() })
	testenv.Eventually(t, 60*time.Second, "pushed samples in VictoriaMetrics", func() bool {
		s, err := testenv.QueryE(vmp.URL, `servq_calls_offered_total{site="lab",instance="servq-test",collector="sim"}`)
		return err == nil && len(s) > 0
	})
	s := testenv.Query(t, vmp.URL, `servq_build_info{site="lab"}`)
	if len(s) != 1 || s[0].Metric["version"] != Version() || s[0].Metric["goos"] != runtime.GOOS ||
		s[0].Metric["goarch"] != runtime.GOARCH || s[0].Metric["goversion"] != runtime.Version() || s[0].Metric["revision"] == "" {
		t.Errorf("servq_build_info in VictoriaMetrics = %+v", s)
	}
}

// Secrets never reach logs, the landing page, the status API or metrics.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "s3cr3t-Pa55w0rd"
	t.Setenv("SERVQ_TEST_PUSH_PASSWORD", secret)
	var logs testenv.LogBuffer
	dir := t.TempDir()
	file := filepath.Join(dir, "servq.yml")
	os.WriteFile(file, []byte(demoConfig+`
push:
  url: http://127.0.0.1:1/api/v1/import/prometheus
  interval: 1s
  username: servq
  password: ${SERVQ_TEST_PUSH_PASSWORD}
`), 0o644)
	svc, err := New(Options{ConfigFile: file, StoragePath: filepath.Join(dir, "data"),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	srv := httptest.NewServer(svc.Handler("/metrics"))
	defer srv.Close()
	defer svc.Shutdown(context.Background())
	testenv.Eventually(t, 20*time.Second, "a failed push to be logged", func() bool {
		return strings.Contains(logs.String(), "push failed")
	})
	// A failed reload names the problem, never the secret.
	os.WriteFile(file, []byte(strings.Replace(demoConfig, "objective: 90", "objective: 100", 1)+"push:\n  url: http://x\n  password: "+secret+"\n  password_file: /nope\n"), 0o644)
	_, reloadBody := post(t, srv.URL+"/-/reload")
	_, landing := get(t, srv.URL+"/")
	_, status := get(t, srv.URL+"/api/v1/collectors")
	_, metrics := get(t, srv.URL+"/metrics")
	for what, text := range map[string]string{"logs": logs.String(), "reload answer": reloadBody, "landing page": landing, "status API": status, "metrics": metrics} {
		if strings.Contains(text, secret) {
			t.Errorf("the secret appears in the %s", what)
		}
	}
	if !strings.Contains(reloadBody, "password_file") {
		t.Errorf("reload error does not name the field: %q", reloadBody)
	}
}

// /api/v1/slos reports each SLO from servq's own counts, consistent with
// what /metrics shows, on the same clock: series born in the first run are
// served at zero for the new-series delay, and the status sample taken then
// is the baseline both views count from.
func TestSLOStatusEndpoint(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "servq.yml")
	// One run at start, none after: the counts hold still for the test.
	if err := os.WriteFile(file, []byte(strings.Replace(demoConfig, `"@every 1s"`, `"@every 1h"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{ConfigFile: file, StoragePath: filepath.Join(dir, "data"), Logger: quietLogger(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	srv := httptest.NewServer(svc.Handler("/metrics"))
	defer srv.Close()
	defer svc.Shutdown(context.Background())
	testenv.Eventually(t, 20*time.Second, "first collection and first status sample", func() bool {
		st := svc.SLOStatus(clock())
		return svc.Runner().Ready() && len(st) == 1 && st[0].Computed
	})
	if st := svc.SLOStatus(clock())[0]; st.Total != 0 || st.State != "no_data" {
		t.Errorf("status right after the first run = %+v, want nothing counted yet (series at 0)", st)
	}
	mu.Lock()
	now = now.Add(3 * time.Minute) // past the 2m new-series delay
	mu.Unlock()
	svc.ObserveSLOs(clock())
	code, body := get(t, srv.URL+"/api/v1/slos")
	var resp struct {
		Status string
		Data   []struct {
			Name            string
			Computed        bool
			Good, Bad       float64
			Total           float64
			SLI             *float64
			BudgetRemaining float64 `json:"budget_remaining"`
			State           string
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); code != 200 || err != nil || resp.Status != "success" || len(resp.Data) != 1 {
		t.Fatalf("/api/v1/slos = %d %v %s", code, err, body)
	}
	d := resp.Data[0]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if d.Name != "reply" || !d.Computed || d.Total <= 0 || d.Good+d.Bad != d.Total || d.SLI == nil ||
		!near(*d.SLI, 100*d.Good/d.Total) || !near(d.BudgetRemaining, 1-(d.Bad/d.Total)/0.1) {
		t.Errorf("status = %+v", d)
	}
	_, metrics := get(t, srv.URL+"/metrics")
	var good, bad float64
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, `servq_ticket_slo_events_total{`) || !strings.Contains(line, `slo="reply"`) {
			continue
		}
		var v float64
		fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
		if strings.Contains(line, `result="bad"`) {
			bad += v
		} else {
			good += v
		}
	}
	if good != d.Good || bad != d.Bad {
		t.Errorf("status says %v good / %v bad, /metrics %v / %v", d.Good, d.Bad, good, bad)
	}
	if _, page := get(t, srv.URL+"/"); !strings.Contains(page, "budget remaining") || !strings.Contains(page, "api/v1/slos") {
		t.Error("landing page lacks the SLO status")
	}
}

// probeReceiver is a Source that receives pushes, for the /webhooks/ mount.
type probeReceiver struct{}

func (probeReceiver) Collect(_ context.Context, c []byte, _ *srccollectors.Batch) ([]byte, error) {
	return c, nil
}

func (probeReceiver) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("received " + r.Method)) })
}

func init() {
	srccollectors.Register("test_webhook_probe", func(*config.Collector, srccollectors.Env) (srccollectors.Source, error) {
		return probeReceiver{}, nil
	})
}

func TestWebhookReceiversAreMounted(t *testing.T) {
	_, srv, _ := startService(t, "collectors:\n  - {name: probe, type: test_webhook_probe, schedule: \"@every 1h\"}\n  - {name: sim, type: demo, schedule: \"@every 1h\"}\n")
	if code, body := post(t, srv.URL+"/webhooks/probe"); code != 200 || body != "received POST" {
		t.Errorf("POST /webhooks/probe = %d %q", code, body)
	}
	for _, path := range []string{"/webhooks/sim", "/webhooks/nope", "/webhooks/"} {
		if code, _ := post(t, srv.URL+path); code != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", path, code)
		}
	}
}
