package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

// scripted is a source whose behaviour each test sets: it emits one call
// per run with an ID derived from the cursor, then does what act says.
type scripted struct {
	act   func(ctx context.Context) error
	extra []record.Call // emitted by every run besides its own call
	runs  atomic.Int32
	enter chan struct{}
}

var sources = map[string]*scripted{}

func init() {
	collectors.Register("scripted", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		s := sources[c.Name]
		if s == nil {
			return nil, fmt.Errorf("no scripted source %s", c.Name)
		}
		return s, nil
	})
}

func (s *scripted) Collect(ctx context.Context, cursor []byte, b *collectors.Batch) ([]byte, error) {
	s.runs.Add(1)
	if s.enter != nil {
		s.enter <- struct{}{}
	}
	n := len(cursor)
	b.Calls = append(b.Calls, record.Call{ID: fmt.Sprint("call-", n), Queue: "q", Outcome: record.OutcomeAnswered})
	b.Calls = append(b.Calls, s.extra...)
	if s.act != nil {
		if err := s.act(ctx); err != nil {
			return nil, err
		}
	}
	return append(cursor, 'x'), nil
}

type fixture struct {
	r     *Runner
	model *quality.Model
	reg   *prometheus.Registry
	cfg   *config.Config
	store *state.Store
	self  *SelfMetrics
}

func setup(t *testing.T, name, schedule string, src *scripted, opt Options) *fixture {
	t.Helper()
	sources[name] = src
	cfg, err := config.Parse([]byte(fmt.Sprintf("collectors:\n  - {name: %s, type: scripted, schedule: %q}\n", name, schedule)), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Values are checked as committed: no new-series delay (TestNewSeries* covers it).
	cfg.Global.NewSeriesDelay = new(config.Duration)
	m, err := quality.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	self := NewSelfMetrics(reg)
	r, err := New(cfg, m, self, opt)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(m)
	return &fixture{r: r, model: m, reg: reg, cfg: cfg, store: st, self: self}
}

func (f *fixture) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

func (f *fixture) offered(t *testing.T) float64 {
	return f.value(t, "servq_calls_offered_total", "queue", "q")
}

func TestRunsOfOneCollectorNeverOverlap(t *testing.T) {
	release := make(chan struct{})
	src := &scripted{enter: make(chan struct{}, 1), act: func(ctx context.Context) error { <-release; return nil }}
	f := setup(t, "slow", "@every 1h", src, Options{})
	done := make(chan error)
	go func() { done <- f.r.Run("slow") }()
	<-src.enter
	if err := f.r.Run("slow"); !errors.Is(err, ErrRunning) {
		t.Fatalf("second concurrent run = %v, want ErrRunning", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := f.value(t, "servq_collector_runs_total", "collector", "slow", "result", "skipped"); v != 1 {
		t.Errorf("skipped runs = %v, want 1", v)
	}
	if v := f.value(t, "servq_collector_runs_total", "collector", "slow", "result", "success"); v != 1 {
		t.Errorf("successful runs = %v, want 1", v)
	}
}

func TestPanicIsRecoveredCountedAndCommitsNothing(t *testing.T) {
	src := &scripted{act: func(context.Context) error { panic("boom") }}
	f := setup(t, "panicky", "@every 1h", src, Options{})
	err := f.r.Run("panicky")
	if err == nil || err.Error() != "panic: boom" {
		t.Fatalf("Run = %v", err)
	}
	if v := f.value(t, "servq_collector_runs_total", "collector", "panicky", "result", "panic"); v != 1 {
		t.Errorf("panic runs = %v, want 1", v)
	}
	if v := f.value(t, "servq_collector_up", "collector", "panicky"); v != 0 {
		t.Errorf("collector_up = %v, want 0", v)
	}
	if c, _ := f.model.Cursor("panicky"); c != nil {
		t.Errorf("cursor committed after panic: %q", c)
	}
	if v := f.offered(t); v != -1 {
		t.Errorf("calls counted from a panicked run: %v", v)
	}
}

// A source that fails half-way commits nothing; the next run starts again
// from the old cursor and the records count once.
func TestFailedRunCommitsNothingAndNextRunRetries(t *testing.T) {
	fail := true
	src := &scripted{act: func(context.Context) error {
		if fail {
			return errors.New("page 3: HTTP 503")
		}
		return nil
	}}
	f := setup(t, "flaky", "@every 1h", src, Options{})
	if err := f.r.Run("flaky"); err == nil {
		t.Fatal("expected the failure")
	}
	if v := f.offered(t); v != -1 {
		t.Fatalf("failed run counted %v calls", v)
	}
	st := f.r.Statuses()[0]
	if st.Error != "page 3: HTTP 503" || !st.LastSuccess.IsZero() {
		t.Errorf("status after failure = %+v", st)
	}
	fail = false
	if err := f.r.Run("flaky"); err != nil {
		t.Fatal(err)
	}
	if v := f.offered(t); v != 1 {
		t.Errorf("offered after retry = %v, want 1 (call-0 once)", v)
	}
	if v := f.value(t, "servq_collector_up", "collector", "flaky"); v != 1 {
		t.Errorf("collector_up = %v, want 1", v)
	}
	if v := f.value(t, "servq_collector_last_success_timestamp_seconds", "collector", "flaky"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success timestamp = %v", v)
	}
}

func TestTimeoutCancelsTheRun(t *testing.T) {
	src := &scripted{act: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	f := setup(t, "hung", "@every 1h", src, Options{Timeout: 50 * time.Millisecond})
	start := time.Now()
	err := f.r.Run("hung")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want deadline exceeded", err)
	}
	// The source never returns by itself: only the 50 ms timeout ends
	// it. 20 s is "stuck", not a speed target, on a loaded machine.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("timeout took %s", d)
	}
	if c, _ := f.model.Cursor("hung"); c != nil {
		t.Errorf("cursor committed after timeout")
	}
}

// On shutdown a running collection that does not finish in time is
// cancelled and commits nothing.
func TestStopCancelsRunningCollections(t *testing.T) {
	src := &scripted{enter: make(chan struct{}, 1), act: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	f := setup(t, "longrun", "@every 1h", src, Options{})
	f.r.Start()
	<-src.enter
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	stopped := make(chan struct{})
	go func() { f.r.Stop(ctx); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after cancelling the run")
	}
	if c, _ := f.model.Cursor("longrun"); c != nil {
		t.Errorf("cursor committed by a cancelled run")
	}
}

func TestCronScheduleRunsRepeatedly(t *testing.T) {
	src := &scripted{}
	f := setup(t, "ticker", "CRON_TZ=Europe/Berlin @every 1s", src, Options{})
	f.r.Start()
	defer f.r.Stop(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for src.runs.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := src.runs.Load(); n < 3 {
		t.Fatalf("runs after waiting = %d, want >= 3 (start + every second)", n)
	}
	if !f.r.Ready() {
		t.Error("runner not ready after runs")
	}
	// Each run committed a cursor one byte longer; each call ID counts once.
	f.r.Stop(context.Background())
	c, _ := f.model.Cursor("ticker")
	if got := f.offered(t); got != float64(len(c)) {
		t.Errorf("offered = %v, want %d (one new call per committed run)", got, len(c))
	}
}

// Records out of bounds, from any source, are refused by the quality model
// and counted as rejections with their reason; a record time ahead of the
// clock (within the allowed skew) never makes the lag negative.
func TestOutOfBoundsRecordsAreRejectedAndLagIsNeverNegative(t *testing.T) {
	now := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	src := &scripted{extra: []record.Call{
		{ID: "ahead", Queue: "q", Outcome: record.OutcomeAnswered, EndedAt: now.Add(30 * time.Minute)},
		{ID: "negative-wait", Queue: "q", Outcome: record.OutcomeAbandoned, Wait: -5 * time.Second, EndedAt: now},
		{ID: "far-future", Queue: "q", Outcome: record.OutcomeAbandoned, EndedAt: now.AddDate(10, 0, 0)},
		{ID: "wrapped", Queue: "q", Outcome: record.OutcomeAnswered, Talk: time.Duration(math.MinInt64), EndedAt: now},
	}}
	f := setup(t, "bounds", "@every 1h", src, Options{Now: func() time.Time { return now }})
	f.self.SetClock(func() time.Time { return now })
	if err := f.r.Run("bounds"); err != nil {
		t.Fatal(err)
	}
	if got := f.offered(t); got != 2 {
		t.Errorf("offered = %v, want 2 (the run's own call and the one 30m ahead)", got)
	}
	if got := f.value(t, "servq_calls_abandoned_total", "queue", "q"); got != 0 {
		t.Errorf("abandoned = %v, want 0", got)
	}
	for reason, want := range map[string]float64{"bad_number": 2, "bad_time": 1} {
		if got := f.value(t, "servq_collector_rejected_records_total", "collector", "bounds", "reason", reason); got != want {
			t.Errorf("rejected %s = %v, want %v", reason, got, want)
		}
	}
	if got := f.value(t, "servq_collector_lag_seconds", "collector", "bounds"); got != 0 {
		t.Errorf("lag = %v, want 0 (the newest record is ahead of the clock)", got)
	}
}
