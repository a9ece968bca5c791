package runner_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/runner"
	_ "github.com/servq/servq/collectors/sources"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

// BenchmarkQueueLogEndToEnd measures queue_log lines per second through
// the whole pipeline: read and parse, dedup, count, and the transactional
// commit of cursor, dedup keys and counters. Each iteration reads the whole
// file into a fresh store.
func BenchmarkQueueLogEndToEnd(b *testing.B) {
	path := filepath.Join(b.TempDir(), "queue_log")
	f, _ := os.Create(path)
	w := bufio.NewWriterSize(f, 1<<20)
	lines := 0
	for i := 0; lines < 1_000_000; i++ {
		ts := 1_790_000_000 + i
		fmt.Fprintf(w, "%d|%d.%d|q%d|NONE|ENTERQUEUE||5551234|1\n", ts, ts, i, i%8)
		if i%5 == 4 {
			fmt.Fprintf(w, "%d|%d.%d|q%d|NONE|ABANDON|1|1|30\n", ts+30, ts, i, i%8)
			lines += 2
			continue
		}
		fmt.Fprintf(w, "%d|%d.%d|q%d|SIP/100|CONNECT|12|%d.b|3\n", ts+12, ts, i, i%8, ts)
		fmt.Fprintf(w, "%d|%d.%d|q%d|SIP/100|COMPLETECALLER|12|60|1\n", ts+72, ts, i, i%8)
		lines += 3
	}
	w.Flush()
	f.Close()
	cfg, err := config.Parse([]byte("collectors:\n  - {name: pbx, type: asterisk_queue_log, schedule: \"@every 1m\", path: "+path+"}\n"), "bench.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := state.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		// Values are checked as committed: no new-series delay (TestNewSeries* covers it).
		cfg.Global.NewSeriesDelay = new(config.Duration)
		m, err := quality.New(cfg, st, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := runner.New(cfg, m, nil, runner.Options{Now: func() time.Time { return time.Unix(1_790_000_000, 0) }})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := r.Run("pbx"); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
