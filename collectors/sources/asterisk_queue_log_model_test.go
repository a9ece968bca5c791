package sources

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

// qlT is 2026-11-02 09:00:00 UTC, the start of testdata/asterisk_queue_log/queue_log.
const qlT = 1793610000

// qlLinesThrough is the part of a chronological queue_log whose lines have
// an epoch of at most last: what Asterisk had written by then.
func qlLinesThrough(t *testing.T, log string, last int64) string {
	t.Helper()
	var sb strings.Builder
	for _, l := range strings.SplitAfter(log, "\n") {
		if l == "" {
			continue
		}
		e, err := strconv.ParseInt(l[:strings.IndexByte(l, '|')], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if e > last {
			break
		}
		sb.WriteString(l)
	}
	return sb.String()
}

// qlModel opens a quality model over the state directory dir, as servq
// does at start; the store is closed when the test ends (or earlier by the
// returned function, to restart).
func qlModel(t *testing.T, cfg *config.Config, dir string) (*quality.Model, func()) {
	t.Helper()
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	closeStore := func() {
		if !closed {
			closed = true
			st.Close()
		}
	}
	t.Cleanup(closeStore)
	cfg.Global.NewSeriesDelay = new(config.Duration)
	m, err := quality.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, closeStore
}

// The real-format log testdata/asterisk_queue_log/queue_log, support queue,
// T = 1793610000 (2026-11-02 09:00 UTC), read in four runs with servq
// restarted after the first and every run's clock 30 days later than the
// log (a replay: staleness must follow the log's time, not the clock):
//
//	c1 .1  enters T, CONNECT T+20 hold 20, COMPLETEAGENT T+140 hold 21 talk 120
//	       -> answered, wait 20 (CONNECT's, not COMPLETE's 21: within 20s)
//	c2 .2  enters T+30, ABANDON T+42 waittime 12 -> abandoned, wait 12
//	c3 .3  enters T+60, CONNECT T+65 hold 5, never ends (Asterisk crashed)
//	c4 .4  enters T+90, never connected, never left
//	c5 .5  enters T+100, CONNECT T+130 hold 30, COMPLETECALLER T+400 hold 31
//	       talk 270 -> answered, wait 30
//	c6 .6  enters T+200, CONNECT T+209 hold 9, BLINDTRANSFER T+300 hold 10
//	       talk 91 -> transferred (answered), wait 9
//	c7 .7  enters T+250, never left
//	       (Asterisk restarts: QUEUESTART at T+86380)
//	c8     enters T+86500, CONNECT T+86508 hold 8, COMPLETEAGENT T+86600
//	       hold 9 talk 92 -> answered, wait 8
//	c9     enters T+86610, ABANDON T+86700 waittime 90 -> abandoned, wait 90
//	c11    enters T+86620, CONNECT T+86625 hold 5, cut at the end of the file
//	c3     late COMPLETECALLER at T+86650 (after c3 was counted as stale)
//	c10    enters T+86690, cut at the end of the file
//
// Runs (a call is stale when the log's newest line is more than 24h =
// 86400s past the call's last line):
//
//	run 1, lines through T+200: c2 abandoned, c1 answered. Restart.
//	run 2, through T+86610 (newest line): c6, c5, c8 end; c3 (last line
//	       T+65, 86545s ago) stale -> answered, wait 5, handle unknown;
//	       c4 (T+90, 86520s) stale -> timeout, wait 0; c7 (T+250, 86360s)
//	       not yet. The run is first collected and lost (crash before the
//	       commit), then collected again from the same cursor.
//	run 3, through T+86700: c3's late COMPLETE is a duplicate; c9
//	       abandoned; c7 (86450s) stale -> timeout. c10, c11 still open.
//	run 4, one appended line at T+173200: c10 stale -> timeout; c11 stale
//	       -> answered, wait 5.
//
// After run 3: offered 9 (c1-c9), answered 5 (c1 c3 c5 c6 c8), transferred
// 1, abandoned 2 (none short, both > 5s), timeouts 2 (c4 c7, wait 0).
// Answered waits 20+5+30+9+8 = 72: le=5 1 (c3), le=10 3 (+c6 c8), le=15 3,
// le=20 4 (+c1), le=30 5 (+c5). Abandoned waits 12+90 = 102. Handle 120 +
// 270 + 91 + 92 = 573 over 4 calls (c3's is unknown). Service level at 20s
// (every miss bad): 4 good of 9 offered, 5 bad.
// After run 4: offered 11, answered 6, timeouts 3; answered waits 77, le=5
// 2, le=20 5; handle unchanged; service level 5 good of 11, 6 bad.
func TestQueueLogCutCallsThroughTheQualityModel(t *testing.T) {
	log, err := os.ReadFile(filepath.Join("testdata", "asterisk_queue_log", "queue_log"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "queue_log")
	stateDir := t.TempDir()
	yml := "collectors:\n  - {name: pbx, type: asterisk_queue_log, schedule: \"@every 1m\", path: " + path + "}\n"
	now := at(qlT + 30*86400)
	written := ""
	writeThrough := func(last int64) {
		part := qlLinesThrough(t, string(log), last)
		appendFile(t, path, part[len(written):])
		written = part
	}

	// Run 1, then servq stops.
	writeThrough(qlT + 200)
	cfg := testConfig(t, yml)
	m, stop := qlModel(t, cfg, stateDir)
	src := buildCollector(t, cfg, collectors.Env{})
	b, next := collectOnce(t, src, nil, now)
	if got, want := qlIDs(b.Calls), "1793610030.2 1793610000.1"; got != want {
		t.Errorf("run 1 calls %s, want %s", got, want)
	}
	if !b.Watermark.Equal(at(qlT + 200)) {
		t.Errorf("run 1 watermark %v, want the newest line's time %v", b.Watermark, at(qlT+200))
	}
	commitRun(t, m, "pbx", b, next)
	stop()

	// Restart: a new model over the same store, a new source, the
	// committed cursor.
	writeThrough(qlT + 86610)
	cfg = testConfig(t, yml)
	m, _ = qlModel(t, cfg, stateDir)
	src = buildCollector(t, cfg, collectors.Env{})
	cursor, err := m.Cursor("pbx")
	if err != nil || len(cursor) == 0 {
		t.Fatalf("no committed cursor (%v)", err)
	}
	lost, _ := collectOnce(t, src, cursor, now)
	b, next = collectOnce(t, src, cursor, now)
	if !reflect.DeepEqual(lost.Calls, b.Calls) {
		t.Errorf("the same cursor gave different calls:\n%+v\n%+v", lost.Calls, b.Calls)
	}
	if got, want := qlIDs(b.Calls), "1793610200.6 1793610100.5 1793696500.1 1793610060.3 1793610090.4"; got != want {
		t.Errorf("run 2 calls %s, want %s", got, want)
	}
	wantStale := []record.Call{
		{ID: "1793610060.3", Queue: "support", Channel: "phone", Agent: "PJSIP/102", EnqueuedAt: at(qlT + 60), AnsweredAt: at(qlT + 65), EndedAt: at(qlT + 65),
			Wait: 5 * time.Second, Outcome: record.OutcomeAnswered, HandleUnknown: true},
		{ID: "1793610090.4", Queue: "support", Channel: "phone", EnqueuedAt: at(qlT + 90), EndedAt: at(qlT + 90), Outcome: record.OutcomeTimeout},
	}
	if len(b.Calls) == 5 && !reflect.DeepEqual(b.Calls[3:], wantStale) {
		t.Errorf("stale calls:\n got %+v\nwant %+v", b.Calls[3:], wantStale)
	}
	if !b.Watermark.Equal(at(qlT + 86610)) {
		t.Errorf("run 2 watermark %v, want %v", b.Watermark, at(qlT+86610))
	}
	commitRun(t, m, "pbx", b, next)

	// Run 3: the rest of the file.
	writeThrough(qlT + 86700)
	b, next = collectOnce(t, src, next, now)
	if got, want := qlIDs(b.Calls), "1793610060.3 1793696610.3 1793610250.7"; got != want {
		t.Errorf("run 3 calls %s, want %s", got, want)
	}
	res, err := m.Commit("pbx", b, next)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted["call"] != 2 || res.Duplicate["call"] != 1 {
		t.Errorf("run 3: %d calls accepted, %d duplicate; want 2 and 1 (c3's late COMPLETE)", res.Accepted["call"], res.Duplicate["call"])
	}
	q := "channel=phone,collector=pbx,queue=support"
	ans := "channel=phone,collector=pbx,outcome=answered,queue=support"
	expectValues(t, seriesValues(t, m), map[string]float64{
		"servq_calls_offered_total{" + q + "}":                                                           9,
		"servq_calls_answered_total{" + q + "}":                                                          5,
		"servq_calls_transferred_total{" + q + "}":                                                       1,
		"servq_calls_abandoned_total{" + q + "}":                                                         2,
		"servq_calls_abandoned_short_total{" + q + "}":                                                   0,
		"servq_call_wait_seconds_count{" + ans + "}":                                                     5,
		"servq_call_wait_seconds_sum{" + ans + "}":                                                       72,
		"servq_call_wait_seconds_bucket{" + ans + ",le=5}":                                               1,
		"servq_call_wait_seconds_bucket{" + ans + ",le=10}":                                              3,
		"servq_call_wait_seconds_bucket{" + ans + ",le=15}":                                              3,
		"servq_call_wait_seconds_bucket{" + ans + ",le=20}":                                              4,
		"servq_call_wait_seconds_bucket{" + ans + ",le=30}":                                              5,
		"servq_call_wait_seconds_sum{channel=phone,collector=pbx,outcome=abandoned,queue=support}":       102,
		"servq_call_wait_seconds_count{channel=phone,collector=pbx,outcome=timeout,queue=support}":       2,
		"servq_call_wait_seconds_sum{channel=phone,collector=pbx,outcome=timeout,queue=support}":         0,
		"servq_call_handle_seconds_count{" + q + "}":                                                     4,
		"servq_call_handle_seconds_sum{" + q + "}":                                                       573,
		"servq_call_wait_seconds_bucket{channel=phone,collector=pbx,outcome=timeout,queue=support,le=5}": 2,
	})
	qlServiceLevel(t, m, 4, 9)
	// Calls still open at the end of the file: c10 waiting, c11 talking.
	if len(b.Snapshots) != 1 || b.Snapshots[0].CallsWaiting != 1 {
		t.Errorf("snapshot %+v, want 1 call waiting (c10)", b.Snapshots)
	}

	// Run 4: the log moves on two days after T; c10 and c11 are stale.
	appendFile(t, path, strconv.Itoa(qlT+173200)+"|NONE|NONE|NONE|QUEUESTART|\n")
	b, next = collectOnce(t, src, next, now)
	if got, want := qlIDs(b.Calls), "1793696620.4 1793696690.6"; got != want {
		t.Errorf("run 4 calls %s, want %s", got, want)
	}
	commitRun(t, m, "pbx", b, next)
	expectValues(t, seriesValues(t, m), map[string]float64{
		"servq_calls_offered_total{" + q + "}":                                                     11,
		"servq_calls_answered_total{" + q + "}":                                                    6,
		"servq_call_wait_seconds_count{channel=phone,collector=pbx,outcome=timeout,queue=support}": 3,
		"servq_call_wait_seconds_sum{" + ans + "}":                                                 77,
		"servq_call_wait_seconds_bucket{" + ans + ",le=5}":                                         2,
		"servq_call_wait_seconds_bucket{" + ans + ",le=20}":                                        5,
		"servq_call_handle_seconds_count{" + q + "}":                                               4,
	})
	qlServiceLevel(t, m, 5, 11)
	// Nothing is left in flight, and nothing new comes of another run.
	if bytes.Contains(next, []byte(`"pending"`)) {
		t.Errorf("calls left in the cursor: %s", next)
	}
	b, _ = collectOnce(t, src, next, now)
	if len(b.Calls) != 0 {
		t.Errorf("a run with nothing new emitted %+v", b.Calls)
	}
}

// qlServiceLevel checks the call_service_level SLI at 20s as the rules
// compute it (count_as_bad): good = answered within 20s (the le=20 bucket
// of answered waits), total = offered, bad = total - good.
func qlServiceLevel(t *testing.T, m *quality.Model, good, total float64) {
	t.Helper()
	v := seriesValues(t, m)
	g := v["servq_call_wait_seconds_bucket{channel=phone,collector=pbx,outcome=answered,queue=support,le=20}"]
	n := v["servq_calls_offered_total{channel=phone,collector=pbx,queue=support}"]
	if g != good || n != total || n-g != total-good {
		t.Errorf("service level: %g good of %g offered (%g bad), want %g of %g (%g bad)", g, n, n-g, good, total, total-good)
	}
}

func qlIDs(calls []record.Call) string {
	ids := make([]string, len(calls))
	for i, c := range calls {
		ids[i] = c.ID
	}
	return strings.Join(ids, " ")
}

// qlCursorOf decodes a cursor for assertions on what stays in flight.
func qlCursorOf(t testing.TB, raw []byte) qlCursor {
	t.Helper()
	var c qlCursor
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
