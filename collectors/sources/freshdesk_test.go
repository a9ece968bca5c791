package sources

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// fdFake speaks the documented Freshdesk API v2 list endpoint
// (developers.freshdesk.com/api/#list_all_tickets): basic auth with the
// API key and "X", updated_since (inclusive), order_by/order_type,
// per_page up to 100, page up to 300 (400 "Validation failed" beyond),
// the Link header with rel="next" while more pages exist, the
// X-Ratelimit-* headers, and 401 {"code": "invalid_credentials", ...}.
type fdFake struct {
	t       *testing.T
	key     string
	mu      sync.Mutex
	tickets map[string]json.RawMessage
	queries []url.Values
	// hook runs before each answer; it may answer itself (returning
	// true), e.g. with a fault. n counts requests from 1.
	hook func(n int, w http.ResponseWriter, r *http.Request) bool
	// now and visibleAt reproduce a list served from a search index:
	// a ticket with a visibleAt is listed only once now reaches it.
	now       time.Time
	visibleAt map[string]time.Time
	srv       *httptest.Server
}

func newFDFake(t *testing.T) *fdFake {
	t.Helper()
	data, err := os.ReadFile("testdata/freshdesk/tickets.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct{ Tickets []json.RawMessage }
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	f := &fdFake{t: t, key: "s3cret-key", tickets: map[string]json.RawMessage{}}
	for _, tk := range fx.Tickets {
		f.tickets[fdKey(t, tk).id] = tk
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

type fdSortKey struct {
	id string
	at time.Time
}

func fdKey(t *testing.T, raw json.RawMessage) fdSortKey {
	var k struct {
		ID        json.Number `json:"id"`
		UpdatedAt time.Time   `json:"updated_at"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		t.Fatalf("fixture ticket %s: %v", raw, err)
	}
	return fdSortKey{k.ID.String(), k.UpdatedAt}
}

// update changes fields of a ticket (or adds one), as an agent would.
func (f *fdFake) update(id string, fields map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]any{}
	if old, ok := f.tickets[id]; ok {
		json.Unmarshal(old, &m)
	}
	for k, v := range fields {
		if k == "stats" {
			st, _ := m["stats"].(map[string]any)
			if st == nil {
				st = map[string]any{}
			}
			for sk, sv := range v.(map[string]any) {
				st[sk] = sv
			}
			v = st
		}
		m[k] = v
	}
	b, _ := json.Marshal(m)
	f.tickets[id] = b
}

func (f *fdFake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.Query())
	n, hook := len(f.queries), f.hook
	f.mu.Unlock()
	if hook != nil && hook(n, w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Ratelimit-Total", "700")
	w.Header().Set("X-Ratelimit-Remaining", strconv.Itoa(700-n))
	w.Header().Set("X-Ratelimit-Used-CurrentRequest", "3") // 1 + 2 for include=stats
	if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(f.key+":X")) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"code":"invalid_credentials","message":"You have to be logged in to perform this action."}`))
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != "/api/v2/tickets" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	invalid := func(field, msg string) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"description":"Validation failed","errors":[{"field":%q,"message":%q,"code":"invalid_value"}]}`, field, msg)
	}
	if q.Get("include") != "stats" || q.Get("order_by") != "updated_at" || q.Get("order_type") != "asc" {
		f.t.Errorf("query %v: want include=stats, order_by=updated_at, order_type=asc", q)
	}
	since, err := time.Parse(time.RFC3339, q.Get("updated_since"))
	if err != nil {
		invalid("updated_since", "It should be a/an combined date and time ISO8601 string")
		return
	}
	perPage, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || perPage < 1 || perPage > 100 {
		invalid("per_page", "It should be a Positive Integer less than or equal to 100")
		return
	}
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		invalid("page", "It should be a Positive Integer")
		return
	}
	if page > 300 {
		invalid("page", "You cannot access tickets beyond the 300th page. Please provide a smaller page number.")
		return
	}
	f.mu.Lock()
	var list []json.RawMessage
	keys := map[string]fdSortKey{}
	for id, tk := range f.tickets {
		k := fdKey(f.t, tk)
		if v, ok := f.visibleAt[id]; ok && f.now.Before(v) {
			continue // not in the index yet
		}
		if !k.at.Before(since) {
			list = append(list, tk)
			keys[id] = k
		}
	}
	f.mu.Unlock()
	sort.Slice(list, func(i, j int) bool {
		a, b := fdKey(f.t, list[i]), fdKey(f.t, list[j])
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		ai, _ := strconv.Atoi(a.id)
		bi, _ := strconv.Atoi(b.id)
		return ai < bi
	})
	lo := min((page-1)*perPage, len(list))
	hi := min(lo+perPage, len(list))
	if hi < len(list) {
		next := *r.URL
		nq := next.Query()
		nq.Set("page", strconv.Itoa(page+1))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<https://acme.freshdesk.com%s>; rel="next"`, next.RequestURI()))
	}
	out, _ := json.Marshal(list[lo:hi])
	w.Write(out)
}

func (f *fdFake) config(extra string) string {
	return fmt.Sprintf(`collectors:
  - name: fd
    type: freshdesk
    schedule: "@every 5m"
    url: %s
    api_key: %s
    retries: 1
    groups: {5001: Billing}
    statuses: {6: hold}
%s`, f.srv.URL, f.key, extra)
}

// fdSource builds the plugin with small pages and a sleep hook that
// records the waits instead of sleeping.
func fdSource(t *testing.T, yml string, perPage int) (*freshdesk, *[]time.Duration) {
	t.Helper()
	s := buildSource(t, yml).(*freshdesk)
	s.perPage = perPage
	return s, recordWaits(s.client)
}

// Monday 2026-11-02 12:00 UTC: a first run reads back to 2026-10-03 12:00.
var fdNow = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)

func recordTicketIDs(ts []record.Ticket) []string {
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.ID)
	}
	return ids
}

func TestFreshdeskMapping(t *testing.T) {
	f := newFDFake(t)
	s, _ := fdSource(t, f.config(""), 100)
	b, cur := collectOnce(t, s, nil, fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "1,2,3,4,5,8" {
		t.Fatalf("tickets %v, want 1,2,3,4,5,8 (6 and 7 rejected, 9 older than the window)", got)
	}
	if q := f.queries[0]; q.Get("updated_since") != "2026-10-03T11:59:59Z" || q.Get("per_page") != "100" || q.Get("page") != "1" {
		t.Errorf("first query %v", q)
	}
	byID := map[string]record.Ticket{}
	for _, tk := range b.Tickets {
		byID[tk.ID] = tk
	}
	want := map[string]record.Ticket{
		"1": {ID: "1", Queue: "Billing", Channel: "email", Priority: "high", Status: "open", Tags: []string{"billing", "vip"},
			CreatedAt: mustRFC3339("2026-11-02T08:00:00Z"), UpdatedAt: mustRFC3339("2026-11-02T09:00:00Z"), FirstReplyAt: mustRFC3339("2026-11-02T08:30:00Z")},
		"2": {ID: "2", Queue: "5002", Channel: "phone", Priority: "low", Status: "solved", Tags: []string{},
			CreatedAt: mustRFC3339("2026-11-02T08:05:00Z"), UpdatedAt: mustRFC3339("2026-11-02T09:00:00Z"), FirstReplyAt: mustRFC3339("2026-11-02T08:20:00Z"),
			SolvedAt: mustRFC3339("2026-11-02T08:50:00Z"), SLABreaches: []string{"first_reply"}},
		"3": {ID: "3", Channel: "chat", Priority: "medium", Status: "closed", Tags: []string{},
			CreatedAt: mustRFC3339("2026-11-02T08:10:00Z"), UpdatedAt: mustRFC3339("2026-11-02T09:00:00Z"), FirstReplyAt: mustRFC3339("2026-11-02T08:15:00Z"),
			SolvedAt: mustRFC3339("2026-11-02T08:55:00Z"), Reopens: 1, SLABreaches: []string{"next_reply"}},
		"4": {ID: "4", Queue: "Billing", Channel: "feedback_widget", Priority: "urgent", Status: "hold", Tags: []string{},
			CreatedAt: mustRFC3339("2026-11-02T08:20:00Z"), UpdatedAt: mustRFC3339("2026-11-02T09:10:00Z")},
		"5": {ID: "5", Channel: "portal", Priority: "low", Status: "deleted", Deleted: true, Tags: []string{},
			CreatedAt: mustRFC3339("2026-11-02T08:30:00Z"), UpdatedAt: mustRFC3339("2026-11-02T09:20:00Z")},
		"8": {ID: "8", Queue: "5002", Channel: "outbound_email", Priority: "medium", Status: "open", Tags: []string{},
			CreatedAt: mustRFC3339("2026-11-02T09:00:00Z"), UpdatedAt: mustRFC3339("2026-11-02T09:50:00Z")},
	}
	for id, w := range want {
		if g := byID[id]; fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", w) {
			t.Errorf("ticket %s:\n got %+v\nwant %+v", id, g, w)
		}
	}
	var rej []string
	for _, r := range b.Rejected {
		rej = append(rej, r.Reason+" "+r.Position)
	}
	wantRej := []string{
		"bad_time /api/v2/tickets?updated_since=2026-10-03T11:59:59Z&page=1 #5 (ticket 6)",
		"bad_json /api/v2/tickets?updated_since=2026-10-03T11:59:59Z&page=1 #6",
	}
	if strings.Join(rej, "\n") != strings.Join(wantRej, "\n") {
		t.Errorf("rejections:\n%s\nwant\n%s", strings.Join(rej, "\n"), strings.Join(wantRej, "\n"))
	}
	if string(cur) != `{"at":"2026-11-02T09:50:00Z","ids":["8"]}` {
		t.Errorf("cursor %s", cur)
	}
}

// Pages of two: the three tickets of 09:00 span two pages; the run pages
// on at one second and restarts from each new watermark, and a second
// run fetches only what changed since.
func TestFreshdeskPaginationAndIncrementalRun(t *testing.T) {
	f := newFDFake(t)
	s, _ := fdSource(t, f.config(""), 2)
	b, cur := collectOnce(t, s, nil, fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "1,2,3,4,5,8" || len(b.Rejected) != 2 {
		t.Fatalf("tickets %v, rejected %v", got, b.Rejected)
	}
	// Every page read: complete up to the run's start less the settle
	// lag (1m by default).
	if w := fdNow.Add(-time.Minute); !b.Watermark.Equal(w) {
		t.Errorf("complete run: watermark %s, want %s", b.Watermark, w)
	}
	var asked []string
	for _, q := range f.queries {
		asked = append(asked, q.Get("updated_since")[11:19]+"/"+q.Get("page"))
	}
	// 1,2 | (from 09:00) 1,2 seen -> page 2: 3,4 | (from 09:10) 4,5 |
	// (from 09:20) 5,6 | (from 09:30) 6,7 | (from 09:40) 7,8 | (from
	// 09:50) 8, the last page. The rejected 6 and 7 move the watermark
	// too, so they are rejected once.
	if w := "11:59:59/1 08:59:59/1 08:59:59/2 09:09:59/1 09:19:59/1 09:29:59/1 09:39:59/1 09:49:59/1"; strings.Join(asked, " ") != w {
		t.Errorf("queries (updated_since time/page):\n%s\nwant\n%s", strings.Join(asked, " "), w)
	}

	// An hour later: ticket 1 is resolved, ticket 10 is new.
	f.update("1", map[string]any{"status": 4, "updated_at": "2026-11-02T10:30:00Z", "stats": map[string]any{"resolved_at": "2026-11-02T10:30:00Z"}})
	f.update("10", map[string]any{"id": 10, "status": 2, "priority": 2, "source": 1, "group_id": 5001, "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:15:00Z", "stats": map[string]any{}})
	f.queries = nil
	b2, cur2 := collectOnce(t, s, cur, fdNow.Add(time.Hour))
	if got := recordTicketIDs(b2.Tickets); strings.Join(got, ",") != "10,1" || len(b2.Rejected) != 0 {
		t.Errorf("second run: tickets %v rejected %v, want 10,1 only", got, b2.Rejected)
	}
	if w := fdNow.Add(time.Hour - time.Minute); !b2.Watermark.Equal(w) {
		t.Errorf("second run: watermark %s, want %s", b2.Watermark, w)
	}
	// 8,10 | (from 10:15) 10,1 | (from 10:30) 1.
	if len(f.queries) != 3 || f.queries[0].Get("updated_since") != "2026-11-02T09:49:59Z" {
		t.Errorf("second run queries %v", f.queries)
	}
	if string(cur2) != `{"at":"2026-11-02T10:30:00Z","ids":["1"]}` {
		t.Errorf("cursor %s", cur2)
	}
	// Nothing changed: one request, nothing delivered, same cursor.
	b3, cur3 := collectOnce(t, s, cur2, fdNow.Add(2*time.Hour))
	if len(b3.Tickets) != 0 || string(cur3) != string(cur2) {
		t.Errorf("idle run: %v, cursor %s", recordTicketIDs(b3.Tickets), cur3)
	} // From the start in chunks of one record: a chunk ends at each page;
	// a run resumed from one reads exactly the rest.
	checkChunks(t, s, fdNow.Add(2*time.Hour), 1, 3)
}

// A ticket whose change reaches the list 40 seconds late, after a newer
// change of another ticket: without a settle lag the first run delivers
// the newer one, its watermark passes the late ticket's updated_at and
// the late ticket is never read (1 ticket created); with the default lag
// (1m) both arrive (2 created), and a third run, which lists both again,
// adds nothing.
func TestFreshdeskSettleLagKeepsLateTickets(t *testing.T) {
	for _, tc := range []struct {
		extra   string
		want    string // ticket ids per run
		created float64
	}{
		{"    settle_lag: 0s", "21||", 1}, // ticket 20 lost for good
		{"", "|20,21|", 2},
	} {
		f := newFDFake(t)
		f.tickets = map[string]json.RawMessage{}
		f.update("20", map[string]any{"id": 20, "status": 2, "priority": 1, "source": 1, "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z", "stats": map[string]any{}})
		f.update("21", map[string]any{"id": 21, "status": 2, "priority": 1, "source": 1, "created_at": "2026-11-02T10:00:10Z", "updated_at": "2026-11-02T10:00:10Z", "stats": map[string]any{}})
		f.visibleAt = map[string]time.Time{"20": mustRFC3339("2026-11-02T10:00:40Z")}
		s, _ := fdSource(t, f.config(tc.extra), 100)
		runs := []time.Time{mustRFC3339("2026-11-02T10:00:30Z"), mustRFC3339("2026-11-02T10:02:00Z"), mustRFC3339("2026-11-02T10:03:00Z")}
		got, created := pollIntoModel(t, f.config(tc.extra), s, runs, func(now time.Time) { f.now = now })
		if got != tc.want || created != tc.created {
			t.Errorf("%q: tickets per run %q, %v created; want %q, %v", tc.extra, got, created, tc.want, tc.created)
		}
	}
}

// A ticket updated while the run pages moves to the end of the
// updated_at order. Asking for "page 2" of the first query would then
// skip ticket 3; restarting from the watermark loses nothing.
func TestFreshdeskUpdateWhilePaging(t *testing.T) {
	f := newFDFake(t)
	f.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 2 {
			f.update("2", map[string]any{"updated_at": "2026-11-02T11:00:00Z", "priority": 4})
		}
		return false
	}
	s, _ := fdSource(t, f.config(""), 2)
	b, _ := collectOnce(t, s, nil, fdNow)
	got := recordTicketIDs(b.Tickets)
	if strings.Join(got, ",") != "1,2,3,4,5,8,2" {
		t.Errorf("tickets %v, want 1,2,3,4,5,8 and 2 again (updated)", got)
	}
	if last := b.Tickets[len(b.Tickets)-1]; last.Priority != "urgent" {
		t.Errorf("the updated ticket 2 = %+v", last)
	}
}

// The fixture's hand-computed totals: created 1,2,3,4,8 (the spam ticket 5
// is first seen deleted: it counts nowhere, as in Freshdesk's reports); solved 2 (resolved 08:50) and 3 (closed
// 08:55); first replies of 1, 2, 3 after 30, 15 and 5 minutes; resolution
// of 2 and 3 after 45 minutes each; the reopen of 3; breaches: first_reply
// of 2, next_reply of 3 (ticket 4 is escalated for another reason: no
// breach); open: 1, 4 (hold) and 8.
var fdTotals = map[string]float64{
	"servq_tickets_created_total":              5,
	"servq_tickets_solved_total":               2,
	"servq_ticket_first_reply_seconds_count":   3,
	"servq_ticket_first_reply_seconds_sum":     50 * 60,
	"servq_ticket_resolution_seconds_count":    2,
	"servq_ticket_resolution_seconds_sum":      90 * 60,
	"servq_tickets_reopened_total":             1,
	"servq_ticket_sla_breaches_total":          2,
	"servq_tickets_open":                       3,
	"servq_tickets_solved_first_contact_total": 0,
}

// A run that reaches its request budget commits its pages; the next run
// fails on a 500 mid-way (nothing committed); a rerun from the committed
// cursor completes. The quality model then holds exactly the fixture's
// totals, and a further update counts only its new events.
func TestFreshdeskFaultAndRerunGiveExactTotals(t *testing.T) {
	f := newFDFake(t)
	yml := f.config("    max_requests_per_run: 3\n")
	m := testModel(t, testConfig(t, yml))
	s, _ := fdSource(t, yml, 2)
	b, cur := collectOnce(t, s, nil, fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "1,2,3,4" {
		t.Fatalf("budget run: %v", got)
	}
	commitRun(t, m, "fd", b, cur)

	f.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("updated_since") == "2026-11-02T09:19:59Z" {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"code":"internal_error","message":"We're sorry, but something went wrong."}`))
			return true
		}
		return false
	}
	failed := &collectors.Batch{Now: fdNow}
	if _, err := s.Collect(context.Background(), cur, failed); err == nil || !strings.Contains(err.Error(), "500 Internal Server Error: internal_error") && !strings.Contains(err.Error(), "500 Internal Server Error") {
		t.Fatalf("a failing page: err = %v", err)
	}
	if len(failed.Tickets) == 0 {
		t.Error("the failed run read nothing before the fault; the test should fail mid-run")
	}
	// Not committed. The reruns start from the old cursor (three
	// requests each) until a run brings nothing new.
	f.hook = nil
	var got []string
	cur2 := cur
	for range 10 {
		b2, next := collectOnce(t, s, cur2, fdNow)
		commitRun(t, m, "fd", b2, next)
		got = append(got, recordTicketIDs(b2.Tickets)...)
		if len(b2.Tickets) == 0 {
			break
		}
		cur2 = next
	}
	if strings.Join(got, ",") != "5,8" {
		t.Errorf("reruns: %v", got)
	}
	expectValues(t, familyTotals(t, m), fdTotals)

	// A crash between fetch and commit: the same run twice, both committed.
	f.update("1", map[string]any{"status": 4, "updated_at": "2026-11-02T10:30:00Z", "stats": map[string]any{"resolved_at": "2026-11-02T10:30:00Z"}})
	b3, cur3 := collectOnce(t, s, cur2, fdNow.Add(time.Hour))
	commitRun(t, m, "fd", b3, cur3)
	b4, cur4 := collectOnce(t, s, cur2, fdNow.Add(time.Hour))
	commitRun(t, m, "fd", b4, cur4)
	want := maps.Clone(fdTotals)
	want["servq_tickets_solved_total"] = 3
	want["servq_ticket_resolution_seconds_count"] = 3
	want["servq_ticket_resolution_seconds_sum"] += 150 * 60 // 08:00 -> 10:30
	want["servq_tickets_open"] = 2
	expectValues(t, familyTotals(t, m), want)
}

func TestFreshdeskHonoursRetryAfter(t *testing.T) {
	f := newFDFake(t)
	f.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "7")
			w.Header().Set("X-Ratelimit-Total", "700")
			w.Header().Set("X-Ratelimit-Remaining", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	s, waits := fdSource(t, f.config(""), 100)
	b, _ := collectOnce(t, s, nil, fdNow)
	if len(b.Tickets) != 6 || len(*waits) != 1 || (*waits)[0] != 7*time.Second {
		t.Errorf("%d tickets after waits %v, want 6 after one 7s wait", len(b.Tickets), *waits)
	}
}

func TestFreshdeskAuthFailureIsClearAndSecretFree(t *testing.T) {
	f := newFDFake(t)
	f.key = "the-right-key"
	yml := strings.Replace(f.config(""), "api_key: the-right-key", "api_key: wr0ng-s3cret", 1)
	s, waits := fdSource(t, yml, 100)
	_, err := s.Collect(context.Background(), nil, &collectors.Batch{Now: fdNow})
	if err == nil {
		t.Fatal("no error with a wrong key")
	}
	msg := err.Error()
	enc := base64.StdEncoding.EncodeToString([]byte("wr0ng-s3cret:X"))
	if !strings.Contains(msg, "GET /api/v2/tickets: 401 Unauthorized") || !strings.Contains(msg, "You have to be logged in") ||
		strings.Contains(msg, "wr0ng-s3cret") || strings.Contains(msg, enc) || len(*waits) != 0 {
		t.Errorf("error %q (waits %v): want the 401 and Freshdesk's message, no retry, no secret", msg, *waits)
	}
}

func TestFreshdeskMalformedPageFailsTheRun(t *testing.T) {
	f := newFDFake(t)
	f.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		w.Write([]byte(`[{"id": 1, "status": 2`))
		return true
	}
	s, _ := fdSource(t, f.config(""), 100)
	_, err := s.Collect(context.Background(), nil, &collectors.Batch{Now: fdNow})
	if err == nil || !strings.Contains(err.Error(), "GET /api/v2/tickets: the answer is not the expected JSON") {
		t.Errorf("err = %v", err)
	}
}

// max_requests_per_run: 1 makes every run one page; the runs together
// deliver every ticket exactly once. rate_limit_reserve ends a run early.
// A run cut short is complete up to the last updated_at it delivered
// (tickets come in that order; more of its second may follow), the run
// that reads the last page up to its start.
func TestFreshdeskBudgetContinuesNextRun(t *testing.T) {
	f := newFDFake(t)
	s, _ := fdSource(t, f.config("    max_requests_per_run: 1\n"), 2)
	var cur []byte
	var all, marks []string
	rejected := 0
	for run := 0; run < 20; run++ {
		b, next := collectOnce(t, s, cur, fdNow)
		all = append(all, recordTicketIDs(b.Tickets)...)
		marks = append(marks, b.Watermark.Format("15:04"))
		rejected += len(b.Rejected)
		if string(next) == string(cur) && len(b.Tickets) == 0 {
			break
		}
		cur = next
	}
	if strings.Join(all, ",") != "1,2,3,4,5,8" || rejected != 2 {
		t.Errorf("over the runs: %v, %d rejected; want each ticket once and the 2 rejections", all, rejected)
	}
	// Runs: 1,2 | page 2 of 09:00 is the one request | 3,4 | 5 | (6) | (7)
	// | 8 | the last page: complete at fdNow less the settle lag.
	if want := "09:00 09:00 09:10 09:20 09:30 09:40 09:50 11:59"; strings.Join(marks, " ") != want {
		t.Errorf("watermarks of the runs: %s, want %s", strings.Join(marks, " "), want)
	}

	f2 := newFDFake(t)
	f2.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("X-Ratelimit-Remaining", "3")
		return false
	}
	s2, _ := fdSource(t, f2.config("    rate_limit_reserve: 700\n"), 2)
	b, c := collectOnce(t, s2, nil, fdNow)
	if len(f2.queries) != 1 || strings.Join(recordTicketIDs(b.Tickets), ",") != "1,2" || !strings.Contains(string(c), `"ids":["1","2"]`) {
		t.Errorf("reserve: %d requests, %v, cursor %s", len(f2.queries), recordTicketIDs(b.Tickets), c)
	}
	if want := mustRFC3339("2026-11-02T09:00:00Z"); !b.Watermark.Equal(want) {
		t.Errorf("reserve: watermark %s, want the last updated_at delivered, %s", b.Watermark, want)
	}
}

func TestFreshdeskConfigErrors(t *testing.T) {
	base := "collectors:\n  - name: fd\n    type: freshdesk\n    schedule: \"@hourly\"\n"
	dir := t.TempDir()
	keyFile := dir + "/key"
	os.WriteFile(keyFile, []byte("filekey\n"), 0o600)
	for spec, want := range map[string]string{
		"    api_key: k\n": "test.yml:2: collectors[0].url: is required (e.g. https://acme.freshdesk.com)",
		"    url: ftp://acme.freshdesk.com\n    api_key: k\n":                                      `test.yml:5: collectors[0].url: "ftp://acme.freshdesk.com" is not an http(s) URL`,
		"    url: https://acme.freshdesk.com\n":                                                    "collectors[0].api_key: is required",
		"    url: https://acme.freshdesk.com\n    api_key: k\n    api_key_file: " + keyFile + "\n": "test.yml:7: collectors[0].api_key_file: set either the value or the _file variant, not both",
		"    url: https://acme.freshdesk.com\n    api_key: k\n    statuses: {6: frozen}\n":         `test.yml:7: collectors[0].statuses: status 6: "frozen" is not one of new, open`,
		"    url: https://acme.freshdesk.com\n    api_key: k\n    retries: 11\n":                   "test.yml:7: collectors[0].retries: must be between 0 and 10",
		"    url: https://acme.freshdesk.com\n    api_key: k\n    settle_lag: 2d\n":                "test.yml:7: collectors[0].settle_lag: 48h0m0s is more than a day",
		"    url: https://acme.freshdesk.com\n    api_key: k\n    api_token: x\n":                  "api_token",
		"    url: https://acme.freshdesk.com\n    api_key: k\n    groups: {billing: 1}\n":          "groups",
	} {
		expectConfigError(t, base, spec, want, "filekey")
	}
	s, err := buildSourceErr(base + "    url: https://acme.freshdesk.com/\n    api_key_file: " + keyFile + "\n")
	if err != nil || s.(*freshdesk).base.String() != "https://acme.freshdesk.com" {
		t.Errorf("api_key_file: %v", err)
	}
	if !slices.Contains(collectors.Types(), "freshdesk") {
		t.Error("not registered")
	}
}

// The documented example entry builds.
func TestFreshdeskExampleConfig(t *testing.T) {
	t.Setenv("FRESHDESK_API_KEY", "k")
	s, err := buildSourceErr("collectors:\n" + exampleYAML(t, "freshdesk"))
	if err != nil {
		t.Fatal(err)
	}
	if fd := s.(*freshdesk); fd.groups[5000123456] != "Billing" || fd.statuses[6] != "hold" || fd.statuses[4] != "solved" {
		t.Errorf("%+v", fd)
	}
}
