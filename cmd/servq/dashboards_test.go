package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestDashboardsCommandWritesFiles(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"dashboards", "-o", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, f := range []string{"dashboards/servq-overview.json", "dashboards/servq-slo.json", "provisioning/dashboards/servq.yaml", "provisioning/alerting/servq.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

// Against Grafana the token comes from the environment or a file, and a
// refusal is reported with Grafana's answer but never the token.
func TestDashboardsCommandGrafanaAuthFailure(t *testing.T) {
	const token = "glsa_secret-token-value_1234"
	var sawAuth atomic.Bool
	g := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+token {
			sawAuth.Store(true)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"message":"Invalid API key"}`))
	}))
	defer g.Close()

	var out, errb bytes.Buffer
	t.Setenv("GRAFANA_TOKEN", "")
	if code := run([]string{"dashboards", "--grafana.url", g.URL}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "GRAFANA_TOKEN") {
		t.Errorf("without a token: exit %d, %s", code, errb.String())
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	out.Reset()
	errb.Reset()
	code := run([]string{"dashboards", "--grafana.url", g.URL, "--grafana.token-file", tokenFile}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "401") || !strings.Contains(errb.String(), "Invalid API key") {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
	if !sawAuth.Load() {
		t.Error("the token from the file was not sent as a Bearer token")
	}
	if strings.Contains(out.String()+errb.String(), token) {
		t.Errorf("the token leaked into the output: %s %s", out.String(), errb.String())
	}
}

func TestReportCommandErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"report", "--period", "2026-13"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `period "2026-13": month 13 does not exist`) {
		t.Errorf("bad period: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"report", "--period", "2026-10", "--prometheus.url", "http://127.0.0.1:1", "-o", t.TempDir()}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "connection refused") {
		t.Errorf("unreachable API: exit %d, %s", code, errb.String())
	}
}

// servq check refuses an interval Grafana would refuse for the
// Grafana-managed rules, at its line, with the key that fixes it.
func TestCheckRefusesGrafanaIntervalNotMultipleOf10s(t *testing.T) {
	file := filepath.Join(t.TempDir(), "servq.yml")
	os.WriteFile(file, []byte("rules:\n  interval: 15s\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", file}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), file+":2: rules.interval: 15s is not a multiple of 10s") ||
		!strings.Contains(errb.String(), "rules.grafana_interval") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	os.WriteFile(file, []byte("rules:\n  interval: 15s\n  grafana_interval: 20s\n"), 0o644)
	errb.Reset()
	if code := run([]string{"check", file}, &out, &errb); code != 0 {
		t.Errorf("with grafana_interval 20s: exit %d: %s", code, errb.String())
	}
}

// --grafana.rule-group names the rule group servq writes (the demo config,
// whose rules are evaluated every minute).
func TestDashboardsCommandRuleGroup(t *testing.T) {
	var paths []string
	var groupBody string
	var mu sync.Mutex
	g := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/rule-groups/") {
			groupBody = string(b)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"type":"prometheus"}`)) // enough for every read servq makes
	}))
	defer g.Close()
	t.Setenv("GRAFANA_TOKEN", "glsa_x")
	var out, errb bytes.Buffer
	if code := run([]string{"dashboards", "--grafana.url", g.URL, "--grafana.rule-group", "servq-alerts"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(paths, "PUT /api/v1/provisioning/folder/servq/rule-groups/servq-alerts") || !strings.Contains(groupBody, `"interval":60`) {
		t.Errorf("requests %v, group body %s", paths, groupBody)
	}
}
