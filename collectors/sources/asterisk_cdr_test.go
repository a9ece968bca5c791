package sources

import (
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

func cdrSource(t testing.TB, path, extra string) collectors.Source {
	return buildSource(t, fmt.Sprintf("collectors:\n  - name: cdr\n    type: asterisk_cdr\n    schedule: \"@every 1m\"\n    path: %s\n    time_zone: Europe/Berlin\n%s", path, extra))
}

// berlin reads a cdr_csv time written in Europe/Berlin (CET, UTC+1 in
// November).
func berlin(s string) time.Time {
	loc, _ := time.LoadLocation("Europe/Berlin")
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
	if err != nil {
		panic(err)
	}
	return t
}

func cdrRejections(b *collectors.Batch) []string {
	var out []string
	for _, r := range b.Rejected {
		out = append(out, r.Reason+" "+filepath.Base(r.Position))
	}
	return out
}

// testdata/asterisk_cdr/Master.csv follows cdr_csv's record layout
// (Asterisk cdr_csv.c build_csv_record and the cdr.conf [csv] options): no
// header; accountcode, src, dst, dcontext, clid, channel, dstchannel,
// lastapp, lastdata, start, answer, end, duration, billsec, disposition,
// amaflags, then uniqueid (loguniqueid=yes) and userfield (loguserfield=yes);
// strings quoted with "" for a quote, numbers bare, an unset answer time
// empty. Rows, line by line:
//
//  1. support, answered by SIP/100: duration 100, billsec 88 -> wait 12, talk 88
//  2. support, NO ANSWER after 30 s -> abandoned, wait 30
//  3. an outbound Dial: not a queue call, skipped silently
//  4. sales, ANSWERED by the dialplan only (no dstchannel), 45 s -> abandoned
//  5. sales, BUSY after 3 s -> timeout
//  6. start "yesterday" -> bad_time
//  7. 9 columns -> bad_columns
//  8. duration "x" -> bad_number
//  9. a bare quote inside a field -> bad_row
//  10. Queue without a queue name -> missing_field
//  11. support, answered by SIP/101 (userfield with a comma): wait 4, talk 120
func TestAsteriskCDRFixture(t *testing.T) {
	path := "testdata/asterisk_cdr/Master.csv"
	s := cdrSource(t, path, "")
	b, cursor := collectOnce(t, s, nil, time.Now())
	want := []record.Call{
		{ID: "1793610000.1", Queue: "support", Channel: "phone", Agent: "SIP/100-00000002",
			EnqueuedAt: berlin("2026-11-02 10:00:00"), AnsweredAt: berlin("2026-11-02 10:00:12"), EndedAt: berlin("2026-11-02 10:01:40"),
			Wait: 12 * time.Second, Talk: 88 * time.Second, Outcome: record.OutcomeAnswered},
		{ID: "1793610005.3", Queue: "support", Channel: "phone",
			EnqueuedAt: berlin("2026-11-02 10:00:05"), EndedAt: berlin("2026-11-02 10:00:35"), Wait: 30 * time.Second, Outcome: record.OutcomeAbandoned},
		{ID: "1793610060.6", Queue: "sales", Channel: "phone",
			EnqueuedAt: berlin("2026-11-02 10:01:00"), EndedAt: berlin("2026-11-02 10:01:45"), Wait: 45 * time.Second, Outcome: record.OutcomeAbandoned},
		{ID: "1793610120.7", Queue: "sales", Channel: "phone",
			EnqueuedAt: berlin("2026-11-02 10:02:00"), EndedAt: berlin("2026-11-02 10:02:03"), Wait: 3 * time.Second, Outcome: record.OutcomeTimeout},
		{ID: "1793610420.13", Queue: "support", Channel: "phone", Agent: "SIP/101-00000014",
			EnqueuedAt: berlin("2026-11-02 10:07:00"), AnsweredAt: berlin("2026-11-02 10:07:04"), EndedAt: berlin("2026-11-02 10:09:04"),
			Wait: 4 * time.Second, Talk: 120 * time.Second, Outcome: record.OutcomeAnswered},
	}
	if !reflect.DeepEqual(b.Calls, want) {
		t.Errorf("calls:\n got %+v\nwant %+v", b.Calls, want)
	}
	if got := b.Calls[0].EnqueuedAt.UTC(); got != time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC) {
		t.Errorf("10:00 in Berlin is %v, want 09:00 UTC", got)
	}
	wantRej := []string{"bad_time Master.csv:6", "bad_columns Master.csv:7", "bad_number Master.csv:8", "bad_row Master.csv:9", "missing_field Master.csv:10"}
	if got := cdrRejections(b); !reflect.DeepEqual(got, wantRej) {
		t.Errorf("rejections = %v, want %v", got, wantRej)
	}
	// Nothing new: nothing read again.
	if b2, _ := collectOnce(t, s, cursor, time.Now()); len(b2.Calls)+len(b2.Rejected) != 0 {
		t.Errorf("second run re-read %d calls, %d rejections", len(b2.Calls), len(b2.Rejected))
	}
}

// Without loguniqueid (16 columns) the ID is a hash of the row, stable
// across reads; `queues` selects by dcontext or dst, which also catches the
// voicemail a queue timed out to.
func TestAsteriskCDRQueuesMapAndNoUniqueID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Master.csv")
	rows := `"","5552001","700","queue-billing","5552001","SIP/trunk-1","SIP/300-2","Queue","billing","2026-11-02 11:00:00","2026-11-02 11:00:20","2026-11-02 11:05:20",320,300,"ANSWERED","DOCUMENTATION"
"","5552002","700","queue-billing","5552002","SIP/trunk-3","","VoiceMail","800@default","2026-11-02 11:01:00","2026-11-02 11:03:00","2026-11-02 11:03:40",160,40,"ANSWERED","DOCUMENTATION"
"","5552003","701","from-pstn","5552003","SIP/trunk-4","","Queue","support","2026-11-02 11:02:00",,"2026-11-02 11:02:10",10,0,"FAILED","DOCUMENTATION"
"","5552004","999","from-pstn","5552004","SIP/trunk-5","","Queue","other","2026-11-02 11:02:00",,"2026-11-02 11:02:10",10,0,"NO ANSWER","DOCUMENTATION"
`
	os.WriteFile(path, []byte(rows), 0o644)
	s := cdrSource(t, path, "    queues: {queue-billing: Billing, \"701\": Support}\n    channel: voice\n")
	b, _ := collectOnce(t, s, nil, time.Now())
	if len(b.Calls) != 3 || len(b.Rejected) != 0 {
		t.Fatalf("calls %+v rejected %v", b.Calls, cdrRejections(b))
	}
	// 1: by dcontext, answered: wait 320-300 = 20. 2: voicemail after 160 s.
	// 3: by dst 701, FAILED -> timeout. 4: dcontext and dst unmapped.
	got := fmt.Sprintf("%s %s %v %v | %s %s %v | %s %s %v", b.Calls[0].Queue, b.Calls[0].Outcome, b.Calls[0].Wait, b.Calls[0].Talk,
		b.Calls[1].Queue, b.Calls[1].Outcome, b.Calls[1].Wait, b.Calls[2].Queue, b.Calls[2].Outcome, b.Calls[2].Wait)
	if want := "Billing answered 20s 5m0s | Billing voicemail 2m40s | Support timeout 10s"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if b.Calls[0].Channel != "voice" || !strings.HasPrefix(b.Calls[0].ID, "cdr-") || b.Calls[0].ID == b.Calls[1].ID {
		t.Errorf("channel %q, IDs %q %q", b.Calls[0].Channel, b.Calls[0].ID, b.Calls[1].ID)
	}
	again, _ := collectOnce(t, s, nil, time.Now())
	if again.Calls[0].ID != b.Calls[0].ID {
		t.Error("a re-read row got another ID")
	}
}

// All optional columns (uniqueid, userfield, peeraccount, linkedid,
// sequence) are detected; a configured layout rejects rows that differ.
func TestAsteriskCDROptionalColumns(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Master.csv")
	row21 := `"","5553001","600","from-pstn","5553001","SIP/trunk-1","SIP/100-2","Queue","support","2026-11-02 12:00:00","2026-11-02 12:00:07","2026-11-02 12:01:07",67,60,"ANSWERED","DOCUMENTATION","pbx1-1793617200.21","","","1793617200.21",3` + "\n"
	row17 := `"","5553002","600","from-pstn","5553002","SIP/trunk-3","","Queue","support","2026-11-02 12:02:00",,"2026-11-02 12:02:04",4,0,"NO ANSWER","DOCUMENTATION","just a user field"` + "\n"
	os.WriteFile(path, []byte(row21+row17), 0o644)
	b, _ := collectOnce(t, cdrSource(t, path, ""), nil, time.Now())
	if len(b.Calls) != 2 || b.Calls[0].ID != "pbx1-1793617200.21" || b.Calls[0].Wait != 7*time.Second || !strings.HasPrefix(b.Calls[1].ID, "cdr-") {
		t.Errorf("calls %+v, rejected %v", b.Calls, cdrRejections(b))
	}
	// loguniqueid + newcdrcolumns = 20 columns: both rows are rejected.
	b, _ = collectOnce(t, cdrSource(t, path, "    loguniqueid: true\n    newcdrcolumns: true\n"), nil, time.Now())
	want := []string{"bad_columns Master.csv:1", "bad_columns Master.csv:2"}
	if got := cdrRejections(b); len(b.Calls) != 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("rejections %v, want %v", got, want)
	}
	if !strings.Contains(b.Rejected[0].Err.Error(), "21 columns, the configured loguniqueid/loguserfield/newcdrcolumns give 20") {
		t.Errorf("error %v", b.Rejected[0].Err)
	}
}

func cdrRow(id string, minute int) string {
	return fmt.Sprintf(`"","555","600","from-pstn","555","SIP/t","","Queue","support","2026-11-02 13:%02d:00",,"2026-11-02 13:%02d:09",9,0,"NO ANSWER","DOCUMENTATION","%s",""`+"\n", minute, minute, id)
}

func cdrIDs(b *collectors.Batch) string {
	var ids []string
	for _, c := range b.Calls {
		ids = append(ids, c.ID)
	}
	return strings.Join(ids, ",")
}

// A partial last line waits; logrotate (rename + new file) and
// copytruncate are read from the start of the new content.
func TestAsteriskCDRPartialLineAndRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Master.csv")
	s := cdrSource(t, path, "")
	full := cdrRow("1793620000.1", 0) + cdrRow("1793620060.2", 1)
	os.WriteFile(path, []byte(full+cdrRow("1793620120.3", 2)[:40]), 0o644)
	b, cur := collectOnce(t, s, nil, time.Now())
	if got := cdrIDs(b); got != "1793620000.1,1793620060.2" {
		t.Errorf("first run: %s", got)
	}
	appendFile(t, path, cdrRow("1793620120.3", 2)[40:])
	b, cur = collectOnce(t, s, cur, time.Now())
	if got := cdrIDs(b); got != "1793620120.3" {
		t.Errorf("completed line: %s", got)
	}
	// logrotate: Master.csv becomes Master.csv.1, Asterisk starts a new one.
	os.Rename(path, path+".1")
	os.WriteFile(path, []byte(cdrRow("1793620180.4", 3)+cdrRow("1793620240.5", 4)+cdrRow("1793620300.6", 5)+cdrRow("1793620360.7", 6)), 0o644)
	b, cur = collectOnce(t, s, cur, time.Now())
	if got := cdrIDs(b); got != "1793620180.4,1793620240.5,1793620300.6,1793620360.7" {
		t.Errorf("after logrotate: %s", got)
	}
	// copytruncate: the same file, emptied and written again (shorter).
	os.WriteFile(path, []byte(cdrRow("1793620420.8", 7)), 0o644)
	b, cur = collectOnce(t, s, cur, time.Now())
	if got := cdrIDs(b); got != "1793620420.8" {
		t.Errorf("after copytruncate: %s", got)
	}
	// Line numbers continue across runs: a bad row appended is located.
	appendFile(t, path, `"","555","600","x","555","SIP/t","","Queue","support","2026-11-02 13:08:00",,"2026-11-02 13:08:09",9,0,"HUNG UP","DOCUMENTATION","1793620480.9",""`+"\n")
	b, _ = collectOnce(t, s, cur, time.Now())
	if got := cdrRejections(b); !reflect.DeepEqual(got, []string{"bad_value Master.csv:2"}) {
		t.Errorf("rejections %v, want the unknown disposition at line 2", got)
	}
}

func TestAsteriskCDRGlobSkipsCompressedRotations(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Master.csv"), []byte(cdrRow("1793620000.1", 0)), 0o644)
	os.WriteFile(filepath.Join(dir, "Master.csv.1"), []byte(cdrRow("1793619000.1", 0)), 0o644)
	os.WriteFile(filepath.Join(dir, "Master.csv.2.gz"), []byte("\x1f\x8b\x08 not csv\n"), 0o644)
	b, _ := collectOnce(t, cdrSource(t, filepath.Join(dir, "Master.csv*"), ""), nil, time.Now())
	if got := cdrIDs(b); got != "1793620000.1,1793619000.1" || len(b.Rejected) != 0 {
		t.Errorf("calls %s, rejected %v", got, cdrRejections(b))
	}
}

func TestAsteriskCDRConfigErrorsAndMissingFile(t *testing.T) {
	head := "collectors:\n  - name: cdr\n    type: asterisk_cdr\n    schedule: \"@every 1m\"\n"
	for spec, want := range map[string]string{
		"": "test.yml:2: collectors[0].path: is required",
		"    path: x\n    time_zone: Mars/Base\n": `test.yml:6: collectors[0].time_zone: unknown time zone "Mars/Base"`,
		"    path: x\n    queues: {a: \"\"}\n":    "test.yml:6: collectors[0].queues: maps a dcontext or dst to a queue name",
		"    path: x\n    loguniqeid: true\n":     "loguniqeid",
	} {
		expectConfigError(t, head, spec, want)
	}
	s := cdrSource(t, filepath.Join(t.TempDir(), "Master.csv"), "")
	if _, err := s.Collect(t.Context(), nil, &collectors.Batch{Now: time.Now()}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: err = %v, want the run to fail", err)
	}
}
