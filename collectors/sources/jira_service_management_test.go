package sources

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// jsmFake speaks the two documented endpoints the plugin uses:
// GET /rest/api/3/search/jql (jql, fields, maxResults, nextPageToken;
// {"issues", "nextPageToken", "isLast"}; 400 {"errorMessages": [...]} for
// a bad token) and GET /rest/servicedeskapi/request/{id}/sla (start,
// limit; PagedDTO {size, start, limit, isLastPage, values}; 404 with
// {"errorMessage", "i18nErrorMessage"} for an issue that is no request).
// Basic auth is email:token; JQL dates are in the API user's zone, which
// GET /rest/api/3/myself reports as timeZone. The site answers a scoped
// token 401; the API gateway form /ex/jira/{cloudId}/… accepts only
// scoped tokens. now and visibleAt reproduce the eventually consistent
// search: an issue with a visibleAt is listed only once now reaches it.
type jsmFake struct {
	t            *testing.T
	email, token string
	scoped       bool   // the token is a scoped API token
	cloudID      string // of the gateway form
	zone         *time.Location
	laterInFold  bool // read a JQL time a fall-back transition repeats as the later instant
	now          time.Time
	visibleAt    map[string]time.Time
	myself       int // /myself requests (not in log)
	mu           sync.Mutex
	issues       map[string]json.RawMessage
	slas         map[string][]json.RawMessage
	log          []string // "search <from> <token>" or "sla <id>"
	hook         func(n int, w http.ResponseWriter, r *http.Request) bool
	srv          *httptest.Server
}

func newJSMFake(t *testing.T) *jsmFake {
	t.Helper()
	data, err := os.ReadFile("testdata/jira_service_management/issues.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Issues []json.RawMessage
		SLAs   map[string][]json.RawMessage `json:"slas"`
	}
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	f := &jsmFake{t: t, email: "agent@acme.example", token: "s3cret-token", zone: berlin, cloudID: "11223344-a1b2-3b33-c444-def123456789",
		issues: map[string]json.RawMessage{}, slas: fx.SLAs}
	for _, is := range fx.Issues {
		var k struct{ ID string }
		json.Unmarshal(is, &k)
		f.issues[k.ID] = is
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

var fakeJQL = regexp.MustCompile(`^project = "([A-Z]+)" AND updated >= "(\d{4}/\d\d/\d\d \d\d:\d\d)"(?: AND \((.*)\))? ORDER BY updated ASC, key ASC$`)

type jsmKey struct {
	key     string
	n       int
	updated time.Time
}

func (f *jsmFake) keyOf(raw json.RawMessage) jsmKey {
	var k struct {
		Key    string
		Fields struct{ Updated string }
	}
	json.Unmarshal(raw, &k)
	at, err := time.Parse(jiraTime, k.Fields.Updated)
	if err != nil {
		f.t.Fatalf("fixture issue %s: %v", k.Key, err)
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(k.Key, "SUP-"))
	return jsmKey{k.Key, n, at}
}

func (f *jsmFake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.log) + 1
	hook := f.hook
	f.mu.Unlock()
	logf := func(format string, args ...any) {
		f.mu.Lock()
		f.log = append(f.log, fmt.Sprintf(format, args...))
		f.mu.Unlock()
	}
	if hook != nil && hook(n, w, r) {
		logf("hooked %s", r.URL.Path)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	gateway := strings.HasPrefix(r.URL.Path, "/ex/jira/"+f.cloudID+"/")
	if gateway {
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/ex/jira/"+f.cloudID)
	}
	if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(f.email+":"+f.token)) || gateway != f.scoped {
		logf("unauthorized")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte("Client must be authenticated to access this resource."))
		return
	}
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/rest/api/3/myself":
		f.mu.Lock()
		f.myself++
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"accountId": "5b10ac8d82e05b22cc7d4ef5", "accountType": "atlassian",
			"emailAddress": f.email, "displayName": "servq", "active": true, "timeZone": f.zone.String(), "locale": "en_US"})
	case r.URL.Path == "/rest/api/3/search/jql":
		m := fakeJQL.FindStringSubmatch(q.Get("jql"))
		if m == nil || m[1] != "SUP" {
			logf("bad jql")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"errorMessages":["Error in the JQL Query: %s"],"errors":{}}`, q.Get("jql"))
			return
		}
		if !strings.Contains(q.Get("fields"), "updated") {
			f.t.Errorf("fields = %q", q.Get("fields"))
		}
		from, _ := time.ParseInLocation("2006/01/02 15:04", m[2], f.zone) // Go reads a repeated time as the earlier instant
		if later := from.Add(time.Hour); f.laterInFold && later.In(f.zone).Format("2006/01/02 15:04") == m[2] {
			from = later
		}
		max, _ := strconv.Atoi(q.Get("maxResults"))
		if max <= 0 {
			max = 50
		}
		offset := 0
		if tok := q.Get("nextPageToken"); tok != "" {
			dec, _ := base64.StdEncoding.DecodeString(tok)
			off, jql, ok := strings.Cut(string(dec), "|")
			if !ok || jql != q.Get("jql") {
				logf("search %s bad-token", m[2])
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"errorMessages":["The provided next page token is invalid or expired."],"errors":{}}`))
				return
			}
			offset, _ = strconv.Atoi(off)
		}
		logf("search %s %d", m[2], offset)
		f.mu.Lock()
		var list []json.RawMessage
		for id, is := range f.issues {
			if v, ok := f.visibleAt[id]; ok && f.now.Before(v) {
				continue // not in the search index yet
			}
			if !f.keyOf(is).updated.Before(from) {
				list = append(list, is)
			}
		}
		f.mu.Unlock()
		sort.Slice(list, func(i, j int) bool {
			a, b := f.keyOf(list[i]), f.keyOf(list[j])
			if !a.updated.Equal(b.updated) {
				return a.updated.Before(b.updated)
			}
			return a.n < b.n
		})
		lo := min(offset, len(list))
		hi := min(lo+max, len(list))
		out := map[string]any{"issues": list[lo:hi], "isLast": hi >= len(list)}
		if hi < len(list) {
			out["nextPageToken"] = base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(hi) + "|" + q.Get("jql")))
		}
		json.NewEncoder(w).Encode(out)
	case strings.HasPrefix(r.URL.Path, "/rest/servicedeskapi/request/") && strings.HasSuffix(r.URL.Path, "/sla"):
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/rest/servicedeskapi/request/"), "/sla")
		logf("sla %s", id)
		f.mu.Lock()
		values, ok := f.slas[id]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errorMessage":"Issue does not exist or you do not have permission to see it.","i18nErrorMessage":{"i18nKey":"sd.request.not.found","parameters":[]}}`))
			return
		}
		start, _ := strconv.Atoi(q.Get("start"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 {
			limit = 50
		}
		lo := min(start, len(values))
		hi := min(lo+limit, len(values))
		json.NewEncoder(w).Encode(map[string]any{"size": hi - lo, "start": start, "limit": limit, "isLastPage": hi >= len(values),
			"values": values[lo:hi], "_links": map[string]string{"base": "https://acme.atlassian.net", "context": ""}})
	default:
		logf("unknown %s", r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

// update replaces fields of an issue (or adds one) and its SLAs.
func (f *jsmFake) update(id, key string, fields map[string]any, slas []json.RawMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]any{"id": id, "key": key, "fields": map[string]any{}}
	if old, ok := f.issues[id]; ok {
		json.Unmarshal(old, &m)
	}
	fm := m["fields"].(map[string]any)
	for k, v := range fields {
		fm[k] = v
	}
	b, _ := json.Marshal(m)
	f.issues[id] = b
	if slas != nil {
		f.slas[id] = slas
	}
}

func (f *jsmFake) config(extra string) string {
	return fmt.Sprintf(`collectors:
  - name: jsm
    type: jira_service_management
    schedule: "@every 5m"
    url: %s
    email: %s
    api_token: %s
    project: SUP
    time_zone: Europe/Berlin
    retries: 1
    statuses: {Waiting for customer: pending}
%s`, f.srv.URL, f.email, f.token, extra)
}

func jsmSource(t *testing.T, yml string, maxResults int) (*jsm, *[]time.Duration) {
	t.Helper()
	s := buildSource(t, yml).(*jsm)
	s.maxResults = maxResults
	return s, recordWaits(s.client)
}

func TestJSMMapping(t *testing.T) {
	f := newJSMFake(t)
	s, _ := jsmSource(t, f.config(""), 100)
	b, cur := collectOnce(t, s, nil, fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "10001,10002,10003,10005" {
		t.Fatalf("tickets %v", got)
	}
	// 30 days before 2026-11-02 12:00 UTC is 2026-10-03 14:00 in Berlin (CEST).
	if f.log[0] != "search 2026/10/03 14:00 0" {
		t.Errorf("first request %q", f.log[0])
	}
	u := func(h, m int) time.Time { return time.Date(2026, 11, 2, h, m, 0, 0, time.UTC) }
	want := []record.Ticket{
		{ID: "10001", Queue: "SUP", Priority: "high", Status: "open", Tags: []string{"vpn"}, CreatedAt: u(8, 0), UpdatedAt: u(9, 45),
			FirstReplyAt: u(8, 30), FirstReplyBusiness: 20 * time.Minute},
		{ID: "10002", Queue: "SUP", Priority: "low", Status: "solved", Tags: []string{}, CreatedAt: u(8, 5), UpdatedAt: u(9, 45),
			FirstReplyAt: u(8, 20), FirstReplyBusiness: 15 * time.Minute, SolvedAt: u(8, 50), ResolutionBusiness: 40 * time.Minute,
			Reopens: 1, SLABreaches: []string{"first_reply", "resolution"}},
		{ID: "10003", Queue: "SUP", Priority: "medium", Status: "pending", Tags: []string{}, CreatedAt: u(9, 0), UpdatedAt: u(9, 50)},
		{ID: "10005", Queue: "SUP", Priority: "highest", Status: "new", Tags: []string{}, CreatedAt: u(9, 10), UpdatedAt: u(10, 5),
			SLABreaches: []string{"first_reply", "Time to approve"}},
	}
	for i, w := range want {
		if g := b.Tickets[i]; fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", w) {
			t.Errorf("ticket %s:\n got %+v\nwant %+v", w.ID, g, w)
		}
	}
	if len(b.Rejected) != 1 || b.Rejected[0].Reason != "bad_time" || !strings.Contains(b.Rejected[0].Position, "(SUP-4)") ||
		!strings.Contains(b.Rejected[0].Err.Error(), `created "yesterday"`) {
		t.Errorf("rejected %+v", b.Rejected)
	}
	if string(cur) != `{"at":"2026-11-02T10:05:00Z","ids":["10005"]}` {
		t.Errorf("cursor %s", cur)
	}
	// The SLA of SUP-3 is a 404 (no request), SUP-4 is rejected before it.
	if strings.Join(f.log, ";") != "search 2026/10/03 14:00 0;sla 10001;sla 10002;sla 10003;sla 10005" {
		t.Errorf("requests %v", f.log)
	}
}

func TestJSMPaginationAndIncrementalRun(t *testing.T) {
	f := newJSMFake(t)
	s, _ := jsmSource(t, f.config(""), 2)
	b, cur := collectOnce(t, s, nil, fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "10001,10002,10003,10005" || len(b.Rejected) != 1 {
		t.Fatalf("tickets %v, rejected %v", got, b.Rejected)
	}
	// Every page read: complete up to the run's start.
	// Complete up to the run's start less the settle lag (2m).
	if w := fdNow.Add(-2 * time.Minute); !b.Watermark.Equal(w) {
		t.Errorf("complete run: watermark %s, want %s", b.Watermark, w)
	}
	var searches []string
	for _, l := range f.log {
		if strings.HasPrefix(l, "search ") {
			searches = append(searches, strings.TrimPrefix(l, "search 2026/"))
		}
	}
	// SUP-1,2 | from their minute (10:45 Berlin): 1,2 seen -> next page:
	// SUP-3,4 | from 10:55: 4,5, the last page (no nextPageToken).
	if w := "10/03 14:00 0,11/02 10:45 0,11/02 10:45 2,11/02 10:55 0"; strings.Join(searches, ",") != w {
		t.Errorf("searches\n%s\nwant\n%s", strings.Join(searches, ","), w)
	}

	// SUP-1 is resolved at 11:00 UTC (2h of business time), SUP-7 is new.
	f.update("10001", "SUP-1", map[string]any{"updated": "2026-11-02T12:00:00.000+0100", "resolutiondate": "2026-11-02T12:00:00.000+0100",
		"status": map[string]any{"name": "Resolved", "statusCategory": map[string]any{"key": "done"}}}, []json.RawMessage{
		json.RawMessage(`{"id":"1","name":"Time to first response","completedCycles":[{"breached":false,"startTime":{"epochMillis":1793606400000},"stopTime":{"epochMillis":1793608200000},"elapsedTime":{"millis":1200000}}]}`),
		json.RawMessage(`{"id":"2","name":"Time to resolution","completedCycles":[{"breached":false,"startTime":{"epochMillis":1793606400000},"stopTime":{"epochMillis":1793617200000},"elapsedTime":{"millis":7200000}}]}`),
	})
	f.update("10007", "SUP-7", map[string]any{"created": "2026-11-02T11:30:00.000+0100", "updated": "2026-11-02T11:40:00.000+0100",
		"status": map[string]any{"name": "Open", "statusCategory": map[string]any{"key": "new"}}}, []json.RawMessage{})
	f.log = nil
	b2, cur2 := collectOnce(t, s, cur, fdNow.Add(time.Hour))
	if got := recordTicketIDs(b2.Tickets); strings.Join(got, ",") != "10007,10001" {
		t.Errorf("second run: %v, want 10007,10001", got)
	}
	if w := fdNow.Add(time.Hour - 2*time.Minute); !b2.Watermark.Equal(w) {
		t.Errorf("second run: watermark %s, want %s", b2.Watermark, w)
	}
	if tk := b2.Tickets[1]; tk.SolvedAt != time.Date(2026, 11, 2, 11, 0, 0, 0, time.UTC) || tk.ResolutionBusiness != 2*time.Hour || tk.Status != "solved" {
		t.Errorf("resolved SUP-1: %+v", tk)
	}
	if f.log[0] != "search 2026/11/02 11:05 0" {
		t.Errorf("second run starts with %q", f.log[0])
	}
	if string(cur2) != `{"at":"2026-11-02T11:00:00Z","ids":["10001"]}` {
		t.Errorf("cursor %s", cur2)
	} // From the start in chunks of one record: a chunk ends at each page;
	// a run resumed from one reads exactly the rest.
	checkChunks(t, s, fdNow.Add(time.Hour), 1, 2)
}

// The hand-computed totals of the fixture: created SUP-1, 2, 3, 5; solved
// SUP-2 (first solve 08:50, 45 min; 40 min business); first replies of
// SUP-1 (30 min, 20 business) and SUP-2 (15 min, 15 business); SUP-2's
// second resolution cycle is a reopen; breaches: SUP-2 first_reply and
// resolution, SUP-5 first_reply and Time to approve; open: 1, 3, 5.
var jsmTotals = map[string]float64{
	"servq_tickets_created_total":                     4,
	"servq_tickets_solved_total":                      1,
	"servq_ticket_resolution_seconds_sum":             45 * 60,
	"servq_ticket_resolution_business_seconds_sum":    40 * 60,
	"servq_ticket_first_reply_seconds_count":          2,
	"servq_ticket_first_reply_seconds_sum":            45 * 60,
	"servq_ticket_first_reply_business_seconds_count": 2,
	"servq_ticket_first_reply_business_seconds_sum":   35 * 60,
	"servq_tickets_reopened_total":                    1,
	"servq_ticket_sla_breaches_total":                 4,
	"servq_tickets_open":                              3,
}

func TestJSMFaultAndRerunGiveExactTotals(t *testing.T) {
	f := newJSMFake(t)
	yml := f.config("    max_requests_per_run: 4\n")
	m := testModel(t, testConfig(t, yml))
	s, _ := jsmSource(t, yml, 2)
	b, cur := collectOnce(t, s, nil, fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "10001,10002" {
		t.Fatalf("budget run: %v", got)
	}
	commitRun(t, m, "jsm", b, cur)
	// The SLA request of SUP-5 fails (a 503 twice: retries 1).
	f.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/rest/servicedeskapi/request/10005/sla" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	var got []string
	c := cur
	for range 10 { // runs of 4 requests (/myself first) until the failure
		failed, next, err := tryCollect(s, c, fdNow)
		if err != nil {
			if !strings.Contains(err.Error(), "GET /rest/servicedeskapi/request/10005/sla: 503 Service Unavailable") {
				t.Fatalf("err = %v", err)
			}
			break
		}
		commitRun(t, m, "jsm", failed, next)
		got = append(got, recordTicketIDs(failed.Tickets)...)
		c = next
	}
	f.hook = nil
	for range 10 {
		b2, next := collectOnce(t, s, c, fdNow)
		commitRun(t, m, "jsm", b2, next)
		got = append(got, recordTicketIDs(b2.Tickets)...)
		if len(b2.Tickets) == 0 && len(b2.Rejected) == 0 {
			break
		}
		c = next
	}
	if strings.Join(got, ",") != "10003,10005" {
		t.Errorf("after the budget run: %v", got)
	}
	expectValues(t, familyTotals(t, m), jsmTotals)
	// A crash between fetch and commit: the same run committed twice.
	b3, c3 := collectOnce(t, s, c, fdNow)
	commitRun(t, m, "jsm", b3, c3)
	commitRun(t, m, "jsm", b3, c3)
	expectValues(t, familyTotals(t, m), jsmTotals)
}

func TestJSMHonoursRetryAfter(t *testing.T) {
	f := newJSMFake(t)
	f.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/rest/servicedeskapi/request/10002/sla" && !strings.Contains(strings.Join(f.log, ";"), "hooked") {
			w.Header().Set("Retry-After", "5")
			w.Header().Set("X-RateLimit-Limit", "100")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	s, waits := jsmSource(t, f.config(""), 100)
	b, _ := collectOnce(t, s, nil, fdNow)
	if len(b.Tickets) != 4 || len(*waits) != 1 || (*waits)[0] != 5*time.Second {
		t.Errorf("%d tickets after waits %v, want 4 after one 5s wait", len(b.Tickets), *waits)
	}
}

func TestJSMAuthFailureIsClearAndSecretFree(t *testing.T) {
	f := newJSMFake(t)
	yml := strings.Replace(f.config(""), "api_token: s3cret-token", "api_token: wr0ng-t0ken", 1)
	s, waits := jsmSource(t, yml, 100)
	_, err := s.Collect(context.Background(), nil, &collectors.Batch{Now: fdNow})
	if err == nil {
		t.Fatal("no error with a wrong token")
	}
	msg := err.Error()
	enc := base64.StdEncoding.EncodeToString([]byte(f.email + ":wr0ng-t0ken"))
	if !strings.Contains(msg, "GET /rest/api/3/myself: 401 Unauthorized: Client must be authenticated") ||
		strings.Contains(msg, "wr0ng-t0ken") || strings.Contains(msg, enc) || len(*waits) != 0 {
		t.Errorf("error %q (waits %v)", msg, *waits)
	}
}

// Budget 3 is /myself, a search and one SLA request: every run delivers at least
// one request, resumes inside a page with its token, and over the runs
// each request comes once. An expired token restarts the query. A run the
// budget ends is complete up to the last `updated` it delivered, the runs
// that read the last page up to their start.
func TestJSMBudgetContinuesNextRun(t *testing.T) {
	f := newJSMFake(t)
	s, _ := jsmSource(t, f.config("    max_requests_per_run: 3\n"), 2)
	var cur []byte
	var all, marks []string
	tokens := 0
	for run := 0; run < 30; run++ {
		b, next := collectOnce(t, s, cur, fdNow)
		all = append(all, recordTicketIDs(b.Tickets)...)
		marks = append(marks, b.Watermark.UTC().Format("15:04"))
		if strings.Contains(string(next), `"token"`) {
			tokens++
		}
		if string(next) == string(cur) {
			break
		}
		cur = next
	}
	if strings.Join(all, ",") != "10001,10002,10003,10005" || tokens == 0 {
		t.Errorf("over the runs: %v (%d cursors with a page token)", all, tokens)
	}
	// Runs (UTC): SUP-1 (09:45), then SUP-2's SLA is over budget | SUP-2,
	// the search from its minute is over | that search, page 2 is over |
	// SUP-3 (09:50), SUP-4 rejected (09:55), the next search is over |
	// SUP-5 (10:05), the last page | nothing new, the last page.
	if want := "09:45 09:45 09:45 09:55 11:58 11:58"; strings.Join(marks, " ") != want {
		t.Errorf("watermarks of the runs: %s, want %s", strings.Join(marks, " "), want)
	}
	s2, _ := jsmSource(t, f.config(""), 2)
	b, _ := collectOnce(t, s2, []byte(`{"at":"2026-11-02T09:45:00Z","ids":["10001","10002"],"from":"2026/11/02 10:45","token":"ZXhwaXJlZA=="}`), fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "10003,10005" {
		t.Errorf("after an expired token: %v", got)
	}
}

func TestJSMConfigErrors(t *testing.T) {
	base := "collectors:\n  - name: j\n    type: jira_service_management\n    schedule: \"@hourly\"\n"
	ok := "    url: https://acme.atlassian.net\n    email: a@b.c\n    api_token: t0k\n"
	for spec, want := range map[string]string{
		"    email: a@b.c\n    api_token: t\n    project: SUP\n":  "collectors[0].url: is required (e.g. https://acme.atlassian.net)",
		"    url: https://acme.atlassian.net\n    project: SUP\n": "collectors[0].email: is required",
		ok:                          `collectors[0].project: "" is not a Jira project key`,
		ok + "    project: sup-1\n": `test.yml:8: collectors[0].project: "sup-1" is not a Jira project key`,
		ok + "    project: SUP\n    time_zone: Mars/Olympus\n":                                               "test.yml:9: collectors[0].time_zone: unknown time zone Mars/Olympus",
		ok + "    project: SUP\n    jql_filter: a = b ORDER BY c\n":                                          "test.yml:9: collectors[0].jql_filter: must not contain ORDER BY",
		ok + "    project: SUP\n    max_requests_per_run: 1\n":                                               "test.yml:9: collectors[0].max_requests_per_run: must be at least 3",
		ok + "    project: SUP\n    statuses: {Done: finished}\n":                                            `test.yml:9: collectors[0].statuses: status "Done": "finished" is not one of`,
		ok + "    project: SUP\n    token: x\n":                                                              `unknown field "token"`,
		"    url: https://acme.atlassian.net/jira\n    email: a@b.c\n    api_token: t0k\n    project: SUP\n": `collectors[0].url: must be the site URL (https://acme.atlassian.net, classic API tokens) or https://api.atlassian.com/ex/jira/{cloudId}`,
		ok + "    project: SUP\n    settle_lag: 25h\n":                                                       "test.yml:9: collectors[0].settle_lag: 25h0m0s is more than a day",
	} {
		expectConfigError(t, base, spec, want, "t0k")
	}
	if _, err := buildSourceErr(base + ok + "    project: SUP\n    jql_filter: type = \"Service Request\"\n"); err != nil {
		t.Error(err)
	}
	if _, err := buildSourceErr(base + strings.Replace(ok, "https://acme.atlassian.net", "https://api.atlassian.com/ex/jira/11223344-a1b2-3b33-c444-def123456789", 1) + "    project: SUP\n"); err != nil {
		t.Errorf("the gateway form: %v", err)
	}
}

// jql_filter is ANDed into the query.
func TestJSMFilter(t *testing.T) {
	f := newJSMFake(t)
	s, _ := jsmSource(t, f.config("    jql_filter: 'labels = vpn'\n"), 100)
	collectOnce(t, s, nil, fdNow)
	if !strings.HasPrefix(f.log[0], "search 2026/10/03 14:00") {
		t.Errorf("the filtered JQL was not accepted: %v", f.log)
	}
	if got := s.jql("2026/10/03 14:00"); got != `project = "SUP" AND updated >= "2026/10/03 14:00" AND (labels = vpn) ORDER BY updated ASC, key ASC` {
		t.Errorf("jql %s", got)
	}
}

// The documented example entry builds.
func TestJSMExampleConfig(t *testing.T) {
	t.Setenv("JIRA_API_TOKEN", "k")
	s, err := buildSourceErr("collectors:\n" + exampleYAML(t, "jira_service_management"))
	if err != nil {
		t.Fatal(err)
	}
	if j := s.(*jsm); j.project != "SUP" || j.statuses["waiting for customer"] != "pending" || j.zone.String() != "Europe/Berlin" {
		t.Errorf("%+v", j)
	}
}

// Jira Cloud may answer 429 with only X-RateLimit-Reset, the ISO 8601
// instant the limit resets at, to the minute: the run waits until the end
// of that minute (12:00:30 → 12:03, 150s; the reset lies within 12:02)
// and goes on.
func TestJSMWaitsForTheISOResetTime(t *testing.T) {
	f := newJSMFake(t)
	f.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/rest/servicedeskapi/request/10002/sla" && !strings.Contains(strings.Join(f.log, ";"), "hooked") {
			w.Header().Set("X-RateLimit-Reset", "2026-11-02T12:02Z")
			w.Header().Set("RateLimit-Reason", "jira-burst-based")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	s, waits := jsmSource(t, f.config(""), 100)
	s.client.now = func() time.Time { return time.Date(2026, 11, 2, 12, 0, 30, 0, time.UTC) }
	b, _ := collectOnce(t, s, nil, fdNow)
	if len(b.Tickets) != 4 || len(*waits) != 1 || (*waits)[0] != 150*time.Second {
		t.Errorf("%d tickets after waits %v, want 4 after one 150s wait", len(b.Tickets), *waits)
	}
}

// jsmIssue adds an issue created and updated at `at` (UTC) with no SLA.
func (f *jsmFake) issueAt(id, key, at string) {
	u := mustRFC3339(at).Format(jiraTime)
	f.update(id, key, map[string]any{"created": u, "updated": u,
		"status": map[string]any{"name": "Open", "statusCategory": map[string]any{"key": "new"}}}, []json.RawMessage{})
}

// Search is eventually consistent: SUP-20 (updated 10:00:00) appears 40s
// late, after SUP-21 (10:00:10). Without a settle lag the first run
// delivers SUP-21, its watermark passes SUP-20, and SUP-20 is skipped for
// good; with the default lag (2m) both arrive in the second run.
func TestJSMSettleLagKeepsLateIssues(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  []string
	}{
		{"    settle_lag: 0s\n", []string{"21", ""}},
		{"", []string{"", "20,21"}},
	} {
		f := newJSMFake(t)
		f.issues = map[string]json.RawMessage{}
		f.issueAt("20", "SUP-20", "2026-11-02T10:00:00Z")
		f.issueAt("21", "SUP-21", "2026-11-02T10:00:10Z")
		f.visibleAt = map[string]time.Time{"20": mustRFC3339("2026-11-02T10:00:40Z")}
		s, _ := jsmSource(t, f.config(tc.extra), 100)
		var cur []byte
		var got []string
		for _, now := range []time.Time{mustRFC3339("2026-11-02T10:00:30Z"), mustRFC3339("2026-11-02T10:03:00Z")} {
			f.now = now
			var b *collectors.Batch
			b, cur = collectOnce(t, s, cur, now)
			got = append(got, strings.Join(recordTicketIDs(b.Tickets), ","))
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: issues per run %q, want %q", tc.extra, got, tc.want)
		}
	}
}

// An account whose Jira profile is in Los Angeles (UTC-8 in November):
// JQL reads "updated >= …" there. The bound of a 10:30 UTC watermark must
// be 02:30, not 10:30 (18:30 UTC, which would skip SUP-30 at 11:00 UTC).
// A time_zone that disagrees with the profile fails the run.
func TestJSMWestOfUTCAccount(t *testing.T) {
	f := newJSMFake(t)
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	f.zone = la
	f.issues = map[string]json.RawMessage{}
	f.issueAt("30", "SUP-30", "2026-11-02T11:00:00Z")
	cur := []byte(`{"at":"2026-11-02T10:30:00Z","ids":["29"]}`)
	yml := strings.Replace(f.config(""), "    time_zone: Europe/Berlin\n", "", 1)
	s, _ := jsmSource(t, yml, 100)
	b, _ := collectOnce(t, s, cur, fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "30" || f.log[0] != "search 2026/11/02 02:30 0" || f.myself != 1 {
		t.Errorf("issues %v, requests %v, /myself %d: want SUP-30 from a search at 02:30", got, f.log, f.myself)
	}
	s2, _ := jsmSource(t, strings.Replace(f.config(""), "time_zone: Europe/Berlin", "time_zone: UTC", 1), 100)
	if _, _, err := tryCollect(s2, cur, fdNow); err == nil || !strings.Contains(err.Error(), "time_zone is UTC but the Jira profile of the API account is in America/Los_Angeles") {
		t.Errorf("a mismatched time_zone: %v", err)
	}
}

// A scoped API token works only through the gateway form
// https://api.atlassian.com/ex/jira/{cloudId}; the site answers 401, and
// servq's error says which URL to use. A classic token at the gateway gets
// the reverse advice. Neither error shows the token.
func TestJSMScopedTokenURLForms(t *testing.T) {
	f := newJSMFake(t)
	f.scoped = true
	s, _ := jsmSource(t, f.config(""), 100)
	_, _, err := tryCollect(s, nil, fdNow)
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "use url: https://api.atlassian.com/ex/jira/{cloudId}") || strings.Contains(err.Error(), f.token) {
		t.Errorf("scoped token at the site: %v", err)
	}
	gw := strings.Replace(f.config(""), "url: "+f.srv.URL, "url: "+f.srv.URL+"/ex/jira/"+f.cloudID, 1)
	s, _ = jsmSource(t, gw, 100)
	b, _ := collectOnce(t, s, nil, fdNow)
	if got := recordTicketIDs(b.Tickets); strings.Join(got, ",") != "10001,10002,10003,10005" {
		t.Errorf("scoped token at the gateway: %v", got)
	}
	f.scoped = false
	s, _ = jsmSource(t, gw, 100)
	if _, _, err := tryCollect(s, nil, fdNow); err == nil || !strings.Contains(err.Error(), "a classic token needs the site URL") || strings.Contains(err.Error(), f.token) {
		t.Errorf("classic token at the gateway: %v", err)
	}
}

// Los Angeles falls back on 2026-11-01: 01:00-02:00 happens twice (PDT,
// then PST). A watermark at 08:30 UTC is 01:30 PDT; "01:30" also names
// 09:30 UTC, and Jira does not say which it reads. Under the later reading
// a search from "01:30" would skip SUP-41 (08:45 UTC, 01:45 PDT) and
// SUP-40 (09:00 UTC, 01:00 PST), so the bound is 00:30 (07:30 UTC, one
// instant): under either reading the run delivers exactly those 2 (SUP-38
// at 08:00 UTC is before the watermark, delivered already), and the next
// run, from 09:00 UTC (01:00 PST, whose earlier reading is 08:00 UTC),
// delivers none.
func TestJSMFallBackHourInTheProfileZone(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	for _, later := range []bool{false, true} {
		f := newJSMFake(t)
		f.zone, f.laterInFold = la, later
		f.issues = map[string]json.RawMessage{}
		f.issueAt("38", "SUP-38", "2026-11-01T08:00:00Z")
		f.issueAt("41", "SUP-41", "2026-11-01T08:45:00Z")
		f.issueAt("40", "SUP-40", "2026-11-01T09:00:00Z")
		s, _ := jsmSource(t, strings.Replace(f.config(""), "    time_zone: Europe/Berlin\n", "", 1), 100)
		now := mustRFC3339("2026-11-01T10:00:00Z")
		b, cur := collectOnce(t, s, []byte(`{"at":"2026-11-01T08:30:00Z","ids":["37"]}`), now)
		if got := strings.Join(recordTicketIDs(b.Tickets), ","); got != "41,40" || f.log[0] != "search 2026/11/01 00:30 0" {
			t.Errorf("later reading %v: issues %q after %v, want 41,40 from a search at 00:30", later, got, f.log)
		}
		f.log = nil
		b, _ = collectOnce(t, s, cur, now.Add(5*time.Minute))
		if len(b.Tickets) != 0 || f.log[0] != "search 2026/11/01 01:00 0" {
			t.Errorf("later reading %v: the next run delivered %v after %v, want none from 01:00", later, recordTicketIDs(b.Tickets), f.log)
		}
	}
}

// Ten polls, a minute apart (10:01 … 10:10), of a search that shows
// changes late, committed to the quality model. Issues (updated, shown
// in search from): SUP-1 10:00:00 at once, SUP-2 10:00:20 from 10:01:30,
// SUP-3 10:00:40 at once, SUP-4 10:02:00 from 10:03:50, SUP-5 10:03:00 at
// once and solved, SUP-6 10:04:00 from 10:07:30, SUP-7 10:05:00 at once;
// SUP-1 is solved at 10:06:00 (shown at once). A run delivers what is at
// least settle_lag old, up to the first newer issue. Hand-computed:
//
//   - 0s: 10:01 delivers 1,3 (watermark 10:00:40), so SUP-2 (10:00:20)
//     shows behind it and is lost; 10:03 delivers 5 (10:03), so SUP-4
//     (10:02) is lost; 10:05 delivers 7, so SUP-6 (10:04) is lost; 10:06
//     delivers SUP-1's solve. 4 created, 2 solved.
//   - 2m (default): a run at T delivers up to T-2m: 10:02 → 1, 10:03 →
//     2,3, 10:04 → 4, 10:05 → 5, 10:06 → none (SUP-6 not shown, SUP-7
//     too new), 10:07 → 7, 10:08 → SUP-1's solve. SUP-6 shows 3m30s late,
//     more than the lag, after 7 was delivered: lost. 6 created, 2 solved.
//   - 4m: every issue shows within the lag: 10:04 → 1, 10:05 → 2,3,
//     10:06 → 4, 10:07 → 5, 10:08 → 6, 10:09 → 7, 10:10 → SUP-1's solve.
//     7 created, 2 solved.
//
// Each poll is repeated at once from its cursor: the JQL bound reaches
// back to the watermark's minute, so the repeat reads the same issues
// again, and delivers none of them; SUP-1's second version counts its
// solve, not a second creation.
func TestJSMLateSearchResultsCountedOnce(t *testing.T) {
	for _, tc := range []struct {
		lag     string
		perPoll string
		created float64
	}{
		{"0s", "1,3||5||7|1||||", 4},
		{"2m", "|1|2,3|4|5||7|1||", 6},
		{"4m", "|||1|2,3|4|5|6|7|1", 7},
	} {
		f := newJSMFake(t)
		f.issues = map[string]json.RawMessage{}
		f.visibleAt = map[string]time.Time{}
		for _, is := range []struct{ n, updated, shown string }{
			{"1", "10:00:00", "10:00:00"}, {"2", "10:00:20", "10:01:30"}, {"3", "10:00:40", "10:00:40"},
			{"4", "10:02:00", "10:03:50"}, {"5", "10:03:00", "10:03:00"}, {"6", "10:04:00", "10:07:30"},
			{"7", "10:05:00", "10:05:00"},
		} {
			f.issueAt(is.n, "SUP-"+is.n, "2026-11-02T"+is.updated+"Z")
			f.visibleAt[is.n] = mustRFC3339("2026-11-02T" + is.shown + "Z")
		}
		done := func(id, at string) {
			u := mustRFC3339("2026-11-02T" + at + "Z").Format(jiraTime)
			f.update(id, "SUP-"+id, map[string]any{"updated": u, "resolutiondate": u,
				"status": map[string]any{"name": "Done", "statusCategory": map[string]any{"key": "done"}}}, nil)
		}
		done("5", "10:03:00")
		yml := f.config("    settle_lag: " + tc.lag + "\n")
		m := testModel(t, testConfig(t, yml))
		s, _ := jsmSource(t, yml, 100)
		var cur []byte
		var polls []string
		for i := 1; i <= 10; i++ {
			now := time.Date(2026, 11, 2, 10, i, 0, 0, time.UTC)
			if i == 6 {
				done("1", "10:06:00")
			}
			f.now = now
			b, next := collectOnce(t, s, cur, now)
			commitRun(t, m, "jsm", b, next)
			polls = append(polls, strings.Join(recordTicketIDs(b.Tickets), ","))
			again, next2 := collectOnce(t, s, next, now)
			commitRun(t, m, "jsm", again, next2)
			if len(again.Tickets) != 0 {
				t.Errorf("settle_lag %s, %s: the repeated poll delivered %v again", tc.lag, now.Format("15:04"), recordTicketIDs(again.Tickets))
			}
			cur = next2
		}
		if got := strings.Join(polls, "|"); got != tc.perPoll {
			t.Errorf("settle_lag %s: issues per poll %q, want %q", tc.lag, got, tc.perPoll)
		}
		tot := familyTotals(t, m)
		if tot["servq_tickets_created_total"] != tc.created || tot["servq_tickets_solved_total"] != 2 {
			t.Errorf("settle_lag %s: created %v, solved %v; want %v and 2", tc.lag, tot["servq_tickets_created_total"], tot["servq_tickets_solved_total"], tc.created)
		}
	}
}
