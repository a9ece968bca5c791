package sources

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// The clocks of the two runs of the fixture (see testdata/zendesk).
var (
	zdNow1 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	zdNow2 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
)

const (
	zdEmail = "agent@example.com"
	zdToken = "s3cret-token"
)

// zdFake is a Zendesk Support API on 127.0.0.1 that serves the fixture
// the way the documented endpoints do: the cursor-based incremental ticket
// export (after_cursor, after_url, end_of_stream; include=metric_sets,groups
// embeds metric_set in each ticket and sideloads groups), the metric
// event export with cursor pagination (start_time with page[size] up to
// 100 and page[after]; meta.has_more, meta.after_cursor, links.next) and,
// without page[size], in its time-based form (end_time, next_page, count,
// end_of_stream; pages overlap by their end second, so a second with more
// events than a page comes back as the same page), and show_many (up to
// 100 ids, metric_sets sideloaded as a top-level list).
// Pages are small so that the fixture spans several.
type zdFake struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	auth     string           // expected Authorization header
	versions []map[string]any // ticket versions, generated_timestamp order
	events   []map[string]any // metric events, time order
	groups   map[float64]any  // group id -> group object
	fixture  map[string][]any // run -> ticket versions still to publish
	evFix    map[string][]any // run -> events still to publish
	requests []string         // request URIs, in order
	fail     func(w http.ResponseWriter, r *http.Request) bool
	ticketsN int // page size of the ticket export
	eventsN  int // page size of the metric event export
}

func newZDFake(t *testing.T) *zdFake {
	t.Helper()
	f := &zdFake{t: t, groups: map[float64]any{}, fixture: map[string][]any{}, evFix: map[string][]any{}, ticketsN: 2, eventsN: 3,
		auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(zdEmail+"/token:"+zdToken))}
	var tickets struct {
		Groups     []map[string]any `json:"groups"`
		Run1, Run2 []any
	}
	zdLoad(t, "testdata/zendesk/tickets.json", &tickets)
	for _, g := range tickets.Groups {
		f.groups[g["id"].(float64)] = g
	}
	f.fixture["run1"], f.fixture["run2"] = tickets.Run1, tickets.Run2
	var events struct{ Run1, Run2 []any }
	zdLoad(t, "testdata/zendesk/ticket_metric_events.json", &events)
	f.evFix["run1"], f.evFix["run2"] = events.Run1, events.Run2
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func zdLoad(t *testing.T, path string, out any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// publish makes a run's ticket versions and events visible.
func (f *zdFake) publish(run string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.fixture[run] {
		f.versions = append(f.versions, v.(map[string]any))
	}
	for _, e := range f.evFix[run] {
		f.events = append(f.events, e.(map[string]any))
	}
}

func (f *zdFake) takeRequests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

func (f *zdFake) setFail(fn func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

func zdCursor(pos int) string {
	return base64.StdEncoding.EncodeToString([]byte("pos:" + strconv.Itoa(pos)))
}

// zdEvents is the URI of a metric event page: the query from start, at
// the fake's cursor for position pos (0: the first page).
func zdEvents(start int64, pos int) string {
	u := "/api/v2/incremental/ticket_metric_events.json?start_time=" + strconv.FormatInt(start, 10) + "&page[size]=100"
	if pos > 0 {
		u += "&page[after]=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("ev:"+strconv.Itoa(pos))))
	}
	return u
}

func zdWrite(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *zdFake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.RequestURI())
	if f.fail != nil && f.fail(w, r) {
		return
	}
	if r.Method != http.MethodGet {
		zdWrite(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	if r.Header.Get("Authorization") != f.auth {
		// The body Zendesk answers with for bad credentials.
		zdWrite(w, http.StatusUnauthorized, map[string]string{"error": "Couldn't authenticate you"})
		return
	}
	q := r.URL.Query()
	switch r.URL.Path {
	case "/api/v2/incremental/tickets/cursor.json":
		if q.Get("include") != "metric_sets,groups" {
			f.t.Errorf("ticket export without include=metric_sets,groups: %s", r.URL.RequestURI())
		}
		pos := 0
		switch {
		case q.Get("cursor") != "":
			b, err := base64.StdEncoding.DecodeString(q.Get("cursor"))
			if err != nil || !strings.HasPrefix(string(b), "pos:") {
				zdWrite(w, http.StatusBadRequest, map[string]any{"error": "InvalidPaginationParameter", "description": "cursor is invalid"})
				return
			}
			pos, _ = strconv.Atoi(strings.TrimPrefix(string(b), "pos:"))
		case q.Get("start_time") != "":
			start, err := strconv.ParseInt(q.Get("start_time"), 10, 64)
			if err != nil {
				zdWrite(w, http.StatusBadRequest, map[string]any{"error": "InvalidValue", "description": "start_time is invalid"})
				return
			}
			for pos < len(f.versions) && int64(f.versions[pos]["generated_timestamp"].(float64)) < start {
				pos++
			}
		default:
			zdWrite(w, http.StatusBadRequest, map[string]any{"error": "InvalidValue", "description": "start_time or cursor is required"})
			return
		}
		end := min(pos+f.ticketsN, len(f.versions))
		page := f.versions[pos:end]
		zdWrite(w, http.StatusOK, map[string]any{
			"tickets": page, "groups": f.groupsOf(page),
			"after_cursor": zdCursor(end), "after_url": f.srv.URL + r.URL.Path + "?cursor=" + zdCursor(end),
			"before_cursor": nil, "before_url": nil, "end_of_stream": end == len(f.versions),
		})
	case "/api/v2/incremental/ticket_metric_events.json":
		start, err := strconv.ParseInt(q.Get("start_time"), 10, 64)
		if err != nil {
			zdWrite(w, http.StatusBadRequest, map[string]any{"error": "InvalidValue", "description": "start_time is required"})
			return
		}
		i := 0
		for i < len(f.events) && zdUnix(f.events[i]["time"]) < start {
			i++
		}
		if size := q.Get("page[size]"); size != "" {
			n, err := strconv.Atoi(size)
			if err != nil || n < 1 || n > 100 {
				zdWrite(w, http.StatusBadRequest, map[string]any{"error": "InvalidPaginationParameter", "description": "page[size] must be 1 to 100"})
				return
			}
			if a := q.Get("page[after]"); a != "" {
				b, err := base64.StdEncoding.DecodeString(a)
				pos, perr := strconv.Atoi(strings.TrimPrefix(string(b), "ev:"))
				if err != nil || !strings.HasPrefix(string(b), "ev:") || perr != nil {
					zdWrite(w, http.StatusBadRequest, map[string]any{"error": "InvalidPaginationParameter", "description": "page[after] is invalid"})
					return
				}
				i = pos
			}
			end := min(i+min(n, f.eventsN), len(f.events))
			after := base64.StdEncoding.EncodeToString([]byte("ev:" + strconv.Itoa(end)))
			more := end < len(f.events)
			next := any(nil)
			if more {
				next = f.srv.URL + r.URL.Path + "?start_time=" + q.Get("start_time") + "&page[size]=" + size + "&page[after]=" + url.QueryEscape(after)
			}
			zdWrite(w, http.StatusOK, map[string]any{
				"ticket_metric_events": f.events[i:end],
				"meta":                 map[string]any{"has_more": more, "after_cursor": after, "before_cursor": nil},
				"links":                map[string]any{"next": next, "prev": nil},
			})
			return
		}
		end := min(i+f.eventsN, len(f.events))
		page := f.events[i:end]
		endTime := start
		if len(page) > 0 {
			endTime = zdUnix(page[len(page)-1]["time"])
		}
		zdWrite(w, http.StatusOK, map[string]any{
			"ticket_metric_events": page, "count": len(page), "end_time": endTime,
			"next_page":     f.srv.URL + r.URL.Path + "?start_time=" + strconv.FormatInt(endTime, 10),
			"end_of_stream": end == len(f.events),
		})
	case "/api/v2/tickets/show_many.json":
		ids := strings.Split(q.Get("ids"), ",")
		if len(ids) > 100 {
			zdWrite(w, http.StatusBadRequest, map[string]any{"error": "InvalidValue", "description": "too many ids"})
			return
		}
		var tickets, sets []any
		for _, id := range ids {
			for i := len(f.versions) - 1; i >= 0; i-- {
				v := f.versions[i]
				if fmt.Sprint(v["id"]) != id {
					continue
				}
				t := map[string]any{}
				for k, x := range v {
					t[k] = x
				}
				if ms, ok := t["metric_set"]; ok {
					sets = append(sets, ms)
					delete(t, "metric_set")
				}
				tickets = append(tickets, t)
				break
			}
		}
		var page []map[string]any
		for _, t := range tickets {
			page = append(page, t.(map[string]any))
		}
		zdWrite(w, http.StatusOK, map[string]any{"tickets": tickets, "metric_sets": sets, "groups": f.groupsOf(page),
			"next_page": nil, "previous_page": nil, "count": len(tickets)})
	default:
		zdWrite(w, http.StatusNotFound, map[string]any{"error": "InvalidEndpoint", "description": "Not found"})
	}
}

func (f *zdFake) groupsOf(page []map[string]any) []any {
	out, seen := []any{}, map[float64]bool{}
	for _, t := range page {
		id := zdNum(t["group_id"])
		if g, ok := f.groups[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, g)
		}
	}
	return out
}

func zdNum(v any) float64 {
	n, _ := v.(float64)
	return n
}

func zdUnix(v any) int64 {
	at, err := time.Parse(time.RFC3339, v.(string))
	if err != nil {
		panic(err)
	}
	return at.Unix()
}

// zdConfig is the collector entry the tests use; extra adds keys.
func zdConfig(url, extra string) string {
	return fmt.Sprintf(`collectors:
  - name: zd
    type: zendesk
    schedule: "@every 5m"
    url: %s
    email: %s
    token: %s
    queues: {2002: billing}
    complaint_tags: [complaint]
    retries: 2
%s`, url, zdEmail, zdToken, extra)
}

// zdBuild builds the source and returns the config it came from (the
// quality model needs it) and the waits of its client.
func zdBuild(t *testing.T, yml string) (collectors.Source, *config.Config, *[]time.Duration) {
	t.Helper()
	cfg := testConfig(t, yml)
	s := buildCollector(t, cfg, collectors.Env{})
	return s, cfg, recordWaits(s.(*zendesk).client)
}

// zdMetrics is the model's ticket and complaint series (see seriesValues),
// histograms as _count and _sum.
func zdMetrics(t *testing.T, m *quality.Model) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for k, v := range seriesValues(t, m) {
		if (strings.HasPrefix(k, "servq_ticket") || strings.HasPrefix(k, "servq_complaints")) && !strings.Contains(k, "_bucket{") {
			out[k] = v
		}
	}
	return out
}

// zdSum adds the series of name whose labels contain every fragment.
func zdSum(vals map[string]float64, name string, fragments ...string) float64 {
	sum := 0.0
	for k, v := range vals {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, f := range fragments {
			ok = ok && strings.Contains(k, f)
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// Every mapped field of the fixture's first run, checked by hand against
// tickets.json and ticket_metric_events.json.
func TestZendeskMapping(t *testing.T) {
	f := newZDFake(t)
	f.publish("run1")
	s, _, _ := zdBuild(t, zdConfig(f.srv.URL, ""))
	b, cur, err := tryCollect(s, nil, zdNow1)
	if err != nil {
		t.Fatal(err)
	}
	want := []record.Ticket{
		{ID: "101", Queue: "Support", Channel: "email", Priority: "high", Status: "solved", Tags: []string{"vip", "billing"},
			CreatedAt: mustRFC3339("2026-11-20T09:00:00Z"), UpdatedAt: mustRFC3339("2026-11-20T11:00:00Z"),
			FirstReplyAt: mustRFC3339("2026-11-20T09:30:00Z"), SolvedAt: mustRFC3339("2026-11-20T11:00:00Z"), // reply_time_in_seconds 1800; never reopened: solved_at
			AgentReplies: 1, FirstReplyBusiness: 30 * time.Minute, ResolutionBusiness: 90 * time.Minute, Satisfaction: "good"},
		{ID: "102", Queue: "billing" /* queues map wins over the group name */, Channel: "web", Priority: "normal", Status: "open", Tags: []string{},
			CreatedAt: mustRFC3339("2026-11-20T10:00:00Z"), UpdatedAt: mustRFC3339("2026-11-20T10:05:00Z"),
			SLABreaches: []string{"first_reply"}}, // satisfaction "offered" is no rating
		{ID: "103", Queue: "" /* no group */, Channel: "api", Status: "pending", Tags: []string{"Complaint"},
			CreatedAt: mustRFC3339("2026-11-21T08:00:00Z"), UpdatedAt: mustRFC3339("2026-11-21T08:45:00Z"),
			FirstReplyAt: mustRFC3339("2026-11-21T08:45:00Z"), // 45 calendar minutes, no seconds; business 0 = unknown
			AgentReplies: 2, Complaint: true},
		{ID: "104", Queue: "Support", Channel: "email", Priority: "normal", Status: "deleted", Tags: []string{},
			CreatedAt: mustRFC3339("2026-11-21T09:00:00Z"), UpdatedAt: mustRFC3339("2026-11-21T09:30:00Z"), Deleted: true},
		{ID: "105", Queue: "2003" /* group not sideloaded: its id */, Channel: "chat", Priority: "urgent", Status: "solved", Tags: []string{},
			CreatedAt: mustRFC3339("2026-11-21T10:00:00Z"), UpdatedAt: mustRFC3339("2026-11-21T15:00:00Z"),
			FirstReplyAt: mustRFC3339("2026-11-21T10:10:00Z"),
			SolvedAt:     mustRFC3339("2026-11-21T11:00:00Z"), // reopened: first solve = created + first_resolution 60 min, not solved_at 15:00
			Reopens:      1, AgentReplies: 3, FirstReplyBusiness: 10 * time.Minute, ResolutionBusiness: 60 * time.Minute,
			Satisfaction: "bad", SLABreaches: []string{"next_reply", "requester_wait_time"}},
		// Not in the export (last updated before the window): read with
		// show_many for its breach, metric set from the top-level sideload.
		{ID: "99", Queue: "Support", Channel: "email", Priority: "low", Status: "open", Tags: []string{},
			CreatedAt: mustRFC3339("2026-10-01T09:00:00Z"), UpdatedAt: mustRFC3339("2026-10-01T10:00:00Z"),
			FirstReplyAt: mustRFC3339("2026-10-01T09:20:00Z"), AgentReplies: 1, FirstReplyBusiness: 20 * time.Minute,
			SLABreaches: []string{"resolution"}},
	}
	if len(b.Tickets) != len(want) {
		t.Fatalf("%d tickets, want %d: %+v", len(b.Tickets), len(want), b.Tickets)
	}
	for i := range want {
		if !reflect.DeepEqual(b.Tickets[i], want[i]) {
			t.Errorf("ticket %d:\n got %+v\nwant %+v", i, b.Tickets[i], want[i])
		}
	}
	var rej []string
	for _, r := range b.Rejected {
		rej = append(rej, r.Reason+" "+r.Position)
	}
	wantRej := []string{
		"bad_time /api/v2/incremental/tickets/cursor.json page 3 tickets[1] (ticket 106)",
		"missing_field /api/v2/incremental/tickets/cursor.json page 4 tickets[0]",
		"bad_json /api/v2/incremental/ticket_metric_events.json page 3 ticket_metric_events[1]",
	}
	if !reflect.DeepEqual(rej, wantRej) {
		t.Errorf("rejections:\n%s\nwant\n%s", strings.Join(rej, "\n"), strings.Join(wantRej, "\n"))
	}
	if len(b.Surveys)+len(b.Calls)+len(b.Snapshots) != 0 {
		t.Error("only tickets expected")
	}

	// The requests: four export pages from since (30d), three metric event
	// pages of one query from since (cursor pagination), one show_many.
	start := strconv.FormatInt(zdNow1.Add(-30*24*time.Hour).Unix(), 10)
	wantReq := []string{
		"/api/v2/incremental/tickets/cursor.json?include=metric_sets%2Cgroups&start_time=" + start,
		"/api/v2/incremental/tickets/cursor.json?cursor=" + url.QueryEscape(zdCursor(3)) + "&include=metric_sets%2Cgroups",
		"/api/v2/incremental/tickets/cursor.json?cursor=" + url.QueryEscape(zdCursor(5)) + "&include=metric_sets%2Cgroups",
		"/api/v2/incremental/tickets/cursor.json?cursor=" + url.QueryEscape(zdCursor(7)) + "&include=metric_sets%2Cgroups",
		zdEvents(zdNow1.Add(-30*24*time.Hour).Unix(), 0),
		zdEvents(zdNow1.Add(-30*24*time.Hour).Unix(), 3),
		zdEvents(zdNow1.Add(-30*24*time.Hour).Unix(), 6),
		"/api/v2/tickets/show_many.json?ids=99&include=metric_sets%2Cgroups",
	}
	if got := f.takeRequests(); !reflect.DeepEqual(got, wantReq) {
		t.Errorf("requests:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantReq, "\n"))
	}
	var c zendeskCursor
	if err := json.Unmarshal(cur, &c); err != nil {
		t.Fatal(err)
	}
	if c.TicketsCursor != zdCursor(8) || c.EventsStart != zdUnix("2026-11-22T08:00:00Z") || !reflect.DeepEqual(c.EventsSeen, []int64{926232157009}) || len(c.Pending) != 0 {
		t.Errorf("cursor %s", cur)
	}
}

// OAuth tokens go as a Bearer header; API tokens as email/token basic auth
// (checked by the fake in every other test).
func TestZendeskOAuth(t *testing.T) {
	f := newZDFake(t)
	f.auth = "Bearer oauth-s3cret"
	s, _, _ := zdBuild(t, `collectors:
  - name: zd
    type: zendesk
    schedule: "@hourly"
    url: `+f.srv.URL+`
    oauth_token: oauth-s3cret
    sla_breaches: false
`)
	f.publish("run1")
	b, _, err := tryCollect(s, nil, zdNow1)
	if err != nil {
		t.Fatal(err)
	}
	// Without breaches the metric event export and show_many are skipped.
	if len(b.Tickets) != 5 || len(f.takeRequests()) != 4 {
		t.Errorf("%d tickets, want the 5 valid ones of the export in 4 requests", len(b.Tickets))
	}
}

// Two runs: the second asks only for what changed after the first one's
// cursor, across several pages of both exports.
func TestZendeskIncremental(t *testing.T) {
	f := newZDFake(t)
	f.publish("run1")
	s, _, _ := zdBuild(t, zdConfig(f.srv.URL, ""))
	_, cur1, err := tryCollect(s, nil, zdNow1)
	if err != nil {
		t.Fatal(err)
	}
	f.takeRequests()
	f.publish("run2")
	b, cur2, err := tryCollect(s, cur1, zdNow2)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tk := range b.Tickets {
		ids = append(ids, tk.ID+fmt.Sprint(tk.SLABreaches))
	}
	// 102, 107, 103 changed; 101 is read for its new breach. The breach of
	// 99 at the overlapping end second of the last run is not read again.
	if want := []string{"102[]", "107[first_reply]", "103[]", "101[agent_work_time]"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("second run: %v, want %v", ids, want)
	}
	if b.Tickets[0].Status != "solved" || !b.Tickets[0].SolvedAt.Equal(mustRFC3339("2026-11-20T14:00:00Z")) || !b.Tickets[0].FirstReplyAt.Equal(mustRFC3339("2026-11-20T12:30:00Z")) {
		t.Errorf("102 now %+v", b.Tickets[0])
	}
	got := f.takeRequests()
	want := []string{
		"/api/v2/incremental/tickets/cursor.json?cursor=" + url.QueryEscape(zdCursor(8)) + "&include=metric_sets%2Cgroups",
		"/api/v2/incremental/tickets/cursor.json?cursor=" + url.QueryEscape(zdCursor(10)) + "&include=metric_sets%2Cgroups",
		zdEvents(zdUnix("2026-11-22T08:00:00Z"), 0),
		zdEvents(zdUnix("2026-11-22T08:00:00Z"), 11),
		"/api/v2/tickets/show_many.json?ids=101&include=metric_sets%2Cgroups",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing new: one request per export, no records.
	b, cur3, err := tryCollect(s, cur2, zdNow2.Add(5*time.Minute))
	if err != nil || len(b.Tickets) != 0 || len(f.takeRequests()) != 2 {
		t.Errorf("idle run: %d tickets, err %v", len(b.Tickets), err)
	}
	var c2, c3 zendeskCursor
	json.Unmarshal(cur2, &c2)
	json.Unmarshal(cur3, &c3)
	if !reflect.DeepEqual(c2, c3) {
		t.Errorf("idle run moved the cursor: %s -> %s", cur2, cur3)
	}
}

// zdCheckTotals compares the model with the numbers computed by hand from
// the fixture after both runs.
func zdCheckTotals(t *testing.T, m *quality.Model) {
	t.Helper()
	v := zdMetrics(t, m)
	for _, c := range []struct {
		name  string
		frags []string
		want  float64
	}{
		// 99, 101, 102, 103, 105, 107; 104 is first seen deleted and
		// counts nowhere, as in Zendesk's own reports.
		{"servq_tickets_created_total", nil, 6},
		{"servq_tickets_created_total", []string{"queue=billing"}, 2},
		{"servq_tickets_created_total", []string{"queue=Support"}, 2},
		{"servq_tickets_created_total", []string{"queue=unknown"}, 1},
		{"servq_tickets_created_total", []string{"queue=2003"}, 1},
		{"servq_tickets_solved_total", nil, 4},               // 101, 105; then 102, 103
		{"servq_tickets_solved_first_contact_total", nil, 2}, // 101, 102: one reply, never reopened
		{"servq_tickets_reopened_total", nil, 1},             // 105
		{"servq_complaints_total", nil, 1},                   // 103
		// 101 1800 s, 103 2700, 105 600, 99 1200, 102 9000.
		{"servq_ticket_first_reply_seconds_count", nil, 5},
		{"servq_ticket_first_reply_seconds_sum", nil, 15300},
		// Zendesk's business minutes: 30, 10, 20, 120 (103's 0 is unknown).
		{"servq_ticket_first_reply_business_seconds_count", nil, 4},
		{"servq_ticket_first_reply_business_seconds_sum", nil, 10800},
		// To the first solve: 101 2 h, 105 1 h, 102 4 h, 103 5 h.
		{"servq_ticket_resolution_seconds_count", nil, 4},
		{"servq_ticket_resolution_seconds_sum", nil, 43200},
		{"servq_ticket_resolution_business_seconds_count", nil, 4},
		{"servq_ticket_resolution_business_seconds_sum", nil, 35400}, // 90+60+200+240 min
		{"servq_ticket_sla_breaches_total", nil, 6},
		{"servq_ticket_sla_breaches_total", []string{"metric=first_reply"}, 2}, // 102, 107
		{"servq_ticket_sla_breaches_total", []string{"metric=next_reply", "queue=2003"}, 1},
		{"servq_ticket_sla_breaches_total", []string{"metric=requester_wait_time"}, 1},
		{"servq_ticket_sla_breaches_total", []string{"metric=resolution", "queue=Support"}, 1}, // 99
		{"servq_ticket_sla_breaches_total", []string{"metric=agent_work_time", "priority=high"}, 1},
		{"servq_tickets_open", nil, 2}, // 99 open, 107 new
		{"servq_tickets_open", []string{"queue=billing", "status=new"}, 1},
	} {
		if got := zdSum(v, c.name, c.frags...); got != c.want {
			t.Errorf("%s%v = %g, want %g", c.name, c.frags, got, c.want)
		}
	}
}

// zdReference is the model of two fault-free, unlimited runs.
func zdReference(t *testing.T) map[string]float64 {
	t.Helper()
	f := newZDFake(t)
	f.publish("run1")
	s, cfg, _ := zdBuild(t, zdConfig(f.srv.URL, ""))
	m := testModel(t, cfg)
	var cur []byte
	for i, now := range []time.Time{zdNow1, zdNow2} {
		if i == 1 {
			f.publish("run2")
		}
		b, next, err := tryCollect(s, cur, now)
		if err != nil {
			t.Fatal(err)
		}
		commitRun(t, m, "zd", b, next)
		cur = next
	}
	zdCheckTotals(t, m)
	return zdMetrics(t, m)
}

// The same two runs committed in chunks of one ticket (a chunk at each
// page of the ticket export) count exactly what unchunked runs count:
// breaches of tickets already flushed are fetched with show_many.
func TestZendeskChunks(t *testing.T) {
	f := newZDFake(t)
	f.publish("run1")
	s, cfg, _ := zdBuild(t, zdConfig(f.srv.URL, ""))
	m := testModel(t, cfg)
	chunks := commitChunked(t, s, m, "zd", zdNow1, 1)
	f.publish("run2")
	chunks += commitChunked(t, s, m, "zd", zdNow2, 1)
	if chunks < 2 {
		t.Fatalf("%d chunks: the ticket export has more pages", chunks)
	}
	zdCheckTotals(t, m)
	if got, want := zdMetrics(t, m), zdReference(t); !reflect.DeepEqual(got, want) {
		t.Errorf("series differ from unchunked runs:\n%v\n%v", got, want)
	}
}

// A run that fails part-way commits nothing; its rerun from the old cursor
// gives exactly the totals of a run without faults, through the real
// quality model.
func TestZendeskFaultsLoseAndDoubleNothing(t *testing.T) {
	f := newZDFake(t)
	f.publish("run1")
	s, cfg, _ := zdBuild(t, zdConfig(f.srv.URL, ""))
	m := testModel(t, cfg)
	b, cur1, err := tryCollect(s, nil, zdNow1)
	if err != nil {
		t.Fatal(err)
	}
	commitRun(t, m, "zd", b, cur1)
	f.publish("run2")

	faults := map[string]func(w http.ResponseWriter, r *http.Request) bool{
		// The second page of the ticket export keeps failing.
		"ticket page 2 answers 500": func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.RawQuery, "cursor="+url.QueryEscape(zdCursor(10))) {
				zdWrite(w, http.StatusInternalServerError, map[string]string{"error": "InternalError"})
				return true
			}
			return false
		},
		"metric event page 2 is cut off": func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path == "/api/v2/incremental/ticket_metric_events.json" && r.URL.Query().Get("page[after]") != "" {
				w.Write([]byte(`{"ticket_metric_events": [{"id": 1, "ticket_id"`))
				return true
			}
			return false
		},
		"show_many answers 503": func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path == "/api/v2/tickets/show_many.json" {
				w.Header().Set("Retry-After", "0")
				zdWrite(w, http.StatusServiceUnavailable, map[string]string{"error": "Maintenance"})
				return true
			}
			return false
		},
	}
	for name, fault := range faults {
		f.setFail(fault)
		b, next, err := tryCollect(s, cur1, zdNow2)
		if err == nil || next != nil {
			t.Errorf("%s: err %v, cursor %s: want an error and no cursor", name, err, next)
		}
		if len(b.Tickets) == 0 && name != "ticket page 2 answers 500" {
			t.Errorf("%s: the records read before the fault should be in the (uncommitted) batch", name)
		}
	}
	f.setFail(nil)
	b, cur2, err := tryCollect(s, cur1, zdNow2)
	if err != nil {
		t.Fatal(err)
	}
	commitRun(t, m, "zd", b, cur2)
	zdCheckTotals(t, m)
	if got, want := zdMetrics(t, m), zdReference(t); !reflect.DeepEqual(got, want) {
		t.Errorf("series differ from fault-free runs:\n%v\n%v", got, want)
	}
}

// The vendor's 429 with Retry-After is waited out exactly; 5xx backs off.
func TestZendeskRateLimit(t *testing.T) {
	f := newZDFake(t)
	f.publish("run1")
	s, _, waits := zdBuild(t, zdConfig(f.srv.URL, ""))
	n := 0
	f.setFail(func(w http.ResponseWriter, r *http.Request) bool {
		n++
		switch n {
		case 1: // Zendesk's rate-limit answer
			w.Header().Set("Retry-After", "7")
			w.Header().Set("X-Rate-Limit", "700")
			w.Header().Set("X-Rate-Limit-Remaining", "0")
			zdWrite(w, http.StatusTooManyRequests, map[string]string{"error": "TooManyRequests", "description": "Rate limit for incremental exports exceeded"})
			return true
		case 6:
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	b, _, err := tryCollect(s, nil, zdNow1)
	if err != nil || len(b.Tickets) != 6 {
		t.Fatalf("%d tickets, err %v", len(b.Tickets), err)
	}
	if len(*waits) != 2 || (*waits)[0] != 7*time.Second || (*waits)[1] < time.Second/2 || (*waits)[1] > time.Second {
		t.Errorf("waits %v: want Retry-After's 7s, then a 0.5-1s backoff", *waits)
	}
}

// Bad credentials: a clear error naming the request and status, with
// Zendesk's message and no secret.
func TestZendeskAuthFailure(t *testing.T) {
	f := newZDFake(t)
	f.auth = "Basic something-else"
	s, _, waits := zdBuild(t, zdConfig(f.srv.URL, ""))
	_, next, err := tryCollect(s, nil, zdNow1)
	if err == nil || next != nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "GET /api/v2/incremental/tickets/cursor.json: 401 Unauthorized: Couldn't authenticate you") ||
		strings.Contains(msg, zdToken) || strings.Contains(msg, base64.StdEncoding.EncodeToString([]byte(zdEmail+"/token:"+zdToken))) {
		t.Errorf("error %q", msg)
	}
	if len(*waits) != 0 || len(f.takeRequests()) != 1 {
		t.Error("a 401 is not retried")
	}
}

// A small request budget: every run commits the pages it completed and
// the next one continues; the totals equal those of unlimited runs.
func TestZendeskBudget(t *testing.T) {
	f := newZDFake(t)
	f.publish("run1")
	s, cfg, _ := zdBuild(t, zdConfig(f.srv.URL, "    max_requests_per_run: 2\n"))
	m := testModel(t, cfg)
	var cur []byte
	commit := func(now time.Time) (*collectors.Batch, []byte) {
		t.Helper()
		b, next, err := tryCollect(s, cur, now)
		if err != nil {
			t.Fatal(err)
		}
		commitRun(t, m, "zd", b, next)
		cur = next
		return b, next
	}
	b, _ := commit(zdNow1)
	if len(b.Tickets) != 4 || len(f.takeRequests()) != 2 {
		t.Fatalf("first run with budget 2: %d tickets, want those of 2 pages", len(b.Tickets))
	}
	drain := func(now time.Time) int {
		for runs := 1; runs <= 20; runs++ {
			before := string(cur)
			b, _ := commit(now)
			t.Logf("run %d: %d tickets, cursor %s, requests %v", runs, len(b.Tickets), cur, f.takeRequests())
			if string(cur) == before {
				return runs
			}
		}
		t.Fatal("the runs never caught up")
		return 0
	}
	// Budget 2 a run: 9 requests as in TestZendeskMapping (less the two
	// already done), plus one export request per run.
	if runs := drain(zdNow1); runs < 4 {
		t.Errorf("caught up in %d runs; a budget of 2 needs more", runs)
	}
	f.publish("run2")
	drain(zdNow2)
	zdCheckTotals(t, m)
	if got, want := zdMetrics(t, m), zdReference(t); !reflect.DeepEqual(got, want) {
		t.Errorf("series differ from unlimited runs:\n%v\n%v", got, want)
	}
}

// The completeness watermark comes from the ticket export: a run that read
// it to end_of_stream is complete up to its clock less the minute the
// export holds back; a run the budget cut short got as far as the newest
// generated_timestamp of its complete pages (tickets of later pages were
// not read, so nothing later is claimed); a run that did not reach the
// ticket export claims nothing.
func TestZendeskWatermark(t *testing.T) {
	f := newZDFake(t)
	f.publish("run1")
	s, _, _ := zdBuild(t, zdConfig(f.srv.URL, ""))
	b, cur1, err := tryCollect(s, nil, zdNow1)
	if err != nil {
		t.Fatal(err)
	}
	if want := zdNow1.Add(-time.Minute); !b.Watermark.Equal(want) {
		t.Errorf("complete run: watermark %s, want %s", b.Watermark, want)
	}
	f.publish("run2")
	b, _, err = tryCollect(s, cur1, zdNow2)
	if err != nil || !b.Watermark.Equal(zdNow2.Add(-time.Minute)) {
		t.Errorf("complete second run: watermark %s, err %v; want %s", b.Watermark, err, zdNow2.Add(-time.Minute))
	}

	// Budget 2. Export pages of 2: [101 (generated 11-20 11:00), 102
	// (10:05)], [103 (11-21 08:45), 104 (09:30)], [105 (15:00), 106
	// (16:00)], [one at 17:00, end_of_stream].
	f = newZDFake(t)
	f.publish("run1")
	s, _, _ = zdBuild(t, zdConfig(f.srv.URL, "    max_requests_per_run: 2\n"))
	var cur []byte
	steps := []struct {
		now  time.Time
		want time.Time
		what string
	}{
		{zdNow1, mustRFC3339("2026-11-21T09:30:00Z"), "two export pages, then the budget"},
		{zdNow1.Add(5 * time.Minute), zdNow1.Add(4 * time.Minute), "the last two pages, end_of_stream; the budget ends the metric events"},
		{zdNow1.Add(10 * time.Minute), time.Unix(0, 0), "metric events only: the budget ends before the ticket export"},
	}
	for _, st := range steps {
		b, next, err := tryCollect(s, cur, st.now)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Watermark.Equal(st.want) {
			t.Errorf("%s: watermark %s, want %s (requests %v)", st.what, b.Watermark, st.want, f.takeRequests())
		}
		f.takeRequests()
		cur = next
	}
}

// Config mistakes are reported at their line.
func TestZendeskConfigErrors(t *testing.T) {
	base := "collectors:\n  - name: zd\n    type: zendesk\n    schedule: \"@hourly\"\n"
	dir := t.TempDir()
	tokenFile := dir + "/token"
	os.WriteFile(tokenFile, []byte(zdToken+"\n"), 0o600)
	for spec, want := range map[string]string{
		"    email: a@b.c\n    token: x\n":                                           "test.yml:2: collectors[0].subdomain: subdomain or url is required",
		"    subdomain: Acme Corp\n    email: a@b.c\n    token: x\n":                 `test.yml:5: collectors[0].subdomain: "Acme Corp" is not a Zendesk subdomain`,
		"    subdomain: acme\n    url: https://acme.zendesk.com\n    token: x\n":     "test.yml:6: collectors[0].url: set either subdomain or url, not both",
		"    url: http://support.example.com\n    email: a@b.c\n    token: x\n":      "test.yml:5: collectors[0].url: http is allowed for localhost only",
		"    url: https://acme.zendesk.com/api/v2\n    email: a@b.c\n    token: x\n": "collectors[0].url: give the address only",
		"    subdomain: acme\n":                                                                    "collectors[0].email: credentials are required",
		"    subdomain: acme\n    token: x\n":                                                      "test.yml:2: collectors[0].email: is required with token",
		"    subdomain: acme\n    email: a@b.c\n":                                                  "test.yml:2: collectors[0].token: is required with email",
		"    subdomain: acme\n    email: a@b.c\n    token: x\n    oauth_token: y\n":                "test.yml:8: collectors[0].oauth_token: set either oauth_token or email and token",
		"    subdomain: acme\n    email: a@b.c\n    token: x\n    token_file: " + tokenFile + "\n": "collectors[0].token_file: set either the value or the _file variant",
		"    subdomain: acme\n    email: a@b.c\n    token_file: /nonexistent/zd\n":                 "collectors[0].token_file:",
		"    subdomain: acme\n    oauth_token: y\n    queues: {support: Support}\n":                "test.yml:7: collectors[0].queues.support: \"support\" is not a group id",
		"    subdomain: acme\n    oauth_token: y\n    complaint_tags: [\"\"]\n":                    "collectors[0].complaint_tags[0]: must not be empty",
		"    subdomain: acme\n    oauth_token: y\n    max_requests_per_run: -1\n":                  "test.yml:7: collectors[0].max_requests_per_run: must not be negative",
		"    subdomain: acme\n    oauth_token: y\n    group_by: name\n":                            "group_by",
	} {
		expectConfigError(t, base, spec, want, zdToken)
	}
	// Valid: token from a file, subdomain.
	s, err := buildSourceErr(base + "    subdomain: acme\n    email: a@b.c\n    token_file: " + tokenFile + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if z := s.(*zendesk); z.base != "https://acme.zendesk.com" {
		t.Errorf("base %q", z.base)
	}
}

// The documented example entry is a valid collector (the token file is
// replaced by an inline token).
func TestZendeskExampleConfig(t *testing.T) {
	yml := strings.Replace(exampleYAML(t, "zendesk"), "token_file: /etc/servq/zendesk-token", "token: x", 1)
	s, err := buildSourceErr("collectors:\n" + yml)
	if err != nil {
		t.Fatal(err)
	}
	z := s.(*zendesk)
	if z.base != "https://acme.zendesk.com" || z.queues["360007654321"] != "billing" || !z.complaint["escalated"] || !z.breaches || z.since != 30*24*time.Hour {
		t.Errorf("example decoded to %+v", z)
	}
}

// 250 breach events in one second (a bulk SLA change), then one a minute
// later. The time-based export cannot get past them (a full page whose
// end_time is its start_time comes back again, as the fake shows); with
// cursor pagination every breach arrives once: the show_many requests ask
// for tickets 1000-1249 and 2000 (100 + 100 + 51 ids), and a later run
// reads none of them again. The model counts servq_ticket_sla_breaches_total
// 250 first_reply (reply_time, instance 1) and 1 resolution, 251 in all,
// after each run. With a budget that ends a run inside the second, the
// next run continues at the stored page[after] cursor, and the runs end
// (the cursor stops moving) with the same 251.
func TestZendeskManyEventsInOneSecond(t *testing.T) {
	second := "2026-11-22T08:00:00Z"
	events := func() []map[string]any {
		var evs []map[string]any
		for i := range 250 {
			evs = append(evs, map[string]any{"id": 5000 + i, "ticket_id": 1000 + i, "metric": "reply_time", "instance_id": 1, "type": "breach", "time": second})
		}
		return append(evs, map[string]any{"id": 6000, "ticket_id": 2000, "metric": "resolution_time", "instance_id": 0, "type": "breach", "time": "2026-11-22T08:01:00Z"})
	}
	// The breached tickets, last changed before the export's since (30d):
	// only show_many reads them.
	tickets := func() []map[string]any {
		var out []map[string]any
		for _, id := range append(func() (ids []int) {
			for i := range 250 {
				ids = append(ids, 1000+i)
			}
			return
		}(), 2000) {
			out = append(out, map[string]any{"id": float64(id), "status": "open", "priority": "normal", "via": map[string]any{"channel": "email"},
				"group_id": float64(2001), "tags": []any{}, "created_at": "2026-10-01T09:00:00Z", "updated_at": "2026-10-01T09:00:00Z",
				"generated_timestamp": float64(zdUnix("2026-10-01T09:00:00Z"))})
		}
		return out
	}
	// Every breach counted once: reply_time instance 1 -> first_reply for
	// the 250 tickets of the second, resolution_time -> resolution for 2000.
	breaches := func(m *quality.Model) {
		t.Helper()
		got := zdMetrics(t, m)
		fr := zdSum(got, "servq_ticket_sla_breaches_total", "metric=first_reply")
		res := zdSum(got, "servq_ticket_sla_breaches_total", "metric=resolution")
		all := zdSum(got, "servq_ticket_sla_breaches_total")
		if fr != 250 || res != 1 || all != 251 {
			t.Errorf("breaches: first_reply %g resolution %g all %g, want 250, 1, 251", fr, res, all)
		}
	}
	asked := func(reqs []string) (ids []string, events []string) {
		for _, r := range reqs {
			u, _ := url.Parse(r)
			switch u.Path {
			case zendeskShowManyPath:
				ids = append(ids, strings.Split(u.Query().Get("ids"), ",")...)
			case zendeskEventsPath:
				events = append(events, r)
			}
		}
		return ids, events
	}

	// The fake's time-based form stalls: the same 100 events again.
	f := newZDFake(t)
	f.eventsN = 100
	f.events = events()
	var p1, p2 struct {
		Events  []map[string]any `json:"ticket_metric_events"`
		EndTime int64            `json:"end_time"`
	}
	zdGet(t, f, "/api/v2/incremental/ticket_metric_events.json?start_time="+strconv.FormatInt(zdUnix(second), 10), &p1)
	zdGet(t, f, "/api/v2/incremental/ticket_metric_events.json?start_time="+strconv.FormatInt(p1.EndTime, 10), &p2)
	if p1.EndTime != zdUnix(second) || fmt.Sprint(p1.Events) != fmt.Sprint(p2.Events) {
		t.Fatalf("the time-based fake should return the same page again: end_time %d", p1.EndTime)
	}
	f.takeRequests()

	f.versions = tickets()
	s, cfg, _ := zdBuild(t, zdConfig(f.srv.URL, ""))
	m := testModel(t, cfg)
	b, cur, err := tryCollect(s, nil, zdNow1)
	if err != nil {
		t.Fatal(err)
	}
	commitRun(t, m, "zd", b, cur)
	breaches(m)
	ids, evReqs := asked(f.takeRequests())
	var want []string
	for i := range 250 {
		want = append(want, strconv.Itoa(1000+i))
	}
	want = append(want, "2000")
	slices.SortFunc(ids, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	if !slices.Equal(ids, want) || len(evReqs) != 3 {
		t.Errorf("show_many asked for %d tickets (want the 251 breached), metric event requests %v", len(ids), evReqs)
	}
	var c zendeskCursor
	json.Unmarshal(cur, &c)
	if c.EventsStart != zdUnix("2026-11-22T08:01:00Z") || !slices.Equal(c.EventsSeen, []int64{6000}) || c.EventsAfter != "" {
		t.Errorf("cursor %s", cur)
	}
	b, next, err := tryCollect(s, cur, zdNow1.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	commitRun(t, m, "zd", b, next)
	breaches(m)
	if ids, _ := asked(f.takeRequests()); len(ids) != 0 {
		t.Errorf("a later run read breaches again: %v", ids)
	}

	// Budget 3: the ticket export and two event pages, then the budget
	// ends the run inside the second; the next run goes on at page[after].
	f2 := newZDFake(t)
	f2.eventsN = 100
	f2.events = events()
	f2.versions = tickets()
	s2, cfg2, _ := zdBuild(t, zdConfig(f2.srv.URL, "    max_requests_per_run: 3\n"))
	m2 := testModel(t, cfg2)
	var all []string
	cur = nil
	// Bounded: each run moves the cursor on, and a run that does not is
	// the end (a stalled export would fail the counts below).
	for run := 0; run < 6; run++ {
		b, next, err := tryCollect(s2, cur, zdNow1)
		if err != nil {
			t.Fatal(err)
		}
		commitRun(t, m2, "zd", b, next)
		ids, evReqs := asked(f2.takeRequests())
		all = append(all, ids...)
		if run == 1 && (len(evReqs) == 0 || !strings.Contains(evReqs[0], "page[after]=")) {
			t.Errorf("run 2 should continue at the stored cursor: %v (cursor %s)", evReqs, cur)
		}
		if string(next) == string(cur) {
			break
		}
		cur = next
	}
	slices.SortFunc(all, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	if !slices.Equal(all, want) {
		t.Errorf("over budget-cut runs show_many asked for %d tickets, want the 251 breached once each", len(all))
	}
	breaches(m2)
}

// zdGet GETs a URI of the fake with the right credentials.
func zdGet(t *testing.T, f *zdFake, uri string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+uri, nil)
	req.Header.Set("Authorization", f.auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
