package runner

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/collectors/quality"
	_ "github.com/servq/servq/collectors/sources" // the real API sources
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

// fakeClock is the runner's clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// A vendor answering 429 with Retry-After: 3600 gets one request, not one
// per scheduled run: the runner remembers the wait (in the store, so a
// restart honours it too), skips the runs until then without counting them
// as failures, shows the wait, and asks again once the hour is over.
func TestRetryAfterIsRememberedAcrossRunsAndRestarts(t *testing.T) {
	var requests, limited atomic.Int32
	limited.Store(1)
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if limited.Load() == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"message": "You have exceeded the limit of requests per hour"}`)
			return
		}
		w.Write([]byte("[]"))
	}))
	defer vendor.Close()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`collectors:
  - {name: fd, type: freshdesk, schedule: "@every 5m", url: %s, api_key: k}
`, vendor.URL)), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.NewSeriesDelay = new(config.Duration) // counters as committed
	dir := t.TempDir()
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	start := clock.Now()

	// process starts servq on the store in dir, as a restart would.
	process := func() (*fixture, func()) {
		st, err := state.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		m, err := quality.New(cfg, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		self := NewSelfMetrics(reg)
		r, err := New(cfg, m, self, Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return &fixture{r: r, model: m, reg: reg}, func() { r.Stop(t.Context()); st.Close() }
	}

	f, stop := process()
	if err := f.r.Run("fd"); err == nil {
		t.Fatal("the 429 run succeeded")
	}
	until := start.Add(time.Hour)
	if v := f.value(t, "servq_collector_backoff_until_timestamp_seconds", "collector", "fd"); v != float64(until.Unix()) {
		t.Errorf("backoff gauge = %v, want %d", v, until.Unix())
	}
	if st := f.r.Statuses()[0]; !st.BackoffUntil.Equal(until) {
		t.Errorf("status backoff_until = %v, want %v", st.BackoffUntil, until)
	}
	// Every 5 minutes for the next 25 minutes: skipped, not failed.
	for range 5 {
		clock.Add(5 * time.Minute)
		if err := f.r.Run("fd"); !errors.Is(err, ErrBackoff) {
			t.Fatalf("run during the wait = %v, want ErrBackoff", err)
		}
	}
	if v := f.value(t, "servq_collector_runs_total", "collector", "fd", "result", "error"); v != 1 {
		t.Errorf("error runs = %v, want 1 (skipped runs are no failures)", v)
	}
	stop()

	// A restart within the hour remembers the wait.
	f, stop = process()
	defer func() { stop() }()
	if v := f.value(t, "servq_collector_backoff_until_timestamp_seconds", "collector", "fd"); v != float64(until.Unix()) {
		t.Errorf("backoff gauge after restart = %v, want %d", v, until.Unix())
	}
	for range 6 {
		clock.Add(5 * time.Minute)
		if clock.Now().Before(until) {
			if err := f.r.Run("fd"); !errors.Is(err, ErrBackoff) {
				t.Fatalf("run at %s after restart = %v, want ErrBackoff", clock.Now().Sub(start), err)
			}
		}
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("vendor got %d requests within the hour, want exactly 1", n)
	}

	// The hour is over: the next run asks again, gets through and forgets
	// the wait, in memory and in the store.
	limited.Store(0)
	clock.Add(5 * time.Minute)
	if err := f.r.Run("fd"); err != nil {
		t.Fatalf("run after the hour = %v", err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("vendor requests after the hour = %d, want 2", n)
	}
	if v := f.value(t, "servq_collector_backoff_until_timestamp_seconds", "collector", "fd"); v != 0 {
		t.Errorf("backoff gauge after success = %v, want 0", v)
	}
	if at, err := f.model.Backoff("fd"); err != nil || !at.IsZero() {
		t.Errorf("stored backoff after success = %v, %v; want none", at, err)
	}
}
