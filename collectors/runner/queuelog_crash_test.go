package runner_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/runner"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/qlgen"
)

// TestQueueLogKilledBetweenChunksResumes reads a realistic queue_log in
// chunks. After some chunks it copies the store file as it is on disk at
// that instant, which is exactly what kill -9 there would leave (each
// chunk is one fsync'd transaction; nothing else of the run is written).
// servq restarted on each copy finishes the log; its metrics equal those
// of the uninterrupted run and of one unchunked commit, and the totals the
// hand count of the log.
func TestQueueLogKilledBetweenChunksResumes(t *testing.T) {
	dir := t.TempDir()
	qlog := filepath.Join(dir, "queue_log")
	f, err := os.Create(qlog)
	if err != nil {
		t.Fatal(err)
	}
	const start = 1_790_000_000
	cnt, err := qlgen.Write(f, qlgen.Options{Lines: 30_000, Start: start, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	now := func() time.Time { return time.Unix(start+int64(cnt.Lines)*3, 0) }
	cfg, err := config.Parse([]byte("collectors:\n  - {name: pbx, type: asterisk_queue_log, schedule: \"@every 1m\", path: "+qlog+"}\n"), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.NewSeriesDelay = new(config.Duration)
	open := func(dir string) (*state.Store, *quality.Model, *prometheus.Registry) {
		st, err := state.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		m, err := quality.New(cfg, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(m)
		return st, m, reg
	}
	run := func(m *quality.Model, chunk int, after func(int)) {
		t.Helper()
		r, err := runner.New(cfg, m, nil, runner.Options{Now: now, ChunkSize: chunk,
			AfterChunk: func(_ context.Context, _ string, n int) {
				if after != nil {
					after(n)
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run("pbx"); err != nil {
			t.Fatal(err)
		}
	}
	text := func(reg *prometheus.Registry) string {
		return (&chunkFixture{reg: reg}).exposition(t)
	}

	// The uninterrupted chunked run, copying the store after chunks 1, 6
	// and 13 (the kill points).
	st, m, reg := open(filepath.Join(dir, "live"))
	kills := map[int]string{1: "", 6: "", 13: ""}
	chunks := 0
	run(m, 500, func(n int) {
		chunks = n
		if _, ok := kills[n]; ok {
			kills[n] = copyStore(t, st.Path(), filepath.Join(dir, fmt.Sprintf("killed-after-%d", n)))
		}
	})
	if chunks < 13 {
		t.Fatalf("the log took only %d chunks", chunks)
	}
	want := text(reg)
	for name, v := range map[string]float64{
		"servq_calls_offered_total":     float64(cnt.Calls),
		"servq_calls_answered_total":    float64(cnt.Answered),
		"servq_calls_transferred_total": float64(cnt.Transferred),
		"servq_calls_abandoned_total":   float64(cnt.Abandoned),
	} {
		if got := sumMetric(t, m, name); got != v {
			t.Errorf("%s = %v, the hand count is %v", name, got, v)
		}
	}
	_, once, onceReg := open(filepath.Join(dir, "once"))
	run(once, 1<<30, nil)
	if got := text(onceReg); got != want {
		t.Fatalf("one commit and chunks count differently:\n%s\n%s", got, want)
	}
	for n, copied := range kills {
		_, m, reg := open(copied)
		if got := sumMetric(t, m, "servq_calls_offered_total"); got <= 0 || got >= float64(cnt.Calls) {
			t.Fatalf("killed after chunk %d: %v calls committed, want some but not all", n, got)
		}
		run(m, 700, nil) // restarted; other chunk boundaries
		if got := text(reg); got != want {
			t.Errorf("killed after chunk %d and restarted: metrics differ from the uninterrupted run:\n%s\nwant\n%s", n, got, want)
		}
	}
}

// copyStore copies the bbolt file at path into dir and returns dir.
func copyStore(t *testing.T, path, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(filepath.Join(dir, filepath.Base(path)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}
