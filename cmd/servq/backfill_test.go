package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/slo/status"
)

// history is a tickets export and a queue_log over 61 days with the
// truth per day counted by hand (by UTC day of each event).
type history struct {
	tickets, queueLog string
	created, solved   map[string]int // day -> count
	good, bad         map[string]int // first reply within 1h: at reply / at deadline
	offered, answered map[string]int
}

var histStart = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

const histDays = 61

func makeHistory() history {
	h := history{created: map[string]int{}, solved: map[string]int{}, good: map[string]int{}, bad: map[string]int{},
		offered: map[string]int{}, answered: map[string]int{}}
	day := func(t time.Time) string { return t.Format(time.DateOnly) }
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339)
	}
	var tk, ql strings.Builder
	tk.WriteString("id,created,updated,queue,status,first_reply,solved,replies\n")
	var later []string // second versions, written after all first ones (out of order)
	for d := 0; d < histDays; d++ {
		base := histStart.AddDate(0, 0, d)
		for i := 0; i < 3+d%4; i++ {
			id := fmt.Sprintf("T%d-%d", d, i)
			created := base.Add(time.Duration(9+i) * time.Hour).Add(7 * time.Minute)
			reply := created.Add(30 * time.Minute)
			if i%2 == 1 {
				reply = created.Add(2 * time.Hour) // after the 1h deadline
			}
			h.created[day(created)]++
			if i%2 == 0 {
				h.good[day(reply)]++
			} else {
				h.bad[day(created.Add(time.Hour))]++
			}
			// The first version: open, not replied yet.
			fmt.Fprintf(&tk, "%s,%s,%s,support,open,,,0\n", id, ts(created), ts(created.Add(time.Minute)))
			var solved time.Time
			status := "open"
			if i%3 != 0 {
				solved = base.AddDate(0, 0, 1).Add(10*time.Hour + time.Duration(i)*time.Minute)
				status = "solved"
				if d < histDays-1 {
					h.solved[day(solved)]++
				}
			}
			upd := reply
			if !solved.IsZero() {
				upd = solved
			}
			if !solved.IsZero() && d == histDays-1 {
				// Solved after the export was written: it shows the
				// ticket replied and still open.
				solved, status, upd = time.Time{}, "open", reply
			}
			later = append(later, fmt.Sprintf("%s,%s,%s,support,%s,%s,%s,1\n", id, ts(created), ts(upd), status, ts(reply), ts(solved)))
		}
		for i := 0; i < 2+d%3; i++ {
			enter := base.Add(10*time.Hour + time.Duration(i)*5*time.Minute)
			id := fmt.Sprintf("c%d.%d", d, i)
			fmt.Fprintf(&ql, "%d|%s|sales|NONE|ENTERQUEUE||555%04d|1\n", enter.Unix(), id, i)
			end := enter.Add(3 * time.Minute)
			if i%2 == 0 {
				fmt.Fprintf(&ql, "%d|%s|sales|SIP/100|CONNECT|20|%s.1|2\n", enter.Add(20*time.Second).Unix(), id, id)
				fmt.Fprintf(&ql, "%d|%s|sales|SIP/100|COMPLETECALLER|20|160|1\n", end.Unix(), id)
				h.answered[day(end)]++
			} else {
				fmt.Fprintf(&ql, "%d|%s|sales|NONE|ABANDON|1|1|180\n", end.Unix(), id)
			}
			h.offered[day(end)]++
		}
	}
	for _, l := range later {
		tk.WriteString(l)
	}
	h.tickets, h.queueLog = tk.String(), ql.String()
	return h
}

const backfillConfig = `
global:
  time_zone: UTC
collectors:
  - name: helpdesk
    type: tickets_file
    schedule: "@every 1m"
    path: %s
    mapping: {id: id, created_at: created, updated_at: updated, queue: queue, status: status, first_reply_at: first_reply, solved_at: solved, agent_replies: replies}
  - name: pbx
    type: asterisk_queue_log
    schedule: "@every 1m"
    path: %s
slos:
  - {name: reply-1h, indicator: ticket_first_reply, threshold: 1h, objective: 90}
`

func writeHistory(t *testing.T, dir string) (history, string) {
	t.Helper()
	h := makeHistory()
	tickets, ql := filepath.Join(dir, "tickets.csv"), filepath.Join(dir, "queue_log")
	if err := os.WriteFile(tickets, []byte(h.tickets), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ql, []byte(h.queueLog), 0o644); err != nil {
		t.Fatal(err)
	}
	// The export was written when the history ends.
	end := histStart.AddDate(0, 0, histDays)
	os.Chtimes(tickets, end, end)
	os.Chtimes(ql, end, end)
	cfg := filepath.Join(dir, "servq.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(backfillConfig, tickets, ql)), 0o644); err != nil {
		t.Fatal(err)
	}
	return h, cfg
}

// TestBackfillIntoPrometheusAndVictoriaMetrics: 61 days of tickets and
// calls replayed by `servq backfill` into Prometheus blocks (promtool) and
// VictoriaMetrics; every day's increase() equals the hand count.
func TestBackfillIntoPrometheusAndVictoriaMetrics(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	promBin := testenv.Binary(t, "prometheus")
	vmBin := testenv.Binary(t, "victoria-metrics", "victoria-metrics-prod")
	dir := t.TempDir()
	h, cfg := writeHistory(t, dir)

	vmAddr := testenv.FreeAddr(t)
	vm := testenv.Start(t, vmAddr, "/health", vmBin, "-httpListenAddr="+vmAddr, "-storageDataPath="+t.TempDir(),
		"-retentionPeriod=100y", "-loggerLevel=ERROR", "-search.latencyOffset=0s", "-search.disableCache")

	om := filepath.Join(dir, "backfill.om")
	now := histStart.AddDate(0, 0, histDays+1)
	var stderr bytes.Buffer
	code := backfill(cfg, backfillOptions{from: "2026-09-01", to: histStart.AddDate(0, 0, histDays).Format(time.RFC3339),
		step: time.Hour, storage: filepath.Join(dir, "data"), output: om, importURL: vm.URL, now: func() time.Time { return now }},
		slog.New(slog.NewTextHandler(io.Discard, nil)), &stderr)
	if code != 0 {
		t.Fatalf("backfill: %d\n%s", code, stderr.String())
	}
	t.Log(stderr.String())

	t.Log("backfill done")
	// promtool turns the file into blocks; Prometheus serves them.
	blocks := filepath.Join(dir, "prom")
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", om, blocks).CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	pcfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(pcfg, []byte("global: {}\n"), 0o644)
	pAddr := testenv.FreeAddr(t)
	prom := testenv.Start(t, pAddr, "/-/ready", promBin, "--config.file="+pcfg, "--storage.tsdb.path="+blocks,
		"--storage.tsdb.retention.time=100y", "--web.listen-address="+pAddr, "--log.level=warn")

	if _, err := testenv.QueryE(vm.URL, "1"); err != nil {
		t.Fatal(err)
	}
	// VictoriaMetrics makes imported samples searchable after a flush.
	if resp, err := httpGet(vm.URL + "/internal/force_flush"); err != nil {
		t.Fatal(err)
	} else {
		resp.Close()
	}

	t.Log("blocks created, both databases up")
	checks := []struct {
		expr  string
		truth map[string]int
	}{
		{`sum(increase(servq_tickets_created_total[1d]))`, h.created},
		{`sum(increase(servq_tickets_solved_total[1d]))`, h.solved},
		{`sum(increase(servq_ticket_slo_events_total{slo="reply-1h",result="good"}[1d]))`, h.good},
		{`sum(increase(servq_ticket_slo_events_total{slo="reply-1h",result="bad"}[1d]))`, h.bad},
		{`sum(increase(servq_calls_offered_total[1d]))`, h.offered},
		{`sum(increase(servq_calls_answered_total[1d]))`, h.answered},
	}
	checkReport(t, cfg, prom.URL, h)
	for _, db := range []struct{ name, url string }{{"prometheus", prom.URL}, {"victoria-metrics", vm.URL}} {
		for _, c := range checks {
			bad := 0
			for d := 0; d < histDays; d++ {
				end := histStart.AddDate(0, 0, d+1)
				want := float64(c.truth[end.AddDate(0, 0, -1).Format(time.DateOnly)])
				var got float64
				testenv.Eventually(t, 10*time.Second, db.name+" has the samples", func() bool {
					s, err := testenv.QueryAtE(db.url, c.expr, end)
					if err != nil {
						t.Fatal(err)
					}
					if len(s) == 1 {
						got = s[0].Value
					}
					return len(s) == 1 || want == 0
				})
				if got != want && bad < 3 {
					bad++
					t.Errorf("%s: %s on %s = %v, hand count %v", db.name, c.expr, end.AddDate(0, 0, -1).Format(time.DateOnly), got, want)
				}
			}
		}
	}
}

// checkReport runs `servq report` for September on the backfilled
// Prometheus: the SLO's good and bad events equal the hand counts.
func checkReport(t *testing.T, cfg, promURL string, h history) {
	t.Helper()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := writeReport(cfg, reportOptions{period: "2026-09", url: promURL, out: out, formats: []string{"json"}, name: "r"}, &stdout, &stderr); code != 0 {
		t.Fatalf("report: %d\n%s", code, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "r-2026-09.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		SLOs []struct {
			Name      string
			Good, Bad float64
			Exact     bool
			Status    string
		}
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	var good, bad float64
	for d, n := range h.good {
		if strings.HasPrefix(d, "2026-09") {
			good += float64(n)
		}
	}
	for d, n := range h.bad {
		if strings.HasPrefix(d, "2026-09") {
			bad += float64(n)
		}
	}
	if len(rep.SLOs) != 1 || rep.SLOs[0].Good != good || rep.SLOs[0].Bad != bad || !rep.SLOs[0].Exact {
		t.Errorf("report for 2026-09: %+v, hand count good %v bad %v", rep.SLOs, good, bad)
	}
}

func httpGet(u string) (io.ReadCloser, error) {
	resp, err := (&http.Client{Timeout: time.Minute}).Get(u)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// TestBackfillSeam: a backfill up to now commits the sources' cursors and
// the counters' end state; the same history read again adds nothing, and
// a second backfill refuses to overlap unless forced.
func TestBackfillSeam(t *testing.T) {
	dir := t.TempDir()
	h, cfg := writeHistory(t, dir)
	now := histStart.AddDate(0, 0, histDays).Add(30 * time.Minute)
	storage := filepath.Join(dir, "data")
	om := filepath.Join(dir, "out.om")
	opts := backfillOptions{since: "61d", step: time.Hour, storage: storage, output: om, now: func() time.Time { return now }}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var stderr bytes.Buffer
	// A backfill that fails at its end (the import refused) leaves the
	// store as it was: the next one is not refused.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "disk full", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	failing := opts
	failing.importURL = down.URL
	if code := backfill(cfg, failing, logger, &stderr); code == 0 || !strings.Contains(stderr.String(), "disk full") {
		t.Fatalf("backfill into a failing import: %d\n%s", code, stderr.String())
	}
	// The work directory is gone; what was read is kept for a re-run.
	if names := dirNames(t, storage); names != "backfill-read servq.db" || !strings.Contains(stderr.String(), "run the same command again to resume") {
		t.Errorf("storage after the failed backfill: %s\n%s", names, stderr.String())
	}
	stderr.Reset()
	if code := backfill(cfg, opts, logger, &stderr); code != 0 {
		t.Fatalf("backfill: %d\n%s", code, stderr.String())
	}
	// The sinks shape only what is played: the reading is resumed (here
	// complete), and a complete backfill leaves no reading behind.
	if !strings.Contains(stderr.String(), "resuming the reading of an interrupted backfill: helpdesk read (") {
		t.Errorf("the backfill after the failed one does not resume its reading:\n%s", stderr.String())
	}
	if names := dirNames(t, storage); names != "servq.db" {
		t.Errorf("storage after the complete backfill: %s", names)
	}
	// Refused the second time, with the reason.
	stderr.Reset()
	if code := backfill(cfg, opts, logger, &stderr); code == 0 || !strings.Contains(stderr.String(), "already has committed state") {
		t.Fatalf("second backfill: %d\n%s", code, stderr.String())
	}

	// servq run's model, on the store the backfill left: totals equal the
	// hand counts, and the cursors are there.
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(storage)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := quality.New(c, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	total := func(m map[string]int) (n float64) {
		for _, v := range m {
			n += float64(v)
		}
		return n
	}
	got := map[string]float64{}
	for _, f := range m.GatherAll() {
		for _, mt := range f.Metric {
			v := mt.GetCounter().GetValue()
			for _, l := range mt.Label {
				if l.GetName() == "result" {
					v = 0
					if l.GetValue() == "good" {
						got["good"] += mt.GetCounter().GetValue()
					} else {
						got["bad"] += mt.GetCounter().GetValue()
					}
				}
			}
			got[f.GetName()] += v
		}
	}
	// The solves of the last day's tickets happen after the history
	// (they are not in the export), and so are not counted.
	for k, want := range map[string]float64{
		"servq_tickets_created_total": total(h.created), "servq_tickets_solved_total": total(h.solved),
		"good": total(h.good), "bad": total(h.bad),
		"servq_calls_offered_total": total(h.offered), "servq_calls_answered_total": total(h.answered),
	} {
		if got[k] != want {
			t.Errorf("%s = %v after the backfill, hand count %v", k, got[k], want)
		}
	}
	// The SLO status starts with the history: a sample a step back over
	// the SLO's window, the last one the hand count.
	tr, err := status.NewTracker(st)
	if err != nil {
		t.Fatal(err)
	}
	ps := tr.Samples("reply-1h")
	if len(ps) < 24*28 || ps[len(ps)-1].Counts.Bad != total(h.bad) || ps[len(ps)-1].Counts.Total != total(h.bad)+total(h.good) {
		t.Errorf("SLO status samples: %d, last %+v", len(ps), ps[len(ps)-1])
	}
	for _, col := range []string{"helpdesk", "pbx"} {
		if cur, err := m.Cursor(col); err != nil || cur == nil {
			t.Errorf("collector %s: no cursor committed (%v)", col, err)
		}
	}
}

// TestBackfillThenRunContinues: the history of the last hours is
// backfilled into Prometheus blocks with the scrape's job and instance
// labels, then servq run on the backfill's store is scraped by the same
// Prometheus while new calls come in: across the seam no counter resets,
// and the totals equal the hand count of history plus new calls.
func TestBackfillThenRunContinues(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	promBin := testenv.Binary(t, "prometheus")
	bin := buildServq(t)
	dir := t.TempDir()
	// History: a call every 10 minutes over the last 3 hours, every
	// other one answered; the log is read as written a minute ago.
	now := time.Now().UTC()
	ql := filepath.Join(dir, "queue_log")
	var lines []string
	offered, answered := 0, 0
	var calls []histCall
	call := func(id string, end time.Time, answer bool) {
		calls = append(calls, histCall{end: end, abandoned: !answer})
		enter := end.Add(-2 * time.Minute)
		lines = append(lines, fmt.Sprintf("%d|%s|sales|NONE|ENTERQUEUE||5550000|1", enter.Unix(), id))
		if answer {
			lines = append(lines, fmt.Sprintf("%d|%s|sales|SIP/100|CONNECT|10|%s.1|2", enter.Add(10*time.Second).Unix(), id, id),
				fmt.Sprintf("%d|%s|sales|SIP/100|COMPLETECALLER|10|110|1", end.Unix(), id))
			answered++
		} else {
			lines = append(lines, fmt.Sprintf("%d|%s|sales|NONE|ABANDON|1|1|120", end.Unix(), id))
		}
		offered++
	}
	// The calls end at half minutes, far from the rules' evaluations
	// (whole minutes) and their windows' edges.
	end := func(i int) time.Time {
		return now.Truncate(time.Minute).Add(30*time.Second - time.Duration(i)*10*time.Minute)
	}
	for i := 18; i >= 1; i-- {
		call(fmt.Sprintf("h%d", i), end(i), i%2 == 0)
	}
	if err := os.WriteFile(ql, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
global: {new_series_delay: 3s, service: contact}
collectors:
  - {name: pbx, type: asterisk_queue_log, schedule: "@every 1s", path: %s}
slos:
  - {name: abandon, indicator: call_abandonment, objective: 90}
`, ql)), 0o644)

	servqAddr := testenv.FreeAddr(t)
	om := filepath.Join(dir, "history.om")
	storage := filepath.Join(dir, "data")
	vmBin := testenv.Binary(t, "victoria-metrics", "victoria-metrics-prod")
	vmalert := testenv.Binary(t, "vmalert")
	vmAddr := testenv.FreeAddr(t)
	vm := testenv.Start(t, vmAddr, "/health", vmBin, "-httpListenAddr="+vmAddr, "-storageDataPath="+t.TempDir(),
		"-retentionPeriod=100y", "-loggerLevel=ERROR", "-search.latencyOffset=0s", "-search.disableCache")
	out, err := exec.Command(bin, "--config.file="+cfg, "backfill", "--since=4h", "--step=15s", "-o", om, "--import.url="+vm.URL,
		"--storage.path="+storage, "--label=job=servq", "--label=instance="+servqAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	blocks := filepath.Join(dir, "prom")
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", om, blocks).CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	// The recording rules from a start between two calls.
	checkRuleBackfill(t, bin, promtool, promBin, vmalert, cfg, blocks, vm.URL, calls, end(16).Add(270*time.Second), now.Truncate(time.Minute).Add(-5*time.Minute))
	pcfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(pcfg, []byte(fmt.Sprintf(`
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: servq
    static_configs: [{targets: [%q]}]
`, servqAddr)), 0o644)
	pAddr := testenv.FreeAddr(t)
	prom := testenv.Start(t, pAddr, "/-/ready", promBin, "--config.file="+pcfg, "--storage.tsdb.path="+blocks,
		"--storage.tsdb.retention.time=100y", "--web.listen-address="+pAddr, "--log.level=warn")
	testenv.Start(t, servqAddr, "/-/ready", bin, "run", "--config.file="+cfg, "--storage.path="+storage, "--web.listen-address="+servqAddr)

	// New calls after the seam.
	lines = lines[:0]
	call("n1", time.Now().UTC(), true)
	call("n2", time.Now().UTC(), false)
	appendLines(t, ql, lines...)

	value := func(expr string) (float64, bool) {
		s, err := testenv.QueryE(prom.URL, expr)
		if err != nil || len(s) != 1 {
			return 0, false
		}
		return s[0].Value, true
	}
	testenv.Eventually(t, 60*time.Second, "Prometheus scraping the new calls", func() bool {
		v, ok := value(`sum(servq_calls_offered_total{job="servq"})`)
		return ok && v == float64(offered)
	})
	for _, c := range []struct {
		expr string
		want float64
	}{
		{`count(servq_calls_offered_total)`, 1}, // one series: backfilled and live are the same
		{`sum(resets(servq_calls_offered_total[5h]))`, 0},
		{`sum(resets(servq_calls_answered_total[5h]))`, 0},
		{`sum(servq_calls_answered_total)`, float64(answered)},
		{`sum(increase(servq_calls_offered_total[5h]))`, float64(offered)},
	} {
		if v, ok := value(c.expr); !ok || math.Abs(v-c.want) > 0.5 {
			t.Errorf("%s = %v (%v), want %v", c.expr, v, ok, c.want)
		}
	}
}

// dirNames is the sorted names in dir, space-separated.
func dirNames(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

func TestBackfillRateETA(t *testing.T) {
	if got := rateETA(10*time.Second, 5000, 24*time.Hour, 96*time.Hour); got != ", 500 samples/s, ETA 30s" {
		t.Errorf("rateETA = %q", got)
	}
	if got := rateETA(0, 0, 0, time.Hour); got != "" {
		t.Errorf("rateETA at the start = %q", got)
	}
}

// TestBackfillReadsAPISourcesFromTheStart: an API source's first run
// reads back the whole replayed range, not its configured since.
func TestBackfillReadsAPISourcesFromTheStart(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Query().Get("since"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"id": "1", "created": "2026-09-02T10:00:00Z", "updated": "2026-09-02T10:00:00Z"}]`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
collectors:
  - name: api
    type: http_json
    schedule: "@every 1m"
    url: %s/tickets?since={{.since}}
    record: ticket
    mapping: {id: id, created_at: created, updated_at: updated}
    incremental: {watermark: updated}
    since: 1d
`, srv.URL)), 0o644)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var stderr bytes.Buffer
	code := backfill(cfg, backfillOptions{since: "61d", step: time.Hour, storage: filepath.Join(dir, "data"),
		output: filepath.Join(dir, "out.om"), now: func() time.Time { return now }}, slog.New(slog.NewTextHandler(io.Discard, nil)), &stderr)
	if code != 0 {
		t.Fatalf("backfill: %d\n%s", code, stderr.String())
	}
	if len(asked) == 0 || asked[0] != "2026-08-31T23:00:00Z" {
		t.Fatalf("first request since %q, want the range's start less a step", asked)
	}
	if !strings.Contains(stderr.String(), "api: 1 records read") {
		t.Errorf("output: %s", stderr.String())
	}
}
