package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
)

// hjNow is the clock of the http_json tests: Monday 2026-11-23 10:00 UTC.
// The first run reads back the default 30 days, to 2026-10-24 10:00 UTC.
var (
	hjNow   = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	hjSince = hjNow.Add(-30 * 24 * time.Hour)
)

// hjAPI is a fake REST API on 127.0.0.1: handle answers the n-th request
// (from 1); every request is logged as "METHOD path?query".
type hjAPI struct {
	*httptest.Server
	mu   sync.Mutex
	n    int
	log  []string
	auth []string
}

func newHJAPI(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *hjAPI {
	a := &hjAPI{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.log = append(a.log, r.Method+" "+r.URL.RequestURI())
		a.auth = append(a.auth, r.Header.Get("Authorization"))
		a.n++
		n := a.n
		a.mu.Unlock()
		handle(w, r, n)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *hjAPI) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := append([]string(nil), a.log...)
	a.log = nil
	return out
}

// hjSource builds an http_json collector named "api" whose waits are
// recorded instead of slept.
func hjSource(t *testing.T, spec string, base string) (*httpJSON, *[]time.Duration) {
	t.Helper()
	s := buildSource(t, "collectors:\n  - name: api\n    type: http_json\n    schedule: \"@every 5m\"\n"+strings.ReplaceAll(spec, "BASE", base)).(*httpJSON)
	return s, recordWaits(s.client)
}

func hjCollect(t *testing.T, s collectors.Source, cursor []byte) (*collectors.Batch, []byte) {
	t.Helper()
	return collectOnce(t, s, cursor, hjNow)
}

func hjJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func hjIDs[T any](recs []T, id func(T) string) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, id(r))
	}
	return out
}

func hjTicketIDs(b *collectors.Batch) []string {
	return hjIDs(b.Tickets, func(t record.Ticket) string { return t.ID })
}

// Zendesk's cursor-based incremental ticket export, as documented at
// https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
// (GET /api/v2/incremental/tickets/cursor.json; start_time in unix seconds
// on the first request only, then cursor=<after_cursor>; the answer has
// tickets, after_cursor, after_url, before_cursor and end_of_stream) and
// the ticket object of .../tickets/tickets/ (via.channel, group_id, tags,
// satisfaction_rating.score). The stream cursor is kept between runs.
func TestHTTPJSONZendeskCursorStreamMappingAndIncremental(t *testing.T) {
	zdTicket := func(id int, status, created, updated string, tags ...string) map[string]any {
		return map[string]any{"id": id, "url": fmt.Sprintf("https://example.zendesk.com/api/v2/tickets/%d.json", id),
			"via": map[string]any{"channel": "email"}, "created_at": created, "updated_at": updated, "type": "question",
			"subject": "Help", "priority": "high", "status": status, "group_id": 360001, "tags": tags,
			"satisfaction_rating": map[string]any{"score": "good"}}
	}
	page := func(tickets []any, after string, end bool) map[string]any {
		return map[string]any{"tickets": tickets, "after_cursor": after, "before_cursor": nil,
			"after_url": "https://example.zendesk.com/api/v2/incremental/tickets/cursor.json?cursor=" + after, "end_of_stream": end}
	}
	api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path != "/api/v2/incremental/tickets/cursor.json" {
			http.NotFound(w, r)
			return
		}
		switch r.URL.Query().Get("cursor") {
		case "":
			hjJSON(w, page([]any{
				zdTicket(101, "open", "2026-11-20T09:00:00Z", "2026-11-20T09:30:00Z", "vip", "billing"),
				zdTicket(102, "solved", "2026-11-20T10:00:00Z", "2026-11-21T08:00:00Z"),
			}, "MTU3NjYxMzUzOS4wfHw0Njd8", false))
		case "MTU3NjYxMzUzOS4wfHw0Njd8":
			hjJSON(w, page([]any{zdTicket(103, "pending", "2026-11-22T12:00:00Z", "2026-11-22T12:05:00Z")}, "MTU3NjYxMzUzOS4wfHw0Njh8", true))
		case "MTU3NjYxMzUzOS4wfHw0Njh8":
			// The stream again holds 103 at the watermark (delivered
			// already) and a later update of 101.
			hjJSON(w, page([]any{
				zdTicket(103, "pending", "2026-11-22T12:00:00Z", "2026-11-22T12:05:00Z"),
				zdTicket(101, "solved", "2026-11-20T09:00:00Z", "2026-11-23T09:00:00Z", "vip"),
			}, "MTU3NjYxMzUzOS4wfHw0Njl8", true))
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	s, _ := hjSource(t, `    url: BASE/api/v2/incremental/tickets/cursor.json
    auth_value: Bearer zd-oauth-token
    record: ticket
    items: tickets
    mapping: {id: id, created_at: created_at, updated_at: updated_at, status: status, priority: priority,
      queue: group_id, channel: via.channel, tags: tags, satisfaction: satisfaction_rating.score}
    pagination: {type: cursor, next_cursor: after_cursor, cursor_param: cursor, last_page: end_of_stream, keep_cursor: true}
    incremental: {since_param: start_time, since_format: unix, watermark: updated_at}
`, api.URL)
	b, cur := hjCollect(t, s, nil)
	want := []record.Ticket{
		{ID: "101", Queue: "360001", Channel: "email", Priority: "high", Status: "open", Tags: []string{"vip", "billing"},
			CreatedAt: mustRFC3339("2026-11-20T09:00:00Z"), UpdatedAt: mustRFC3339("2026-11-20T09:30:00Z"), Satisfaction: "good"},
		{ID: "102", Queue: "360001", Channel: "email", Priority: "high", Status: "solved",
			CreatedAt: mustRFC3339("2026-11-20T10:00:00Z"), UpdatedAt: mustRFC3339("2026-11-21T08:00:00Z"), Satisfaction: "good"},
		{ID: "103", Queue: "360001", Channel: "email", Priority: "high", Status: "pending",
			CreatedAt: mustRFC3339("2026-11-22T12:00:00Z"), UpdatedAt: mustRFC3339("2026-11-22T12:05:00Z"), Satisfaction: "good"},
	}
	if !reflect.DeepEqual(b.Tickets, want) || len(b.Rejected) != 0 {
		t.Fatalf("tickets:\n got %+v\nwant %+v\nrejected %v", b.Tickets, want, b.Rejected)
	}
	wantReqs := []string{
		fmt.Sprintf("GET /api/v2/incremental/tickets/cursor.json?start_time=%d", hjSince.Unix()),
		"GET /api/v2/incremental/tickets/cursor.json?cursor=MTU3NjYxMzUzOS4wfHw0Njd8",
	}
	if got := api.requests(); !reflect.DeepEqual(got, wantReqs) {
		t.Errorf("requests %q, want %q", got, wantReqs)
	}
	if api.auth[0] != "Bearer zd-oauth-token" {
		t.Errorf("Authorization = %q", api.auth[0])
	}
	var c hjCursor
	json.Unmarshal(cur, &c)
	if c.Stream != "MTU3NjYxMzUzOS4wfHw0Njh8" || c.Watermark != "2026-11-22T12:05:00Z" || !reflect.DeepEqual(c.IDs, []string{"103"}) || c.Round != nil {
		t.Errorf("cursor %s", cur)
	}
	// Second run: from the kept stream cursor, without start_time; 103 at
	// the watermark is not delivered again.
	b2, cur2 := hjCollect(t, s, cur)
	if got := api.requests(); !reflect.DeepEqual(got, []string{"GET /api/v2/incremental/tickets/cursor.json?cursor=MTU3NjYxMzUzOS4wfHw0Njh8"}) {
		t.Errorf("second run requests %q", got)
	}
	if ids := hjTicketIDs(b2); !reflect.DeepEqual(ids, []string{"101"}) || b2.Tickets[0].Status != "solved" {
		t.Errorf("second run tickets %+v", b2.Tickets)
	}
	json.Unmarshal(cur2, &c)
	if c.Stream != "MTU3NjYxMzUzOS4wfHw0Njl8" || c.Watermark != "2026-11-23T09:00:00Z" {
		t.Errorf("second cursor %s", cur2)
	}
}

// Freshdesk's "List All Tickets", as documented at
// https://developers.freshdesk.com/api/#list_all_tickets and #pagination:
// a JSON array, updated_since (ISO 8601 UTC), per_page, include=stats
// (stats.first_responded_at, stats.resolved_at), numeric status (2 open,
// 3 pending, 4 resolved, 5 closed), the next page in a Link header with
// rel="next", and 429 with Retry-After (#ratelimit). Basic auth with the
// API key as user and X as password.
func TestHTTPJSONFreshdeskLinkPaginationRetryAfterAndIncremental(t *testing.T) {
	fd := func(id, status int, created, updated, replied, resolved string) map[string]any {
		return map[string]any{"id": id, "subject": "Order", "status": status, "priority": 2, "source": 1, "group_id": 77,
			"fr_escalated": false, "is_escalated": false, "created_at": created, "updated_at": updated,
			"stats": map[string]any{"agent_responded_at": replied, "first_responded_at": replied, "resolved_at": resolved, "closed_at": nil}}
	}
	const basic = "Basic ZmRfYXBpX2tleTpY" // fd_api_key:X
	var base string
	api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		q := r.URL.Query()
		if r.URL.Path != "/api/v2/tickets" || r.Header.Get("Authorization") != basic || q.Get("include") != "stats" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"code":"invalid_credentials","message":"You have to be logged in to perform this action."}`))
			return
		}
		if n == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		switch since, pg := q.Get("updated_since"), q.Get("page"); {
		case since == "2026-10-24T10:00:00Z" && pg == "":
			w.Header().Set("Link", `<`+base+`/api/v2/tickets?include=stats&per_page=2&updated_since=2026-10-24T10:00:00Z&page=2>; rel="next"`)
			hjJSON(w, []any{
				fd(1, 4, "2026-11-20T08:00:00Z", "2026-11-20T11:00:00Z", "2026-11-20T08:20:00Z", "2026-11-20T11:00:00Z"),
				fd(2, 2, "2026-11-21T08:00:00Z", "2026-11-21T08:00:00Z", "", ""),
			})
		case since == "2026-10-24T10:00:00Z" && pg == "2":
			hjJSON(w, []any{fd(3, 3, "2026-11-22T08:00:00Z", "2026-11-22T09:15:00Z", "2026-11-22T09:15:00Z", "")})
		case since == "2026-11-22T09:15:00Z":
			hjJSON(w, []any{
				fd(3, 3, "2026-11-22T08:00:00Z", "2026-11-22T09:15:00Z", "2026-11-22T09:15:00Z", ""),
				fd(2, 5, "2026-11-21T08:00:00Z", "2026-11-23T08:00:00Z", "2026-11-22T10:00:00Z", "2026-11-23T08:00:00Z"),
			})
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"description":"Validation failed","errors":[{"field":"updated_since","message":"invalid","code":"invalid_value"}]}`))
		}
	})
	base = api.URL
	s, waits := hjSource(t, `    url: BASE/api/v2/tickets?include=stats&per_page=2
    auth_value: "`+basic+`"
    record: ticket
    mapping: {id: id, created_at: created_at, updated_at: updated_at, status: status, queue: group_id,
      first_reply_at: stats.first_responded_at, solved_at: stats.resolved_at}
    status_map: {"2": open, "3": pending, "4": solved, "5": closed}
    pagination: {type: link}
    incremental: {since_param: updated_since, watermark: updated_at}
`, api.URL)
	b, cur := hjCollect(t, s, nil)
	if !reflect.DeepEqual(*waits, []time.Duration{7 * time.Second}) {
		t.Errorf("waits %v, want the Retry-After of 7s", *waits)
	}
	if ids := hjTicketIDs(b); !reflect.DeepEqual(ids, []string{"1", "2", "3"}) || len(b.Rejected) != 0 {
		t.Fatalf("tickets %v, rejected %v", ids, b.Rejected)
	}
	t1 := b.Tickets[0]
	if t1.Status != "solved" || t1.Queue != "77" || !t1.FirstReplyAt.Equal(mustRFC3339("2026-11-20T08:20:00Z")) || !t1.SolvedAt.Equal(mustRFC3339("2026-11-20T11:00:00Z")) {
		t.Errorf("ticket 1 = %+v", t1)
	}
	if t2 := b.Tickets[1]; t2.Status != "open" || !t2.FirstReplyAt.IsZero() || t2.Solved() {
		t.Errorf("ticket 2 = %+v", t2)
	}
	reqs := api.requests()
	if len(reqs) != 3 || reqs[0] != reqs[1] || !strings.HasSuffix(reqs[2], "&page=2") {
		t.Errorf("requests %q: the 429 retried, then the Link followed", reqs)
	}
	// Second run: since the watermark; 3 (at it) is skipped, 2 closed.
	b2, cur2 := hjCollect(t, s, cur)
	if got := api.requests(); len(got) != 1 || !strings.Contains(got[0], "updated_since=2026-11-22T09%3A15%3A00Z") {
		t.Errorf("second run requests %q", got)
	}
	if ids := hjTicketIDs(b2); !reflect.DeepEqual(ids, []string{"2"}) || b2.Tickets[0].Status != "closed" {
		t.Errorf("second run tickets %+v", b2.Tickets)
	}
	var c hjCursor
	json.Unmarshal(cur2, &c)
	if c.Watermark != "2026-11-23T08:00:00Z" || !reflect.DeepEqual(c.IDs, []string{"2"}) {
		t.Errorf("cursor %s", cur2)
	}
}

// Help Scout Mailbox API 2.0 "List Conversations", as documented at
// https://developer.helpscout.com/mailbox-api/endpoints/conversations/list/
// and .../overview/pagination/: GET /v2/conversations with modifiedSince
// and page, the items in _embedded.conversations, and
// page.{size,totalElements,totalPages,number}. OAuth2 bearer token.
func TestHTTPJSONHelpScoutPageNumbersAndTotalPages(t *testing.T) {
	conv := func(id int, status, created, closed, updated string) map[string]any {
		c := map[string]any{"id": id, "number": id + 1000, "type": "email", "status": status, "state": "published",
			"mailboxId": 85, "createdAt": created, "userUpdatedAt": updated, "source": map[string]any{"type": "email", "via": "customer"}}
		if closed != "" {
			c["closedAt"] = closed
		}
		return c
	}
	pages := [][]any{
		{conv(1, "closed", "2026-11-20T08:00:00Z", "2026-11-20T09:00:00Z", "2026-11-20T09:00:00Z"), conv(2, "active", "2026-11-21T08:00:00Z", "", "2026-11-21T08:00:00Z")},
		{conv(3, "pending", "2026-11-22T08:00:00Z", "", "2026-11-22T08:30:00Z")},
	}
	api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		q := r.URL.Query()
		if r.URL.Path != "/v2/conversations" || q.Get("modifiedSince") != "2026-10-24T10:00:00Z" || q.Get("status") != "all" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var p int
		fmt.Sscan(q.Get("page"), &p)
		if p < 1 || p > len(pages) {
			t.Errorf("page %q requested, past totalPages", q.Get("page"))
			hjJSON(w, map[string]any{"page": map[string]any{"size": 2, "totalElements": 3, "totalPages": 2, "number": p}})
			return
		}
		hjJSON(w, map[string]any{"_embedded": map[string]any{"conversations": pages[p-1]},
			"page": map[string]any{"size": 2, "totalElements": 3, "totalPages": 2, "number": p}})
	})
	s, _ := hjSource(t, `    url: BASE/v2/conversations?status=all
    auth_value: Bearer hs-token
    record: ticket
    items: _embedded.conversations
    mapping: {id: id, created_at: createdAt, updated_at: userUpdatedAt, solved_at: closedAt, status: status, queue: mailboxId, channel: source.type}
    status_map: {active: open, closed: solved}
    pagination: {type: page, page_param: page, total_pages: page.totalPages}
    incremental: {since_param: modifiedSince, watermark: userUpdatedAt}
`, api.URL)
	b, _ := hjCollect(t, s, nil)
	if ids := hjTicketIDs(b); !reflect.DeepEqual(ids, []string{"1", "2", "3"}) {
		t.Fatalf("tickets %v rejected %v", ids, b.Rejected)
	}
	if tk := b.Tickets[0]; tk.Status != "solved" || tk.Queue != "85" || tk.Channel != "email" || !tk.SolvedAt.Equal(mustRFC3339("2026-11-20T09:00:00Z")) {
		t.Errorf("conversation 1 = %+v", tk)
	}
	if got := api.requests(); len(got) != 2 {
		t.Errorf("requests %q, want two pages and no third", got)
	}
}

// Aircall "List all calls", as documented at
// https://developer.aircall.io/api-references/#list-all-calls and the call
// object (#call): GET /v1/calls with from (unix), order, page and
// per_page; the answer holds calls and meta; times are unix seconds,
// answered_at is null for a missed call and missed_call_reason says why.
// Past the last page the calls array is empty.
func TestHTTPJSONAircallCallsPagesUntilEmpty(t *testing.T) {
	call := func(id int, started, answered, ended int64, duration int, reason any) map[string]any {
		var ans any
		if answered > 0 {
			ans = answered
		}
		return map[string]any{"id": id, "direct_link": fmt.Sprintf("https://api.aircall.io/v1/calls/%d", id), "direction": "inbound",
			"status": "done", "started_at": started, "answered_at": ans, "ended_at": ended, "duration": duration,
			"missed_call_reason": reason, "number": map[string]any{"id": 9, "name": "Support line"}, "user": map[string]any{"name": "Ann"}}
	}
	T := mustRFC3339("2026-11-20T09:00:00Z").Unix()
	pages := [][]any{
		{call(1, T, T+12, T+200, 200, nil), call(2, T+60, 0, T+63, 3, "short_abandoned")},
		{call(3, T+120, 0, T+420, 300, "no_available_agent")},
		{},
	}
	api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		q := r.URL.Query()
		var p int
		fmt.Sscan(q.Get("page"), &p)
		if r.URL.Path != "/v1/calls" || q.Get("from") != fmt.Sprint(hjSince.Unix()) || q.Get("per_page") != "2" || p < 1 || p > 3 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		hjJSON(w, map[string]any{"calls": pages[p-1], "meta": map[string]any{"count": len(pages[p-1]), "total": 3, "current_page": p, "per_page": 2}})
	})
	s, _ := hjSource(t, `    url: BASE/v1/calls?order=asc
    auth_value: Basic YWlyY2FsbDp0b2tlbg==
    record: call
    items: calls
    mapping: {id: id, queue: number.name, agent: user.name, enqueued_at: started_at, answered_at: answered_at, ended_at: ended_at, outcome: missed_call_reason}
    outcome_map: {"": answered, short_abandoned: abandoned, abandoned_in_ivr: abandoned, abandoned_in_classic: abandoned,
      no_available_agent: timeout, agents_did_not_answer: timeout, out_of_opening_hours: timeout}
    time_format: unix
    pagination: {type: page, page_param: page, per_page_param: per_page, per_page: 2}
    incremental: {since_param: from, since_format: unix, watermark: started_at}
`, api.URL)
	b, _ := hjCollect(t, s, nil)
	at := func(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
	want := []record.Call{
		{ID: "1", Queue: "Support line", Agent: "Ann", EnqueuedAt: at(T), AnsweredAt: at(T + 12), EndedAt: at(T + 200), Wait: 12 * time.Second, Outcome: record.OutcomeAnswered},
		{ID: "2", Queue: "Support line", Agent: "Ann", EnqueuedAt: at(T + 60), EndedAt: at(T + 63), Wait: 3 * time.Second, Outcome: record.OutcomeAbandoned},
		{ID: "3", Queue: "Support line", Agent: "Ann", EnqueuedAt: at(T + 120), EndedAt: at(T + 420), Wait: 300 * time.Second, Outcome: record.OutcomeTimeout},
	}
	if !reflect.DeepEqual(b.Calls, want) || len(b.Rejected) != 0 {
		t.Errorf("calls:\n got %+v\nwant %+v\nrejected %v", b.Calls, want, b.Rejected)
	}
	if got := api.requests(); len(got) != 3 {
		t.Errorf("requests %q: pages 1, 2 and the empty 3", got)
	} // In chunks of one record: a chunk ends at each page; a run resumed
	// from one continues at the next page.
	checkChunks(t, s, hjNow, 1, 3)
}

// An in-house survey endpoint (no vendor): POST with a JSON body that
// carries the since value, no pagination; a bad score is rejected with its
// position, the other responses are delivered.
func TestHTTPJSONPostWithoutPaginationSurveys(t *testing.T) {
	api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		var body struct {
			UpdatedAfter string `json:"updated_after"`
			Form         string `json:"form"`
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Api-Key") != "k3y" ||
			r.Header.Get("Accept-Language") != "en" || json.NewDecoder(r.Body).Decode(&body) != nil || body.UpdatedAfter != "2026-10-24T10:00:00Z" || body.Form != "csat" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Write([]byte(`{"result": {"responses": [
			{"id": "r1", "score": 5, "answered": "2026-11-20T10:00:00Z", "ticket": 101, "team": "billing", "updated": "2026-11-20T10:00:00Z"},
			{"id": "r2", "score": 11, "answered": "2026-11-20T11:00:00Z", "updated": "2026-11-20T11:00:00Z"},
			{"id": "r3", "score": 2, "answered": "2026-11-21T11:00:00Z", "updated": "2026-11-21T11:00:00Z"}]}}`))
	})
	s, _ := hjSource(t, `    url: BASE/internal/surveys/search
    method: POST
    body: '{"updated_after": "{{.since}}", "form": "csat"}'
    headers: {Accept-Language: en}
    auth_header: X-Api-Key
    auth_value: k3y
    record: survey
    survey: post-contact
    kind: csat
    items: result.responses
    mapping: {id: id, score: score, submitted_at: answered, ticket_id: ticket, queue: team}
    incremental: {watermark: updated}
`, api.URL)
	b, cur := hjCollect(t, s, nil)
	want := []record.SurveyResponse{
		{ID: "r1", Survey: "post-contact", Kind: record.KindCSAT, Score: 5, HasScore: true, TicketID: "101", Queue: "billing", SubmittedAt: mustRFC3339("2026-11-20T10:00:00Z")},
		{ID: "r3", Survey: "post-contact", Kind: record.KindCSAT, Score: 2, HasScore: true, SubmittedAt: mustRFC3339("2026-11-21T11:00:00Z")},
	}
	if !reflect.DeepEqual(b.Surveys, want) {
		t.Errorf("surveys:\n got %+v\nwant %+v", b.Surveys, want)
	}
	if len(b.Rejected) != 1 || b.Rejected[0].Reason != "bad_score" || b.Rejected[0].Position != "/internal/surveys/search page 1 item 1" ||
		b.Rejected[0].Err.Error() != `"score" (score): "11" is not a score from 1 to 5` {
		t.Errorf("rejected %+v", b.Rejected)
	}
	// The rejected response still moved the watermark: it is not asked for again.
	if !strings.Contains(string(cur), `"watermark":"2026-11-21T11:00:00Z"`) {
		t.Errorf("cursor %s", cur)
	}
}

// hjTicketAPI is an in-house ticket API (no vendor) with cursor pagination:
// ?updated_since=&cursor=, the items in data.tickets and the next cursor
// in meta.next_cursor (absent on the last page). fail, when set, answers a
// request instead (malformed JSON, 503, ...).
type hjTicketAPI struct {
	pages map[string][][]map[string]any // since -> pages -> items
	fail  func(w http.ResponseWriter, page int) bool
}

func (a *hjTicketAPI) serve(t *testing.T) *hjAPI {
	return newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		q := r.URL.Query()
		pages, ok := a.pages[q.Get("updated_since")]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error": "unexpected updated_since ` + q.Get("updated_since") + `"}`))
			return
		}
		p := 0
		if c := q.Get("cursor"); c != "" {
			fmt.Sscanf(c, "p%d", &p)
		}
		if a.fail != nil && a.fail(w, p) {
			return
		}
		meta := map[string]any{}
		if p+1 < len(pages) {
			meta["next_cursor"] = fmt.Sprintf("p%d", p+1)
		}
		var tickets []any
		if p < len(pages) {
			for _, tk := range pages[p] {
				tickets = append(tickets, tk)
			}
		}
		hjJSON(w, map[string]any{"data": map[string]any{"tickets": tickets}, "meta": meta})
	})
}

const hjTicketSpec = `    url: BASE/v1/tickets
    auth_value_file: SECRETFILE
    record: ticket
    items: data.tickets
    mapping: {id: id, created_at: created, updated_at: updated, first_reply_at: first_reply, solved_at: solved, status: status,
      queue: team, agent_replies: replies, sla_breaches: breached}
    pagination: {type: cursor, next_cursor: meta.next_cursor, cursor_param: cursor}
    incremental: {since_param: updated_since, watermark: updated}
`

func hjTk(id, created, updated, reply, solved string, replies int) map[string]any {
	status := "open"
	if solved != "" {
		status = "solved"
	}
	tk := map[string]any{"id": id, "created": created, "updated": updated, "status": status, "team": "support", "replies": replies}
	if reply != "" {
		tk["first_reply"] = reply
	}
	if solved != "" {
		tk["solved"] = solved
	}
	return tk
}

func hjSecretFile(t *testing.T, secret string) string {
	p := filepath.Join(t.TempDir(), "token")
	os.WriteFile(p, []byte(secret+"\n"), 0o600)
	return p
}

// hjModel is a quality model with the collector "api".
func hjModel(t *testing.T) *quality.Model {
	return testModel(t, testConfig(t, "collectors:\n  - {name: api, type: demo, schedule: \"@every 5m\"}\n"))
}

// A page that fails mid-run (malformed JSON) fails the run: nothing is
// committed. The rerun from the old cursor (a 503 on the way is retried),
// then an incremental run, counted by the real quality model, give the
// hand-computed totals: nothing lost, nothing counted twice.
func TestHTTPJSONFailedPageCommitsNothingAndRerunCountsExactly(t *testing.T) {
	first := "2026-10-24T10:00:00Z"
	a := &hjTicketAPI{pages: map[string][][]map[string]any{
		first: {
			{hjTk("A", "2026-11-20T08:00:00Z", "2026-11-20T08:30:00Z", "2026-11-20T08:30:00Z", "", 1),
				hjTk("B", "2026-11-20T09:00:00Z", "2026-11-20T12:00:00Z", "2026-11-20T09:10:00Z", "2026-11-20T12:00:00Z", 1)},
			{hjTk("C", "2026-11-21T09:00:00Z", "2026-11-21T09:00:00Z", "", "", 0)},
			{hjTk("D", "2026-11-22T09:00:00Z", "2026-11-22T15:00:00Z", "2026-11-22T10:00:00Z", "2026-11-22T15:00:00Z", 2)},
		},
		// Third run: A is solved, D is reported again at the watermark,
		// E is new and solved at once.
		"2026-11-22T15:00:00Z": {
			{hjTk("D", "2026-11-22T09:00:00Z", "2026-11-22T15:00:00Z", "2026-11-22T10:00:00Z", "2026-11-22T15:00:00Z", 2),
				hjTk("A", "2026-11-20T08:00:00Z", "2026-11-23T08:00:00Z", "2026-11-20T08:30:00Z", "2026-11-23T08:00:00Z", 1)},
			{hjTk("E", "2026-11-23T08:10:00Z", "2026-11-23T09:00:00Z", "2026-11-23T08:20:00Z", "2026-11-23T09:00:00Z", 1)},
		},
	}}
	broken := true
	served503 := false
	a.fail = func(w http.ResponseWriter, page int) bool {
		switch {
		case page == 1 && broken:
			broken = false
			w.Write([]byte(`{"data": {"tickets": [{"id": "C", "crea`))
			return true
		case page == 2 && !served503:
			served503 = true
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	api := a.serve(t)
	s, waits := hjSource(t, strings.ReplaceAll(hjTicketSpec, "SECRETFILE", hjSecretFile(t, "tok-123")), api.URL)
	m := hjModel(t)

	b := &collectors.Batch{Now: hjNow}
	if _, err := s.Collect(context.Background(), nil, b); err == nil || !strings.Contains(err.Error(), "GET /v1/tickets: page 2 is not JSON") {
		t.Fatalf("err = %v, want page 2 is not JSON", err)
	}
	// The runner commits nothing of a failed run: the cursor stays nil.
	var cursor []byte
	for run := 1; run <= 2; run++ {
		b, next, err := tryCollect(s, cursor, hjNow)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		commitRun(t, m, "api", b, next)
		if run == 1 && !reflect.DeepEqual(hjTicketIDs(b), []string{"A", "B", "C", "D"}) {
			t.Errorf("rerun tickets %v", hjTicketIDs(b))
		}
		if run == 2 && !reflect.DeepEqual(hjTicketIDs(b), []string{"A", "E"}) {
			t.Errorf("incremental run tickets %v, want A (solved) and E; D at the watermark is skipped", hjTicketIDs(b))
		}
		cursor = next
	}
	if len(*waits) != 1 {
		t.Errorf("waits %v: the 503 is retried once", *waits)
	}
	for name, want := range map[string]float64{
		// A, B, C, D, E: five tickets, each created once.
		"servq_tickets_created_total": 5,
		// B and D in the first pass, A and E in the second.
		"servq_tickets_solved_total": 4,
		// First replies: A, B, D, E (C unanswered).
		"servq_ticket_first_reply_seconds": 4,
		// FCR: solved with exactly one public reply: A, B, E (D had 2).
		"servq_tickets_solved_first_contact_total": 3,
	} {
		if got := seriesSum(t, m, name, nil); got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
}

// 401: a clear error naming the status and the vendor's message, without
// the token, and without retries.
func TestHTTPJSONAuthFailureIsClearAndSecretFree(t *testing.T) {
	api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error": "Couldn't authenticate you"}`))
	})
	s, waits := hjSource(t, strings.ReplaceAll(hjTicketSpec, "SECRETFILE", hjSecretFile(t, "Bearer very-s3cret")), api.URL)
	_, err := s.Collect(context.Background(), nil, &collectors.Batch{Now: hjNow})
	if err == nil || !strings.Contains(err.Error(), "GET /v1/tickets: 401 Unauthorized: Couldn't authenticate you") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v", err)
	}
	if len(*waits) != 0 || api.auth[0] != "Bearer very-s3cret" {
		t.Errorf("waits %v, auth %q", *waits, api.auth)
	}
}

// The request budget ends a run after its complete pages; the next run
// continues the same pass (same since) where it stopped, and the watermark
// moves only once the pass is complete. The tickets are dated before the
// run's clock (a record more than an hour ahead is rejected).
func TestHTTPJSONBudgetCommitsCompletePagesAndContinues(t *testing.T) {
	var pages []map[string]any
	for i := 1; i <= 5; i++ {
		pages = append(pages, hjTk(fmt.Sprint("T", i), fmt.Sprintf("2026-11-1%dT08:00:00Z", i-1), fmt.Sprintf("2026-11-1%dT09:00:00Z", i-1), "", "", 0))
	}
	a := &hjTicketAPI{pages: map[string][][]map[string]any{"2026-10-24T10:00:00Z": {}}}
	for _, p := range pages {
		a.pages["2026-10-24T10:00:00Z"] = append(a.pages["2026-10-24T10:00:00Z"], []map[string]any{p})
	}
	a.pages["2026-11-14T09:00:00Z"] = nil
	api := a.serve(t)
	s, _ := hjSource(t, strings.ReplaceAll(hjTicketSpec, "SECRETFILE", hjSecretFile(t, "x"))+"    max_requests_per_run: 2\n", api.URL)
	var cursor []byte
	var got [][]string
	for run := 0; run < 4; run++ {
		b, next := hjCollect(t, s, cursor)
		got = append(got, hjTicketIDs(b))
		cursor = next
		var c hjCursor
		json.Unmarshal(next, &c)
		switch run {
		case 0, 1:
			if c.Round == nil || c.Watermark != "" {
				t.Errorf("run %d: cursor %s, want a pass in progress and no watermark yet", run, next)
			}
		case 2:
			if c.Round != nil || c.Watermark != "2026-11-14T09:00:00Z" {
				t.Errorf("run %d: cursor %s, want the pass complete", run, next)
			}
		}
	}
	want := [][]string{{"T1", "T2"}, {"T3", "T4"}, {"T5"}, {}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tickets per run %v, want %v", got, want)
	}
	reqs := api.requests()
	if len(reqs) != 6 || reqs[2] != "GET /v1/tickets?cursor=p2&updated_since=2026-10-24T10%3A00%3A00Z" || !strings.Contains(reqs[5], "updated_since=2026-11-14T09") {
		t.Errorf("requests %q", reqs)
	}
}

// The completeness watermark of http_json: a complete pass has every
// change made before it began, also when it took several runs; a pass the
// budget cuts short claims the last watermark it delivered only when
// incremental.ascending says the API lists in that order (and the items
// did not contradict it), otherwise nothing.
func TestHTTPJSONWatermark(t *testing.T) {
	at := func(day int) string { return fmt.Sprintf("2026-11-%dT09:00:00Z", day) }
	none := time.Unix(0, 0)
	for _, c := range []struct {
		name      string
		ascending bool
		updated   []int // day of each page's one ticket
		want      []time.Time
	}{
		// Budget 2: pages 1-2 | 3-4 | 5, the pass complete | a new pass.
		{"order unknown", false, []int{20, 21, 22, 23, 24}, []time.Time{none, none, hjNow, hjNow.Add(15 * time.Minute)}},
		{"ascending", true, []int{20, 21, 22, 23, 24}, []time.Time{mustRFC3339(at(21)), mustRFC3339(at(23)), hjNow, hjNow.Add(15 * time.Minute)}},
		// Page 3 goes back: the pass claims nothing more until complete.
		{"ascending contradicted", true, []int{20, 22, 21, 23, 24}, []time.Time{mustRFC3339(at(22)), none, hjNow, hjNow.Add(15 * time.Minute)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := &hjTicketAPI{pages: map[string][][]map[string]any{}}
			for i, day := range c.updated {
				tk := hjTk(fmt.Sprint("T", i+1), at(day-1), at(day), "", "", 0)
				a.pages["2026-10-24T10:00:00Z"] = append(a.pages["2026-10-24T10:00:00Z"], []map[string]any{tk})
			}
			a.pages["2026-11-24T09:00:00Z"] = nil
			api := a.serve(t)
			spec := strings.ReplaceAll(hjTicketSpec, "SECRETFILE", hjSecretFile(t, "x")) + "    max_requests_per_run: 2\n"
			if c.ascending {
				spec = strings.Replace(spec, "watermark: updated}", "watermark: updated, ascending: true}", 1)
			}
			s, _ := hjSource(t, spec, api.URL)
			var cursor []byte
			for run, want := range c.want {
				b, next := collectOnce(t, s, cursor, hjNow.Add(time.Duration(run)*5*time.Minute))
				if !b.Watermark.Equal(want) {
					t.Errorf("run %d: watermark %s, want %s (tickets %v, cursor %s)", run, b.Watermark, want, hjTicketIDs(b), next)
				}
				cursor = next
			}
		})
	}
}

func TestHTTPJSONLinkHeaders(t *testing.T) {
	for _, c := range []struct {
		h    []string
		want string
	}{
		{[]string{`<https://a.example/x?page=2>; rel="next", <https://a.example/x?page=9>; rel="last"`}, "https://a.example/x?page=2"},
		{[]string{`<https://a.example/x?page=1>; rel="prev"`, `<https://a.example/x?page=3>;rel=next`}, "https://a.example/x?page=3"},
		{[]string{`</x?a=1,2>; title="a, b"; rel="last next"`}, "/x?a=1,2"},
		{[]string{`<https://a.example/x?page=1>; rel="prev"`}, ""},
		{nil, ""},
	} {
		if got := hjLinkNext(c.h); got != c.want {
			t.Errorf("%q: next %q, want %q", c.h, got, c.want)
		}
	}
	// A next link to another host is not followed with the credentials.
	api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Link", `<https://elsewhere.example/steal?page=2>; rel="next"`)
		hjJSON(w, []any{})
	})
	s, _ := hjSource(t, "    url: BASE/list\n    auth_value: Bearer t\n    record: ticket\n    mapping: {id: id, created_at: c}\n    pagination: {type: link}\n", api.URL)
	_, err := s.Collect(context.Background(), nil, &collectors.Batch{Now: hjNow})
	if err == nil || !strings.Contains(err.Error(), "points to another host (elsewhere.example)") {
		t.Errorf("err = %v", err)
	}
}

func TestHTTPJSONItemsNotAnArrayFailsTheRun(t *testing.T) {
	api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Write([]byte(`{"data": {"tickets": {"id": 1}}}`))
	})
	s, _ := hjSource(t, "    url: BASE/t\n    record: ticket\n    items: data.tickets\n    mapping: {id: id, created_at: c}\n", api.URL)
	_, err := s.Collect(context.Background(), nil, &collectors.Batch{Now: hjNow})
	if err == nil || err.Error() != "GET /t: page 1: items: data.tickets is not an array" {
		t.Errorf("err = %v", err)
	}
}

func TestHTTPJSONConfigErrors(t *testing.T) {
	head := "collectors:\n  - name: api\n    type: http_json\n    schedule: \"@every 5m\"\n"
	ok := "    url: https://api.example/v1/t\n    record: ticket\n    mapping: {id: id, created_at: c}\n"
	for spec, want := range map[string]string{
		"    record: ticket\n    mapping: {id: id, created_at: c}\n":                   "test.yml:2: collectors[0].url: is required",
		"    url: ftp://x/y\n    record: ticket\n":                                     "test.yml:5: collectors[0].url: must be an absolute http(s) URL",
		"    url: https://x/y?s={{.start}}\n    record: ticket\n":                      "test.yml:5: collectors[0].url: unknown placeholder",
		"    url: https://x/y\n    record: chat\n":                                     "test.yml:6: collectors[0].record: must be ticket, call or survey",
		"    url: https://x/y\n    record: ticket\n    mapping: {id: id}\n":            "test.yml:7: collectors[0].mapping: mapping.created_at is required for record ticket",
		"    url: https://x/y\n    record: call\n    mapping: {id: id, duration: d}\n": `test.yml:7: collectors[0].mapping.duration: unknown call field "duration"`,
		ok + "    headers: {Authorization: Bearer plain}\n":                            "test.yml:8: collectors[0].headers.Authorization: put credentials in auth_header and auth_value",
		ok + "    auth_header: X-Key\n":                                                "test.yml:8: collectors[0].auth_header: needs auth_value or auth_value_file",
		ok + "    auth_value: a\n    auth_value_file: /x\n":                            "collectors[0].auth_value_file: set either the value or the _file variant, not both",
		ok + "    pagination: {type: offset}\n":                                        `test.yml:8: collectors[0].pagination.type: unknown type "offset" (none, cursor, link, page)`,
		ok + "    pagination: {type: cursor, cursor_param: c}\n":                       "test.yml:8: collectors[0].pagination.next_cursor: is required for type cursor",
		ok + "    pagination: {type: page}\n":                                          "collectors[0].pagination.page_param: is required for type page",
		ok + "    pagination: {type: link, page_param: p}\n":                           "page_param, per_page_param, per_page, first_page and total_pages apply to type page only",
		ok + "    incremental: {since_param: since}\n":                                 "test.yml:8: collectors[0].incremental.watermark: is required to send a since value",
		ok + "    incremental: {watermark: updated}\n":                                 "collectors[0].incremental.since_param: is required with a watermark",
		ok + "    incremental: {since_param: s, watermark: u, since_format: iso}\n":    "collectors[0].incremental.since_format: must be rfc3339, unix or unix_ms",
		ok + "    incremental: {ascending: true}\n":                                    "collectors[0].incremental.ascending: needs incremental.watermark",
		ok + "    incremental: {settle_lag: 1m}\n":                                     "collectors[0].incremental.settle_lag: needs incremental.watermark",
		ok + "    pagination: {type: cursor, next_cursor: c, cursor_param: c, keep_cursor: true}\n    incremental: {since_param: s, watermark: u, settle_lag: 1m}\n": "collectors[0].incremental.settle_lag: cannot be used with pagination.keep_cursor",
		ok + "    method: DELETE\n":           "test.yml:8: collectors[0].method: must be GET or POST",
		ok + "    max_requests_per_run: -1\n": "test.yml:8: collectors[0].max_requests_per_run: must not be negative",
		ok + "    colour: red\n":              `test.yml:8: collectors[0].colour: unknown field "colour"`,
		"    url: https://x/y\n    record: survey\n    kind: csat\n    mapping: {id: i, submitted_at: s, score: x}\n": "collectors[0].survey: is required for record survey",
	} {
		expectConfigError(t, head, spec, want)
	}
}

func TestHTTPJSONExampleBuilds(t *testing.T) {
	t.Setenv("HELPSCOUT_TOKEN", "x")
	if _, err := buildSourceErr(exampleYAML(t, "http_json")); err != nil {
		t.Error(err)
	}
}

// An API served from a search index lists T20 (updated 10:00:00) 40 s
// late, after T21 (10:00:10). Without a settle lag the first pass delivers
// T21, the cursor's watermark passes 10:00:00 and T20 is never asked for
// again (1 ticket created); with incremental.settle_lag: 1m the first
// pass holds T21 back (complete up to 09:59:30) and the second delivers
// both (2 created); a third pass, which lists both again, adds nothing.
func TestHTTPJSONSettleLagKeepsLateItems(t *testing.T) {
	at := func(s string) time.Time { return mustRFC3339("2026-11-23T" + s + "Z") }
	for _, c := range []struct {
		lag, want string
		created   float64
	}{
		{"", "T21||", 1},
		{"    incremental: {since_param: updated_since, watermark: updated, settle_lag: 1m}\n", "|T20,T21|", 2},
	} {
		var mu sync.Mutex
		var now time.Time
		items := []map[string]any{hjTk("T20", "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z", "", "", 0), hjTk("T21", "2026-11-23T09:00:00Z", "2026-11-23T10:00:10Z", "", "", 0)}
		visible := map[string]time.Time{"T20": at("10:00:40")}
		api := newHJAPI(t, func(w http.ResponseWriter, r *http.Request, _ int) {
			since, err := time.Parse(time.RFC3339, r.URL.Query().Get("updated_since"))
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			var out []any
			for _, it := range items {
				if v, ok := visible[it["id"].(string)]; ok && now.Before(v) {
					continue
				}
				if !mustRFC3339(it["updated"].(string)).Before(since) {
					out = append(out, it)
				}
			}
			hjJSON(w, map[string]any{"data": map[string]any{"tickets": out}, "meta": map[string]any{}})
		})
		spec := strings.ReplaceAll(hjTicketSpec, "SECRETFILE", hjSecretFile(t, "x"))
		if c.lag != "" {
			spec = strings.Replace(spec, "    incremental: {since_param: updated_since, watermark: updated}\n", c.lag, 1)
		}
		s, _ := hjSource(t, spec, api.URL)
		setNow := func(run time.Time) {
			mu.Lock()
			now = run
			mu.Unlock()
		}
		if c.lag != "" {
			setNow(at("10:00:30"))
			if b, _ := collectOnce(t, s, nil, at("10:00:30")); !b.Watermark.Equal(at("09:59:30")) {
				t.Errorf("watermark %s, want 09:59:30", b.Watermark)
			}
		}
		yml := "collectors:\n  - name: api\n    type: http_json\n    schedule: \"@every 5m\"\n" + strings.ReplaceAll(spec, "BASE", api.URL)
		got, created := pollIntoModel(t, yml, s, []time.Time{at("10:00:30"), at("10:02:00"), at("10:03:00")}, setNow)
		if got != c.want || created != c.created {
			t.Errorf("lag %q: tickets per run %q, %v created; want %q, %v", c.lag, got, created, c.want, c.created)
		}
	}
}
