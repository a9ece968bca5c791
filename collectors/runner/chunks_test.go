package runner_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/runner"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

// chunkFixture is a runner over a tickets_file export of n tickets, three
// versions each (created, replied, solved), with a ticket SLO.
type chunkFixture struct {
	cfg   *config.Config
	store *state.Store
	model *quality.Model
	reg   *prometheus.Registry
}

func writeTicketExport(t testing.TB, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,queue,status,created,replied,solved")
	base := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return base.Add(d).Format(time.RFC3339) }
	for v := 0; v < 3; v++ {
		for i := 0; i < n; i++ {
			created := time.Duration(i) * time.Minute
			reply := created + time.Duration(i%7)*20*time.Minute // 0..2h: some miss the 1h SLO
			switch v {
			case 0:
				fmt.Fprintf(w, "T%d,q%d,open,%s,,\n", i, i%3, ts(created))
			case 1:
				fmt.Fprintf(w, "T%d,q%d,open,%s,%s,\n", i, i%3, ts(created), ts(reply))
			case 2:
				if i%5 == 0 {
					fmt.Fprintf(w, "T%d,q%d,open,%s,,\n", i, i%3, ts(created)) // never replied: no reply column
					continue
				}
				fmt.Fprintf(w, "T%d,q%d,solved,%s,%s,%s\n", i, i%3, ts(created), ts(reply), ts(reply+time.Hour))
			}
		}
		if v == 1 {
			fmt.Fprintln(w, "bad,q0,open,yesterday,,") // a rejected row mid-file
		}
	}
	w.Flush()
	f.Close()
}

func newChunkFixture(t *testing.T, export, dir string) *chunkFixture {
	t.Helper()
	cfg, err := config.Parse([]byte(`
collectors:
  - name: tf
    type: tickets_file
    schedule: "@every 1h"
    path: `+export+`
    mapping: {id: id, queue: queue, status: status, created_at: created, first_reply_at: replied, solved_at: solved}
slos:
  - {name: reply-1h, indicator: ticket_first_reply, threshold: 1h, objective: 90}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.NewSeriesDelay = new(config.Duration)
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := quality.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	return &chunkFixture{cfg: cfg, store: st, model: m, reg: reg}
}

// exposition is the model's metrics as text, for comparing two stores.
func (f *chunkFixture) exposition(t *testing.T) string {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&sb, mf)
	}
	return sb.String()
}

// net is the model's values as text with the ticket SLO corrections
// taken off the bad events they overturned.
func net(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	key := func(m *dto.Metric, skip string) string {
		var parts []string
		for _, l := range m.Label {
			if l.GetName() != skip {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
		}
		return strings.Join(parts, ",")
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			switch mf.GetName() {
			case "servq_ticket_slo_corrections_total":
				vals["servq_ticket_slo_events_total{"+key(m, "")+",result=bad}"] -= v
			case "servq_ticket_slo_events_total":
				vals[mf.GetName()+"{"+key(m, "result")+",result="+labelValue(m, "result")+"}"] += v
			case "servq_slo_input_total":
				// The SLO's pre-summed inputs: "corrected" overturns
				// "bad" as the corrections above do (each input has
				// its own definition hash, left out here).
				in := labelValue(m, "input")
				if in == "corrected" {
					in, v = "bad", -v
				}
				var parts []string
				for _, l := range m.Label {
					if n := l.GetName(); n != "input" && n != "definition" {
						parts = append(parts, n+"="+l.GetValue())
					}
				}
				vals[mf.GetName()+"{"+strings.Join(parts, ",")+",input="+in+"}"] += v
			default:
				vals[mf.GetName()+"{"+key(m, "")+"}"] += v
			}
		}
	}
	var lines []string
	for k, v := range vals {
		lines = append(lines, fmt.Sprintf("%s %v", k, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

var clock = func() time.Time { return time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC) }

// TestChunkedRunTimedOutMidRunResumes runs a large first sync in chunks of
// 100 records with a timeout that expires after the third chunk is
// committed: the run fails, its three chunks stay (counted in the self
// metrics and the status), and the next run continues after them. The
// final metrics equal those of one unchunked commit of the whole export:
// nothing lost, nothing doubled, no deadline verdict made early.
func TestChunkedRunTimedOutMidRunResumes(t *testing.T) {
	dir := t.TempDir()
	export := filepath.Join(dir, "tickets.csv")
	writeTicketExport(t, export, 400)

	// Two references: the export committed at once, and in chunks of
	// 100 without interruption.
	refRun := func(name string, chunk int) *chunkFixture {
		ref := newChunkFixture(t, export, filepath.Join(dir, name))
		t.Cleanup(func() { ref.store.Close() })
		rr, err := runner.New(ref.cfg, ref.model, nil, runner.Options{Now: clock, ChunkSize: chunk})
		if err != nil {
			t.Fatal(err)
		}
		if err := rr.Run("tf"); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	once, chunked := refRun("once", 1<<30), refRun("chunked-ref", 100)
	want := chunked.exposition(t)
	if !strings.Contains(want, `result="bad",slo="reply-1h"} 57`) {
		t.Fatalf("the reference counts no breach:\n%s", want)
	}
	// The single commit counts the same events; it only judges the
	// first version of a ticket (no reply yet, deadline passed) bad and
	// corrects that with the second: net of corrections the same.
	if a, b := net(t, once.reg), net(t, chunked.reg); a != b {
		t.Fatalf("one commit and chunks count differently (net of corrections):\n%s\n%s", a, b)
	}

	f := newChunkFixture(t, export, filepath.Join(dir, "interrupted"))
	defer f.store.Close()
	reg := prometheus.NewRegistry()
	self := runner.NewSelfMetrics(reg)
	sum := func(name string) float64 {
		mfs, _ := reg.Gather()
		total := 0.0
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.Metric {
					total += m.GetCounter().GetValue()
				}
			}
		}
		return total
	}
	newRunner := func(timeout time.Duration, hold int, stop func(r *runner.Runner)) (*runner.Runner, *[]int) {
		var chunks []int
		var r *runner.Runner
		r, err := runner.New(f.cfg, f.model, self, runner.Options{Now: clock, ChunkSize: 100, Timeout: timeout,
			AfterChunk: func(ctx context.Context, _ string, n int) {
				chunks = append(chunks, n)
				if n == hold {
					if stop != nil {
						go stop(r)
					}
					<-ctx.Done() // held until the timeout or the shutdown ends the run
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		return r, &chunks
	}

	// 1. The timeout (generous: the three chunks need a few milliseconds)
	// expires while the run is held after its third chunk.
	r, chunks := newRunner(2*time.Second, 3, nil)
	err := r.Run("tf")
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("run held past its timeout: %v", err)
	}
	if len(*chunks) != 3 {
		t.Fatalf("chunks committed: %v, want 3", *chunks)
	}
	if st := r.Statuses()[0]; st.Records+st.Rejected != 300 || st.Error == "" {
		t.Fatalf("status after the timed-out run: %+v", st)
	}
	if got := sum("servq_collector_records_total"); got != 300 {
		t.Fatalf("self metrics count %v records after three chunks of 100", got)
	}
	if f.exposition(t) == want {
		t.Fatal("the timed-out run already shows everything")
	}

	// 2. Shutdown during the next run, after its second chunk.
	r, chunks = newRunner(0, 2, func(r *runner.Runner) { r.Stop(context.Background()) })
	if err := r.Run("tf"); err == nil {
		t.Fatal("a run cancelled by Stop succeeded")
	}
	if len(*chunks) != 2 {
		t.Fatalf("chunks committed: %v, want 2", *chunks)
	}

	// 3. The next run continues after the fifth chunk and completes.
	r, chunks = newRunner(0, 0, nil)
	if err := r.Run("tf"); err != nil {
		t.Fatal(err)
	}
	if got := f.exposition(t); got != want {
		t.Errorf("metrics after the chunked, interrupted runs differ from one commit of the whole export:\n got %s\nwant %s", got, want)
	}
	// Every row was read once: 3 × 400 tickets and one rejected row.
	if got, rej := sum("servq_collector_records_total"), sum("servq_collector_rejected_records_total"); got != 1200 || rej != 1 {
		t.Errorf("self metrics: %v records, %v rejected; want 1200 and 1", got, rej)
	}
}
