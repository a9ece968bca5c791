package quality

import (
	"context"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// BenchmarkCommitTickets measures tickets/s through the quality model with
// the state commit (one transaction per batch of 1000 ticket updates, the
// size of one Zendesk incremental export page).
func BenchmarkCommitTickets(b *testing.B) {
	m, st := newModel(b, b.TempDir(), testConfig)
	defer st.Close()
	const batch = 1000
	queues := []string{"billing", "support", "sales"}
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i += batch {
		var bt collectors.Batch
		bt.Now = t0.Add(time.Duration(i) * time.Second)
		for j := 0; j < batch; j++ {
			k := i + j
			tk := record.Ticket{ID: fmt.Sprint("T", k/2), Queue: queues[k%3], Channel: "email", Priority: "normal",
				Status: "open", CreatedAt: t0.Add(-time.Hour)}
			if k%2 == 1 { // every ticket is reported twice: created, then solved
				tk.Status, tk.FirstReplyAt, tk.SolvedAt, tk.AgentReplies = "solved", t0, t0.Add(time.Hour), 1
			}
			bt.Tickets = append(bt.Tickets, tk)
		}
		if _, err := m.Commit("zd", &bt, []byte(fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tickets/s")
}

// queueCalls is one answered and one abandoned call in queue q.
func queueCalls(q int) []record.Call {
	return []record.Call{
		{ID: fmt.Sprint("a", q), Queue: fmt.Sprint("q", q), Outcome: record.OutcomeAnswered, Wait: 7 * time.Second, Talk: time.Minute},
		{ID: fmt.Sprint("b", q), Queue: fmt.Sprint("q", q), Outcome: record.OutcomeAbandoned, Wait: 3 * time.Second},
	}
}

// fillSeries makes the model hold about want exposed series (each bucket,
// _sum and _count line counts as one, as Prometheus stores them) by adding
// queues, and returns the exact count.
func fillSeries(b *testing.B, m *Model, want int) int {
	if _, err := m.Commit("bench", &collectors.Batch{Now: t0, Calls: queueCalls(0)}, nil); err != nil {
		b.Fatal(err)
	}
	per := countSeries(b, m) - 1 // label_overflow etc. are not per queue
	var calls []record.Call
	for q := 1; q < want/per; q++ {
		calls = append(calls, queueCalls(q)...)
	}
	if _, err := m.Commit("bench", &collectors.Batch{Now: t0, Calls: calls}, nil); err != nil {
		b.Fatal(err)
	}
	return countSeries(b, m)
}

func countSeries(b *testing.B, m *Model) int {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, mt := range mf.Metric {
			if h := mt.Histogram; h != nil {
				n += len(h.Bucket) + 3 // buckets, +Inf, _sum, _count
			} else {
				n++
			}
		}
	}
	return n
}

// BenchmarkScrape renders /metrics from the model at 1k, 10k and 100k
// series, as Prometheus asks for it (OpenMetrics, gzip) and as text
// without compression: path=uncached through client_golang's handler
// (servq before the cache: const metrics, Gather checks, encoding,
// compression at every scrape), path=cached from the model's encoded
// cache with an unchanged model (what the /metrics handler writes: the
// pieces' bytes, or their deflated bytes plus the CRC of the raw ones).
func BenchmarkScrape(b *testing.B) {
	for _, size := range []int{1000, 10000, 100000} {
		cfg := "global: {label_limit: 1000000}\n"
		m, st := newModel(b, b.TempDir(), cfg)
		n := fillSeries(b, m, size)
		reg := prometheus.NewRegistry()
		reg.MustRegister(m)
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
		for _, enc := range []struct {
			name, accept string
			gzip         bool
			ft           Format
		}{
			{"openmetrics+gzip", expoFormats["om-1.0.0"], true, FormatOpenMetrics},
			{"text", expoFormats["text"], false, FormatText},
		} {
			b.Run(fmt.Sprintf("series=%d/%s/path=uncached", size, enc.name), func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.Header.Set("Accept", enc.accept)
				if enc.gzip {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					w := httptest.NewRecorder()
					w.Body = nil
					h.ServeHTTP(discardRecorder{w}, req)
				}
				b.ReportMetric(float64(n), "series")
			})
			b.Run(fmt.Sprintf("series=%d/%s/path=cached", size, enc.name), func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					pieces, err := m.Exposition(enc.ft)
					if err != nil {
						b.Fatal(err)
					}
					crc := uint32(0)
					for _, p := range pieces {
						if enc.gzip {
							crc = crc32.Update(crc, crc32.IEEETable, p.Raw)
							io.Discard.Write(p.Deflated)
						} else {
							io.Discard.Write(p.Raw)
						}
					}
				}
				b.ReportMetric(float64(n), "series")
			})
		}
		st.Close()
	}
}

type discardRecorder struct{ *httptest.ResponseRecorder }

func (d discardRecorder) Write(p []byte) (int, error) { return io.Discard.Write(p) }

// BenchmarkCommitLargeTx measures one transaction of many new tickets in
// arrival order (ids unordered, as help desks number them by shard), the
// shape of one chunk of a first sync, at 10k (the default chunk) and 50k
// tickets: time per ticket must not grow with the transaction.
func BenchmarkCommitLargeTx(b *testing.B) {
	for _, size := range []int{10000, 50000} {
		b.Run(fmt.Sprint("tickets=", size), func(b *testing.B) {
			tickets := make([]record.Ticket, size)
			for i := range tickets {
				// A multiplicative hash spreads the ids over the key space.
				id := uint32(i) * 2654435761
				tickets[i] = record.Ticket{ID: fmt.Sprintf("%010d", id), Queue: "support", Channel: "email", Priority: "normal",
					Status: "open", CreatedAt: t0.Add(-time.Hour)}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				m, st := newModel(b, b.TempDir(), testConfig)
				b.StartTimer()
				if _, err := m.Commit("zd", &collectors.Batch{Now: t0, Tickets: tickets}, []byte("c")); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				st.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "tickets/s")
		})
	}
}

// firstSyncTickets returns ticket i's version v (0 opened, 1 replied, 2
// solved) as deploy/bench/ticketgen writes it: sequential ids as help
// desks number tickets, or scattered ones (a permutation of the 32-bit
// space, as uuid keys of a custom system).
func firstSyncTicket(i, v int, scattered bool) record.Ticket {
	queues := []string{"billing", "support", "sales", "returns", "tech"}
	channels := []string{"email", "chat", "phone", "web"}
	prios := []string{"low", "normal", "high", "urgent"}
	created := t0.Add(time.Duration(i) * 30 * time.Second)
	reply := created.Add(time.Duration(5+(i*7919)%480) * time.Minute)
	solved := reply.Add(time.Duration(30+(i*104729)%2880) * time.Minute)
	id := uint32(1000000 + i)
	if scattered {
		id = uint32(i) * 2654435761
	}
	t := record.Ticket{ID: fmt.Sprint(id), Queue: queues[i%len(queues)], Channel: channels[(i/5)%len(channels)],
		Priority: prios[(i/3)%len(prios)], Status: "open", CreatedAt: created}
	switch v {
	case 1:
		t.Status, t.FirstReplyAt, t.AgentReplies = "pending", reply, 1
	case 2:
		t.Status, t.FirstReplyAt, t.SolvedAt, t.Reopens, t.AgentReplies = "solved", reply, solved, i%11/10, 1+i%3
	}
	return t
}

// firstSync commits an export of n tickets, three versions each 1,000
// tickets apart (ticketgen's order), in chunks of 10,000 records with a
// final commit, as a tickets_file first sync does.
func firstSync(b *testing.B, m *Model, n int, scattered bool) {
	const lag, chunk = 1000, collectors.DefaultChunkSize
	bt := &collectors.Batch{}
	chunks := 0
	commit := func(final bool) {
		bt.Now = t0.Add(time.Duration(n) * 30 * time.Second)
		var err error
		if final {
			_, err = m.Commit("export", bt, []byte("end"))
		} else {
			_, err = m.CommitChunk(context.Background(), "export", bt, []byte(fmt.Sprint(chunks)))
		}
		if err != nil {
			b.Fatal(err)
		}
		chunks++
		bt.Tickets = bt.Tickets[:0]
	}
	for i := 0; i < n+2*lag; i++ {
		for v := 0; v < 3; v++ {
			if j := i - v*lag; j >= 0 && j < n {
				bt.Tickets = append(bt.Tickets, firstSyncTicket(j, v, scattered))
				if len(bt.Tickets) == chunk {
					commit(false)
				}
			}
		}
	}
	commit(true)
}

// BenchmarkFirstSync is the model's part of deploy/bench/tickets.sh: a
// first sync of an export of 100k or 1M tickets (3 versions each) in
// chunks, with sequential or scattered ids. Linear time means the 1M
// case costs at most ~10× the 100k one. -firstsync.tickets sets the sizes
// (deploy/bench/tickets.sh with MODEL=1 runs them interleaved).
func BenchmarkFirstSync(b *testing.B) {
	var sizes []int
	for _, f := range strings.Split(*firstSyncSizes, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			b.Fatalf("-firstsync.tickets: %v", err)
		}
		sizes = append(sizes, n)
	}
	for _, ids := range []string{"sequential", "scattered"} {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("ids=%s/tickets=%d", ids, n), func(b *testing.B) {
				var cpu time.Duration
				var pages int64
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					m, st := newModel(b, b.TempDir(), firstSyncConfig)
					b.StartTimer()
					before := cpuTime()
					firstSync(b, m, n, ids == "scattered")
					cpu += cpuTime() - before
					pages += st.PagesWritten()
					b.StopTimer()
					st.Close()
					b.StartTimer()
				}
				// Wall time is mostly the fsync of each chunk's commit; the
				// target is CPU.
				b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
				// What the commits rewrote: the part that grows with the
				// store when writes scatter.
				b.ReportMetric(float64(pages)/float64(b.N), "pages-written/op")
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tickets/s")
			})
		}
	}
}

var firstSyncSizes = flag.String("firstsync.tickets", "100000,1000000", "BenchmarkFirstSync: export sizes in tickets, comma-separated")

const firstSyncConfig = `
global: {retention: 3650d}
collectors:
  - {name: export, type: demo, schedule: "@every 1m"}
slos:
  - {name: reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: solve-2d, indicator: ticket_resolution, threshold: 48h, objective: 90}
`

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
