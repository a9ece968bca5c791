package sources

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
)

// BenchmarkAsteriskCDRParse reads a 100k-row Master.csv (18 columns, quoted
// fields, a third of the calls unanswered) into calls: the hot path of the
// CDR source.
func BenchmarkAsteriskCDRParse(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "Master.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	const rows = 100_000
	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for i := 0; i < rows; i++ {
		t0 := start.Add(time.Duration(i) * 3 * time.Second)
		if i%3 == 2 {
			fmt.Fprintf(w, "\"\",\"555%04d\",\"600\",\"from-queue\",\"\"\"Caller %d\"\" <555%04d>\",\"SIP/trunk-%08x\",\"\",\"Queue\",\"support,t\",\"%s\",,\"%s\",40,0,\"NO ANSWER\",\"DOCUMENTATION\",\"%d.%d\",\"\"\n",
				i%10000, i, i%10000, i, t0.Format("2006-01-02 15:04:05"), t0.Add(40*time.Second).Format("2006-01-02 15:04:05"), t0.Unix(), i)
			continue
		}
		fmt.Fprintf(w, "\"\",\"555%04d\",\"600\",\"from-queue\",\"\"\"Caller %d\"\" <555%04d>\",\"SIP/trunk-%08x\",\"SIP/1%02d-%08x\",\"Queue\",\"support,t\",\"%s\",\"%s\",\"%s\",190,180,\"ANSWERED\",\"DOCUMENTATION\",\"%d.%d\",\"\"\n",
			i%10000, i, i%10000, i, i%100, i, t0.Format("2006-01-02 15:04:05"), t0.Add(10*time.Second).Format("2006-01-02 15:04:05"), t0.Add(190*time.Second).Format("2006-01-02 15:04:05"), t0.Unix(), i)
	}
	w.Flush()
	f.Close()
	src := buildSource(b, "collectors:\n  - {name: cdr, type: asterisk_cdr, schedule: \"@every 1m\", path: "+path+", time_zone: UTC}\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := &collectors.Batch{Now: start.Add(24 * time.Hour)}
		if _, err := src.Collect(context.Background(), nil, batch); err != nil {
			b.Fatal(err)
		}
		if len(batch.Calls) != rows || len(batch.Rejected) != 0 {
			b.Fatalf("%d calls, %d rejected", len(batch.Calls), len(batch.Rejected))
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
