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

// A vendor's long Retry-After shows on the landing page and in
// /api/v1/collectors while the collector's runs are skipped.
func TestVendorsWaitIsShown(t *testing.T) {
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer vendor.Close()
	_, srv, _ := startService(t, fmt.Sprintf(`collectors:
  - {name: fd, type: freshdesk, schedule: "@every 1h", url: %s, api_key: k}
`, vendor.URL))
	testenv.Eventually(t, stuck, "the backoff in /api/v1/collectors", func() bool {
		_, api := get(t, srv.URL+"/api/v1/collectors")
		return strings.Contains(api, `"backoff_until":"`)
	})
	if _, landing := get(t, srv.URL+"/"); !strings.Contains(landing, "the vendor asked to wait (Retry-After): runs skipped until") {
		t.Error("the landing page does not show the vendor's wait")
	}
	if _, m := get(t, srv.URL+"/metrics"); !strings.Contains(m, `servq_collector_backoff_until_timestamp_seconds{collector="fd"} 1.`) {
		t.Error("no backoff gauge")
	}
}
