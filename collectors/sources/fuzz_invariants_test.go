package sources

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// Invariants every source's output keeps whatever its input: the fuzz
// targets check them on each batch, so a parser that accepts garbage as a
// record fails as surely as one that panics. Seeds run as unit tests.

// fuzzNow is the run time of the fuzz targets (after every fixture).
var fuzzNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// finite reports whether v is a number (not NaN, not ±Inf).
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// checkBatch fails t when a record of b breaks an invariant; scales are
// the answer scales of the collector (its defaults unless configured).
// Durations are held to record's bounds; times only to being set where
// required (the quality model screens their range, record.CheckTime).
func checkBatch(t *testing.T, b *collectors.Batch, scales map[record.SurveyKind][2]float64) {
	t.Helper()
	for _, tk := range b.Tickets {
		switch {
		case tk.ID == "":
			t.Errorf("ticket without id: %+v", tk)
		case tk.CreatedAt.IsZero():
			t.Errorf("ticket %s without created time", tk.ID)
		case tk.Reopens < 0 || tk.AgentReplies < 0:
			t.Errorf("ticket %s: negative count (reopens %d, replies %d)", tk.ID, tk.Reopens, tk.AgentReplies)
		case record.CheckDuration(tk.FirstReplyBusiness, record.MaxTicketDuration) != nil || record.CheckDuration(tk.ResolutionBusiness, record.MaxTicketDuration) != nil:
			t.Errorf("ticket %s: business time out of bounds (%s, %s)", tk.ID, tk.FirstReplyBusiness, tk.ResolutionBusiness)
		}
	}
	for _, c := range b.Calls {
		switch {
		case c.ID == "" || c.Queue == "":
			t.Errorf("call without id or queue: %+v", c)
		case record.CheckDuration(c.Wait, record.MaxCallDuration) != nil || record.CheckDuration(c.Talk, record.MaxCallDuration) != nil ||
			record.CheckDuration(c.Hold, record.MaxCallDuration) != nil || record.CheckDuration(c.Wrap, record.MaxCallDuration) != nil:
			t.Errorf("call %s: duration out of bounds (wait %s, talk %s, hold %s, wrap %s)", c.ID, c.Wait, c.Talk, c.Hold, c.Wrap)
		case c.EnqueuedAt.IsZero() && c.EndedAt.IsZero():
			t.Errorf("call %s without any time", c.ID)
		case !c.Outcome.Answered() && !c.AnsweredAt.IsZero():
			t.Errorf("call %s: outcome %s with an answer time", c.ID, c.Outcome)
		}
		switch c.Outcome {
		case record.OutcomeAnswered, record.OutcomeAbandoned, record.OutcomeTimeout, record.OutcomeTransferred, record.OutcomeVoicemail:
		default:
			t.Errorf("call %s: unknown outcome %q", c.ID, c.Outcome)
		}
	}
	for _, r := range b.Surveys {
		if r.ID == "" || r.SubmittedAt.IsZero() {
			t.Errorf("response without id or time: %+v", r)
		}
		sc, ok := scales[r.Kind]
		if !ok {
			t.Errorf("response %s: unknown kind %q", r.ID, r.Kind)
			continue
		}
		if r.HasScore && !(finite(r.Score) && r.Score >= sc[0] && r.Score <= sc[1]) {
			t.Errorf("response %s: %s score %v outside %v", r.ID, r.Kind, r.Score, sc)
		}
		for _, it := range r.Servqual {
			for _, v := range []struct {
				has bool
				v   float64
			}{{it.HasE, it.Expectation}, {it.HasP, it.Perception}} {
				if v.has && !(finite(v.v) && v.v >= 1 && v.v <= 7) {
					t.Errorf("response %s: SERVQUAL answer %v outside 1-7", r.ID, v.v)
				}
			}
			if it.Dimension == "" {
				t.Errorf("response %s: item without dimension", r.ID)
			}
		}
		for dim, w := range r.Weights {
			if !(finite(w) && w >= 0 && w <= 100) {
				t.Errorf("response %s: weight %s = %v", r.ID, dim, w)
			}
		}
	}
	for _, s := range b.Snapshots {
		if s.CallsWaiting < -1 || s.LongestWait < 0 {
			t.Errorf("snapshot %s: waiting %d, longest %s", s.Queue, s.CallsWaiting, s.LongestWait)
		}
		for _, m := range []map[string]int{s.Agents, s.OpenTickets} {
			for k, n := range m {
				if n < 0 {
					t.Errorf("snapshot %s: %s = %d", s.Queue, k, n)
				}
			}
		}
	}
	for _, r := range b.Rejected {
		if r.Reason == "" || r.Position == "" || r.Err == nil {
			t.Errorf("rejection without reason, position or error: %+v", r)
		}
	}
}

// csvLines is what eachCSVRecord makes of data, for the accounting
// invariants: the records it hands over and the lines it rejects.
func csvRecords(data []byte, delim, comment rune) (records, rejected int) {
	eachCSVRecord(data, delim, comment, func([]string, int) error { records++; return nil }, func(int, error) { rejected++ })
	return records, rejected
}

// Every line of a CSV file is blank, a comment, part of exactly one record
// handed over, or rejected on its own: nothing is lost unaccounted.
func FuzzCSVRecords(f *testing.F) {
	f.Add([]byte("a,\"b\nc\",d\nx,\"y\n\nz\"q\nlast,row\n"), false)
	f.Add([]byte("\"unterminated\n1,2\n\r\n# c\n\"\"\"x\",\"\"\n"), true)
	f.Add([]byte(ticketsHeader+ticketRow(1)+`2,"x`+"\n"+ticketRow(3)), false)
	f.Fuzz(func(t *testing.T, data []byte, comments bool) {
		var comment rune
		if comments {
			comment = '#'
		}
		lines := bytes.SplitAfter(data, []byte("\n"))
		if len(lines[len(lines)-1]) == 0 {
			lines = lines[:len(lines)-1]
		}
		covered := make([]int, len(lines)+2) // by line number, 1-based
		last := 0
		err := eachCSVRecord(data, ',', comment, func(rec []string, line int) error {
			span := 1
			for _, f := range rec {
				span += strings.Count(f, "\n")
			}
			if line <= last {
				t.Fatalf("record at line %d after line %d", line, last)
			}
			for l := line; l < line+span; l++ {
				if l > len(lines) {
					t.Fatalf("record at line %d spans %d lines, the data has %d", line, span, len(lines))
				}
				covered[l]++
			}
			last = line + span - 1
			return nil
		}, func(line int, err error) {
			if line <= last || line > len(lines) {
				t.Fatalf("rejected line %d after line %d (of %d)", line, last, len(lines))
			}
			covered[line]++
			last = line
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range lines {
			blank := len(bytes.TrimRight(l, "\r\n")) == 0 || bytes.Equal(l, []byte("\r")) ||
				(comment != 0 && bytes.HasPrefix(l, []byte(string(comment))))
			if covered[i+1] != 1 && !(blank && covered[i+1] == 0) {
				t.Errorf("line %d %q accounted for %d times", i+1, l, covered[i+1])
			}
		}
	})
}

// writeFuzzFile writes data to name in a fresh directory.
func writeFuzzFile(t *testing.T, name string, data []byte) string {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// headerError is the one error a file source may fail a run with on any
// input: a header that lacks a configured column.
func headerError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "the header lacks")
}

func FuzzTicketsFile(f *testing.F) {
	f.Add([]byte(ticketsHeader+"1,a,b,c,open,2026-11-02 09:00,,,1,0,false,x\n"), false)
	f.Add([]byte(ticketsHeader+"1,a,b,c,open,2026-11-02 09:00,,,NaN,1e400,false,x\n2,\"a\n"+ticketRow(3)), false)
	f.Add([]byte("{\"id\": 1, \"created\": \"2026-11-02T09:00:00Z\"}\n{]\n"), true)
	f.Add([]byte("\"unterminated\n,,,\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, jsonl bool) {
		name, spec := "t.csv", ticketsCSVConfig
		if jsonl {
			name, spec = "t.jsonl", "    path: %s\n    mapping: {id: id, created_at: created, queue: a.b, reopens: n, first_reply_business_seconds: s}\n    time_format: unix\n"
		}
		path := writeFuzzFile(t, name, data)
		s := ticketsSource(t, path, spec)
		b, _, err := tryCollect(s, nil, fuzzNow)
		if headerError(err) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkBatch(t, b, surveyScales)
		// Every row (every non-blank line of JSON Lines) is a ticket or a
		// rejection, exactly one of them.
		whole := data[:bytes.LastIndexByte(data, '\n')+1]
		want := 0
		if jsonl {
			for _, l := range bytes.Split(whole, []byte("\n")) {
				if len(bytes.TrimSpace(l)) > 0 {
					want++
				}
			}
		} else {
			records, rejected := csvRecords(whole, ',', 0)
			want = max(records-1, 0) + rejected
		}
		if len(b.Tickets)+len(b.Rejected) != want {
			t.Errorf("%d tickets + %d rejections, want %d", len(b.Tickets), len(b.Rejected), want)
		}
	})
}

func FuzzSurveyCSV(f *testing.F) {
	qualtrics, _ := os.ReadFile("testdata/survey_csv/qualtrics_servqual.csv")
	f.Add(qualtrics, true)
	f.Add([]byte("id,when,score,queue\n1,2026-11-01T10:00:00Z,10,a\n2,2026-11-01T11:00:00Z,11,a\n3,2026-11-01T12:00:00Z,,a\n4,noon,7,a\n"), false)
	f.Add([]byte("id,when,score,queue\n1,2026-11-01T10:00:00Z,NaN,a\n2,2026-11-01T10:00:00Z,\"9\n3,2026-11-01T10:00:00Z,1e400,\n"), false)
	var e, p []string
	for i := 1; i <= 22; i++ {
		e, p = append(e, fmt.Sprint("E", i)), append(p, fmt.Sprint("P", i))
	}
	servqual := `    kind: servqual
    header_rows: 3
    time_format: "2006-01-02 15:04:05"
    mapping: {id: ResponseId, submitted_at: EndDate}
    expectation_columns: [` + strings.Join(e, ", ") + `]
    perception_columns: [` + strings.Join(p, ", ") + `]
    weight_columns: {tangibles: W_tan, reliability: W_rel, responsiveness: W_res, assurance: W_ass, empathy: W_emp}
`
	nps := "    kind: nps\n    mapping: {id: id, submitted_at: when, score: score, queue: queue}\n"
	f.Fuzz(func(t *testing.T, data []byte, sq bool) {
		path := writeFuzzFile(t, "s.csv", data)
		spec, headerRows := nps, 1
		if sq {
			spec, headerRows = servqual, 3
		}
		s := buildSource(t, "collectors:\n  - name: s\n    type: survey_csv\n    schedule: \"@daily\"\n    path: "+path+"\n    survey: x\n"+spec)
		b, _, err := tryCollect(s, nil, fuzzNow)
		if headerError(err) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkBatch(t, b, surveyScales)
		// Every data row is a response or a rejection.
		whole := data[:bytes.LastIndexByte(data, '\n')+1]
		records, rejected := csvRecords(whole, ',', 0)
		if want := max(records-headerRows, 0) + rejected; len(b.Surveys)+len(b.Rejected) != want {
			t.Errorf("%d responses + %d rejections, want %d (%d records after %d header rows, %d broken lines)",
				len(b.Surveys), len(b.Rejected), want, records, headerRows, rejected)
		}
	})
}

func FuzzAsteriskCDR(f *testing.F) {
	master, _ := os.ReadFile("testdata/asterisk_cdr/Master.csv")
	f.Add(master)
	f.Add([]byte(`"","1","600","from-pstn","x","SIP/t-1","SIP/100-1","Queue","support","2026-11-02 10:00:00","2026-11-02 10:00:12","2026-11-02 10:01:40",9223372036854775807,-1,"ANSWERED","DOCUMENTATION"` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeFuzzFile(t, "Master.csv", data)
		s := cdrSource(t, path, "")
		b, cur, err := tryCollect(s, nil, fuzzNow)
		if err != nil {
			t.Fatal(err)
		}
		checkBatch(t, b, surveyScales)
		checkBounds(t, b)
		// A row yields a call, a rejection or nothing (another call than
		// a queue's), never more than one.
		whole := data[:bytes.LastIndexByte(data, '\n')+1]
		if records, rejected := csvRecords(whole, ',', 0); len(b.Calls)+len(b.Rejected) > records+rejected {
			t.Errorf("%d calls + %d rejections from %d records and %d broken lines", len(b.Calls), len(b.Rejected), records, rejected)
		}
		b2, _, err := tryCollect(s, cur, fuzzNow)
		if err != nil || len(b2.Calls)+len(b2.Rejected) != 0 {
			t.Errorf("second run: %d calls, %d rejections, %v", len(b2.Calls), len(b2.Rejected), err)
		}
	})
}

// fuzzAPI is a vendor API answering from the input under test. The input
// is split into parts at fuzzPartSep; a request whose path contains the
// i-th of the target's routes gets part i (the last part when there are
// fewer), so that one input drives every endpoint a source reads (pages,
// per-ticket details, statistics) and each of its decoders.
type fuzzAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	parts  [][]byte
	routes []string
}

const fuzzPartSep = "\n--\n"

func newFuzzAPI(f *testing.F, routes ...string) *fuzzAPI {
	a := &fuzzAPI{routes: routes}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		parts := a.parts
		a.mu.Unlock()
		i := len(parts) - 1
		for j, route := range a.routes {
			if strings.Contains(r.URL.Path, route) {
				i = min(j, i)
				break
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(parts[i])
	}))
	f.Cleanup(a.srv.Close)
	return a
}

// run builds the source from yml (BASE is the API's address, with a small
// request budget so that a page pointing at itself ends), runs it once
// against input and checks the invariants of what it delivered. A run may
// fail on a hostile input; then it delivers nothing.
func (a *fuzzAPI) run(t *testing.T, yml string, input []byte, client func(collectors.Source) *apiClient) *collectors.Batch {
	a.mu.Lock()
	a.parts = bytes.Split(input, []byte(fuzzPartSep))
	a.mu.Unlock()
	s := buildSource(t, strings.ReplaceAll(yml, "BASE", a.srv.URL)+"    max_requests_per_run: 8\n    retries: 0\n")
	recordWaits(client(s))
	b, _, err := tryCollect(s, nil, fuzzNow)
	if err != nil {
		return nil
	}
	checkBatch(t, b, surveyScales)
	return b
}

// jsonSeed is the JSON of a fixture file, or of the value at key in it.
func jsonSeed(f *testing.F, file string, keys ...string) string {
	raw, err := os.ReadFile(file)
	if err != nil {
		f.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		f.Fatal(err)
	}
	for _, k := range keys {
		v = v.(map[string]any)[k]
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// seeds adds each input (its parts joined with fuzzPartSep).
func seeds(f *testing.F, inputs ...[]string) {
	for _, parts := range inputs {
		f.Add([]byte(strings.Join(parts, fuzzPartSep)))
	}
	f.Add([]byte(`{}`))
}

func FuzzZendeskPage(f *testing.F) {
	api := newFuzzAPI(f, "/incremental/tickets", "/ticket_metric_events")
	groups := jsonSeed(f, "testdata/zendesk/tickets.json", "groups")
	page := func(run string) string {
		return `{"tickets": ` + jsonSeed(f, "testdata/zendesk/tickets.json", run) + `, "groups": ` + groups + `, "after_cursor": "c", "end_of_stream": true}`
	}
	events := func(run string) string {
		return `{"ticket_metric_events": ` + jsonSeed(f, "testdata/zendesk/ticket_metric_events.json", run) + `, "end_time": 1795000000, "count": 9}`
	}
	seeds(f, []string{page("run1"), events("run1")}, []string{page("run2"), events("run2")},
		[]string{`{"tickets": [{"id": 1, "created_at": "2026-11-02T09:00:00Z", "updated_at": "2026-11-02T09:00:00Z", "generated_timestamp": 1793610000, "metric_set": {"reopens": -1, "replies": -2, "reply_time_in_minutes": {"calendar": -5, "business": 1e300}}}], "end_of_stream": true}`})
	f.Fuzz(func(t *testing.T, input []byte) {
		api.run(t, strings.Replace(zdConfig("BASE", ""), "    retries: 2\n", "", 1), input, func(s collectors.Source) *apiClient { return s.(*zendesk).client })
	})
}

func FuzzFreshdeskPage(f *testing.F) {
	api := newFuzzAPI(f)
	seeds(f, []string{jsonSeed(f, "testdata/freshdesk/tickets.json", "tickets")},
		[]string{`[{"id": 1, "created_at": "2026-11-02T09:00:00Z", "updated_at": "2026-11-02T09:00:00Z", "status": 4, "stats": {"first_responded_at": "2026-11-02T08:00:00Z", "resolved_at": "1970-01-01T00:00:00Z", "reopened_at": "2026-11-02T10:00:00Z"}}]`})
	f.Fuzz(func(t *testing.T, input []byte) {
		api.run(t, "collectors:\n  - name: fd\n    type: freshdesk\n    schedule: \"@every 5m\"\n    url: BASE\n    api_key: k\n",
			input, func(s collectors.Source) *apiClient { return s.(*freshdesk).client })
	})
}

func FuzzJiraServiceManagementPage(f *testing.F) {
	api := newFuzzAPI(f, "/search", "/sla")
	seeds(f, []string{`{"issues": ` + jsonSeed(f, "testdata/jira_service_management/issues.json", "issues") + `, "isLast": true}`,
		`{"values": ` + jsonSeed(f, "testdata/jira_service_management/issues.json", "slas", "10001") + `, "isLastPage": true}`},
		[]string{`{"issues": ` + jsonSeed(f, "testdata/jira_service_management/issues.json", "issues") + `, "isLast": true}`,
			`{"values": ` + jsonSeed(f, "testdata/jira_service_management/issues.json", "slas", "10005") + `, "isLastPage": true}`})
	f.Fuzz(func(t *testing.T, input []byte) {
		api.run(t, "collectors:\n  - name: jsm\n    type: jira_service_management\n    schedule: \"@every 5m\"\n    url: BASE\n    email: a@b.c\n    api_token: t\n    project: SUP\n    time_zone: Europe/Berlin\n",
			input, func(s collectors.Source) *apiClient { return s.(*jsm).client })
	})
}

func FuzzRequestTrackerPage(f *testing.F) {
	api := newFuzzAPI(f, "/tickets", "/history")
	search := `{"count": 2, "page": 1, "per_page": 20, "total": 2, "pages": 1, "items": [` +
		`{"type": "ticket", "id": "7", "_url": "BASE/REST/2.0/ticket/7", "Queue": {"type": "queue", "id": "1", "Name": "General"}, "Status": "resolved", "Priority": "0", "Created": "2026-11-23T09:00:00Z", "Resolved": "2026-11-23T10:00:00Z", "LastUpdated": "2026-11-23T10:00:00Z", "Requestor": [{"type": "user", "id": "alice@example.com"}]},` +
		`{"type": "ticket", "id": "8", "Queue": {"id": "1", "Name": "General"}, "Status": "open", "Created": "2026-11-23T09:30:00Z", "Resolved": "1970-01-01T00:00:00Z", "LastUpdated": "2026-11-23T11:00:00Z", "Requestor": []}]}`
	history := `{"count": 3, "page": 1, "per_page": 20, "total": 3, "pages": 1, "items": [` +
		`{"type": "transaction", "id": "70", "Type": "Create", "Created": "2026-11-23T09:00:00Z", "Creator": {"type": "user", "id": "alice@example.com"}},` +
		`{"type": "transaction", "id": "71", "Type": "Correspond", "Created": "2026-11-23T09:20:00Z", "Creator": {"type": "user", "id": "agent"}},` +
		`{"type": "transaction", "id": "72", "Type": "Status", "Field": "Status", "OldValue": "resolved", "NewValue": "open", "Created": "2026-11-23T09:50:00Z", "Creator": {"type": "user", "id": "alice@example.com"}}]}`
	seeds(f, []string{search, history})
	f.Fuzz(func(t *testing.T, input []byte) {
		api.run(t, "collectors:\n  - name: rt\n    type: request_tracker\n    schedule: \"@every 5m\"\n    url: BASE\n    token: t\n",
			input, func(s collectors.Source) *apiClient { return s.(*requestTracker).client })
	})
}

func FuzzHTTPJSONPage(f *testing.F) {
	api := newFuzzAPI(f)
	seeds(f, []string{`{"tickets":[{"id":101,"created_at":"2026-11-20T09:00:00Z","updated_at":"2026-11-20T09:30:00Z","reopens":"NaN","replies":-1,"frb":1e300},{"id":102,"created_at":"2026-11-20T09:00:00Z","updated_at":"2026-11-20T09:30:00Z","reopens":1,"replies":2,"frb":60}],"after_cursor":"x","end_of_stream":true}`},
		[]string{`{"calls":[{"id":"c1","queue":"q","enqueued":"2026-11-20T09:00:00Z","wait":"-5","talk":"1e400","outcome":"answered"},{"id":"c2","queue":"q","enqueued":"2026-11-20T09:00:00Z","ended":"2026-11-20T08:00:00Z","outcome":"abandoned"}]}`},
		[]string{`{"responses":[{"id":"r1","score":"NaN","at":"2026-11-20T09:00:00Z"},{"id":"r2","score":4,"at":"2026-11-20T09:00:00Z"},{"id":"r3","kind":"servqual","items":[{"item":1,"expectation":"7","perception":"Inf"}],"weights":{"tangibles":"NaN"},"at":"2026-11-20T09:00:00Z"}]}`})
	specs := []string{
		"    url: BASE/t\n    auth_value: Bearer x\n    record: ticket\n    items: tickets\n    mapping: {id: id, created_at: created_at, updated_at: updated_at, reopens: reopens, agent_replies: replies, first_reply_business_seconds: frb}\n    pagination: {type: cursor, next_cursor: after_cursor, cursor_param: cursor, last_page: end_of_stream}\n    incremental: {since_param: start_time, since_format: unix, watermark: updated_at}\n",
		"    url: BASE/c\n    auth_value: Bearer x\n    record: call\n    items: calls\n    mapping: {id: id, queue: queue, enqueued_at: enqueued, ended_at: ended, wait_seconds: wait, talk_seconds: talk, outcome: outcome}\n",
		"    url: BASE/s\n    auth_value: Bearer x\n    record: survey\n    survey: s\n    kind: csat\n    items: responses\n    mapping: {id: id, kind: kind, score: score, submitted_at: at, servqual: items, weights: weights}\n",
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		for i, spec := range specs {
			b := api.run(t, "collectors:\n  - name: api\n    type: http_json\n    schedule: \"@every 5m\"\n"+spec,
				input, func(s collectors.Source) *apiClient { return s.(*httpJSON).client })
			if b == nil || i == 0 {
				continue // the ticket spec pages through the same answer
			}
			// One page: each item of the list is one record or one
			// rejection.
			var doc map[string]json.RawMessage
			var items []json.RawMessage
			json.Unmarshal(bytes.Split(input, []byte(fuzzPartSep))[0], &doc)
			json.Unmarshal(doc[[]string{"", "calls", "responses"}[i]], &items)
			if got := len(b.Calls) + len(b.Surveys) + len(b.Rejected); got != len(items) {
				t.Errorf("%d items gave %d records and rejections: %+v", len(items), got, b)
			}
		}
	})
}

func FuzzTwilioTaskRouterPage(f *testing.F) {
	api := newFuzzAPI(f, "/RealTimeStatistics", "/CumulativeStatistics", "/TaskQueues")
	realTime := `{"task_queue_sid": "WQ1", "longest_task_waiting_age": 95, "tasks_by_status": {"pending": 2, "reserved": "1", "assigned": 4}, "total_available_workers": 2, "activity_statistics": [{"friendly_name": "Idle", "workers": 2}, {"friendly_name": "Busy", "workers": 4}]}`
	cumulative := `{"task_queue_sid": "WQ1", "reservations_accepted": 3, "tasks_canceled": 2, "tasks_entered": 5, "avg_task_acceptance_time": 10, "wait_duration_until_accepted": {"avg": 10, "min": 2, "max": 25, "total": 30}, "wait_duration_until_canceled": {"avg": 40, "min": 30, "max": 50, "total": 80}, "split_by_wait_time": {"5": {"above": {"tasks_canceled": 2, "reservations_accepted": 2}, "below": {"tasks_canceled": 0, "reservations_accepted": 1}}, "20": {"above": {"tasks_canceled": 2, "reservations_accepted": 1}, "below": {"tasks_canceled": 0, "reservations_accepted": 2}}}}`
	list := `{"meta": {"page": 0, "page_size": 50, "next_page_url": null, "key": "task_queues"}, "task_queues": [{"sid": "WQ1", "friendly_name": "Support"}]}`
	seeds(f, []string{realTime, cumulative, list},
		[]string{strings.ReplaceAll(realTime, "95", "-95"), strings.ReplaceAll(strings.ReplaceAll(cumulative, `"tasks_canceled": 2,`, `"tasks_canceled": "NaN",`), `"max": 25`, `"max": 1e300`), list},
		[]string{realTime, strings.ReplaceAll(strings.ReplaceAll(cumulative, `"max": 50`, `"max": 1e9`), `"total": 80`, `"total": 1e9`), list})
	f.Fuzz(func(t *testing.T, input []byte) {
		api.run(t, "collectors:\n  - name: tr\n    type: twilio_taskrouter\n    schedule: \"@every 1m\"\n    base_url: BASE\n    account_sid: AC00000000000000000000000000000000\n    auth_token: t\n    workspace_sid: WS00000000000000000000000000000000\n    split_by_wait_time: [5, 20]\n    since: 2h\n",
			input, func(s collectors.Source) *apiClient { return s.(*twilioTaskRouter).client })
	})
}

// Every webhook body is responses (each within its kind's scale), a
// rejection naming the field, or a payload servq does not count.
func FuzzSurveyWebhookPayload(f *testing.F) {
	for _, name := range []string{"delighted_created.json", "delighted_updated.json", "typeform_form_response.json", "generic_csat.json", "generic_servqual.json"} {
		data, err := os.ReadFile("testdata/survey_webhook/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"id":"r1","survey":"s","kind":"csat","score":"NaN","submitted_at":"2026-11-02T10:00:00Z"}`))
	f.Add([]byte(`{"event_type":"survey_response.created","event_data":{"id":"1","score":1e400,"created_at":1793610000}}`))
	specs := []string{
		"    format: delighted\n    secret: x\n    survey: relationship\n",
		"    format: typeform\n    secret: x\n    survey: post\n    fields:\n      recommend: {kind: nps}\n      satisfaction: {kind: csat}\n      effort: {kind: ces}\n",
		"    format: generic\n    secret: x\n",
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, spec := range specs {
			s := whBuild(t, t.TempDir(), "svy", spec, nil)
			key, _, resps, field := s.parse(body)
			if field != "" && len(resps) > 0 {
				t.Errorf("%s: rejected (%s) and %d responses", s.format, field, len(resps))
			}
			if field == "" && len(resps) > 0 && key == "" {
				t.Errorf("%s: %d responses without a key", s.format, len(resps))
			}
			checkBatch(t, &collectors.Batch{Surveys: resps}, s.scales)
		}
	})
}
