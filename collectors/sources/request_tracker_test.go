package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/deploy/testenv"
)

// fakeRT speaks the parts of Request Tracker 5's REST2 API the plugin
// uses, as documented in RT::REST2's POD (RT 5.0, "Tickets", "Paging",
// "Fields", "Example of plural resources", "Authentication Methods") and
// as the real RT 5.0.3 answers (checked against it, see
// TestRequestTrackerRealRT): GET /REST/2.0/tickets?query=<TicketSQL> with
// page/per_page (default 20, at most 100), orderby/order, fields and
// fields[Queue]; collections as {count, page, pages, per_page, total,
// next_page, prev_page, items}; GET /REST/2.0/ticket/:id/history; dates in
// W3CDTF UTC, an unset date as 1970-01-01T00:00:00Z; Authorization: token.
type fakeRT struct {
	t     *testing.T
	mu    sync.Mutex
	token string
	tix   map[int]*fakeTicket
	log   []string // "search <since> p<page>" and "history <id>"
	// fail, when set, may answer a request instead of the fake.
	fail func(w http.ResponseWriter, r *http.Request) bool
	srv  *httptest.Server
	// now and hidden reproduce a transaction that commits late: a
	// ticket in hidden is not listed before now reaches its time.
	now    time.Time
	hidden map[int]time.Time
}

type fakeTicket struct {
	id                         int
	queue, status              string
	created, resolved, updated time.Time
	requestors                 []string
	history                    []fakeTx
}

type fakeTx struct {
	typ, field, old, new, creator string
	at                            time.Time
	id                            int
}

func newFakeRT(t *testing.T) *fakeRT {
	f := &fakeRT{t: t, token: "1-14-s3cr3t", tix: map[int]*fakeTicket{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

var txSeq = 100

func (f *fakeRT) tx(id int, at time.Time, x fakeTx) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tk := f.tix[id]
	txSeq++
	x.at, x.id = at, txSeq
	tk.history = append(tk.history, x)
	tk.updated = at
}

// create, reply, setStatus act as RT does: every transaction bumps
// LastUpdated, a move to resolved sets Resolved (and a reopen keeps it).
func (f *fakeRT) create(id int, at time.Time, queue, requestor string) {
	f.mu.Lock()
	f.tix[id] = &fakeTicket{id: id, queue: queue, status: "new", created: at, requestors: []string{requestor}}
	f.mu.Unlock()
	f.tx(id, at, fakeTx{typ: "Create", creator: requestor})
}

func (f *fakeRT) reply(id int, at time.Time, who string) {
	f.tx(id, at, fakeTx{typ: "Correspond", creator: who})
}

func (f *fakeRT) setStatus(id int, at time.Time, status string) {
	f.mu.Lock()
	tk := f.tix[id]
	old := tk.status
	tk.status = status
	if status == "resolved" {
		tk.resolved = at
	}
	f.mu.Unlock()
	f.tx(id, at, fakeTx{typ: "Status", field: "Status", old: old, new: status, creator: "root"})
}

func (f *fakeRT) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, l := range f.log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func w3c(t time.Time) string {
	if t.IsZero() {
		return "1970-01-01T00:00:00Z"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func (f *fakeRT) ref(typ, id string) map[string]any {
	return map[string]any{"type": typ, "id": id, "_url": f.srv.URL + "/REST/2.0/" + typ + "/" + id}
}

var fakeSQL = regexp.MustCompile(`^(?:\((.*)\) AND )?LastUpdated >= '(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)'$`)

func (f *fakeRT) serve(w http.ResponseWriter, r *http.Request) {
	if f.fail != nil && f.fail(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.Header.Get("Authorization") != "token "+f.token {
		// RT::REST2::Middleware::Auth answers 401 with a JSON message.
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"message":"Unauthorized"}`))
		return
	}
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 20
	}
	per = min(per, 100)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	var items []map[string]any
	switch {
	case r.URL.Path == "/REST/2.0/tickets":
		m := fakeSQL.FindStringSubmatch(q.Get("query"))
		if m == nil {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"message":"Wrong query, expecting a VALUE"}`))
			return
		}
		if strings.Join(q["orderby"], ",") != "LastUpdated,id" || q.Get("fields[Queue]") != "Name" {
			f.t.Errorf("search %s: want orderby=LastUpdated&orderby=id and fields[Queue]=Name", r.URL.RawQuery)
		}
		since, _ := time.Parse("2006-01-02 15:04:05", m[2])
		f.log = append(f.log, fmt.Sprintf("search %s p%d", m[2], page))
		var tix []*fakeTicket
		for _, tk := range f.tix {
			if v, ok := f.hidden[tk.id]; ok && f.now.Before(v) {
				continue // its transaction has not committed yet
			}
			if !tk.updated.Before(since) && (m[1] == "" || m[1] == "Queue = '"+tk.queue+"'") {
				tix = append(tix, tk)
			}
		}
		sort.Slice(tix, func(i, j int) bool {
			if !tix[i].updated.Equal(tix[j].updated) {
				return tix[i].updated.Before(tix[j].updated)
			}
			return tix[i].id < tix[j].id
		})
		fields := strings.Split(q.Get("fields"), ",")
		for _, tk := range tix {
			id := strconv.Itoa(tk.id)
			it := map[string]any{"type": "ticket", "id": id, "_url": f.srv.URL + "/REST/2.0/ticket/" + id}
			for _, fl := range fields {
				switch fl {
				case "Queue":
					qr := f.ref("queue", "1")
					qr["Name"] = tk.queue
					it["Queue"] = qr
				case "Status":
					it["Status"] = tk.status
				case "Priority":
					it["Priority"] = "0"
				case "Created":
					it["Created"] = w3c(tk.created)
				case "Resolved":
					it["Resolved"] = w3c(tk.resolved)
				case "LastUpdated":
					it["LastUpdated"] = w3c(tk.updated)
				case "Requestor":
					var rs []map[string]any
					for _, u := range tk.requestors {
						rs = append(rs, f.ref("user", u))
					}
					it["Requestor"] = rs
				}
			}
			items = append(items, it)
		}
	case strings.HasPrefix(r.URL.Path, "/REST/2.0/ticket/") && strings.HasSuffix(r.URL.Path, "/history"):
		id, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/REST/2.0/ticket/"), "/history"))
		tk := f.tix[id]
		if tk == nil {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"Not Found"}`))
			return
		}
		f.log = append(f.log, fmt.Sprintf("history %d p%d", id, page))
		for _, x := range tk.history {
			items = append(items, map[string]any{"type": "transaction", "id": strconv.Itoa(x.id),
				"_url": f.srv.URL + "/REST/2.0/transaction/" + strconv.Itoa(x.id),
				"Type": x.typ, "Field": x.field, "OldValue": x.old, "NewValue": x.new,
				"Created": w3c(x.at), "Creator": f.ref("user", x.creator)})
		}
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"Not Found"}`))
		return
	}
	total := len(items)
	pages := (total + per - 1) / per
	from, to := min((page-1)*per, total), min(page*per, total)
	out := map[string]any{"count": to - from, "page": page, "per_page": per, "total": total, "pages": pages, "items": items[from:to]}
	if items[from:to] == nil {
		out["items"] = []any{}
	}
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	if page < pages {
		q.Set("page", strconv.Itoa(page+1))
		u.RawQuery = q.Encode()
		out["next_page"] = u.String()
	}
	json.NewEncoder(w).Encode(out)
}

// rtNow is the clock of the fake's tests: Monday 2026-11-23 12:00 UTC.
var rtNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func hm(h, m int) time.Time { return time.Date(2026, 11, 23, h, m, 0, 0, time.UTC) }

// seedRT writes the four tickets whose totals the tests compute by hand:
//
//	1 created 10:00 by ann, root replies 10:30, resolved 11:00:
//	  first reply 1800s, resolution 3600s, FCR.
//	2 created 10:05 by bob, bob writes again 10:10 (not a reply), root
//	  replies 10:35, agent7 10:50, resolved 11:05, reopened 11:20: first
//	  reply 1800s, one reopen, open now (its solve counts when it is
//	  resolved again).
//	3 created 11:30 by cy, no reply: new, nothing else.
//	4 created 09:00 by dee, root replies 09:10, resolved 09:20, reopened
//	  09:40, root replies 09:50, resolved 10:00: first reply 600s,
//	  resolution 1200s (to the first resolve), one reopen so no FCR.
//
// Totals: created 4, solved 2, reopened 2, FCR 1; first reply count 3 sum
// 4200s; resolution count 2 sum 4800s; open 2.
func seedRT(f *fakeRT) {
	f.create(1, hm(10, 0), "General", "ann@example.com")
	f.create(2, hm(10, 5), "General", "bob@example.com")
	f.create(4, hm(9, 0), "Sales", "dee@example.com")
	f.reply(4, hm(9, 10), "root")
	f.setStatus(4, hm(9, 10), "open")
	f.setStatus(4, hm(9, 20), "resolved")
	f.setStatus(4, hm(9, 40), "open")
	f.reply(4, hm(9, 50), "root")
	f.setStatus(4, hm(10, 0), "resolved")
	f.reply(2, hm(10, 10), "bob@example.com")
	f.reply(1, hm(10, 30), "root")
	f.reply(2, hm(10, 35), "root")
	f.reply(2, hm(10, 50), "agent7")
	f.setStatus(1, hm(11, 0), "resolved")
	f.setStatus(2, hm(11, 5), "resolved")
	f.setStatus(2, hm(11, 20), "open")
	f.create(3, hm(11, 30), "General", "cy@example.com")
}

func rtSource(t testing.TB, f *fakeRT, extra string) (*requestTracker, *[]time.Duration) {
	return rtSourceAt(t, f.srv.URL, f.token, extra)
}

func rtSourceAt(t testing.TB, base, token, extra string) (*requestTracker, *[]time.Duration) {
	t.Helper()
	s := buildSource(t, fmt.Sprintf("collectors:\n  - name: rt\n    type: request_tracker\n    schedule: \"@every 5m\"\n    url: %s\n    token: %s\n%s", base, token, extra))
	rt := s.(*requestTracker)
	return rt, recordWaits(rt.client)
}

func byID(tks []record.Ticket) map[string][]record.Ticket {
	out := map[string][]record.Ticket{}
	for _, tk := range tks {
		out[tk.ID] = append(out[tk.ID], tk)
	}
	return out
}

func TestRequestTrackerMapping(t *testing.T) {
	f := newFakeRT(t)
	seedRT(f)
	s, _ := rtSource(t, f, "    channel: email\n")
	b, next := collectOnce(t, s, nil, rtNow)
	if len(b.Rejected) != 0 {
		t.Fatalf("rejected %+v", b.Rejected)
	}
	got := byID(b.Tickets)
	want := map[string][]record.Ticket{
		"1": {{ID: "1", Queue: "General", Channel: "email", Priority: "0", Status: "solved", CreatedAt: hm(10, 0), UpdatedAt: hm(11, 0),
			FirstReplyAt: hm(10, 30), SolvedAt: hm(11, 0), AgentReplies: 1}},
		"2": {
			{ID: "2", Queue: "General", Channel: "email", Priority: "0", Status: "open", CreatedAt: hm(10, 5), UpdatedAt: hm(11, 20),
				FirstReplyAt: hm(10, 35), AgentReplies: 2, Reopens: 1}},
		"3": {{ID: "3", Queue: "General", Channel: "email", Priority: "0", Status: "new", CreatedAt: hm(11, 30), UpdatedAt: hm(11, 30)}},
		"4": {
			{ID: "4", Queue: "Sales", Channel: "email", Priority: "0", Status: "solved", CreatedAt: hm(9, 0), UpdatedAt: hm(10, 0),
				FirstReplyAt: hm(9, 10), SolvedAt: hm(9, 20), AgentReplies: 2, Reopens: 1}},
	}
	for id, w := range want {
		if fmt.Sprintf("%+v", got[id]) != fmt.Sprintf("%+v", w) {
			t.Errorf("ticket %s:\n got %+v\nwant %+v", id, got[id], w)
		}
	}
	if string(next) != `{"since":"2026-11-23T11:30:00Z","ids":["3"]}` {
		t.Errorf("cursor %s", next)
	}
	// The first search reads back 30 days (since's default) in RT's
	// format; ticket 4 (oldest update) comes first.
	if f.log[0] != "search 2026-10-24 12:00:00 p1" || f.log[1] != "history 4 p1" {
		t.Errorf("requests %v", f.log)
	}
}

// rtModel is a quality model with the collector "rt" configured.
func rtModel(t *testing.T) *quality.Model {
	t.Helper()
	return testModel(t, testConfig(t, "collectors:\n  - name: rt\n    type: request_tracker\n    schedule: \"@every 5m\"\n    url: http://127.0.0.1:1\n    token: x\n"))
}

// The seed's hand-computed totals (see seedRT).
var rtSeedTotals = map[string]float64{
	"servq_tickets_created_total":              4,
	"servq_tickets_solved_total":               2,
	"servq_tickets_reopened_total":             2,
	"servq_tickets_solved_first_contact_total": 1,
	"servq_ticket_first_reply_seconds_count":   3,
	"servq_ticket_first_reply_seconds_sum":     4200,
	"servq_ticket_resolution_seconds_count":    2,
	"servq_ticket_resolution_seconds_sum":      4800,
	"servq_tickets_open":                       2, // 2 open, 3 new
}

// Pages of two: the search turns pages, restarts from the cursor when it
// moves, and a second run reads only the ticket updated since.
func TestRequestTrackerPagingAndIncremental(t *testing.T) {
	f := newFakeRT(t)
	seedRT(f)
	s, _ := rtSource(t, f, "    per_page: 2\n")
	m := rtModel(t)
	b, next := collectOnce(t, s, nil, rtNow)
	commitRun(t, m, "rt", b, next)
	expectValues(t, familyTotals(t, m), rtSeedTotals)
	if w := rtNow.Add(-time.Minute); !b.Watermark.Equal(w) {
		t.Errorf("complete run: watermark %s, want its start less the settle lag, %s", b.Watermark, w)
	}
	if n := f.count("search"); n < 3 {
		t.Errorf("%d searches for 4 tickets in pages of 2: %v", n, f.log)
	}
	for _, id := range []string{"1", "2", "3", "4"} {
		if n := f.count("history " + id + " "); n != 1 {
			t.Errorf("history of %s read %d times: %v", id, n, f.log)
		}
	}
	// Ticket 3 gets its reply and is resolved; nothing else changes.
	f.reply(3, hm(12, 10), "root")
	f.setStatus(3, hm(12, 20), "resolved")
	f.log = nil
	b, next = collectOnce(t, s, next, rtNow.Add(30*time.Minute))
	commitRun(t, m, "rt", b, next)
	if len(b.Tickets) != 1 || b.Tickets[0].ID != "3" || strings.Join(f.log, ";") != "search 2026-11-23 11:30:00 p1;history 3 p1" {
		t.Errorf("second run: tickets %+v, requests %v", b.Tickets, f.log)
	}
	want := map[string]float64{}
	for k, v := range rtSeedTotals {
		want[k] = v
	}
	want["servq_tickets_solved_total"]++
	want["servq_tickets_solved_first_contact_total"]++
	want["servq_ticket_first_reply_seconds_count"]++
	want["servq_ticket_first_reply_seconds_sum"] += 40 * 60
	want["servq_ticket_resolution_seconds_count"]++
	want["servq_ticket_resolution_seconds_sum"] += 50 * 60
	want["servq_tickets_open"]--
	expectValues(t, familyTotals(t, m), want)
	// A third run finds nothing new.
	f.log = nil
	b, next2 := collectOnce(t, s, next, rtNow.Add(time.Hour))
	if len(b.Tickets) != 0 || string(next2) != string(next) || f.count("history") != 0 {
		t.Errorf("idle run: %d tickets, cursor %s, requests %v", len(b.Tickets), next2, f.log)
	} // From the start in chunks of one record: a chunk ends at each page
	// of two; a run resumed from one reads exactly the rest.
	checkChunks(t, s, rtNow.Add(time.Hour), 1, 2)
}

// A page that fails mid-run fails the run; the rerun from the old cursor,
// fed to the model after the first run's nothing, gives the exact totals.
func TestRequestTrackerFaultRerunExactTotals(t *testing.T) {
	for _, fault := range []string{"search 500", "history 503", "malformed json"} {
		t.Run(fault, func(t *testing.T) {
			f := newFakeRT(t)
			seedRT(f)
			s, _ := rtSource(t, f, "    per_page: 2\n    retries: 1\n")
			m := rtModel(t)
			failing := true
			f.fail = func(w http.ResponseWriter, r *http.Request) bool {
				if !failing {
					return false
				}
				switch {
				case fault == "search 500" && r.URL.Path == "/REST/2.0/tickets" && f.count("search") >= 1:
					w.WriteHeader(http.StatusInternalServerError)
					w.Write([]byte(`{"message":"Internal Server Error"}`))
					return true
				case fault == "history 503" && r.URL.Path == "/REST/2.0/ticket/2/history":
					w.WriteHeader(http.StatusServiceUnavailable)
					return true
				case fault == "malformed json" && r.URL.Path == "/REST/2.0/ticket/3/history":
					w.Write([]byte(`{"items": [`))
					return true
				}
				return false
			}
			b := &collectors.Batch{Now: rtNow}
			if _, err := s.Collect(context.Background(), nil, b); err == nil {
				t.Fatal("want the failing page to fail the run")
			} else if strings.Contains(err.Error(), f.token) {
				t.Errorf("error shows the token: %v", err)
			}
			// Half a run was read before the fault: it commits nothing.
			failing = false
			b, next := collectOnce(t, s, nil, rtNow)
			commitRun(t, m, "rt", b, next)
			// A crash after fetch: the same records again count once.
			b, next = collectOnce(t, s, nil, rtNow)
			commitRun(t, m, "rt", b, next)
			expectValues(t, familyTotals(t, m), rtSeedTotals)
		})
	}
}

func TestRequestTrackerHonoursRetryAfter(t *testing.T) {
	f := newFakeRT(t)
	seedRT(f)
	s, waits := rtSource(t, f, "")
	n := 0
	f.fail = func(w http.ResponseWriter, r *http.Request) bool {
		n++
		if n == 1 {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	b, _ := collectOnce(t, s, nil, rtNow)
	if len(b.Tickets) != 4 || len(*waits) != 1 || (*waits)[0] != 3*time.Second {
		t.Errorf("%d records, waits %v: want all 4 after waiting 3s", len(b.Tickets), *waits)
	}
}

func TestRequestTrackerAuthFailure(t *testing.T) {
	f := newFakeRT(t)
	s, waits := rtSource(t, f, "")
	f.token = "1-14-other"
	b := &collectors.Batch{Now: rtNow}
	_, err := s.Collect(context.Background(), nil, b)
	if err == nil || !strings.Contains(err.Error(), "GET /REST/2.0/tickets: 401 Unauthorized: Unauthorized") || len(*waits) != 0 {
		t.Fatalf("err = %v, waits %v", err, *waits)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "LastUpdated") {
		t.Errorf("error shows the token or the query: %v", err)
	}
}

// A request budget of 4 ends runs early; each commits what it completed
// and the next continues, until the totals are the seed's. A run the
// budget ends is complete up to the newest LastUpdated it delivered, the
// runs that read the last page up to their start.
func TestRequestTrackerBudget(t *testing.T) {
	f := newFakeRT(t)
	seedRT(f)
	s, _ := rtSource(t, f, "    per_page: 2\n    max_requests_per_run: 4\n")
	m := rtModel(t)
	var cursor []byte
	var marks []string
	runs, records := 0, 0
	for ; runs < 10; runs++ {
		f.log = nil
		b, next := collectOnce(t, s, cursor, rtNow)
		commitRun(t, m, "rt", b, next)
		records += len(b.Tickets)
		marks = append(marks, b.Watermark.Format("15:04"))
		if len(f.log) > 4 {
			t.Fatalf("run %d made %d requests", runs, len(f.log))
		}
		if string(next) == string(cursor) && len(b.Tickets) == 0 {
			break
		}
		cursor = next
	}
	if runs < 2 || records != 4 {
		t.Errorf("%d runs, %d records: want several runs delivering the 4 tickets once", runs, records)
	}
	// Run 1: ticket 4 (10:00), 1 (11:00); the history of 2 is over budget.
	// Run 2: 2 and 3, the last page. Run 3: nothing new, the last page.
	if want := "11:00 11:59 11:59"; strings.Join(marks, " ") != want {
		t.Errorf("watermarks of the runs: %s, want %s", strings.Join(marks, " "), want)
	}
	expectValues(t, familyTotals(t, m), rtSeedTotals)
}

// Bad items are rejected with their position; the run goes on.
func TestRequestTrackerRejects(t *testing.T) {
	f := newFakeRT(t)
	seedRT(f)
	f.tix[3].created = time.Time{} // RT's unset date: no creation time
	s, _ := rtSource(t, f, "    query: Queue = 'General'\n")
	b, next := collectOnce(t, s, nil, rtNow)
	if len(b.Rejected) != 1 || b.Rejected[0].Reason != "bad_time" || !strings.Contains(b.Rejected[0].Position, "item 3 (ticket 3)") {
		t.Errorf("rejected %+v", b.Rejected)
	}
	if len(b.Tickets) != 2 || byID(b.Tickets)["4"] != nil {
		t.Errorf("tickets %+v: want 1 and 2 of queue General", b.Tickets)
	}
	if string(next) != `{"since":"2026-11-23T11:30:00Z","ids":["3"]}` {
		t.Errorf("the rejected ticket is passed: cursor %s", next)
	}
}

func TestRequestTrackerConfigErrors(t *testing.T) {
	base := "collectors:\n  - name: rt\n    type: request_tracker\n    schedule: \"@daily\"\n"
	for spec, want := range map[string]string{
		"    token: x\n":                    "collectors[0].url: is required",
		"    url: ftp://rt\n    token: x\n": "test.yml:5: collectors[0].url: must be an http(s) address",
		"    url: https://rt.example.com\n": "collectors[0].token: is required",
		"    url: https://rt\n    token: x\n    username: u\n    password: p\n": "test.yml:6: collectors[0].token: set either token",
		"    url: https://rt\n    token: x\n    per_page: 500\n":                "test.yml:7: collectors[0].per_page: must be between 1 and 100",
		"    url: https://rt\n    token: x\n    time_zone: Mars/Base\n":         "test.yml:7: collectors[0].time_zone: unknown time zone",
		"    url: https://rt\n    token: x\n    status_map: {done: finished}\n": `test.yml:7: collectors[0].status_map.done: unknown status "finished"`,
		"    url: https://rt\n    token: x\n    retries: 99\n":                  "test.yml:7: collectors[0].retries: must be between 0 and 10",
		"    url: https://rt\n    token: x\n    bogus: 1\n":                     "test.yml:7",
	} {
		expectConfigError(t, base, spec, want)
	}
	// The documented example builds (with the token inline).
	exYml := "collectors:\n" + strings.Replace(exampleYAML(t, "request_tracker"), "token_file: /etc/servq/rt-token", "token: 1-2-abc", 1)
	if _, err := buildSourceErr(exYml); err != nil {
		t.Errorf("example.yml: %v", err)
	}
	// Shared keys and the _file variant are accepted.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tok"), []byte("1-14-abc\n"), 0o600)
	if _, err := buildSourceErr(base + "    url: https://rt.example.com/rt\n    token_file: " + filepath.Join(dir, "tok") + "\n    request_timeout: 10s\n    since: 7d\n    time_zone: Europe/Berlin\n    status_map: {rejected: deleted}\n"); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// ---- a real Request Tracker 5 ----

type realRT struct {
	url, token string
	t          *testing.T
}

// startRealRT initializes an SQLite RT database in a temporary directory,
// creates an auth token for root and starts rt-server on 127.0.0.1. The
// site config is passed with RT_SITE_CONFIG and RT_SITE_CONFIG_DIR
// (RT::Config::LoadConfig), so /etc/request-tracker5 is neither read nor
// changed, and RT's writable directories are moved into the temporary
// directory.
func startRealRT(t *testing.T) *realRT {
	setup := findProgram(t, "request-tracker5 (and rt5-db-sqlite)", "rt-setup-database-5", "/usr/sbin/rt-setup-database-5")
	server := findProgram(t, "request-tracker5 (and rt5-db-sqlite)", "/usr/share/request-tracker5/libexec/rt-server")
	perl := findProgram(t, "request-tracker5 (and rt5-db-sqlite)", "perl")
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	site := filepath.Join(dir, "RT_SiteConfig.pm")
	os.Mkdir(filepath.Join(dir, "RT_SiteConfig.d"), 0o755)
	for _, d := range []string{"mason", "sessions", "var"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(site, []byte(fmt.Sprintf(`# Read inside package RT: the path variables are RT's own.
$RT::MasonDataDir = '%[1]s/mason';
$RT::MasonSessionDir = '%[1]s/sessions';
$RT::VarPath = '%[1]s/var';
Set($rtname, 'servq-test');
Set($Organization, 'servq-test');
Set($WebDomain, '127.0.0.1');
Set($WebPort, %[2]s);
Set($WebPath, '');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '%[1]s/rt.db');
Set($Timezone, 'UTC');
Set($LogToSTDERR, 'error');
Set($LogToSyslog, undef);
Set($LogToFile, undef);
Set($MailCommand, 'testfile');
1;
`, dir, port)), 0o644)
	env := append(os.Environ(), "RT_SITE_CONFIG="+site, "RT_SITE_CONFIG_DIR="+filepath.Join(dir, "RT_SiteConfig.d"))
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env, cmd.Dir = env, dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
		}
		return out.String()
	}
	run(setup, "--action", "init", "--skip-create")
	os.WriteFile(filepath.Join(dir, "token.pl"), []byte(`use lib '/usr/share/request-tracker5/lib';
use RT;
RT::LoadConfig(); RT::Init();
my $root = RT::CurrentUser->new(RT->SystemUser);
$root->Load('root') or die "no root user\n";
my ($id, $msg, $auth) = RT::AuthToken->new($root)->Create(Owner => $root->Id, Description => 'servq test');
die "token: $msg\n" unless $id;
print "TOKEN=$auth\n";
`), 0o644)
	out := run(perl, filepath.Join(dir, "token.pl"))
	m := regexp.MustCompile(`TOKEN=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no token in %q", out)
	}
	// One process: a test needs no prefork workers, each of which would
	// load RT's web code again on its first request.
	cmd := exec.Command(server, "--server", "Standalone", "--host", "127.0.0.1", "--port", port)
	cmd.Env, cmd.Dir = env, dir
	var log bytes.Buffer
	var logMu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&log, &logMu}, lockedWriter{&log, &logMu}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM to the server's own process group; not SIGINT, on which rt-server run as root chowns
		// /var/lib/request-tracker5.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("rt-server output:\n%s", log.String())
			logMu.Unlock()
		}
	})
	rt := &realRT{url: "http://" + addr, token: m[1], t: t}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := rt.call("GET", "/rt", nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("rt-server did not answer: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return rt
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (rt *realRT) call(method, path string, body any) ([]byte, error) {
	var rd *bytes.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, rt.url+"/REST/2.0"+path, rd)
	req.Header.Set("Authorization", "token "+rt.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		return out.Bytes(), fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, out.String())
	}
	return out.Bytes(), nil
}

func (rt *realRT) must(method, path string, body any) []byte {
	rt.t.Helper()
	b, err := rt.call(method, path, body)
	if err != nil {
		rt.t.Fatal(err)
	}
	return b
}

// createAll creates one ticket per requestor in one request (POST
// /tickets/bulk) and returns their ids.
func (rt *realRT) createAll(requestors ...string) []string {
	var in []map[string]any
	for _, r := range requestors {
		in = append(in, map[string]any{"Queue": "General", "Subject": "Help for " + r, "Requestor": r, "Content": "Hello"})
	}
	var out []struct{ ID string }
	json.Unmarshal(rt.must("POST", "/tickets/bulk", in), &out)
	var ids []string
	for _, o := range out {
		ids = append(ids, o.ID)
	}
	if len(ids) != len(requestors) {
		rt.t.Fatalf("created %v", ids)
	}
	return ids
}

// reply answers the tickets as root (POST /tickets/bulk/correspond).
func (rt *realRT) reply(ids ...string) {
	var in []map[string]any
	for _, id := range ids {
		in = append(in, map[string]any{"id": id, "Content": "We are on it", "ContentType": "text/plain"})
	}
	rt.must("POST", "/tickets/bulk/correspond", in)
}

// status sets the tickets' status (PUT /tickets/bulk).
func (rt *realRT) status(status string, ids ...string) {
	var in []map[string]any
	for _, id := range ids {
		in = append(in, map[string]any{"id": id, "Status": status})
	}
	rt.must("PUT", "/tickets/bulk", in)
}

// The plugin against a real RT 5: tickets created, replied, resolved and
// reopened through REST2, read in pages of two, counted by the model; a
// second run reads only the ticket changed since.
func TestRequestTrackerRealRT(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Request Tracker")
	}
	rt := startRealRT(t)
	// The fake's 401 body is RT's.
	req, _ := http.NewRequest("GET", rt.url+"/REST/2.0/tickets?query=id>0", nil)
	req.Header.Set("Authorization", "token 1-14-wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("a wrong token: %v %v", resp, err)
	} else {
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if !strings.Contains(body.String(), `"Unauthorized"`) {
			t.Errorf("RT's 401 body %q", body.String())
		}
	}

	// a: replied and resolved; b: replied, resolved, reopened; c: new.
	ids := rt.createAll("ann@example.com", "bob@example.com", "cy@example.com")
	a, b, c := ids[0], ids[1], ids[2]
	rt.reply(a, b)
	rt.status("resolved", a, b)
	rt.status("open", b)

	// A single RT process on SQLite: a ticket is listed once committed,
	// and the test reads at once.
	s, _ := rtSourceAt(t, rt.url, rt.token, "    per_page: 2\n    channel: email\n    settle_lag: 0s\n")
	m := rtModel(t)
	now := time.Now()
	bt, next := collectOnce(t, s, nil, now)
	commitRun(t, m, "rt", bt, next)
	if len(bt.Rejected) != 0 {
		t.Fatalf("rejected %+v", bt.Rejected)
	}
	if !bt.Watermark.Equal(now) {
		t.Errorf("complete run: watermark %s, want its start %s", bt.Watermark, now)
	}
	got := byID(bt.Tickets)
	ta, tb, tc := got[a], got[b], got[c]
	if len(ta) != 1 || len(tb) != 1 || len(tc) != 1 {
		t.Fatalf("records %+v", bt.Tickets)
	}
	if x := ta[0]; x.Queue != "General" || x.Status != "solved" || x.AgentReplies != 1 || x.FirstReplyAt.IsZero() || x.SolvedAt.Before(x.FirstReplyAt) || x.FirstReplyAt.Before(x.CreatedAt) || x.Reopens != 0 {
		t.Errorf("ticket a %+v", x)
	}
	if x := tb[0]; x.Status != "open" || x.Reopens != 1 || x.AgentReplies != 1 || !x.SolvedAt.IsZero() {
		t.Errorf("ticket b %+v", tb)
	}
	if x := tc[0]; x.Status != "new" || x.AgentReplies != 0 || !x.FirstReplyAt.IsZero() {
		t.Errorf("ticket c %+v", x)
	}
	// a solved with one reply (FCR); b replied, reopened, open; c new.
	expectValues(t, familyTotals(t, m), map[string]float64{
		"servq_tickets_created_total":              3,
		"servq_tickets_solved_total":               1,
		"servq_tickets_reopened_total":             1,
		"servq_tickets_solved_first_contact_total": 1,
		"servq_ticket_first_reply_seconds_count":   2,
		"servq_ticket_resolution_seconds_count":    1,
		"servq_tickets_open":                       2,
	})

	// RT keeps seconds: let the clock pass the cursor's second.
	time.Sleep(1100 * time.Millisecond)
	rt.reply(c)
	bt, next = collectOnce(t, s, next, time.Now())
	commitRun(t, m, "rt", bt, next)
	if len(bt.Tickets) != 1 || bt.Tickets[0].ID != c || bt.Tickets[0].AgentReplies != 1 || bt.Tickets[0].Status != "open" {
		t.Errorf("second run %+v", bt.Tickets)
	}
	expectValues(t, familyTotals(t, m), map[string]float64{"servq_ticket_first_reply_seconds_count": 3, "servq_tickets_created_total": 3})
	var cur rtCursor
	if err := json.Unmarshal(next, &cur); err != nil || len(cur.IDs) != 1 || cur.IDs[0] != c {
		t.Errorf("cursor %s", next)
	}

	// A budget of two requests: the search and the first ticket's
	// history; the second history is over budget. The run is complete up
	// to the LastUpdated RT listed for the ticket it delivered.
	s2, _ := rtSourceAt(t, rt.url, rt.token, "    per_page: 2\n    max_requests_per_run: 2\n    settle_lag: 0s\n")
	bt, _ = collectOnce(t, s2, nil, time.Now())
	if len(bt.Tickets) != 1 || !bt.Watermark.Equal(bt.Tickets[0].UpdatedAt) {
		t.Errorf("budget run: watermark %s, tickets %+v: want the one ticket's LastUpdated", bt.Watermark, bt.Tickets)
	}
}

// RT stamps LastUpdated when a transaction starts: ticket 20's (10:00:00)
// commits 40 s later, after ticket 21's (10:00:10). Without a settle lag
// the first run delivers 21, its cursor passes 10:00:00, and 20 is never
// read (1 ticket created); with the default lag (1m) both arrive in the
// second run (2 created), and the third run, which re-reads both, adds
// nothing.
func TestRequestTrackerSettleLagKeepsLateTickets(t *testing.T) {
	for _, tc := range []struct {
		extra   string
		want    string
		created float64
	}{
		{"    settle_lag: 0s\n", "21||", 1},
		{"", "|20,21|", 2},
	} {
		f := newFakeRT(t)
		at := func(s string) time.Time { return mustRFC3339("2026-11-23T" + s + "Z") }
		f.create(20, at("10:00:00"), "Support", "ann@example.com")
		f.create(21, at("10:00:10"), "Support", "bob@example.com")
		f.hidden = map[int]time.Time{20: at("10:00:40")}
		s, _ := rtSource(t, f, tc.extra)
		yml := fmt.Sprintf("collectors:\n  - name: rt\n    type: request_tracker\n    schedule: \"@every 5m\"\n    url: %s\n    token: %s\n%s", f.srv.URL, f.token, tc.extra)
		got, created := pollIntoModel(t, yml, s, []time.Time{at("10:00:30"), at("10:02:00"), at("10:03:00")}, func(now time.Time) { f.now = now })
		if got != tc.want || created != tc.created {
			t.Errorf("%q: tickets per run %q, %v created; want %q, %v", tc.extra, got, created, tc.want, tc.created)
		}
	}
}
