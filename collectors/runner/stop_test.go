package runner

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/collectors/quality"
)

// stuck bounds waits that only expire when something hangs.
const stuck = 20 * time.Second

// holdCommits makes the model's commits block inside their transaction,
// after every record and the cursor were written, until their context
// ends: a commit that takes forever (a huge batch, a slow disk).
func holdCommits(m *quality.Model) (arm *atomic.Bool, entered chan string) {
	arm, entered = new(atomic.Bool), make(chan string, 1)
	m.BeforeCommit = func(ctx context.Context, collector string) {
		if arm.Load() {
			entered <- collector
			<-ctx.Done()
		}
	}
	return arm, entered
}

// A stop during a commit does not wait for the commit: it cancels it, the
// transaction is rolled back (nothing half-written), and the next run
// counts the same data exactly once.
func TestStopDuringCommitRollsItBackAndNextRunRecounts(t *testing.T) {
	src := &scripted{}
	f := setup(t, "big", "@every 1h", src, Options{})
	arm, entered := holdCommits(f.model)
	if err := f.r.Run("big"); err != nil { // commits call-0 and cursor "x"
		t.Fatal(err)
	}
	arm.Store(true)
	runErr := make(chan error, 1)
	go func() { runErr <- f.r.Run("big") }() // would commit call-1 and "xx"
	<-entered
	stopped := make(chan error, 1)
	go func() {
		// A generous bound: Stop must not need it, it cancels first.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		stopped <- f.r.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop = %v", err)
		}
	case <-time.After(stuck):
		t.Fatal("Stop waited for a commit instead of cancelling it")
	}
	err := <-runErr
	if !errors.Is(err, quality.ErrCommitCancelled) || !strings.Contains(err.Error(), "stopping") {
		t.Fatalf("run interrupted in its commit = %v, want ErrCommitCancelled naming the stop", err)
	}
	if v := f.value(t, "servq_collector_runs_total", "collector", "big", "result", "error"); v != 1 {
		t.Errorf("error runs = %v, want 1 (the cancelled commit)", v)
	}
	if c, _ := f.model.Cursor("big"); string(c) != "x" {
		t.Fatalf("cursor after the rolled-back commit = %q, want the previous run's \"x\"", c)
	}
	if v := f.offered(t); v != 1 {
		t.Errorf("served offered calls = %v, want 1", v)
	}
	// The store itself, as a restart reads it: the first run only.
	f.model.BeforeCommit = nil
	m2, err := quality.New(f.cfg, f.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg2 := prometheus.NewRegistry()
	self2 := NewSelfMetrics(reg2)
	reg2.MustRegister(m2)
	f2 := &fixture{model: m2, reg: reg2}
	if v := f2.offered(t); v != 1 {
		t.Fatalf("offered in the store after the rolled-back commit = %v, want 1", v)
	}
	// The next process collects call-1 again and counts it once.
	f2.r, err = New(f.cfg, m2, self2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f2.r.Run("big"); err != nil {
		t.Fatal(err)
	}
	if c, _ := m2.Cursor("big"); string(c) != "xx" {
		t.Errorf("cursor after the next run = %q, want \"xx\"", c)
	}
	if v := f2.offered(t); v != 2 {
		t.Errorf("offered after the next run = %v, want 2 (call-0, call-1 once each)", v)
	}
	f2.r.Stop(context.Background())
}

// The collector timeout bounds the commit too: a run whose commit outlasts
// it commits nothing and fails with an error that says why.
func TestTimeoutBoundsTheCommit(t *testing.T) {
	src := &scripted{}
	f := setup(t, "slowdisk", "@every 1h", src, Options{Timeout: 50 * time.Millisecond})
	arm, entered := holdCommits(f.model)
	arm.Store(true)
	go func() { <-entered }()
	done := make(chan error, 1)
	go func() { done <- f.r.Run("slowdisk") }()
	var err error
	select {
	case err = <-done:
	case <-time.After(stuck):
		t.Fatal("the collector timeout did not end the commit")
	}
	if !errors.Is(err, quality.ErrCommitCancelled) || !strings.Contains(err.Error(), "collector timeout 50ms reached") {
		t.Fatalf("Run = %v, want ErrCommitCancelled naming the collector timeout", err)
	}
	if c, _ := f.model.Cursor("slowdisk"); c != nil {
		t.Errorf("cursor committed by a timed-out commit: %q", c)
	}
	if v := f.offered(t); v != -1 {
		t.Errorf("calls counted by a timed-out commit: %v", v)
	}
	if st := f.r.Statuses()[0]; !strings.Contains(st.Error, "commit cancelled") {
		t.Errorf("status error = %q", st.Error)
	}
}

// Stop cancels a collection that waits on its vendor right away instead
// of waiting for it (a reload or SIGTERM must not hang on a slow vendor),
// and Stop with a bound returns by then even when a source ignores
// cancellation, naming it.
func TestStopCancelsFirstAndIsBounded(t *testing.T) {
	src := &scripted{enter: make(chan struct{}, 1), act: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	f := setup(t, "waiting", "@every 1h", src, Options{})
	f.r.Start()
	<-src.enter
	stopped := make(chan error, 1)
	go func() { stopped <- f.r.Stop(context.Background()) }() // no bound at all
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(stuck):
		t.Fatal("Stop waited for a running collection before cancelling it")
	}
	if err := f.r.Run("waiting"); !errors.Is(err, ErrStopped) {
		t.Errorf("Run after Stop = %v, want ErrStopped", err)
	}

	release := make(chan struct{})
	defer close(release)
	deaf := &scripted{enter: make(chan struct{}, 1), act: func(context.Context) error { <-release; return nil }}
	g := setup(t, "deaf", "@every 1h", deaf, Options{})
	g.r.Start()
	<-deaf.enter
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the bound is already over: Stop must return anyway
	if err := g.r.Stop(ctx); err == nil || !strings.Contains(err.Error(), "deaf") {
		t.Errorf("Stop past its bound = %v, want an error naming the stuck collector", err)
	}
}
