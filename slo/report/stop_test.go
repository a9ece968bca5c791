package report

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/config"
)

// stuck bounds waits that only expire when something hangs.
const stuck = 20 * time.Second

// runsOf reads servq_report_runs_total{report, result}.
func runsOf(t *testing.T, reg *prometheus.Registry, report, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "servq_report_runs_total" {
			continue
		}
		for _, m := range mf.Metric {
			l := map[string]string{}
			for _, p := range m.Label {
				l[p.GetName()] = p.GetValue()
			}
			if l["report"] == report && l["result"] == result {
				return m.Counter.GetValue()
			}
		}
	}
	return -1
}

// Stop (SIGTERM, and every reload) does not wait for a running report:
// one in its retry backoff or one whose Prometheus query hangs is
// cancelled at once, counted failed, and Stop returns.
func TestStopCancelsRetryingAndHangingReports(t *testing.T) {
	for _, tc := range []struct {
		name string
		// prom answers the report's queries; entered says the report
		// reached the state Stop must interrupt.
		prom func(w http.ResponseWriter, r *http.Request, entered chan<- struct{})
		wait func(t *testing.T, reg *prometheus.Registry, entered <-chan struct{})
	}{
		{"retry backoff", func(w http.ResponseWriter, r *http.Request, _ chan<- struct{}) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		}, func(t *testing.T, reg *prometheus.Registry, _ <-chan struct{}) {
			// The first attempt failed: the report now waits an hour.
			for deadline := time.Now().Add(stuck); runsOf(t, reg, "r", "error") < 1; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the report never failed its first attempt")
				}
			}
		}},
		{"hanging query", func(w http.ResponseWriter, r *http.Request, entered chan<- struct{}) {
			r.ParseForm() // a server notices the client leaving only once the body is read
			select {
			case entered <- struct{}{}:
			default:
			}
			<-r.Context().Done()
		}, func(t *testing.T, _ *prometheus.Registry, entered <-chan struct{}) { <-entered }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered := make(chan struct{}, 1)
			var queries atomic.Int32
			prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				queries.Add(1)
				tc.prom(w, r, entered)
			}))
			defer prom.Close()
			cfg, err := config.Parse([]byte(reportConfig), "t.yml")
			if err != nil {
				t.Fatal(err)
			}
			// Scheduled by cron, as in servq (the old Stop waited on
			// cron's running jobs before cancelling anything).
			cfg.Reports = []*config.Report{{Name: "r", Schedule: "@every 1s", Period: "month",
				PrometheusURL: prom.URL, Formats: []string{"json"}, Directory: t.TempDir(), TimeZone: "UTC"}}
			reg := prometheus.NewRegistry()
			s, err := NewScheduler(cfg, NewMetrics(reg), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			s.Retries = []time.Duration{time.Hour}
			s.Start()
			tc.wait(t, reg, entered)
			stopped := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // Stop must not need it
				defer cancel()
				stopped <- s.Stop(ctx)
			}()
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(stuck):
				t.Fatal("Stop waited for the running report instead of cancelling it")
			}
			if v := runsOf(t, reg, "r", "failed"); v != 1 {
				t.Errorf("failed runs = %v, want 1 (the cancelled report)", v)
			}
			n := queries.Load()
			s.Run(cfg.Reports[0]) // after Stop: does nothing
			if queries.Load() != n {
				t.Error("a report ran after Stop")
			}
		})
	}
}

// A report still retrying when its schedule fires again is not started a
// second time.
func TestReportRunsDoNotOverlap(t *testing.T) {
	var queries atomic.Int32
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer prom.Close()
	cfg, err := config.Parse([]byte(reportConfig), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Reports = []*config.Report{{Name: "r", Schedule: "@every 1h", Period: "month",
		PrometheusURL: prom.URL, Formats: []string{"json"}, Directory: t.TempDir(), TimeZone: "UTC"}}
	reg := prometheus.NewRegistry()
	s, err := NewScheduler(cfg, NewMetrics(reg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Retries = []time.Duration{time.Hour}
	go s.Run(cfg.Reports[0])
	for deadline := time.Now().Add(stuck); runsOf(t, reg, "r", "error") < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the report never failed its first attempt")
		}
	}
	n := queries.Load()
	s.Run(cfg.Reports[0]) // returns at once: the first is in its backoff
	if queries.Load() != n {
		t.Error("a second run of a report still retrying started")
	}
	s.Stop(context.Background())
}
