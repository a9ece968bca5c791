package sources

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// qlLog renders test lines "+offset|rest" as epoch qlT+offset; lines
// starting with "=" keep their literal epoch.
func qlLog(lines ...string) string {
	var sb strings.Builder
	for _, l := range lines {
		if lit, ok := strings.CutPrefix(l, "="); ok {
			sb.WriteString(lit + "\n")
			continue
		}
		var off int64
		var rest string
		if _, err := fmt.Sscanf(l, "+%d|", &off); err != nil {
			panic(l)
		}
		_, rest, _ = strings.Cut(l, "|")
		fmt.Fprintf(&sb, "%d|%s\n", qlT+off, rest)
	}
	return sb.String()
}

// Numbers and times out of bounds are rejected with their reason and
// position, never counted, and nothing they carry reaches the model; a
// line within the clock skew bound is accepted. Run clock T+3600:
//
//	line 1  a enters T
//	line 2  a ABANDON waittime 99999999999999999 -> bad_number (it would
//	        overflow Duration to about -2.5e9s: a short abandon); a stays
//	        waiting
//	line 3-4 b enters T+20, ABANDON T+35 waittime 15 -> abandoned, wait 15
//	line 5-6 c enters T+40, CONNECT T+45 hold 5
//	line 7  c COMPLETECALLER calltime 604801 (7d+1s) -> bad_number; c
//	        stays in flight, talking
//	line 8  d COMPLETEAGENT T+110 hold 8 calltime 60 (entry before the
//	        log) -> answered, wait 8, talk 60
//	line 9  e ENTERQUEUE at epoch 99999999999 -> bad_time (no phantom)
//	line 10 f ENTERQUEUE at epoch 100 (1970) -> bad_time
//	line 11-12 g enters T+120, EXITWITHTIMEOUT T+123 waittime 3 -> timeout
//	line 13 h RINGNOANSWER 999999999999 ms -> bad_number
//	line 14 x enters T+3700: 100s ahead of the run's clock, within the
//	        1h skew -> accepted, waiting
//	line 15 y enters T+11000: 7400s ahead -> bad_time
//
// Offered 3 (b d g), answered 1 (d, wait 8), abandoned 1 (b, 15s: not
// short), timeout 1 (g, 3s); handle 60. Snapshot: a and x waiting, the
// longest a's 3600s (x's wait is not negative, it is not counted).
func TestQueueLogNumbersOutOfBoundsThroughTheQualityModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	appendFile(t, path, qlLog(
		"+0|a|support|NONE|ENTERQUEUE||1|1",
		"+10|a|support|NONE|ABANDON|1|1|99999999999999999",
		"+20|b|support|NONE|ENTERQUEUE||1|1",
		"+35|b|support|NONE|ABANDON|1|1|15",
		"+40|c|support|NONE|ENTERQUEUE||1|1",
		"+45|c|support|SIP/1|CONNECT|5|c.2|1",
		"+100|c|support|SIP/1|COMPLETECALLER|5|604801|1",
		"+110|d|support|SIP/1|COMPLETEAGENT|8|60|1",
		"=99999999999|e|support|NONE|ENTERQUEUE||1|1",
		"=100|f|support|NONE|ENTERQUEUE||1|1",
		"+120|g|support|NONE|ENTERQUEUE||1|1",
		"+123|g|support|NONE|EXITWITHTIMEOUT|1|1|3",
		"+130|h|support|SIP/2|RINGNOANSWER|999999999999",
		"+3700|x|support|NONE|ENTERQUEUE||1|1",
		"+11000|y|support|NONE|ENTERQUEUE||1|1",
	))
	cfg := testConfig(t, "collectors:\n  - {name: pbx, type: asterisk_queue_log, schedule: \"@every 1m\", path: "+path+"}\n")
	m, _ := qlModel(t, cfg, t.TempDir())
	src := buildCollector(t, cfg, collectors.Env{})
	now := at(qlT + 3600)
	b, next := collectOnce(t, src, nil, now)
	var rej []string
	for _, r := range b.Rejected {
		rej = append(rej, fmt.Sprintf("%s %s", r.Reason, strings.TrimPrefix(r.Position, path)))
	}
	wantRej := []string{"bad_number :2", "bad_number :7", "bad_time :9", "bad_time :10", "bad_number :13", "bad_time :15"}
	if !reflect.DeepEqual(rej, wantRej) {
		t.Errorf("rejections %q, want %q", rej, wantRej)
	}
	for _, r := range b.Rejected {
		if r.Reason == "bad_number" && !strings.Contains(r.Err.Error(), "maximum") {
			t.Errorf("%s: error %q does not name the bound", r.Position, r.Err)
		}
	}
	if got, want := qlIDs(b.Calls), "b d g"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	wantSnap := []record.Snapshot{{Queue: "support", At: now, HasWait: true, CallsWaiting: 2, LongestWait: 3600 * time.Second}}
	if !reflect.DeepEqual(b.Snapshots, wantSnap) {
		t.Errorf("snapshots %+v, want %+v", b.Snapshots, wantSnap)
	}
	commitRun(t, m, "pbx", b, next)
	if len(b.Rejected) > len(wantRej) {
		t.Errorf("the model rejected more: %+v", b.Rejected[len(wantRej):])
	}
	q := "channel=phone,collector=pbx,queue=support"
	qo := func(o string) string { return "channel=phone,collector=pbx,outcome=" + o + ",queue=support" }
	expectValues(t, seriesValues(t, m), map[string]float64{
		"servq_calls_offered_total{" + q + "}":                          3,
		"servq_calls_answered_total{" + q + "}":                         1,
		"servq_calls_abandoned_total{" + q + "}":                        1,
		"servq_calls_abandoned_short_total{" + q + "}":                  0,
		"servq_call_wait_seconds_sum{" + qo("answered") + "}":           8,
		"servq_call_wait_seconds_bucket{" + qo("answered") + ",le=5}":   0,
		"servq_call_wait_seconds_bucket{" + qo("answered") + ",le=10}":  1,
		"servq_call_wait_seconds_sum{" + qo("abandoned") + "}":          15,
		"servq_call_wait_seconds_bucket{" + qo("abandoned") + ",le=5}":  0,
		"servq_call_wait_seconds_sum{" + qo("timeout") + "}":            3,
		"servq_call_handle_seconds_sum{" + q + "}":                      60,
		"servq_queue_calls_waiting{collector=pbx,queue=support}":        2,
		"servq_queue_longest_wait_seconds{collector=pbx,queue=support}": 3600,
	})
	if n := m.Newest("pbx"); n.After(now) {
		t.Errorf("newest record %s is ahead of the run's clock %s", n, now)
	}
}

// A cursor written by a version that accepted future epochs holds a call
// that would wait for ever: it is dropped with a bad_time rejection.
func TestQueueLogPhantomCallInOldCursorIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	appendFile(t, path, qlLog("+0|NONE|NONE|NONE|QUEUESTART|"))
	s := queueLogSource(t, path, "")
	old := []byte(fmt.Sprintf(`{"offset":0,"line":0,"pending":{"ok":{"q":"support","e":%d},"ghost":{"q":"support","e":99999999999}}}`, qlT))
	b, next := collectOnce(t, s, old, at(qlT+60))
	if len(b.Rejected) != 1 || b.Rejected[0].Reason != "bad_time" || !strings.Contains(b.Rejected[0].Err.Error(), `"ghost"`) {
		t.Errorf("rejections %+v, want the ghost call as bad_time", b.Rejected)
	}
	if p := qlCursorOf(t, next).Pending; len(p) != 1 || p["ok"] == nil {
		t.Errorf("calls in flight %+v, want only ok", p)
	}
	if len(b.Snapshots) != 1 || b.Snapshots[0].CallsWaiting != 1 || b.Snapshots[0].LongestWait != 60*time.Second {
		t.Errorf("snapshot %+v, want 1 waiting for 60s", b.Snapshots)
	}
}

// copytruncate: the log is copied away and truncated in place, and Asterisk
// writes more than the old offset before the next run. Every call of both
// files counts exactly once: 190 before the truncation, 210 after (the old
// code seeked to the old offset in the new file and lost 190 of these).
func TestQueueLogCopytruncateRegrownPastTheOffsetLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	calls := func(from, to int) string {
		var sb strings.Builder
		for i := from; i < to; i++ {
			e := qlT + int64(i)*10
			fmt.Fprintf(&sb, "%d|call-%03d|support|NONE|ENTERQUEUE||1|1\n%d|call-%03d|support|NONE|ABANDON|1|1|%d\n", e, i, e+7, i, 7)
		}
		return sb.String()
	}
	cfg := testConfig(t, "collectors:\n  - {name: pbx, type: asterisk_queue_log, schedule: \"@every 1m\", path: "+path+"}\n")
	m, _ := qlModel(t, cfg, t.TempDir())
	src := buildCollector(t, cfg, collectors.Env{})
	now := at(qlT + 10000)
	appendFile(t, path, calls(0, 190))
	b, next := collectOnce(t, src, nil, now)
	commitRun(t, m, "pbx", b, next)
	old, _ := os.ReadFile(path)
	// copytruncate, then 210 more calls: the file is larger than before.
	os.WriteFile(path+".1", old, 0o644)
	os.WriteFile(path, []byte(calls(190, 400)), 0o644)
	if fi, _ := os.Stat(path); fi.Size() <= int64(len(old)) {
		t.Fatalf("the new file (%d bytes) must outgrow the old offset %d", fi.Size(), len(old))
	}
	b, next = collectOnce(t, src, next, now)
	if len(b.Calls) != 210 {
		t.Errorf("after copytruncate %d calls, want 210", len(b.Calls))
	}
	commitRun(t, m, "pbx", b, next)
	// A run with nothing new, and the same run lost and collected again,
	// count nothing more.
	b, _ = collectOnce(t, src, next, now)
	commitRun(t, m, "pbx", b, next)
	expectValues(t, seriesValues(t, m), map[string]float64{
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=support}":   400,
		"servq_calls_abandoned_total{channel=phone,collector=pbx,queue=support}": 400,
	})
}

// A cursor of a version without the fingerprint keeps its offset: the file
// is read on from there, not again from the start.
func TestQueueLogCursorWithoutFingerprintContinues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	appendFile(t, path, qlLog("+0|a|q|NONE|ENTERQUEUE||1|1", "+5|a|q|NONE|ABANDON|1|1|5"))
	s := queueLogSource(t, path, "")
	_, next := collectOnce(t, s, nil, at(qlT+60))
	var c map[string]any
	json.Unmarshal(next, &c)
	if c["fp"] == nil {
		t.Fatalf("cursor %s has no fingerprint", next)
	}
	delete(c, "fp")
	old, _ := json.Marshal(c)
	appendFile(t, path, qlLog("+10|b|q|NONE|ENTERQUEUE||1|1", "+15|b|q|NONE|ABANDON|1|1|5"))
	b, next := collectOnce(t, s, old, at(qlT+60))
	if got := qlIDs(b.Calls); got != "b" {
		t.Errorf("calls %s, want b only", got)
	}
	if qlCursorOf(t, next).Fingerprint == "" {
		t.Error("the next cursor has no fingerprint")
	}
}

// checkBounds fails t when a record of b would be refused by the quality
// model: a source must reject out-of-bound input itself, naming its line
// and field, rather than leave it to the model's anonymous refusal.
func checkBounds(t *testing.T, b *collectors.Batch) {
	t.Helper()
	for _, c := range b.Calls {
		for _, tm := range []time.Time{c.EnqueuedAt, c.AnsweredAt, c.EndedAt} {
			if err := record.CheckTime(tm, b.Now); err != nil {
				t.Errorf("call %s: %v", c.ID, err)
			}
		}
		for _, d := range []time.Duration{c.Wait, c.Talk, c.Hold, c.Wrap} {
			if err := record.CheckDuration(d, record.MaxCallDuration); err != nil {
				t.Errorf("call %s: %v", c.ID, err)
			}
		}
	}
	for _, s := range b.Snapshots {
		if err := record.CheckDuration(s.LongestWait, record.MaxCallDuration); err != nil {
			t.Errorf("snapshot %s: %v", s.Queue, err)
		}
	}
}
