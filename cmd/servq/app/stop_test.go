package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
)

// stuck bounds waits that only expire when something hangs.
const stuck = 20 * time.Second

// A report in its retry backoff (1, 5, then 15 minutes) blocked a valid
// reload and SIGTERM for as long: both now cancel it and return at once.
func TestReloadAndShutdownDoNotWaitForARetryingReport(t *testing.T) {
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer prom.Close()
	cfg := demoConfig + fmt.Sprintf(`reports:
  - {name: weekly, schedule: "@every 1s", period: week, prometheus_url: %s, formats: [json], directory: %s}
`, prom.URL, t.TempDir())
	svc, srv, _ := startService(t, cfg)
	inBackoff := func() bool {
		_, m := get(t, srv.URL+"/metrics")
		return strings.Contains(m, `servq_report_runs_total{report="weekly",result="error"} 1`)
	}
	testenv.Eventually(t, stuck, "the report failing its first attempt", inBackoff)

	reloaded := make(chan error, 1)
	go func() { reloaded <- svc.Reload() }() // the same, valid file
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(stuck):
		t.Fatal("reload waited for the report's retry backoff")
	}
	_, m := get(t, srv.URL+"/metrics")
	if !strings.Contains(m, `servq_report_runs_total{report="weekly",result="failed"} 1`) {
		t.Error("the report cancelled by the reload is not counted failed")
	}

	// The new scheduler's report fails again and waits: shut down.
	testenv.Eventually(t, stuck, "the report failing again", func() bool {
		_, m := get(t, srv.URL+"/metrics")
		return strings.Contains(m, `servq_report_runs_total{report="weekly",result="error"} 2`)
	})
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // the bound must not be needed
		defer cancel()
		stopped <- svc.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(stuck):
		t.Fatal("shutdown waited for the report's retry backoff")
	}
}
