package sources

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

const ticketsCSVConfig = `    path: %s
    mapping: {id: "Ticket ID", queue: Group, channel: Via, priority: Priority, status: Status,
      created_at: Created, first_reply_at: "First reply", solved_at: Solved, agent_replies: Replies,
      reopens: Reopens, complaint: Complaint, tags: Tags}
    time_format: "2006-01-02 15:04"
    time_zone: Europe/Berlin
    status_map: {closed: solved}
`

func ticketsSource(t testing.TB, path, spec string) collectors.Source {
	return buildSource(t, "collectors:\n  - name: tf\n    type: tickets_file\n    schedule: \"@every 1m\"\n"+strings.ReplaceAll(spec, "%s", path))
}

func berlinTime(s string) time.Time {
	loc, _ := time.LoadLocation("Europe/Berlin")
	t, _ := time.ParseInLocation("2006-01-02 15:04", s, loc)
	return t
}

func TestTicketsFileCSV(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tickets.csv")
	// Line 3 holds a quoted tag list with a comma, line 4-5 a quoted
	// newline; line 6 has a bad time and line 7 a bad number.
	os.WriteFile(path, []byte(`Ticket ID,Group,Via,Priority,Status,Created,First reply,Solved,Replies,Reopens,Complaint,Tags
101,Billing,email,high,closed,2026-11-02 09:00,2026-11-02 09:45,2026-11-02 12:00,1,0,false,vip
102,Support,chat,normal,open,2026-11-02 10:00,,,0,,,"refund,urgent"
103,Support,"web
form",low,pending,2026-11-02 10:30,2026-11-02 11:00,,2,1,true,
104,Support,email,low,open,yesterday,,,0,0,false,
105,Support,email,low,open,2026-11-02 11:00,,,many,0,false,
`), 0o644)
	s := ticketsSource(t, path, ticketsCSVConfig)
	b, cur := collectOnce(t, s, nil, time.Now())
	want := []record.Ticket{
		{ID: "101", Queue: "Billing", Channel: "email", Priority: "high", Status: "solved", Tags: []string{"vip"},
			CreatedAt: berlinTime("2026-11-02 09:00"), FirstReplyAt: berlinTime("2026-11-02 09:45"), SolvedAt: berlinTime("2026-11-02 12:00"), AgentReplies: 1},
		{ID: "102", Queue: "Support", Channel: "chat", Priority: "normal", Status: "open", Tags: []string{"refund", "urgent"},
			CreatedAt: berlinTime("2026-11-02 10:00")},
		{ID: "103", Queue: "Support", Channel: "web\nform", Priority: "low", Status: "pending",
			CreatedAt: berlinTime("2026-11-02 10:30"), FirstReplyAt: berlinTime("2026-11-02 11:00"), AgentReplies: 2, Reopens: 1, Complaint: true},
	}
	if !reflect.DeepEqual(b.Tickets, want) {
		t.Errorf("tickets:\n got %+v\nwant %+v", b.Tickets, want)
	}
	var rej []string
	for _, r := range b.Rejected {
		rej = append(rej, r.Reason+" "+r.Position+" "+r.Err.Error())
	}
	wantRej := []string{
		"bad_time " + path + `:6 column "Created" (created_at): "yesterday" is not a time in format 2006-01-02 15:04`,
		"bad_number " + path + `:7 column "Replies" (agent_replies): "many" is not a number from 0 to 1000000`,
	}
	if !reflect.DeepEqual(rej, wantRej) {
		t.Errorf("rejections:\n got %q\nwant %q", rej, wantRej)
	}

	// The export grows: only the appended row is read, with the header
	// remembered from the first run and the right line number.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("102,Support,chat,normal,solved,2026-11-02 10:00,2026-11-02 10:20,2026-11-02 13:00,1,0,false,\n106,Support,email,low,open,2026-11-0")
	f.Close()
	b2, cur2 := collectOnce(t, s, cur, time.Now())
	if len(b2.Tickets) != 1 || b2.Tickets[0].ID != "102" || b2.Tickets[0].Status != "solved" || len(b2.Rejected) != 0 {
		t.Fatalf("after append: %+v %v", b2.Tickets, b2.Rejected)
	}
	// Same cursor again: same result (crash between fetch and commit).
	b3, cur3 := collectOnce(t, s, cur, time.Now())
	if !reflect.DeepEqual(b2.Tickets, b3.Tickets) || string(cur2) != string(cur3) {
		t.Error("re-run from the same cursor differs")
	}
	// The export is rewritten: everything is read again.
	os.WriteFile(path, []byte("Ticket ID,Group,Via,Priority,Status,Created,First reply,Solved,Replies,Reopens,Complaint,Tags\n201,Sales,phone,high,open,2026-11-03 08:00,,,0,0,false,\n"), 0o644)
	b4, _ := collectOnce(t, s, cur2, time.Now())
	if len(b4.Tickets) != 1 || b4.Tickets[0].ID != "201" {
		t.Fatalf("after rewrite: %+v", b4.Tickets)
	}
}

func TestTicketsFileJSONLinesAndGlob(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b.jsonl"), []byte(`{"id": 2, "created": "2026-11-02T10:00:00Z", "metrics": {"reopens": 3, "biz": 5400}}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.jsonl"), []byte(`{"id": "1", "created": "2026-11-02T09:00:00Z", "group": {"name": "billing"}}`+"\nnot json\n"), 0o644)
	s := ticketsSource(t, filepath.Join(dir, "*.jsonl"), `    path: %s
    mapping: {id: id, created_at: created, queue: group.name, reopens: metrics.reopens, first_reply_business_seconds: metrics.biz}
`)
	b, _ := collectOnce(t, s, nil, time.Now())
	want := []record.Ticket{
		{ID: "1", Queue: "billing", CreatedAt: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)},
		{ID: "2", CreatedAt: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), Reopens: 3, FirstReplyBusiness: 90 * time.Minute},
	}
	if !reflect.DeepEqual(b.Tickets, want) {
		t.Errorf("got %+v\nwant %+v", b.Tickets, want)
	}
	if len(b.Rejected) != 1 || b.Rejected[0].Position != filepath.Join(dir, "a.jsonl")+":2" {
		t.Errorf("rejections = %+v", b.Rejected)
	}
}

func TestTicketsFileConfigErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"    path: x.csv\n    mapping: {id: a}\n":                                 "test.yml:6: collectors[0].mapping: mapping.created_at is required",
		"    path: x.csv\n    mapping: {id: a, created_at: b, foo: c}\n":          `unknown ticket field "foo"`,
		"    path: x.csv\n    format: xml\n    mapping: {id: a, created_at: b}\n": `test.yml:6: collectors[0].format: unknown format "xml" (csv or jsonl)`,
		"    path: x.csv\n    mapping: {id: a, created_at: b}\n    colour: red\n": `test.yml:7: collectors[0].colour: unknown field "colour"`,
	} {
		expectConfigError(t, "collectors:\n  - name: tf\n    type: tickets_file\n    schedule: \"@every 1m\"\n", spec, want)
	}
}

func BenchmarkTicketsFileCSV(b *testing.B) {
	path := filepath.Join(b.TempDir(), "t.csv")
	var sb strings.Builder
	sb.WriteString("Ticket ID,Group,Via,Priority,Status,Created,First reply,Solved,Replies,Reopens,Complaint,Tags\n")
	const rows = 100000
	for i := 0; i < rows; i++ {
		sb.WriteString("1000,Support,email,normal,closed,2026-11-02 09:00,2026-11-02 09:45,2026-11-02 12:00,1,0,false,vip\n")
	}
	os.WriteFile(path, []byte(sb.String()), 0o644)
	s := ticketsSource(b, path, ticketsCSVConfig)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		collectOnce(b, s, nil, time.Now())
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// The completeness watermark of an export is when it was written: the
// newest matching file's modification time, none while the newest content
// ends in an unterminated line (the writer is mid-write).
func TestTicketsFileWatermarkIsTheExportTime(t *testing.T) {
	dir := t.TempDir()
	older, newer := filepath.Join(dir, "tickets-1.jsonl"), filepath.Join(dir, "tickets-2.jsonl")
	line := `{"id":"1","created_at":"2026-11-02T09:00:00Z"}` + "\n"
	os.WriteFile(older, []byte(line), 0o644)
	os.WriteFile(newer, []byte(line), 0o644)
	t1, t2 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 10, 10, 0, 0, time.UTC)
	os.Chtimes(older, t1, t1)
	os.Chtimes(newer, t2, t2)
	s := ticketsSource(t, filepath.Join(dir, "tickets-*.jsonl"), "    path: %s\n    mapping: {id: id, created_at: created_at}\n")
	b, cur := collectOnce(t, s, nil, t2.Add(time.Hour))
	if !b.Watermark.Equal(t2) {
		t.Errorf("watermark = %s, want the newest export's time %s", b.Watermark, t2)
	}
	// The next export is being written: no claim until it is complete.
	os.WriteFile(newer, []byte(line+`{"id":"2","created_at":"2026-1`), 0o644)
	t3 := t2.Add(10 * time.Minute)
	os.Chtimes(newer, t3, t3)
	b, cur = collectOnce(t, s, cur, t3.Add(time.Hour))
	if !b.Watermark.Equal(t1) {
		t.Errorf("watermark mid-write = %s, want the older complete export's %s", b.Watermark, t1)
	}
	os.WriteFile(newer, []byte(line+`{"id":"2","created_at":"2026-11-02T10:15:00Z"}`+"\n"), 0o644)
	t4 := t3.Add(time.Minute)
	os.Chtimes(newer, t4, t4)
	b, _ = collectOnce(t, s, cur, t4.Add(time.Hour))
	if !b.Watermark.Equal(t4) || len(b.Tickets) != 1 || b.Tickets[0].ID != "2" {
		t.Errorf("complete export: watermark %s (want %s), tickets %+v", b.Watermark, t4, b.Tickets)
	}
}

// The satisfaction column reaches the model normalized (good, bad, a
// score); a value that is none of the known words nor a number is rejected
// instead of silently counting as no response.
func TestTicketsFileSatisfaction(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tickets.csv")
	os.WriteFile(path, []byte(`id,created,rating
1,2026-11-02 09:00,Good
2,2026-11-02 09:00,bad
3,2026-11-02 09:00,4
4,2026-11-02 09:00,Offered
5,2026-11-02 09:00,
6,2026-11-02 09:00,great
7,2026-11-02 09:00,NaN
`), 0o644)
	s := ticketsSource(t, path, `    path: %s
    mapping: {id: id, created_at: created, satisfaction: rating}
    time_format: "2006-01-02 15:04"
`)
	b, _ := collectOnce(t, s, nil, time.Now())
	var got []string
	for _, tk := range b.Tickets {
		got = append(got, tk.ID+"="+tk.Satisfaction)
	}
	if want := []string{"1=good", "2=bad", "3=4", "4=offered", "5="}; !reflect.DeepEqual(got, want) {
		t.Errorf("tickets %q, want %q", got, want)
	}
	var rej []string
	for _, r := range b.Rejected {
		rej = append(rej, r.Reason+" "+r.Position)
	}
	if want := []string{"bad_value " + path + ":7", "bad_value " + path + ":8"}; !reflect.DeepEqual(rej, want) {
		t.Errorf("rejections %q, want %q", rej, want)
	}
}
