package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
)

// The fake speaks the TaskRouter REST API as documented on
// twilio.com/docs/taskrouter/api/task-queue (list: meta.next_page_url,
// key "task_queues") and twilio.com/docs/taskrouter/api/taskqueue-statistics
// (RealTimeStatistics and CumulativeStatistics with StartDate, EndDate,
// TaskChannel, SplitByWaitTime; snake_case fields, split_by_wait_time keyed
// by threshold with "above"/"below" counts of tasks_canceled and
// reservations_accepted). Errors carry Twilio's body
// {"code", "message", "more_info", "status"} (twilio.com/docs/api/errors).

var (
	trAccount   = "AC" + strings.Repeat("b", 32)
	trToken     = "tok-s3cret-never-shown"
	trWorkspace = "WS" + strings.Repeat("a", 32)
	trSupport   = "WQ" + strings.Repeat("1", 32)
	trSales     = "WQ" + strings.Repeat("2", 32)
	trBilling   = "WQ" + strings.Repeat("3", 32)
	trT0        = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
)

// trTask is one task leaving a queue in the fake: accepted (answered),
// canceled (the caller hung up) or moved on to another queue by the
// workflow after wait seconds in this queue. before is the time since the
// task's creation when it entered this queue (a transferred task).
type trTask struct {
	queue    string
	at       time.Time
	wait     int
	canceled bool
	moved    bool
	before   int
}

// The workload, hand-checked in the tests below (times from 10:00 UTC):
//
//	Support: accepted after 8s @10:10, 15s @10:20, 25s @10:30, 70s @11:05,
//	         12s @12:10; canceled after 3s @10:40, 40s @11:10
//	Sales:   accepted after 4s @10:15, 100s @11:30; canceled after 50s @11:45
//	Billing: nothing
var trTasks = []trTask{
	{queue: trSupport, at: trT0.Add(10 * time.Minute), wait: 8, canceled: false},
	{queue: trSupport, at: trT0.Add(20 * time.Minute), wait: 15, canceled: false},
	{queue: trSupport, at: trT0.Add(30 * time.Minute), wait: 25, canceled: false},
	{queue: trSupport, at: trT0.Add(65 * time.Minute), wait: 70, canceled: false},
	{queue: trSupport, at: trT0.Add(130 * time.Minute), wait: 12, canceled: false},
	{queue: trSupport, at: trT0.Add(40 * time.Minute), wait: 3, canceled: true},
	{queue: trSupport, at: trT0.Add(70 * time.Minute), wait: 40, canceled: true},
	{queue: trSales, at: trT0.Add(15 * time.Minute), wait: 4, canceled: false},
	{queue: trSales, at: trT0.Add(90 * time.Minute), wait: 100, canceled: false},
	{queue: trSales, at: trT0.Add(105 * time.Minute), wait: 50, canceled: true},
}

type fakeTwilio struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	log []string // "path?decoded query" of every authorised request
	// hook may answer a request itself (fault injection); true = answered.
	hook func(w http.ResponseWriter, r *http.Request) bool
	// tasks is the workload (default trTasks).
	tasks []trTask
	// capShared: the split's 10,000 are shared by accepted and canceled
	// tasks (the other reading of Twilio's "up to 10,000
	// Tasks/Reservations for any given threshold"); false: 10,000 each.
	capShared bool
	// splitSkipsTransfers: the split leaves out tasks transferred into
	// the queue (before > 0), as the issue describes TaskRouter doing.
	splitSkipsTransfers bool
}

func newFakeTwilio(t *testing.T) *fakeTwilio {
	f := &fakeTwilio{t: t, tasks: trTasks}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func twilioError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code": %d, "message": %q, "more_info": "https://www.twilio.com/docs/errors/%d", "status": %d}`, code, msg, code, status)
}

func (f *fakeTwilio) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != trAccount || p != trToken {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	q, _ := url2query(r)
	f.mu.Lock()
	f.log = append(f.log, r.URL.Path+"?"+q)
	hook := f.hook
	f.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	ws := "/v1/Workspaces/" + trWorkspace + "/TaskQueues"
	switch {
	case r.URL.Path == ws:
		f.listPage(w, r)
	case strings.HasSuffix(r.URL.Path, "/RealTimeStatistics"):
		f.realTime(w, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, ws+"/"), "/RealTimeStatistics"))
	case strings.HasSuffix(r.URL.Path, "/CumulativeStatistics"):
		f.cumulative(w, r, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, ws+"/"), "/CumulativeStatistics"))
	default:
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	}
}

// url2query renders the query sorted and decoded, for readable assertions.
func url2query(r *http.Request) (string, error) {
	v := r.URL.Query()
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+v.Get(k))
	}
	return strings.Join(parts, "&"), nil
}

func (f *fakeTwilio) listPage(w http.ResponseWriter, r *http.Request) {
	base := f.srv.URL + r.URL.Path
	queue := func(sid, name string) string {
		return fmt.Sprintf(`{"account_sid": %q, "workspace_sid": %q, "sid": %q, "friendly_name": %q, "task_order": "FIFO", "max_reserved_workers": 1, "target_workers": "1==1", "date_created": "2026-01-05T09:00:00Z", "date_updated": "2026-01-05T09:00:00Z", "url": "%s/%s", "links": {}}`,
			trAccount, trWorkspace, sid, name, base, sid)
	}
	if r.URL.Query().Get("Page") == "1" {
		fmt.Fprintf(w, `{"meta": {"page": 1, "page_size": 2, "first_page_url": "%[1]s?PageSize=2&Page=0", "previous_page_url": "%[1]s?PageSize=2&Page=0", "url": "%[1]s?PageSize=2&Page=1", "next_page_url": null, "key": "task_queues"}, "task_queues": [%[2]s, {"friendly_name": "broken, no sid"}]}`,
			base, queue(trBilling, "Billing"))
		return
	}
	fmt.Fprintf(w, `{"meta": {"page": 0, "page_size": 2, "first_page_url": "%[1]s?PageSize=2&Page=0", "previous_page_url": null, "url": "%[1]s?PageSize=2&Page=0", "next_page_url": "%[1]s?PageSize=2&Page=1&PageToken=PAWQ2", "key": "task_queues"}, "task_queues": [%[2]s, %[3]s]}`,
		base, queue(trSupport, "Support"), queue(trSales, "Sales"))
}

func (f *fakeTwilio) realTime(w http.ResponseWriter, sid string) {
	switch sid {
	case trSupport:
		fmt.Fprintf(w, `{"account_sid": %q, "workspace_sid": %q, "task_queue_sid": %q, "longest_task_waiting_age": 95, "longest_task_waiting_sid": "WT%s", "longest_relative_task_age_in_queue": 80, "tasks_by_status": {"pending": 2, "reserved": 1, "assigned": 4, "wrapping": 0}, "tasks_by_priority": {}, "total_tasks": 7, "total_available_workers": 2, "total_eligible_workers": 8, "activity_statistics": [{"friendly_name": "Idle", "workers": 2, "sid": "WA1"}, {"friendly_name": "Busy", "workers": 4, "sid": "WA2"}, {"friendly_name": "Offline", "workers": 1, "sid": "WA3"}, {"friendly_name": "Reserved", "workers": 1, "sid": "WA4"}], "url": "x"}`,
			trAccount, trWorkspace, sid, strings.Repeat("c", 32))
	case trSales:
		// tasks_by_status as the field description writes it: numeric strings.
		fmt.Fprintf(w, `{"task_queue_sid": %q, "longest_task_waiting_age": 12, "tasks_by_status": {"pending": "1", "reserved": "0", "assigned": "2"}, "total_available_workers": 3, "activity_statistics": null}`, sid)
	default:
		fmt.Fprintf(w, `{"task_queue_sid": %q, "longest_task_waiting_age": 0, "tasks_by_status": {}, "total_available_workers": 0, "activity_statistics": []}`, sid)
	}
}

type trDur struct {
	Avg   float64 `json:"avg"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Total float64 `json:"total"`
}

// cumulative aggregates the tasks that left the queue in [StartDate,
// EndDate). "below" counts waits up to and including the threshold; the
// split counts only the first 10,000 accepted and canceled tasks, as
// TaskRouter computes "up to 10,000 Tasks/Reservations for any given
// threshold". wait_duration_until_accepted counts from the task's
// creation, wait_duration_in_queue_until_accepted from its entering this
// queue; the split is by the wait in this queue.
func (f *fakeTwilio) cumulative(w http.ResponseWriter, r *http.Request, sid string) {
	qv := r.URL.Query()
	from, err1 := time.Parse(time.RFC3339, qv.Get("StartDate"))
	to, err2 := time.Parse(time.RFC3339, qv.Get("EndDate"))
	if err1 != nil || err2 != nil || qv.Get("TaskChannel") != "voice" {
		twilioError(w, http.StatusBadRequest, 20001, "Invalid StartDate, EndDate or TaskChannel")
		return
	}
	var thresholds []int
	for _, s := range strings.Split(qv.Get("SplitByWaitTime"), ",") {
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			twilioError(w, http.StatusBadRequest, 20001, "Invalid SplitByWaitTime")
			return
		}
		thresholds = append(thresholds, n)
	}
	acc, can, accInQueue := trDur{}, trDur{}, trDur{}
	type side struct {
		TasksCanceled        int `json:"tasks_canceled"`
		ReservationsAccepted int `json:"reservations_accepted"`
	}
	split := map[string]map[string]*side{}
	for _, t := range thresholds {
		split[strconv.Itoa(t)] = map[string]*side{"above": {}, "below": {}}
	}
	nAcc, nCan, nMoved := 0, 0, 0
	add := func(d *trDur, v float64) {
		d.Total += v
		d.Max = max(d.Max, v)
		if d.Min == 0 || v < d.Min {
			d.Min = v
		}
	}
	for _, tk := range f.tasks {
		if tk.queue != sid || tk.at.Before(from) || !tk.at.Before(to) {
			continue
		}
		if tk.moved {
			nMoved++
			continue
		}
		if tk.canceled {
			nCan++
			add(&can, float64(tk.before+tk.wait))
			if nCan > 10_000 || f.capShared && nCan+nAcc > 10_000 {
				continue
			}
		} else {
			nAcc++
			add(&acc, float64(tk.before+tk.wait))
			add(&accInQueue, float64(tk.wait))
			if nAcc > 10_000 || f.capShared && nCan+nAcc > 10_000 {
				continue
			}
		}
		if f.splitSkipsTransfers && tk.before > 0 {
			continue
		}
		for _, t := range thresholds {
			s := split[strconv.Itoa(t)]["above"]
			if tk.wait <= t {
				s = split[strconv.Itoa(t)]["below"]
			}
			if tk.canceled {
				s.TasksCanceled++
			} else {
				s.ReservationsAccepted++
			}
		}
	}
	avgAcc := 0
	if nAcc > 0 {
		acc.Avg = acc.Total / float64(nAcc)
		accInQueue.Avg = accInQueue.Total / float64(nAcc)
		avgAcc = int(acc.Avg)
	}
	if nCan > 0 {
		can.Avg = can.Total / float64(nCan)
	}
	body := map[string]any{
		"account_sid": trAccount, "workspace_sid": trWorkspace, "task_queue_sid": sid,
		"start_time": from.Format(time.RFC3339), "end_time": to.Format(time.RFC3339),
		"reservations_created": nAcc, "reservations_accepted": nAcc, "reservations_rejected": 0,
		"reservations_timed_out": 0, "reservations_canceled": 0, "reservations_rescinded": 0,
		"tasks_entered": nAcc + nCan + nMoved, "tasks_canceled": nCan, "tasks_completed": nAcc, "tasks_deleted": 0, "tasks_moved": nMoved,
		"avg_task_acceptance_time": avgAcc, "wait_duration_until_accepted": acc, "wait_duration_until_canceled": can,
		"wait_duration_in_queue_until_accepted": accInQueue, "split_by_wait_time": split, "url": "x",
	}
	json.NewEncoder(w).Encode(body)
}

func trConfigYAML(f *fakeTwilio, extra string) string {
	return fmt.Sprintf(`collectors:
  - name: tr
    type: twilio_taskrouter
    schedule: "@every 1m"
    base_url: %s
    account_sid: %s
    auth_token: %s
    workspace_sid: %s
    split_by_wait_time: [60, 5, 20]
    since: 2h
    retries: 0
%sslos:
  - {name: sl-20s, indicator: call_service_level, threshold: 20s, objective: 80}
`, f.srv.URL, trAccount, trToken, trWorkspace, extra)
}

// trHarness is a source fed through a real quality model, as servq runs it.
type trHarness struct {
	t      *testing.T
	src    *twilioTaskRouter
	model  *quality.Model
	cursor []byte
}

func newTRHarness(t *testing.T, f *fakeTwilio, extra string) *trHarness {
	t.Helper()
	cfg := testConfig(t, trConfigYAML(f, extra))
	m := testModel(t, cfg)
	src := buildCollector(t, cfg, collectors.Env{}).(*twilioTaskRouter)
	recordWaits(src.client)
	return &trHarness{t: t, src: src, model: m}
}

// run collects at now and, when it succeeds, commits batch and cursor.
func (h *trHarness) run(now time.Time) (*collectors.Batch, error) {
	h.t.Helper()
	b, next, err := tryCollect(h.src, h.cursor, now)
	if err != nil {
		return b, err
	}
	commitRun(h.t, h.model, "tr", b, next)
	h.cursor = next
	return b, nil
}

func (h *trHarness) mustRun(now time.Time) *collectors.Batch {
	h.t.Helper()
	b, err := h.run(now)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// trExpect is expectValues, and checks that no handle time was observed:
// TaskRouter statistics have no handle time, the calls are marked
// HandleUnknown and the handle-time histogram has no series.
func trExpect(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k := range got {
		if strings.HasPrefix(k, "servq_call_handle_seconds") {
			t.Errorf("%s = %g: unknown handle times were observed", k, got[k])
		}
	}
	expectValues(t, got, want)
}

const trQ = "channel=phone,collector=tr,queue="

func trQO(queue, outcome string) string {
	return "channel=phone,collector=tr,outcome=" + outcome + ",queue=" + queue
}

// Totals of the first run (intervals 09:59-10:59 and 10:59-11:59):
// Support answered 8, 15, 25, 70 s and abandoned 3, 40 s; Sales answered 4
// and 100 s, abandoned 50 s.
func trWantFirst() map[string]float64 {
	return map[string]float64{
		"servq_calls_offered_total{" + trQ + "Support}":         6,
		"servq_calls_answered_total{" + trQ + "Support}":        4,
		"servq_calls_abandoned_total{" + trQ + "Support}":       2,
		"servq_calls_abandoned_short_total{" + trQ + "Support}": 1, // 3s <= 5s
		// ASA exact: (8+15+25+70)/4 -> the sum is 118.
		"servq_call_wait_seconds_count{" + trQO("Support", "answered") + "}": 4,
		"servq_call_wait_seconds_sum{" + trQO("Support", "answered") + "}":   118,
		// Exact at every split threshold: <=5s none, <=20s 8 and 15, <=60s +25.
		"servq_call_wait_seconds_bucket{" + trQO("Support", "answered") + ",le=5}":  0,
		"servq_call_wait_seconds_bucket{" + trQO("Support", "answered") + ",le=20}": 2,
		"servq_call_wait_seconds_bucket{" + trQO("Support", "answered") + ",le=60}": 3,
		"servq_call_wait_seconds_sum{" + trQO("Support", "abandoned") + "}":         43, // 3 + 40
		"servq_call_wait_seconds_bucket{" + trQO("Support", "abandoned") + ",le=5}": 1,
		"servq_calls_offered_total{" + trQ + "Sales}":                               3,
		"servq_calls_answered_total{" + trQ + "Sales}":                              2,
		"servq_calls_abandoned_total{" + trQ + "Sales}":                             1,
		"servq_calls_abandoned_short_total{" + trQ + "Sales}":                       0,
		"servq_call_wait_seconds_sum{" + trQO("Sales", "answered") + "}":            104, // 4 + 100
		"servq_call_wait_seconds_bucket{" + trQO("Sales", "answered") + ",le=5}":    1,
		"servq_call_wait_seconds_bucket{" + trQO("Sales", "answered") + ",le=60}":   1,
		"servq_call_wait_seconds_bucket{" + trQO("Sales", "abandoned") + ",le=60}":  1, // 50s
	}
}

// After the second run (interval 11:59-12:29) Support also answered the
// 12:10 call after 12s: 5 answered, sum 130, 3 within 20s.
func trWantSecond() map[string]float64 {
	w := trWantFirst()
	w["servq_calls_offered_total{"+trQ+"Support}"] = 7
	w["servq_calls_answered_total{"+trQ+"Support}"] = 5
	w["servq_call_wait_seconds_count{"+trQO("Support", "answered")+"}"] = 5
	w["servq_call_wait_seconds_sum{"+trQO("Support", "answered")+"}"] = 130
	w["servq_call_wait_seconds_bucket{"+trQO("Support", "answered")+",le=20}"] = 3
	w["servq_call_wait_seconds_bucket{"+trQO("Support", "answered")+",le=60}"] = 4
	return w
}

var (
	trNow1 = trT0.Add(2*time.Hour + 30*time.Second)     // 12:00:30 -> intervals end at 11:59
	trNow2 = trT0.Add(150*time.Minute + 30*time.Second) // 12:30:30 -> 12:29
)

func TestTwilioTaskRouterMappingPagingAndIncrementalRun(t *testing.T) {
	f := newFakeTwilio(t)
	h := newTRHarness(t, f, "")
	b := h.mustRun(trNow1)

	ws := "/v1/Workspaces/" + trWorkspace + "/TaskQueues"
	cum := func(sid, from, to string) string {
		return ws + "/" + sid + "/CumulativeStatistics?EndDate=2026-11-02T" + to + ":00Z&SplitByWaitTime=5,20,60&StartDate=2026-11-02T" + from + ":00Z&TaskChannel=voice"
	}
	// Two list pages, three live readings, then since (2h) before 11:59 in
	// 1h intervals per queue.
	want := []string{
		ws + "?PageSize=100", ws + "?Page=1&PageSize=2&PageToken=PAWQ2",
		ws + "/" + trSupport + "/RealTimeStatistics?TaskChannel=voice",
		ws + "/" + trSales + "/RealTimeStatistics?TaskChannel=voice",
		ws + "/" + trBilling + "/RealTimeStatistics?TaskChannel=voice",
		cum(trSupport, "09:59", "10:59"), cum(trSupport, "10:59", "11:59"),
		cum(trSales, "09:59", "10:59"), cum(trSales, "10:59", "11:59"),
		cum(trBilling, "09:59", "10:59"), cum(trBilling, "10:59", "11:59"),
	}
	if got := f.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	wantSnaps := []record.Snapshot{
		// pending 2 + reserved 1 waiting; activities lower-cased.
		// longest_relative_task_age_in_queue (80 s in this queue), not
		// longest_task_waiting_age (95 s since the task was created).
		{Queue: "Support", At: trNow1, HasWait: true, CallsWaiting: 3, LongestWait: 80 * time.Second,
			Agents: map[string]int{"idle": 2, "busy": 4, "offline": 1, "reserved": 1}},
		// numeric strings; no activity statistics -> total_available_workers.
		{Queue: "Sales", At: trNow1, HasWait: true, CallsWaiting: 1, LongestWait: 12 * time.Second, Agents: map[string]int{"available": 3}},
		{Queue: "Billing", At: trNow1, HasWait: true, Agents: map[string]int{"available": 0}},
	}
	if !reflect.DeepEqual(b.Snapshots, wantSnaps) {
		t.Errorf("snapshots:\n got %+v\nwant %+v", b.Snapshots, wantSnaps)
	}
	if len(b.Rejected) != 1 || b.Rejected[0].Reason != "missing_field" || b.Rejected[0].Position != "TaskQueues page 1 item 1" {
		t.Errorf("rejections = %+v, want the queue without sid", b.Rejected)
	}
	// Sales 10:59-11:59 answered one call after 100s: the only call of its
	// group (above 60s), whose wait is the interval's total, 100s.
	end := trT0.Add(119 * time.Minute)
	id := fmt.Sprintf("tr:%s:%d-%d:a0", trSales, end.Add(-time.Hour).Unix(), end.Unix())
	var found bool
	for _, c := range b.Calls {
		if c.ID == id {
			found = true
			w := record.Call{ID: id, Queue: "Sales", Channel: "phone", EnqueuedAt: end.Add(-100 * time.Second), AnsweredAt: end, EndedAt: end, Wait: 100 * time.Second, Outcome: record.OutcomeAnswered, HandleUnknown: true}
			if !reflect.DeepEqual(c, w) {
				t.Errorf("call:\n got %+v\nwant %+v", c, w)
			}
		}
	}
	if !found || len(b.Calls) != 9 { // 6 Support + 3 Sales
		t.Errorf("%d calls, %s found %v", len(b.Calls), id, found)
	}
	got := seriesValues(t, h.model)
	trExpect(t, got, trWantFirst())
	trExpect(t, got, map[string]float64{
		"servq_queue_calls_waiting{collector=tr,queue=Support}":        3,
		"servq_queue_longest_wait_seconds{collector=tr,queue=Support}": 80,
		"servq_queue_agents{collector=tr,queue=Support,state=busy}":    4,
		"servq_queue_agents{collector=tr,queue=Sales,state=available}": 3,
		"servq_queue_longest_wait_seconds{collector=tr,queue=Billing}": 0,
	})

	// The second run asks only for the half hour since 11:59.
	before := len(f.requests())
	h.mustRun(trNow2)
	var cums []string
	for _, r := range f.requests()[before:] {
		if strings.Contains(r, "CumulativeStatistics") {
			cums = append(cums, r)
		}
	}
	wantCums := []string{cum(trSupport, "11:59", "12:29"), cum(trSales, "11:59", "12:29"), cum(trBilling, "11:59", "12:29")}
	if !reflect.DeepEqual(cums, wantCums) {
		t.Errorf("second run asked for\n%s\nwant\n%s", strings.Join(cums, "\n"), strings.Join(wantCums, "\n"))
	}
	trExpect(t, seriesValues(t, h.model), trWantSecond())

	// A run within the same minute has no new interval: no cumulative request.
	before = len(f.requests())
	b3 := h.mustRun(trNow2.Add(20 * time.Second))
	for _, r := range f.requests()[before:] {
		if strings.Contains(r, "CumulativeStatistics") {
			t.Errorf("run in the same minute asked %s", r)
		}
	}
	if len(b3.Calls) != 0 {
		t.Errorf("run in the same minute emitted %d calls", len(b3.Calls))
	}
}

// A 500 in the middle of the second run fails it: nothing is committed,
// and the rerun from the old cursor (a minute later) counts the 12:10 call
// exactly once.
func TestTwilioTaskRouterFailureMidRunThenRerun(t *testing.T) {
	f := newFakeTwilio(t)
	h := newTRHarness(t, f, "")
	h.mustRun(trNow1)
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, trSales+"/CumulativeStatistics") {
			twilioError(w, http.StatusInternalServerError, 20500, "Internal Server Error")
			return true
		}
		return false
	}
	if _, err := h.run(trNow2); err == nil || !strings.Contains(err.Error(), "500 Internal Server Error") || strings.Contains(err.Error(), trToken) {
		t.Fatalf("err = %v, want the 500 without the token", err)
	}
	trExpect(t, seriesValues(t, h.model), trWantFirst()) // Support's 12:10 call not committed
	f.hook = nil
	h.mustRun(trNow2.Add(time.Minute))
	trExpect(t, seriesValues(t, h.model), trWantSecond())

	// A malformed answer fails the run the same way.
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/RealTimeStatistics") {
			w.Write([]byte(`{"task_queue_sid": "WQ`))
			return true
		}
		return false
	}
	if _, err := h.run(trNow2.Add(2 * time.Minute)); err == nil || !strings.Contains(err.Error(), "not the expected JSON") {
		t.Errorf("malformed JSON: err = %v", err)
	}
}

// Runs committed in chunks of one record (a chunk at each statistics
// interval) count exactly what unchunked runs count.
func TestTwilioTaskRouterChunks(t *testing.T) {
	f := newFakeTwilio(t)
	h := newTRHarness(t, f, "")
	if n := commitChunked(t, h.src, h.model, "tr", trNow1, 1); n < 2 {
		t.Fatalf("%d chunks: the first run reads several intervals", n)
	}
	trExpect(t, seriesValues(t, h.model), trWantFirst())
	commitChunked(t, h.src, h.model, "tr", trNow2, 1)
	trExpect(t, seriesValues(t, h.model), trWantSecond())
}

// A budget of 7 requests: list (2) + live readings (3) leave 2 for the
// cumulative intervals. Every run commits what it finished; three runs at
// the same instant give exactly the totals of one unlimited run.
func TestTwilioTaskRouterBudgetCommitsPartialProgress(t *testing.T) {
	f := newFakeTwilio(t)
	h := newTRHarness(t, f, "    max_requests_per_run: 7\n")
	h.mustRun(trNow1)
	var cur trCursor
	json.Unmarshal(h.cursor, &cur)
	if len(cur.Ends) != 1 || !cur.Ends[trSupport].Equal(trT0.Add(119*time.Minute)) {
		t.Errorf("cursor after the first run = %s, want Support done up to 11:59", h.cursor)
	}
	got := seriesValues(t, h.model)
	if got["servq_calls_offered_total{"+trQ+"Support}"] != 6 || got["servq_calls_offered_total{"+trQ+"Sales}"] != 0 {
		t.Errorf("after run 1: Support %g Sales %g offered, want 6 and none", got["servq_calls_offered_total{"+trQ+"Support}"], got["servq_calls_offered_total{"+trQ+"Sales}"])
	}
	h.mustRun(trNow1)
	h.mustRun(trNow1)
	json.Unmarshal(h.cursor, &cur)
	if len(cur.Ends) != 3 {
		t.Errorf("cursor after three runs = %s", h.cursor)
	}
	trExpect(t, seriesValues(t, h.model), trWantFirst())
}

func TestTwilioTaskRouterHonoursRetryAfter(t *testing.T) {
	f := newFakeTwilio(t)
	h := newTRHarness(t, f, "")
	retries := 2
	h.src.client.retries = retries
	waits := recordWaits(h.src.client)
	throttled := false
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if !throttled && strings.HasSuffix(r.URL.Path, "/RealTimeStatistics") {
			throttled = true
			w.Header().Set("Retry-After", "3")
			twilioError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
			return true
		}
		return false
	}
	h.mustRun(trNow1)
	if !reflect.DeepEqual(*waits, []time.Duration{3 * time.Second}) {
		t.Errorf("waits = %v, want the 3s of Retry-After", *waits)
	}
	trExpect(t, seriesValues(t, h.model), trWantFirst())
}

func TestTwilioTaskRouterAuthFailureIsClearAndSecretFree(t *testing.T) {
	f := newFakeTwilio(t)
	yml := strings.Replace(trConfigYAML(f, ""), "auth_token: "+trToken, "auth_token: wrong-"+trToken, 1)
	s := buildSource(t, yml)
	_, err := s.Collect(context.Background(), nil, &collectors.Batch{Now: trNow1})
	want := "GET /v1/Workspaces/" + trWorkspace + "/TaskQueues: 401 Unauthorized: Authenticate"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), trToken) {
		t.Errorf("err = %v, want %q without the token", err, want)
	}
}

func TestTwilioTaskRouterConfigErrors(t *testing.T) {
	head := "collectors:\n  - name: tr\n    type: twilio_taskrouter\n    schedule: \"@every 1m\"\n"
	creds := "    account_sid: " + trAccount + "\n    auth_token: x\n"
	ws := "    workspace_sid: " + trWorkspace + "\n"
	for spec, want := range map[string]string{
		creds:                               "test.yml:2: collectors[0].workspace_sid: is required",
		ws:                                  "collectors[0].account_sid: account_sid with auth_token",
		creds + "    workspace_sid: WS12\n": `test.yml:7: collectors[0].workspace_sid: "WS12" is not a Twilio SID`,
		creds + ws + "    split_by_wait_time: [20, 20]\n":                   "test.yml:8: collectors[0].split_by_wait_time: threshold 20 given twice",
		creds + ws + "    interval: 90s\n":                                  "collectors[0].interval: must be whole minutes",
		creds + ws + "    api_key_sid: SK" + strings.Repeat("0", 32) + "\n": "api_key_sid and api_key_secret",
		creds + ws + "    retries: 11\n":                                    "collectors[0].retries: must be between 0 and 10",
		creds + ws + "    auth_tokn: x\n":                                   "auth_tokn",
	} {
		expectConfigError(t, head, spec, want, "auth_token: x")
	}
	// An API key instead of the auth token is accepted.
	if _, err := buildSourceErr(head + ws + "    api_key_sid: SK" + strings.Repeat("0", 32) + "\n    api_key_secret: y\n"); err != nil {
		t.Errorf("API key: %v", err)
	}
}

// The spread keeps every call in its Twilio bucket and the sum exact.
func TestTwilioTaskRouterSpread(t *testing.T) {
	// Thresholds 5, 20, 60; 8, 15 and 25 s: groups (0,5]:0, [6,20]:2,
	// [21,60]:1, [61,61]:0. Sum 48 lies between 33 and 100.
	s := &twilioTaskRouter{split: []int{5, 20, 60}}
	acc := func(below, above trCount) [2]trSplit {
		return [2]trSplit{{ReservationsAccepted: below}, {ReservationsAccepted: above}}
	}
	splits := map[int][2]trSplit{5: acc(0, 3), 20: acc(2, 1), 60: acc(3, 0)}
	w := spread(s.groups(3, splits, func(x trSplit) trCount { return x.ReservationsAccepted }, 25), 48)
	sum := 0.0
	for _, d := range w {
		sum += d.Seconds()
	}
	if len(w) != 3 || w[0] <= 5*time.Second || w[1] > 20*time.Second || w[2] <= 20*time.Second || w[2] > 60*time.Second || math.Abs(sum-48) > 1e-6 {
		t.Errorf("waits %v (sum %g)", w, sum)
	}
	// No split at all: every call gets the mean.
	w = spread((&twilioTaskRouter{}).groups(4, nil, func(x trSplit) trCount { return 0 }, 30), 60)
	if len(w) != 4 || w[0] != 15*time.Second {
		t.Errorf("without split: %v, want 4 x 15s", w)
	}
	// The split covers 3 of 5 answered calls (4, 8, 25 s; above + below is
	// 3 at every threshold): the 2 it left out are a group of their own
	// within [0, max 70], not calls above 60 s.
	splits = map[int][2]trSplit{5: acc(1, 2), 20: acc(2, 1), 60: acc(3, 0)}
	gs := s.groups(5, splits, func(x trSplit) trCount { return x.ReservationsAccepted }, 70)
	if want := []trGroup{{1, 0, 5}, {1, 6, 20}, {1, 21, 60}, {0, 61, 70}, {2, 0, 70}}; !reflect.DeepEqual(gs, want) {
		t.Errorf("groups %v, want %v", gs, want)
	}
}

// A transferred task (300 s of earlier life, then 15 s in Support) and one
// that is moved on to another queue after 30 s, beside a plain 10 s call.
// Waits are in-queue waits: ASA (10 + 15) / 2, both within 20 s; counting
// from creation would put 325 s on two calls of the 6-20 s bucket. The
// moved task is a timed-out call of its own: offered 3, answered 2.
//
// A transferred task abandoned after 8 s in Support (100 s of earlier
// life): TaskRouter's canceled total counts from creation (108 s) and has
// no in-queue form, so its wait is held inside its bucket (6-20 s) at the
// bucket's top, 20 s, instead of taking the 108 s: the bucket counts stay
// Twilio's.
//
// The same counts hold when the split leaves the transferred tasks out
// (splitSkipsTransfers): the answered one is then a group of its own
// within [0, 15 s] (the in-queue max), and the spread puts the plain call
// at 6 + f*14 and it at f*15 with f = (25-6)/(20+15-6), 15.2 s and 9.8 s:
// both still within 20 s, sum 25. The abandoned one is alone in [0, 108]
// with total 108: counted at 108 s, above every threshold, as TaskRouter
// gives nothing to place it better.
func TestTwilioTaskRouterTransferredAndMovedTasks(t *testing.T) {
	tasks := []trTask{
		{queue: trSupport, at: trT0.Add(10 * time.Minute), wait: 10},
		{queue: trSupport, at: trT0.Add(20 * time.Minute), wait: 15, before: 300},
		{queue: trSupport, at: trT0.Add(30 * time.Minute), wait: 30, moved: true},
		{queue: trSupport, at: trT0.Add(40 * time.Minute), wait: 8, before: 100, canceled: true},
	}
	want := map[string]float64{
		"servq_calls_offered_total{" + trQ + "Support}":                             4,
		"servq_calls_answered_total{" + trQ + "Support}":                            2,
		"servq_calls_abandoned_total{" + trQ + "Support}":                           1,
		"servq_call_wait_seconds_count{" + trQO("Support", "answered") + "}":        2,
		"servq_call_wait_seconds_sum{" + trQO("Support", "answered") + "}":          25,
		"servq_call_wait_seconds_bucket{" + trQO("Support", "answered") + ",le=5}":  0,
		"servq_call_wait_seconds_bucket{" + trQO("Support", "answered") + ",le=20}": 2,
		"servq_call_wait_seconds_count{" + trQO("Support", "timeout") + "}":         1,
	}
	for _, skip := range []bool{false, true} {
		f := newFakeTwilio(t)
		f.tasks, f.splitSkipsTransfers = tasks, skip
		h := newTRHarness(t, f, "")
		h.mustRun(trNow1)
		got := seriesValues(t, h.model)
		trExpect(t, got, want)
		abandoned := map[string]float64{
			"servq_call_wait_seconds_bucket{" + trQO("Support", "abandoned") + ",le=5}":  0,
			"servq_call_wait_seconds_bucket{" + trQO("Support", "abandoned") + ",le=20}": 1,
			"servq_call_wait_seconds_sum{" + trQO("Support", "abandoned") + "}":          20,
		}
		if skip {
			abandoned = map[string]float64{
				"servq_call_wait_seconds_bucket{" + trQO("Support", "abandoned") + ",le=60}": 0,
				"servq_call_wait_seconds_sum{" + trQO("Support", "abandoned") + "}":          108,
			}
		}
		trExpect(t, got, abandoned)
	}
}

// supportIntervals are the cumulative-statistics intervals asked for the
// Support queue, in order ("hh:mm-hh:mm").
func supportIntervals(f *fakeTwilio) string {
	var cums []string
	for _, r := range f.requests() {
		if strings.Contains(r, trSupport+"/CumulativeStatistics") {
			q, _ := url.ParseQuery(r[strings.Index(r, "?")+1:])
			cums = append(cums, q.Get("StartDate")[11:16]+"-"+q.Get("EndDate")[11:16])
		}
	}
	return strings.Join(cums, " ")
}

// 6,000 accepted (4 s) and 6,000 canceled (30 s) tasks, alternating every
// 300 ms from 10:00, against a TaskRouter whose split counts 10,000 tasks
// of both kinds together. The hour 09:59-10:59 holds 11,800 (5,900 of
// each: neither reaches 10,000 alone) and its split is short: it is asked
// again in half hours (5,800 and 6,000 tasks), as when one kind reaches
// the limit, and every bucket is exact: 6,000 answered within 5 s, 6,000
// abandoned within 60 s and none within 20 s. Counting the short hour
// would have put the 900 canceled tasks the split left out between 0 and
// 30 s, some within 20 s.
func TestTwilioTaskRouterStatisticsCapShared(t *testing.T) {
	f := newFakeTwilio(t)
	f.tasks, f.capShared = nil, true
	for i := range 12_000 {
		tk := trTask{queue: trSupport, at: trT0.Add(time.Duration(i) * 300 * time.Millisecond), wait: 4}
		if i%2 == 1 {
			tk.wait, tk.canceled = 30, true
		}
		f.tasks = append(f.tasks, tk)
	}
	h := newTRHarness(t, f, "")
	b := h.mustRun(trNow1)
	if got, want := supportIntervals(f), "09:59-10:59 09:59-10:29 10:29-10:59 10:59-11:29 11:29-11:59"; got != want {
		t.Errorf("Support intervals asked: %s, want %s", got, want)
	}
	trExpect(t, seriesValues(t, h.model), map[string]float64{
		"servq_calls_answered_total{" + trQ + "Support}":                             6_000,
		"servq_calls_abandoned_total{" + trQ + "Support}":                            6_000,
		"servq_call_wait_seconds_bucket{" + trQO("Support", "answered") + ",le=5}":   6_000,
		"servq_call_wait_seconds_sum{" + trQO("Support", "answered") + "}":           24_000,
		"servq_call_wait_seconds_bucket{" + trQO("Support", "abandoned") + ",le=20}": 0,
		"servq_call_wait_seconds_bucket{" + trQO("Support", "abandoned") + ",le=60}": 6_000,
		"servq_call_wait_seconds_sum{" + trQO("Support", "abandoned") + "}":          180_000,
	})
	if len(b.Rejected) != 1 { // the queue without sid only
		t.Errorf("rejections %+v", b.Rejected)
	}
}

// 12,000 calls answered within 4 s, evenly from 10:00 to 11:00. An hour
// reaches TaskRouter's 10,000-task limit (the fake's split then counts
// only 10,000 of them below 5 s): the source asks again in half hours
// (5,800 and 6,000 calls), grows the step back once a half hour is quiet,
// and counts all 12,000 within 5 s. 10,500 calls in one minute cannot be
// split further: they are counted, the 500 the split left out bounded only
// by the longest wait, and the minute is reported as stats_truncated.
func TestTwilioTaskRouterStatisticsCap(t *testing.T) {
	f := newFakeTwilio(t)
	f.tasks = nil
	for i := range 12_000 {
		f.tasks = append(f.tasks, trTask{queue: trSupport, at: trT0.Add(time.Duration(i) * 300 * time.Millisecond), wait: 4})
	}
	h := newTRHarness(t, f, "")
	b := h.mustRun(trNow1)
	if got, want := supportIntervals(f), "09:59-10:59 09:59-10:29 10:29-10:59 10:59-11:29 11:29-11:59"; got != want {
		t.Errorf("Support intervals asked: %s, want %s", got, want)
	}
	trExpect(t, seriesValues(t, h.model), map[string]float64{
		"servq_calls_answered_total{" + trQ + "Support}":                           12_000,
		"servq_call_wait_seconds_bucket{" + trQO("Support", "answered") + ",le=5}": 12_000,
		"servq_call_wait_seconds_sum{" + trQO("Support", "answered") + "}":         48_000,
	})
	if len(b.Rejected) != 1 { // the queue without sid only
		t.Errorf("rejections %+v", b.Rejected)
	}
	if strings.Contains(string(h.cursor), `"steps"`) {
		t.Errorf("the step should have grown back to the interval: %s", h.cursor)
	}

	f2 := newFakeTwilio(t)
	f2.tasks = nil
	for i := range 10_500 {
		f2.tasks = append(f2.tasks, trTask{queue: trSupport, at: trT0.Add(time.Duration(i) * 5 * time.Millisecond), wait: 4})
	}
	h2 := newTRHarness(t, f2, "")
	b2 := h2.mustRun(trNow1)
	var truncated []string
	for _, r := range b2.Rejected {
		if r.Reason == "stats_truncated" {
			truncated = append(truncated, r.Position)
		}
	}
	if len(truncated) != 1 || !strings.Contains(truncated[0], "2026-11-02T10:00:00Z..2026-11-02T10:01:00Z") {
		t.Errorf("stats_truncated rejections %v, want the minute 10:00", truncated)
	}
	got := seriesValues(t, h2.model)
	trExpect(t, got, map[string]float64{"servq_calls_answered_total{" + trQ + "Support}": 10_500})
	if sum := got["servq_call_wait_seconds_sum{"+trQO("Support", "answered")+"}"]; math.Abs(sum-42_000) > 1e-3 {
		t.Errorf("wait sum %g, want 42000 (ASA exact)", sum)
	}
}
