package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/internal/qlgen"
)

func queueLogSource(t testing.TB, path string, extra string) collectors.Source {
	return buildSource(t, fmt.Sprintf("collectors:\n  - name: pbx\n    type: asterisk_queue_log\n    schedule: \"@every 10s\"\n    path: %s\n%s", path, extra))
}

func at(epoch int64) time.Time { return time.Unix(epoch, 0).UTC() }

// qlBase moves the small epochs of the queue_log tests (T = 1000) into the
// bounds of real times (after 2000-01-01): atq(1000) is T, and qlShift
// adds qlBase to the epoch that starts each line of a test log.
const qlBase = 1_700_000_000

func atq(epoch int64) time.Time { return at(qlBase + epoch) }

func qlShift(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		e, rest, ok := strings.Cut(l, "|")
		if n, err := strconv.ParseInt(e, 10, 64); ok && err == nil {
			lines[i] = strconv.FormatInt(qlBase+n, 10) + "|" + rest
		}
	}
	return strings.Join(lines, "\n")
}

// The fixture, line by line (epoch 1000 = T):
//
//	call A: enters support at T, CONNECT after 12s hold (3-field CONNECT),
//	        COMPLETECALLER at T+100 with calltime 88 -> answered, wait 12, talk 88
//	call B: enters support at T+5, ABANDON at T+35 with waittime 30
//	call C: enters sales at T+10, old 2-field CONNECT after 4s, COMPLETEAGENT
//	        at T+74 (hold 4, calltime 60)
//	call D: enters sales at T+20, EXITWITHTIMEOUT at T+320 (waittime 300)
//	call E: enters support at T+30, RINGNOANSWER 15000 ms, EXITWITHKEY at
//	        T+45 (key 1, position 1, origposition 2, waittime 15)
//	call F: enters support at T+40, CONNECT after 5s, BLINDTRANSFER at T+75
//	        (hold 5, calltime 30)
//	call G: enters sales at T+50, EXITEMPTY at T+53 (waittime 3)
//	call H: enters support at T+60 and is still waiting at the end
//	members: SIP/100 and SIP/101 added to support, SIP/101 paused;
//	SIP/200 added to sales then removed.
//	bad lines: one with 3 fields, one with a non-numeric epoch, one
//	ABANDON whose waittime is "x"; plus unknown events and a QUEUESTART.
const fixture = `1000|NONE|NONE|NONE|QUEUESTART|
990|NONE|support|SIP/100|ADDMEMBER|
990|NONE|support|SIP/101|ADDMEMBER|
991|NONE|support|SIP/101|PAUSE|lunch
992|NONE|sales|SIP/200|ADDMEMBER|
993|NONE|sales|SIP/200|REMOVEMEMBER|
1000|A|support|NONE|ENTERQUEUE||5550001|1
1005|B|support|NONE|ENTERQUEUE||5550002|2
1010|C|sales|NONE|ENTERQUEUE||5550003|1
1012|A|support|SIP/100|CONNECT|12|A.2|3
1014|C|sales|SIP/300|CONNECT|4|C.2
1020|D|sales|NONE|ENTERQUEUE||5550004|2
1030|E|support|NONE|ENTERQUEUE||5550005|2
1035|B|support|NONE|ABANDON|1|2|30
1040|F|support|NONE|ENTERQUEUE||5550006|1
1045|F|support|SIP/100|CONNECT|5|F.2|2
1045|E|support|SIP/101|RINGNOANSWER|15000
1045|E|support|NONE|EXITWITHKEY|1|1|2|15
1050|G|sales|NONE|ENTERQUEUE||5550007|1
1053|G|sales|NONE|EXITEMPTY|1|1|3
1060|H|support|NONE|ENTERQUEUE||5550008|1
1074|C|sales|SIP/300|COMPLETEAGENT|4|60|1
1075|F|support|SIP/100|BLINDTRANSFER|2001|default|5|30|1
1080|A|support|NONE|SOMEFUTUREEVENT|x
1100|A|support|SIP/100|COMPLETECALLER|12|88|1
1101|X|support
notanumber|Y|support|NONE|ENTERQUEUE||1|1
1102|Z|support|NONE|ABANDON|1|1|x
1320|D|sales|NONE|EXITWITHTIMEOUT|1|2|300
`

func TestQueueLogFixture(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue_log")
	os.WriteFile(path, []byte(qlShift(fixture)), 0o644)
	s := queueLogSource(t, path, "")
	now := atq(1400)
	b, cursor := collectOnce(t, s, nil, now)
	want := []record.Call{
		{ID: "B", Queue: "support", Channel: "phone", EnqueuedAt: atq(1005), EndedAt: atq(1035), Wait: 30 * time.Second, Outcome: record.OutcomeAbandoned},
		{ID: "E", Queue: "support", Channel: "phone", EnqueuedAt: atq(1030), EndedAt: atq(1045), Wait: 15 * time.Second, Outcome: record.OutcomeTimeout},
		{ID: "G", Queue: "sales", Channel: "phone", EnqueuedAt: atq(1050), EndedAt: atq(1053), Wait: 3 * time.Second, Outcome: record.OutcomeTimeout},
		{ID: "C", Queue: "sales", Channel: "phone", Agent: "SIP/300", EnqueuedAt: atq(1010), AnsweredAt: atq(1014), EndedAt: atq(1074), Wait: 4 * time.Second, Talk: 60 * time.Second, Outcome: record.OutcomeAnswered},
		{ID: "F", Queue: "support", Channel: "phone", Agent: "SIP/100", EnqueuedAt: atq(1040), AnsweredAt: atq(1045), EndedAt: atq(1075), Wait: 5 * time.Second, Talk: 30 * time.Second, Outcome: record.OutcomeTransferred},
		{ID: "A", Queue: "support", Channel: "phone", Agent: "SIP/100", EnqueuedAt: atq(1000), AnsweredAt: atq(1012), EndedAt: atq(1100), Wait: 12 * time.Second, Talk: 88 * time.Second, Outcome: record.OutcomeAnswered},
		{ID: "D", Queue: "sales", Channel: "phone", EnqueuedAt: atq(1020), EndedAt: atq(1320), Wait: 300 * time.Second, Outcome: record.OutcomeTimeout},
	}
	if !reflect.DeepEqual(b.Calls, want) {
		t.Errorf("calls:\n got %+v\nwant %+v", b.Calls, want)
	}
	wantRej := []string{"short_line " + path + ":26", "bad_time " + path + ":27", "bad_number " + path + ":28"}
	var gotRej []string
	for _, r := range b.Rejected {
		gotRej = append(gotRej, r.Reason+" "+r.Position)
	}
	if !reflect.DeepEqual(gotRej, wantRej) {
		t.Errorf("rejections = %v, want %v", gotRej, wantRej)
	}
	// Snapshot at T+400: H waits since T+60 -> 340s; support has SIP/100
	// available and SIP/101 paused; sales lost its only member.
	wantSnap := []record.Snapshot{
		{Queue: "sales", At: now, HasWait: true, Agents: map[string]int{"available": 0, "paused": 0}},
		{Queue: "support", At: now, HasWait: true, CallsWaiting: 1, LongestWait: 340 * time.Second, Agents: map[string]int{"available": 1, "paused": 1}},
	}
	if !reflect.DeepEqual(b.Snapshots, wantSnap) {
		t.Errorf("snapshots:\n got %+v\nwant %+v", b.Snapshots, wantSnap)
	}
	// The same cursor again yields the same records (crash safety).
	b2, cursor2 := collectOnce(t, s, nil, now)
	if !reflect.DeepEqual(b2.Calls, b.Calls) || string(cursor2) != string(cursor) {
		t.Error("re-running from the same cursor gave different results")
	}
	// Nothing new: nothing emitted.
	b3, _ := collectOnce(t, s, cursor, now)
	if len(b3.Calls) != 0 || len(b3.Rejected) != 0 {
		t.Errorf("second run re-emitted %d calls", len(b3.Calls))
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

// A call that enters in one run and ends in another is whole; a partial
// last line waits for its newline.
func TestQueueLogCallAcrossRunsAndPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	appendFile(t, path, qlShift("2000|K|support|NONE|ENTERQUEUE||555|1\n2009|K|support|SIP/1|CONNECT|9|K.2|1\n2100|K|support|SIP/1|COMPL"))
	s := queueLogSource(t, path, "")
	b, cur := collectOnce(t, s, nil, atq(2100))
	if len(b.Calls) != 0 {
		t.Fatalf("call emitted before it ended: %+v", b.Calls)
	}
	appendFile(t, path, qlShift("ETECALLER|9|91|1\n"))
	b, _ = collectOnce(t, s, cur, atq(2101))
	want := []record.Call{{ID: "K", Queue: "support", Channel: "phone", Agent: "SIP/1", EnqueuedAt: atq(2000), AnsweredAt: atq(2009), EndedAt: atq(2100), Wait: 9 * time.Second, Talk: 91 * time.Second, Outcome: record.OutcomeAnswered}}
	if !reflect.DeepEqual(b.Calls, want) {
		t.Errorf("got %+v\nwant %+v", b.Calls, want)
	}
}

func TestQueueLogRotationAndTruncation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue_log")
	appendFile(t, path, qlShift("3000|R1|q|NONE|ENTERQUEUE||1|1\n"))
	s := queueLogSource(t, path, "")
	_, cur := collectOnce(t, s, nil, atq(3000))
	// logrotate: the old file is renamed, a new one starts; R1 ends in it.
	os.Rename(path, path+".1")
	appendFile(t, path, qlShift("3030|R1|q|NONE|ABANDON|1|1|30\n"))
	b, cur := collectOnce(t, s, cur, atq(3031))
	if len(b.Calls) != 1 || b.Calls[0].ID != "R1" || b.Calls[0].EnqueuedAt != atq(3000) {
		t.Fatalf("after rotation: %+v", b.Calls)
	}
	// copytruncate: same file emptied in place, then written again.
	os.WriteFile(path, []byte(qlShift("3100|R2|q|NONE|ENTERQUEUE||1|1\n3105|R2|q|NONE|ABANDON|1|1|5\n")), 0o644)
	b, _ = collectOnce(t, s, cur, atq(3106))
	if len(b.Calls) != 1 || b.Calls[0].ID != "R2" {
		t.Fatalf("after truncation: %+v", b.Calls)
	}
}

func TestQueueLogMaxReadBytesContinuesNextRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	var sb strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&sb, "%d|c%d|q|NONE|ENTERQUEUE||1|1\n%d|c%d|q|NONE|ABANDON|1|1|2\n", 4000+i, i, 4002+i, i)
	}
	appendFile(t, path, qlShift(sb.String()))
	s := queueLogSource(t, path, "    max_read_bytes: 500\n")
	var cur []byte
	seen := map[string]int{}
	for run := 0; run < 100; run++ {
		b, next := collectOnce(t, s, cur, atq(5000))
		for _, c := range b.Calls {
			seen[c.ID]++
		}
		cur = next
	}
	if len(seen) != 100 {
		t.Fatalf("saw %d distinct calls, want 100", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("call %s emitted %d times", id, n)
		}
	}
}

func TestQueueLogMissingFileFailsTheRun(t *testing.T) {
	s := queueLogSource(t, filepath.Join(t.TempDir(), "nope"), "")
	if _, err := s.Collect(context.Background(), nil, &collectors.Batch{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("err = %v", err)
	}
}

// BenchmarkQueueLogParse measures queue_log lines read, parsed and turned
// into calls per second, on qlgen's realistic log (8 queues, 60 agents,
// overlapping calls, all outcomes), handed over in chunks as the runner
// takes them. x_splitter is its time over that of qlgen.Split reading the
// same file in the same iteration.
func BenchmarkQueueLogParse(b *testing.B) {
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
	s := queueLogSource(b, path, "")
	var parseT, splitT time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := qlgen.Split(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
		splitT += time.Since(t0)
		t0 = time.Now()
		// In chunks, as the runner takes them; the chunks are dropped.
		calls, rejected := 0, 0
		bt := &collectors.Batch{Now: at(start + int64(cnt.Lines))}
		bt.SetChunks(0, func(_ context.Context, bt *collectors.Batch, _ []byte) error {
			calls, rejected = calls+len(bt.Calls), rejected+len(bt.Rejected)
			return nil
		})
		if _, err := s.Collect(context.Background(), nil, bt); err != nil {
			b.Fatal(err)
		}
		parseT += time.Since(t0)
		calls, rejected = calls+len(bt.Calls), rejected+len(bt.Rejected)
		if calls != cnt.Calls || rejected != 0 {
			b.Fatalf("%d calls, %d rejected; the log has %d calls", calls, rejected, cnt.Calls)
		}
	}
	b.ReportMetric(float64(cnt.Lines)*float64(b.N)/parseT.Seconds(), "lines/s")
	b.ReportMetric(parseT.Seconds()/splitT.Seconds(), "x_splitter")
}

// A line dated in the future (a garbled epoch) is rejected, so it makes no
// call in flight stale; and runs later by the wall clock with no new line
// make none stale either.
func TestQueueLogStalenessFollowsTheLogNotTheClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	appendFile(t, path, qlShift("5000|W|q|NONE|ENTERQUEUE||1|1\n5001|V|q|NONE|ENTERQUEUE||1|2\n5005|V|q|SIP/1|CONNECT|4|V.2|1\n99999999999|J|q|NONE|SOMEFUTUREEVENT|\n"))
	s := queueLogSource(t, path, "")
	b, cur := collectOnce(t, s, nil, atq(6000))
	if len(b.Calls) != 0 || !b.Watermark.Equal(atq(5005)) {
		t.Fatalf("calls %+v, watermark %v; want none and the newest line's 5005", b.Calls, b.Watermark)
	}
	if len(b.Rejected) != 1 || b.Rejected[0].Reason != "bad_time" || b.Rejected[0].Position != path+":4" {
		t.Errorf("rejections %+v, want bad_time at line 4", b.Rejected)
	}
	b, cur = collectOnce(t, s, cur, atq(6000+10*86400))
	if len(b.Calls) != 0 {
		t.Fatalf("the wall clock made calls stale: %+v", b.Calls)
	}
	// The log itself moves on: 91405 is 86405s after W's entry and 86400s
	// after V's CONNECT (not more: V stays); 91406 takes V too.
	appendFile(t, path, qlShift("91405|NONE|NONE|NONE|QUEUESTART|\n"))
	b, cur = collectOnce(t, s, cur, atq(6000+10*86400))
	want := []record.Call{{ID: "W", Queue: "q", Channel: "phone", EnqueuedAt: atq(5000), EndedAt: atq(5000), Outcome: record.OutcomeTimeout}}
	if !reflect.DeepEqual(b.Calls, want) {
		t.Errorf("got %+v\nwant %+v", b.Calls, want)
	}
	appendFile(t, path, qlShift("91406|NONE|NONE|NONE|QUEUESTART|\n"))
	b, _ = collectOnce(t, s, cur, atq(6000+10*86400))
	want = []record.Call{{ID: "V", Queue: "q", Channel: "phone", Agent: "SIP/1", EnqueuedAt: atq(5001), AnsweredAt: atq(5005), EndedAt: atq(5005),
		Wait: 4 * time.Second, Outcome: record.OutcomeAnswered, HandleUnknown: true}}
	if !reflect.DeepEqual(b.Calls, want) {
		t.Errorf("got %+v\nwant %+v", b.Calls, want)
	}
}

func TestQueueLogStaleCallAfter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	appendFile(t, path, qlShift("7000|S|q|NONE|ENTERQUEUE||1|1\n14200|NONE|NONE|NONE|QUEUESTART|\n14201|NONE|NONE|NONE|QUEUESTART|\n"))
	s := queueLogSource(t, path, "    stale_call_after: 2h\n")
	b, _ := collectOnce(t, s, nil, atq(20000))
	if len(b.Calls) != 1 || b.Calls[0].ID != "S" || b.Calls[0].Outcome != record.OutcomeTimeout {
		t.Errorf("after 7201s of log with stale_call_after 2h: %+v", b.Calls)
	}
	head := "collectors:\n  - name: pbx\n    type: asterisk_queue_log\n    schedule: \"@every 10s\"\n    path: /x\n"
	expectConfigError(t, head, "    stale_call_after: 30m\n", "test.yml:6: collectors[0].stale_call_after: must be at least 1h, got 30m")
}

// A cursor written before CONNECT's holdtime was kept: the wait until
// answer is CONNECT − ENTERQUEUE (9s), not the COMPLETE line's 10.
func TestQueueLogOldCursorWithoutHold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue_log")
	appendFile(t, path, qlShift("2100|K|support|SIP/1|COMPLETECALLER|10|91|1\n"))
	s := queueLogSource(t, path, "")
	old := []byte(`{"inode":0,"dev":0,"offset":0,"line":0,"pending":{"K":{"q":"support","e":1700002000,"c":1700002009,"a":"SIP/1"}}}`)
	b, _ := collectOnce(t, s, old, atq(2200))
	want := []record.Call{{ID: "K", Queue: "support", Channel: "phone", Agent: "SIP/1", EnqueuedAt: atq(2000), AnsweredAt: atq(2009), EndedAt: atq(2100), Wait: 9 * time.Second, Talk: 91 * time.Second, Outcome: record.OutcomeAnswered}}
	if !reflect.DeepEqual(b.Calls, want) {
		t.Errorf("got %+v\nwant %+v", b.Calls, want)
	}
}

// Invariants of any input: every complete line is consumed (counted in the
// cursor, each either used, skipped as an unknown event, or rejected), no
// call has a negative wait or talk, and once the log's clock has run
// stale_call_after past them no call dated up to that clock is left in
// flight: each was counted, as ended or stale.
func FuzzQueueLogInvariants(f *testing.F) {
	f.Add([]byte(fixture))
	if tdata, err := os.ReadFile(filepath.Join("testdata", "asterisk_queue_log", "queue_log")); err == nil {
		f.Add(tdata)
	}
	f.Add([]byte("10|a|q|NONE|ENTERQUEUE||1|1\n20|a|q|x|CONNECT|50|a.2|1\n9|b|q|x|CONNECT|0\n"))
	f.Add([]byte("1999999000|a|q|NONE|ENTERQUEUE||1|1\n1999999010|a|q|NONE|ABANDON|1|1|99999999999999999\n" +
		"1999999020|b|q|x|COMPLETECALLER|604800|604800|1\n2000003601|c|q|NONE|ENTERQUEUE||1|1\n946684799|d|q|NONE|ENTERQUEUE||1|1\n" +
		"1999999030|e|q|NONE|EXITWITHKEY|1|1\n1999999040|f|q|x|RINGNOANSWER|604800001\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "queue_log")
		os.WriteFile(path, data, 0o644)
		s := queueLogSource(t, path, "")
		clock := int64(2_000_000_000)
		b, raw := collectOnce(t, s, nil, at(clock))
		checkBounds(t, b)
		// A line is rejected at most once, and every line whose epoch
		// is out of bounds is rejected as bad_time.
		rejected := map[string]string{}
		for _, r := range b.Rejected {
			if prev, dup := rejected[r.Position]; dup {
				t.Fatalf("%s rejected twice: %s and %s", r.Position, prev, r.Reason)
			}
			rejected[r.Position] = r.Reason
		}
		for i, l := range bytes.SplitAfter(data, []byte{'\n'}) {
			fields := bytes.Split(bytes.TrimSuffix(bytes.TrimSuffix(l, []byte{'\n'}), []byte{'\r'}), []byte{'|'})
			if !bytes.HasSuffix(l, []byte{'\n'}) || len(fields) < 5 || len(l) > 1<<20 {
				continue
			}
			if e, ok := atoi(fields[0]); ok && (e < qlMinEpoch || e > clock+3600) {
				if pos := fmt.Sprintf("%s:%d", path, i+1); rejected[pos] != "bad_time" {
					t.Fatalf("line %d with epoch %d out of bounds: %q, want bad_time", i+1, e, rejected[pos])
				}
			}
		}
		cur := qlCursorOf(t, raw)
		end := int64(bytes.LastIndexByte(data, '\n') + 1)
		if cur.Offset != end || cur.Line != int64(bytes.Count(data, []byte{'\n'})) {
			t.Fatalf("cursor at line %d offset %d; the data has %d complete lines ending at %d",
				cur.Line, cur.Offset, bytes.Count(data, []byte{'\n'}), end)
		}
		if cur.Newest > clock {
			t.Fatalf("log clock %d ahead of the run's %d", cur.Newest, clock)
		}
		// Move the log's clock a day past everything it has seen.
		late := clock + int64(qlDefaultStaleAfter/time.Second) + 1
		appendFile(t, path, fmt.Sprintf("\n%d|NONE|NONE|NONE|QUEUESTART|\n", late))
		b2, raw := collectOnce(t, s, raw, at(late))
		checkBounds(t, b2)
		for _, c := range append(b.Calls, b2.Calls...) {
			if c.Wait < 0 || c.Talk < 0 {
				t.Fatalf("negative duration: %+v", c)
			}
		}
		for id, p := range qlCursorOf(t, raw).Pending {
			if p.last() <= clock {
				t.Fatalf("call %s (last line at %d) still in flight at log time %d", id, p.last(), late)
			}
		}
	})
}

// The example of the asterisk_queue_log section of README.md builds, with
// every key the plugin has.
func TestQueueLogReadmeExample(t *testing.T) {
	doc, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "## `asterisk_queue_log`")
	if !ok {
		t.Fatal("README.md has no asterisk_queue_log section")
	}
	_, yml, _ := strings.Cut(sec, "```yaml\n")
	yml, _, _ = strings.Cut(yml, "```")
	for _, key := range []string{"path:", "queues:", "channel:", "max_read_bytes:", "stale_call_after:"} {
		if !strings.Contains(yml, key) {
			t.Errorf("the example does not show %s", key)
		}
	}
	buildSource(t, yml)
}

// TestQueueLogChunked reads a realistic log (calls overlapping, so that
// every chunk ends with calls still in a queue) with rejected lines among
// them, in chunks: the chunks together hold exactly the calls and
// rejections of one unchunked run, the last cursor is the same, and a run
// resumed from any chunk's cursor reads exactly the calls of the chunks
// after it. A run killed after any chunk therefore loses and doubles
// nothing.
func TestQueueLogChunked(t *testing.T) {
	var log bytes.Buffer
	cnt, err := qlgen.Write(&log, qlgen.Options{Lines: 20_000, Start: qlBase, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	// Bad lines among the good ones: rejections count towards a chunk.
	lines := strings.SplitAfter(log.String(), "\n")
	for i := 500; i < len(lines); i += 1500 {
		lines[i] = "garbage|x\n" + lines[i] + fmt.Sprintf("%d|X|q|NONE|ABANDON|1|1|zz\n", qlBase+1)
	}
	path := filepath.Join(t.TempDir(), "queue_log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	s := queueLogSource(t, path, "")
	now := atq(int64(cnt.Lines) * 3)
	whole, wholeCursor := collectOnce(t, s, nil, now)
	if len(whole.Calls) != cnt.Calls {
		t.Fatalf("one run read %d calls, the log has %d", len(whole.Calls), cnt.Calls)
	}
	chunks := collectChunks(t, s, nil, now, 400)
	if len(chunks) < 10 {
		t.Fatalf("only %d chunks", len(chunks))
	}
	all, rej := joined(chunks)
	sameRecords(t, "chunks joined", all, *whole)
	_, wantRej := joined([]chunkOut{{b: *whole}})
	if strings.Join(rej, "\n") != strings.Join(wantRej, "\n") || len(rej) == 0 {
		t.Fatalf("chunks rejected %v, one run %v", rej, wantRej)
	}
	if last := chunks[len(chunks)-1]; !bytes.Equal(last.cursor, wholeCursor) {
		t.Fatalf("final cursor %s, one run's %s", last.cursor, wholeCursor)
	}
	inFlight := 0
	for i := range chunks[:len(chunks)-1] {
		var cur qlCursor
		if err := json.Unmarshal(chunks[i].cursor, &cur); err != nil {
			t.Fatal(err)
		}
		inFlight += len(cur.Pending)
		rest, _ := collectOnce(t, s, chunks[i].cursor, now)
		want, _ := joined(chunks[i+1:])
		sameRecords(t, fmt.Sprintf("resumed after chunk %d", i+1), *rest, want)
	}
	if inFlight == 0 {
		t.Fatal("no chunk ended with a call in a queue: the test proves nothing about the cursor")
	}
}
