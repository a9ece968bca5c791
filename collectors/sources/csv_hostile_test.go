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
)

const ticketsHeader = "Ticket ID,Group,Via,Priority,Status,Created,First reply,Solved,Replies,Reopens,Complaint,Tags\n"

func ticketRow(i int) string {
	return fmt.Sprintf("%d,Support,email,normal,open,2026-11-02 09:00,2026-11-02 09:30,,1,0,false,vip\n", i)
}

func rejectionLines(b *collectors.Batch) []string {
	var out []string
	for _, r := range b.Rejected {
		out = append(out, r.Reason+" "+filepath.Base(r.Position))
	}
	return out
}

// One unterminated quote among 100 rows costs its own line only: the 99
// rows after it are read, and the rejection names the broken line. (The
// CSV reader alone ran the quoted field to the end of the file and lost
// every row after it with a single rejection.)
func TestTicketsFileUnterminatedQuoteCostsOneLine(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(ticketsHeader)
	for i := 1; i <= 100; i++ {
		if i == 14 {
			sb.WriteString(`14,Support,"email,normal,open,2026-11-02 09:00,,,1,0,false,vip` + "\n")
			continue
		}
		sb.WriteString(ticketRow(i))
	}
	path := filepath.Join(t.TempDir(), "tickets.csv")
	os.WriteFile(path, []byte(sb.String()), 0o644)
	b, _ := collectOnce(t, ticketsSource(t, path, ticketsCSVConfig), nil, time.Now())
	if len(b.Tickets) != 99 {
		t.Errorf("%d tickets, want 99", len(b.Tickets))
	}
	if got, want := rejectionLines(b), []string{"bad_row tickets.csv:15"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rejections %q, want %q", got, want)
	}
	if msg := b.Rejected[0].Err.Error(); !strings.Contains(msg, "this line is skipped") {
		t.Errorf("rejection says %q", msg)
	}
}

// A stray quote that a later quote happens to close would make one record
// of everything between them; a record longer than 64 KiB is treated as
// broken instead, and only its first line is lost.
func TestTicketsFileRecordBound(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(ticketsHeader)
	sb.WriteString(`1,Support,"email,normal,open,2026-11-02 09:00,,,1,0,false,vip` + "\n") // line 2
	n := 0
	for sb.Len() < 70<<10 {
		n++
		sb.WriteString(ticketRow(100 + n))
	}
	sb.WriteString("\",\n") // closes line 2's quote, then opens one of its own
	sb.WriteString(ticketRow(99))
	path := filepath.Join(t.TempDir(), "tickets.csv")
	os.WriteFile(path, []byte(sb.String()), 0o644)
	b, _ := collectOnce(t, ticketsSource(t, path, ticketsCSVConfig), nil, time.Now())
	if len(b.Tickets) != n+1 {
		t.Errorf("%d tickets, want %d", len(b.Tickets), n+1)
	}
	want := []string{"bad_row tickets.csv:2", fmt.Sprintf("bad_row tickets.csv:%d", n+3)}
	if got := rejectionLines(b); !reflect.DeepEqual(got, want) {
		t.Errorf("rejections %q, want %q", got, want)
	}
	if msg := b.Rejected[0].Err.Error(); !strings.Contains(msg, "longer than 64 KiB") {
		t.Errorf("rejection says %q", msg)
	}
}

// A legitimately multi-line quoted field within the bound is still one
// record, and the lines of a broken record after its first are read again
// as what they are.
func TestEachCSVRecordAccountsForEveryLine(t *testing.T) {
	data := "a,\"b\nc\",d\nx,\"y\n\nz\"q\nlast,row\n"
	var got []string
	err := eachCSVRecord([]byte(data), ',', 0, func(rec []string, line int) error {
		got = append(got, fmt.Sprintf("%d:%q", line, rec))
		return nil
	}, func(line int, err error) { got = append(got, fmt.Sprintf("%d:rejected", line)) })
	if err != nil {
		t.Fatal(err)
	}
	// Lines 1-2 are one record; line 3 opens a quote that line 5 breaks:
	// line 3 is rejected, line 4 is blank, line 5 (a bare quote) is
	// rejected on its own, line 6 is a record.
	want := []string{`1:["a" "b\nc" "d"]`, `3:rejected`, `5:rejected`, `6:["last" "row"]`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// NaN, Inf and out-of-range numbers are rejected with a reason: NaN
// compares false with every bound and would pass a range check.
func TestHostileNumbersRejected(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "csat.csv")
	os.WriteFile(path, []byte("id,when,score\n1,2026-11-01T10:00:00Z,NaN\n2,2026-11-01T10:00:00Z,Inf\n3,2026-11-01T10:00:00Z,1e400\n4,2026-11-01T10:00:00Z,-nan\n5,2026-11-01T10:00:00Z,4\n"), 0o644)
	s := buildSource(t, "collectors:\n  - name: n\n    type: survey_csv\n    schedule: \"@daily\"\n    path: "+path+"\n    survey: rel\n    kind: csat\n    mapping: {id: id, submitted_at: when, score: score}\n")
	b, _ := collectOnce(t, s, nil, time.Now())
	if len(b.Surveys) != 1 || b.Surveys[0].Score != 4 {
		t.Errorf("responses %+v, want only the score 4", b.Surveys)
	}
	var got []string
	for _, r := range b.Rejected {
		got = append(got, r.Reason+" "+filepath.Base(r.Position)+": "+r.Err.Error())
	}
	want := []string{
		`bad_score csat.csv:2: column "score": "NaN" is not a number`,
		`bad_score csat.csv:3: column "score": "Inf" is not a number`,
		`bad_score csat.csv:4: column "score": "1e400" is not a number`,
		`bad_score csat.csv:5: column "score": "-nan" is not a number`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rejections:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	tpath := filepath.Join(dir, "tickets.csv")
	os.WriteFile(tpath, []byte(ticketsHeader+
		"1,S,e,n,open,2026-11-02 09:00,,,NaN,0,false,\n"+
		"2,S,e,n,open,2026-11-02 09:00,,,1,+Inf,false,\n"+
		"3,S,e,n,open,2026-11-02 09:00,,,1e400,0,false,\n"+
		"4,S,e,n,open,2026-11-02 09:00,,,9e18,0,false,\n"+
		"5,S,e,n,open,2026-11-02 09:00,,,3,0,false,\n"), 0o644)
	tb, _ := collectOnce(t, ticketsSource(t, tpath, ticketsCSVConfig), nil, time.Now())
	if len(tb.Tickets) != 1 || tb.Tickets[0].AgentReplies != 3 {
		t.Errorf("tickets %+v, want only ticket 5", tb.Tickets)
	}
	if got, want := rejectionLines(tb), []string{"bad_number tickets.csv:2", "bad_number tickets.csv:3", "bad_number tickets.csv:4", "bad_number tickets.csv:5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rejections %q, want %q", got, want)
	}
}

// A mapped column the header lacks fails the run with one error naming
// the file, the columns and the header's closest name; it is not accepted
// case-insensitively (see checkHeader), and no row is delivered.
func TestMissingMappedColumnFailsTheRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tickets.csv")
	os.WriteFile(path, []byte(ticketsHeader+ticketRow(1)), 0o644)
	spec := strings.Replace(ticketsCSVConfig, `first_reply_at: "First reply"`, `first_reply_at: "First Reply"`, 1)
	spec = strings.Replace(spec, "tags: Tags", "tags: Labels", 1)
	s := ticketsSource(t, path, spec)
	b, _, err := tryCollect(s, nil, time.Now())
	want := path + `: the header lacks the configured column(s) "First Reply" (first_reply_at), did you mean "First reply"?; "Labels" (tags)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
	if b != nil && len(b.Tickets) != 0 {
		t.Errorf("delivered %d tickets", len(b.Tickets))
	}

	// The same when a run resumes with the header stored in the cursor
	// (the mapping was edited between runs).
	good := ticketsSource(t, path, ticketsCSVConfig)
	_, cur := collectOnce(t, good, nil, time.Now())
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(ticketRow(2))
	f.Close()
	if _, _, err := tryCollect(s, cur, time.Now()); err == nil || !strings.Contains(err.Error(), `"First Reply"`) {
		t.Errorf("resumed run: error %v", err)
	}

	spath := filepath.Join(dir, "nps.csv")
	os.WriteFile(spath, []byte("ResponseId,EndDate,Score\nR1,2026-11-01T10:00:00Z,9\n"), 0o644)
	ss := buildSource(t, "collectors:\n  - name: n\n    type: survey_csv\n    schedule: \"@daily\"\n    path: "+spath+"\n    survey: rel\n    kind: nps\n    mapping: {id: ResponseId, submitted_at: EndDate, score: score, queue: Queue}\n")
	_, _, err = tryCollect(ss, nil, time.Now())
	if want := spath + `: the header lacks the configured column(s) "Queue" (queue); "score" (score), did you mean "Score"?`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("survey error %v, want %q", err, want)
	}
}

// A broken CDR row (a stray quote in a caller name) no longer swallows the
// calls after it.
func TestAsteriskCDRBrokenRowCostsOneLine(t *testing.T) {
	row := func(id int) string {
		return fmt.Sprintf(`"","5551001","600","from-pstn","Doe","SIP/trunk-1","","Queue","support,t","2026-11-02 10:00:00",,"2026-11-02 10:00:30",30,0,"NO ANSWER","DOCUMENTATION","17936100%02d.1",""`+"\n", id)
	}
	var sb strings.Builder
	for i := 1; i <= 20; i++ {
		if i == 3 {
			sb.WriteString(`"","5551001","600","from-pstn","""Doe <5551001>","SIP/trunk-1` + "\n")
			continue
		}
		sb.WriteString(row(i))
	}
	path := filepath.Join(t.TempDir(), "Master.csv")
	os.WriteFile(path, []byte(sb.String()), 0o644)
	b, _ := collectOnce(t, cdrSource(t, path, ""), nil, time.Now())
	if len(b.Calls) != 19 {
		t.Errorf("%d calls, want 19", len(b.Calls))
	}
	if got, want := cdrRejections(b), []string{"bad_row Master.csv:3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rejections %q, want %q", got, want)
	}
}

// servq check reads the header of an export that already exists: the
// misspelt column fails the check at the mapping's line; a file that is
// not there (it lives on the server) passes.
func TestCheckReadsExistingHeaders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tickets.csv")
	os.WriteFile(path, []byte("\ufeff"+ticketsHeader+ticketRow(1)), 0o644)
	spec := strings.Replace(ticketsCSVConfig, `first_reply_at: "First reply"`, `first_reply_at: "First Reply"`, 1)
	head := "collectors:\n  - name: tf\n    type: tickets_file\n    schedule: \"@every 1m\"\n"
	err := collectors.CheckAll(testConfig(t, head+strings.ReplaceAll(spec, "%s", path)), collectors.Env{})
	want := `test.yml:6: collectors[0].mapping: ` + path + `: the header lacks the configured column(s) "First Reply" (first_reply_at), did you mean "First reply"?`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("check: %v\nwant %s", err, want)
	}
	if err := collectors.CheckAll(testConfig(t, head+strings.ReplaceAll(ticketsCSVConfig, "%s", path)), collectors.Env{}); err != nil {
		t.Errorf("the right mapping: %v", err)
	}
	if err := collectors.CheckAll(testConfig(t, head+strings.ReplaceAll(spec, "%s", filepath.Join(dir, "absent-*.csv"))), collectors.Env{}); err != nil {
		t.Errorf("no file yet: %v", err)
	}

	spath := filepath.Join(dir, "nps.csv")
	os.WriteFile(spath, []byte("id,when,Score\n"), 0o644)
	err = collectors.CheckAll(testConfig(t, "collectors:\n  - name: n\n    type: survey_csv\n    schedule: \"@daily\"\n    path: "+spath+"\n    survey: rel\n    kind: nps\n    mapping: {id: id, submitted_at: when, score: score}\n"), collectors.Env{})
	if err == nil || !strings.Contains(err.Error(), `"score" (score), did you mean "Score"?`) {
		t.Errorf("survey check: %v", err)
	}
}
