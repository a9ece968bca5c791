package runner_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/runner"
	_ "github.com/servq/servq/collectors/sources"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/qlgen"
)

// BenchmarkQueueLogEndToEnd measures queue_log lines per second through
// the whole pipeline: read and parse, dedup, count, and the transactional
// commit of cursor, dedup keys and counters. Each iteration reads the whole
// file into a fresh store. The log is qlgen's: 8 queues, 60 agents, calls
// overlapping, ring attempts, all outcomes. x_splitter is the time of the
// run over the time of qlgen.Split reading the same file in the same
// iteration: the ratio survives a busy machine better than lines/s.
func BenchmarkQueueLogEndToEnd(b *testing.B) {
	path := filepath.Join(b.TempDir(), "queue_log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	const start = 1_790_000_000
	cnt, err := qlgen.Write(f, qlgen.Options{Lines: 1_000_000, Start: start, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	// The run's clock is past the log's last line (a call arrives about
	// every second and takes under four lines): no line is ahead of it,
	// which would be rejected as a wrong PBX clock.
	now := time.Unix(start+int64(cnt.Lines), 0)
	cfg, err := config.Parse([]byte("collectors:\n  - {name: pbx, type: asterisk_queue_log, schedule: \"@every 1m\", path: "+path+"}\n"), "bench.yml")
	if err != nil {
		b.Fatal(err)
	}
	// Values are checked as committed: no new-series delay (TestNewSeries* covers it).
	cfg.Global.NewSeriesDelay = new(config.Duration)
	var runT, splitT time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := state.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		m, err := quality.New(cfg, st, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := runner.New(cfg, m, nil, runner.Options{Now: func() time.Time { return now }})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, _, err := splitFile(path); err != nil {
			b.Fatal(err)
		}
		splitT += time.Since(t0)
		b.StartTimer()
		t0 = time.Now()
		if err := r.Run("pbx"); err != nil {
			b.Fatal(err)
		}
		runT += time.Since(t0)
		b.StopTimer()
		if i == 0 {
			if got := sumMetric(b, m, "servq_calls_offered_total"); got != float64(cnt.Calls) {
				b.Fatalf("calls offered %v, the log has %d", got, cnt.Calls)
			}
		}
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(cnt.Lines)*float64(b.N)/runT.Seconds(), "lines/s")
	b.ReportMetric(runT.Seconds()/splitT.Seconds(), "x_splitter")
}

func splitFile(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return qlgen.Split(f)
}

// sumMetric is the sum of a counter family's series as the model serves them.
func sumMetric(t testing.TB, m *quality.Model, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, s := range mf.Metric {
				sum += s.GetCounter().GetValue()
			}
		}
	}
	return sum
}
