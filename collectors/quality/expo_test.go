package quality

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// The Accept headers of the formats the cache serves, as scrapers send
// them (Prometheus 2.x and 3.x ask for OpenMetrics first; with native
// histograms, for protobuf).
var expoFormats = map[string]string{
	"text":         "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
	"text-1.0.0":   "text/plain;version=1.0.0;escaping=allow-utf-8",
	"om-1.0.0":     "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
	"om-0.0.1-utf": "application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5",
	"proto":        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.8,text/plain;version=0.0.4;q=0.3",
}

// cachedBody is the model's exposition from its cache, as the /metrics
// handler writes it (without servq's live metrics).
func cachedBody(t testing.TB, m *Model, accept string) ([]byte, expfmt.Format) {
	t.Helper()
	ct := expfmt.NegotiateAccept(http.Header{"Accept": {accept}}, expfmt.DefaultOpenMetricsAcceptedFormats()...)
	ft, ok := FormatOf(ct)
	if !ok {
		t.Fatalf("format %s is not cached", ct)
	}
	pieces, err := m.Exposition(ft)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, p := range pieces {
		b.Write(p.Raw)
	}
	if ft == FormatOpenMetrics {
		b.WriteString("# EOF\n")
	}
	return b.Bytes(), ct
}

// uncachedBody is the exposition client_golang's handler renders from the
// model as a collector (the path servq took before the cache).
func uncachedBody(t testing.TB, m *Model, accept string) ([]byte, expfmt.Format) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", accept)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("uncached scrape: %d %s", w.Code, w.Body)
	}
	return w.Body.Bytes(), expfmt.Format(w.Header().Get("Content-Type"))
}

// parseExpo parses an exposition with Prometheus' own parsers into what
// Prometheus ingests (series with values, HELP and TYPE), sorted.
func parseExpo(t testing.TB, b []byte, ct expfmt.Format) []string {
	t.Helper()
	p, err := textparse.New(b, string(ct), labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		t.Fatalf("parser for %s: %v", ct, err)
	}
	var out []string
	types := map[string]bool{}
	for {
		e, err := p.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("parsing %s: %v\n%s", ct, err, b)
		}
		switch e {
		case textparse.EntryHelp:
			n, h := p.Help()
			out = append(out, fmt.Sprintf("HELP %s %s", n, h))
		case textparse.EntryType:
			n, typ := p.Type()
			if types[string(n)] {
				t.Fatalf("%s: family %s twice", ct, n)
			}
			types[string(n)] = true
			out = append(out, fmt.Sprintf("TYPE %s %s", n, typ))
		case textparse.EntrySeries:
			var ls labels.Labels
			p.Labels(&ls)
			_, ts, v := p.Series()
			out = append(out, fmt.Sprintf("%s %v %v", ls, v, ts))
		case textparse.EntryHistogram:
			t.Fatalf("%s: unexpected native histogram", ct)
		}
	}
	sort.Strings(out)
	return out
}

const expoConfig = `
global: {label_limit: 1000}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
  - {name: zd, type: demo, schedule: "@every 1m"}
  - {name: svy, type: demo, schedule: "@every 1m"}
slos:
  - {name: reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: sl-20s, indicator: call_service_level, threshold: 20s, objective: 80}
`

// randomBatch is a batch of random tickets, calls, surveys and snapshots:
// some update series already served, some create new ones.
func randomBatch(rng *rand.Rand, now time.Time, n int) *collectors.Batch {
	b := &collectors.Batch{Now: now}
	q := func() string { return fmt.Sprint("q", rng.Intn(6)) }
	for i := 0; i < n; i++ {
		switch rng.Intn(4) {
		case 0:
			tk := record.Ticket{ID: fmt.Sprint("t", rng.Intn(50)), Queue: q(), Channel: []string{"email", "chat"}[rng.Intn(2)],
				Priority: "normal", Status: "open", CreatedAt: now.Add(-time.Duration(rng.Intn(600)) * time.Minute)}
			if rng.Intn(2) == 0 {
				tk.Status, tk.FirstReplyAt, tk.SolvedAt, tk.AgentReplies = "solved", tk.CreatedAt.Add(time.Duration(rng.Intn(300))*time.Minute), now, 1
			}
			b.Tickets = append(b.Tickets, tk)
		case 1:
			c := record.Call{ID: fmt.Sprint("c", rng.Int()), Queue: q(), Outcome: record.OutcomeAnswered,
				Wait: time.Duration(rng.Intn(60)) * time.Second, Talk: time.Minute, EndedAt: now}
			if rng.Intn(3) == 0 {
				c.Outcome, c.Talk = record.OutcomeAbandoned, 0
			}
			b.Calls = append(b.Calls, c)
		case 2:
			b.Surveys = append(b.Surveys, record.SurveyResponse{ID: fmt.Sprint("s", rng.Int()), Survey: "csat", Kind: record.KindCSAT,
				Score: float64(1 + rng.Intn(5)), HasScore: true, Queue: q(), SubmittedAt: now})
		case 3:
			b.Snapshots = append(b.Snapshots, record.Snapshot{Queue: q(), At: now, CallsWaiting: rng.Intn(9),
				LongestWait: time.Duration(rng.Intn(90)) * time.Second, HasWait: true})
		}
	}
	return b
}

// The cached exposition parses to exactly what client_golang renders from
// the same model, in every cached format, across random commits of three
// collectors with the new-series delay on: scraped between commits (so the
// cache is filled and must be invalidated by the next commit), during a
// publication hold and after it ends (no commit: the clock alone changes
// what is served).
func TestExpositionEqualsUncachedPath(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			cfg, err := config.Parse([]byte(expoConfig), "test.yml")
			if err != nil {
				t.Fatal(err)
			}
			m, st := newModelFrom(t, t.TempDir(), cfg) // default new-series delay
			defer st.Close()
			clock := &fakeClock{now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
			m.Clock = clock.Now
			rng := rand.New(rand.NewSource(seed))
			cols := []string{"pbx", "zd", "svy"}
			compare := func(step string) {
				for name, accept := range expoFormats {
					got, gct := cachedBody(t, m, accept)
					want, wct := uncachedBody(t, m, accept)
					if gct != wct {
						t.Fatalf("%s %s: content type %q, uncached %q", step, name, gct, wct)
					}
					g, w := parseExpo(t, got, gct), parseExpo(t, want, wct)
					if step == "all holds ended" && !strings.Contains(strings.Join(g, "\n"), `_bucket"`) {
						t.Fatalf("%s %s: no histogram bucket parsed:\n%s", step, name, got)
					}
					if strings.Join(g, "\n") != strings.Join(w, "\n") {
						t.Fatalf("%s %s: cached exposition differs from the uncached one\ncached:\n%s\nuncached:\n%s", step, name, got, want)
					}
				}
			}
			compare("empty model")
			for i := 0; i < 12; i++ {
				col := cols[rng.Intn(len(cols))]
				if _, err := m.Commit(col, randomBatch(rng, clock.Now(), 1+rng.Intn(20)), nil); err != nil {
					t.Fatal(err)
				}
				compare(fmt.Sprintf("commit %d of %s", i, col))
				clock.Add(time.Duration(rng.Intn(90)) * time.Second)
				compare(fmt.Sprintf("after commit %d, clock %s", i, clock.Now().Format(time.TimeOnly)))
			}
			clock.Add(10 * time.Minute) // every hold has ended
			compare("all holds ended")
		})
	}
}

// An unchanged model is served from the cache: a scrape allocates a small
// fraction of what encoding it costs (AllocsPerRun counts, not times).
// Without the cache each scrape rebuilds every series.
func TestExpositionUnchangedModelIsCached(t *testing.T) {
	m, st := newModel(t, t.TempDir(), "global: {label_limit: 100000}\n")
	defer st.Close()
	var calls []record.Call
	for q := 0; q < 300; q++ {
		calls = append(calls, queueCalls(q)...)
	}
	if _, err := m.Commit("bench", &collectors.Batch{Now: t0, Calls: calls}, nil); err != nil {
		t.Fatal(err)
	}
	for _, ft := range []Format{FormatText, FormatOpenMetrics, FormatProtoDelim} {
		first := testing.AllocsPerRun(1, func() {
			m.cacheMu.Lock()
			for _, f := range m.cat.all {
				f.chunks = map[string]*chunk{} // as a commit of every family
				f.fresh = [numFormats]bool{}
			}
			m.cacheMu.Unlock()
			if _, err := m.Exposition(ft); err != nil {
				t.Fatal(err)
			}
		})
		cached := testing.AllocsPerRun(20, func() {
			if _, err := m.Exposition(ft); err != nil {
				t.Fatal(err)
			}
		})
		if first < 1000 || cached > first/100 {
			t.Errorf("format %d: %v allocations per scrape from the cache, %v encoding afresh; want the cache below 1%%", ft, cached, first)
		}
	}
	// A commit drops the chunks of the families it changed, and only of
	// its own collector: the next scrape encodes those alone.
	pieces1, _ := m.Exposition(FormatText)
	if _, err := m.Commit("other", &collectors.Batch{Now: t0, Calls: queueCalls(1)}, nil); err != nil {
		t.Fatal(err)
	}
	pieces2, _ := m.Exposition(FormatText)
	if len(pieces2) <= len(pieces1) {
		t.Fatalf("after a commit of a second collector: %d pieces, before %d", len(pieces2), len(pieces1))
	}
	var body []byte
	for _, p := range pieces2 {
		body = append(body, p.Raw...)
	}
	if !bytes.Contains(body, []byte(`collector="other"`)) {
		t.Fatal("the commit of collector other is not served")
	}
}

// Scrapes run while collectors commit (run with -race): the cache is
// filled under its own lock and a commit drops chunks under the model's.
func TestExpositionConcurrentWithCommits(t *testing.T) {
	cfg, err := config.Parse([]byte(expoConfig), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	m, st := newModelFrom(t, t.TempDir(), cfg)
	defer st.Close()
	done := make(chan struct{})
	scraped := make(chan int)
	for ft := Format(0); ft < numFormats; ft++ {
		go func() {
			n := 0
			for {
				select {
				case <-done:
					scraped <- n
					return
				default:
				}
				if _, err := m.Exposition(ft); err != nil {
					t.Error(err)
				}
				n++
			}
		}()
	}
	rng := rand.New(rand.NewSource(7))
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 30; i++ {
		col := []string{"pbx", "zd", "svy"}[i%3]
		if _, err := m.Commit(col, randomBatch(rng, now, 10), nil); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for ft := Format(0); ft < numFormats; ft++ {
		<-scraped
	}
	got, ct := cachedBody(t, m, expoFormats["text"])
	want, wct := uncachedBody(t, m, expoFormats["text"])
	if strings.Join(parseExpo(t, got, ct), "\n") != strings.Join(parseExpo(t, want, wct), "\n") {
		t.Fatal("after concurrent commits the cache differs from the model")
	}
}
