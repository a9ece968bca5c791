package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// twilioTaskRouter reads the queue statistics of a Twilio TaskRouter
// workspace. TaskRouter reports aggregates, not individual calls, so:
//
//   - RealTimeStatistics of each TaskQueue become a record.Snapshot: calls
//     waiting = tasks pending + reserved (not yet accepted), longest wait =
//     longest_relative_task_age_in_queue (the time the oldest caller has
//     waited in this queue; longest_task_waiting_age counts from the
//     task's creation, so a transferred call would show its whole life),
//     agents by state = activity_statistics (activity friendly names,
//     lower-cased).
//   - CumulativeStatistics over the minutes since the last run become
//     synthetic record.Calls: reservations_accepted answered calls,
//     tasks_canceled abandoned calls and tasks_moved timed-out calls (the
//     workflow moved them on to another queue) per interval. The waits of
//     answered and abandoned calls are spread over the split_by_wait_time
//     buckets (the count in each bucket is Twilio's) and scaled so that
//     their sum is the interval's total wait. Waits are in-queue waits:
//     wait_duration_in_queue_until_accepted, which counts from the moment
//     the task entered this queue, not wait_duration_until_accepted, which
//     counts a transferred task from its creation (its time in other
//     queues and with other agents); mixing the two would push transferred
//     calls' earlier life into this queue's buckets. Tasks the split does
//     not cover (its above + below count short of the total) are a group
//     of their own, bounded only by the interval's longest wait, instead
//     of being put above the last threshold. Handle time is not in the
//     statistics: the calls are marked HandleUnknown.
//   - TaskRouter computes the statistics from at most 10,000 tasks or
//     reservations per threshold: an interval with that many accepted or
//     canceled tasks (or both together, with a split short of the totals;
//     see capped) has truncated buckets. Such an interval is asked for
//     again in halves, down to one minute, and the step the queue needs is
//     kept in the cursor (it grows back while intervals stay small); a
//     one-minute interval still at the cap is counted and reported as the
//     rejection stats_truncated.
//
// The cursor holds, per TaskQueue, the EndDate of the last interval counted;
// the next interval starts there, so none is counted twice or skipped.
type twilioTaskRouter struct {
	base      *url.URL
	workspace string
	queues    map[string]bool // friendly names or SIDs; nil = all
	channel   string
	taskChan  string // TaskChannel query parameter; "" = all channels
	split     []int
	interval  time.Duration
	delay     time.Duration
	since     time.Duration
	client    *apiClient
}

type twilioTaskRouterSpec struct {
	// Named: the strict key check skips unexported embedded fields.
	Polite           politeSpec       `yaml:",inline"`
	BaseURL          string           `yaml:"base_url"`
	AccountSID       string           `yaml:"account_sid"`
	AuthToken        config.Secret    `yaml:"auth_token"`
	AuthTokenFile    string           `yaml:"auth_token_file"`
	APIKeySID        string           `yaml:"api_key_sid"`
	APIKeySecret     config.Secret    `yaml:"api_key_secret"`
	APIKeySecretFile string           `yaml:"api_key_secret_file"`
	WorkspaceSID     string           `yaml:"workspace_sid"`
	Queues           []string         `yaml:"queues"`
	TaskChannel      *string          `yaml:"task_channel"`
	Channel          string           `yaml:"channel"`
	SplitByWaitTime  []int            `yaml:"split_by_wait_time"`
	Interval         config.Duration  `yaml:"interval"`
	Delay            *config.Duration `yaml:"delay"`
}

const (
	twilioDefaultBase     = "https://taskrouter.twilio.com"
	twilioDefaultInterval = time.Hour
	twilioDefaultDelay    = time.Minute
	// TaskRouter keeps cumulative statistics for 30 days; an hour of margin
	// keeps the oldest StartDate inside that window while the run is going.
	twilioHistory  = 30*24*time.Hour - time.Hour
	twilioPageSize = 100
)

var (
	twilioSIDs = map[string]*regexp.Regexp{
		"account_sid":   regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`),
		"api_key_sid":   regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`),
		"workspace_sid": regexp.MustCompile(`^WS[0-9a-fA-F]{32}$`),
	}
)

func init() {
	collectors.Register("twilio_taskrouter", newTwilioTaskRouter)
}

func newTwilioTaskRouter(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
	var spec twilioTaskRouterSpec
	if err := c.DecodeSpec(&spec); err != nil {
		return nil, err
	}
	if err := spec.Polite.check(c); err != nil {
		return nil, err
	}
	for key, v := range map[string]string{"account_sid": spec.AccountSID, "api_key_sid": spec.APIKeySID, "workspace_sid": spec.WorkspaceSID} {
		if v != "" && !twilioSIDs[key].MatchString(v) {
			return nil, c.Errorf(key, "%q is not a Twilio SID (%s followed by 32 hex digits)", v, twilioSIDs[key].String()[1:3])
		}
	}
	if spec.WorkspaceSID == "" {
		return nil, c.Errorf("workspace_sid", "is required (WS…, TaskRouter → Workspaces in the Twilio console)")
	}
	token, err := resolveSecret(c, "auth_token", spec.AuthToken, spec.AuthTokenFile)
	if err != nil {
		return nil, err
	}
	keySecret, err := resolveSecret(c, "api_key_secret", spec.APIKeySecret, spec.APIKeySecretFile)
	if err != nil {
		return nil, err
	}
	var user string
	var pass config.Secret
	switch {
	case spec.APIKeySID != "" || keySecret != "":
		if spec.APIKeySID == "" || keySecret == "" {
			return nil, c.Errorf("api_key_sid", "api_key_sid and api_key_secret (or api_key_secret_file) go together")
		}
		if token != "" {
			return nil, c.Errorf("auth_token", "set either auth_token or an API key, not both")
		}
		user, pass = spec.APIKeySID, keySecret
	case spec.AccountSID == "" || token == "":
		return nil, c.Errorf("account_sid", "account_sid with auth_token (or auth_token_file), or api_key_sid with api_key_secret, is required")
	default:
		user, pass = spec.AccountSID, token
	}
	s := &twilioTaskRouter{workspace: spec.WorkspaceSID, taskChan: "voice", channel: spec.Channel,
		interval: twilioDefaultInterval, delay: twilioDefaultDelay, since: min(spec.Polite.since(), twilioHistory)}
	raw := spec.BaseURL
	if raw == "" {
		raw = twilioDefaultBase
	}
	var ok bool
	if s.base, ok = parseHTTPURL(strings.TrimRight(raw, "/")); !ok {
		return nil, c.Errorf("base_url", "%q is not an http(s) URL", raw)
	}
	if spec.TaskChannel != nil {
		s.taskChan = *spec.TaskChannel
	}
	if s.channel == "" {
		switch s.taskChan {
		case "voice", "":
			s.channel = "phone"
		default:
			s.channel = s.taskChan
		}
	}
	if len(spec.Queues) > 0 {
		s.queues = map[string]bool{}
		for _, q := range spec.Queues {
			s.queues[q] = true
		}
	}
	if s.split, err = twilioThresholds(spec.SplitByWaitTime); err != nil {
		return nil, c.Errorf("split_by_wait_time", "%v", err)
	}
	if spec.Interval != 0 {
		if spec.Interval.D() < time.Minute || spec.Interval.D()%time.Minute != 0 {
			return nil, c.Errorf("interval", "must be whole minutes, at least 1m")
		}
		s.interval = spec.Interval.D()
	}
	if spec.Delay != nil {
		if spec.Delay.D() < 0 {
			return nil, c.Errorf("delay", "must not be negative")
		}
		s.delay = spec.Delay.D()
	}
	hdr := redact.BasicAuth(user, pass.Reveal())
	s.client = newAPIClient(spec.Polite, func(r *http.Request) { r.Header.Set("Authorization", hdr) })
	return s, nil
}

// twilioThresholds validates split_by_wait_time; the default is servq's
// default call_wait buckets, so that every default bucket is exact.
func twilioThresholds(in []int) ([]int, error) {
	if len(in) == 0 {
		for _, f := range config.DefaultCallWaitBuckets {
			in = append(in, int(f))
		}
	}
	out := append([]int(nil), in...)
	sort.Ints(out)
	for i, t := range out {
		if t <= 0 {
			return nil, fmt.Errorf("thresholds are positive seconds, got %d", t)
		}
		if i > 0 && out[i-1] == t {
			return nil, fmt.Errorf("threshold %d given twice", t)
		}
	}
	return out, nil
}

// trCursor is the committed state: per TaskQueue SID, the end of the last
// interval whose statistics were turned into calls.
type trCursor struct {
	Ends map[string]time.Time `json:"ends"`
	// Steps is, per TaskQueue, the interval in minutes its statistics are
	// asked for in when the configured interval would reach TaskRouter's
	// 10,000-task limit (absent: the configured interval).
	Steps map[string]int `json:"steps,omitempty"`
}

// twilioStatsCap is TaskRouter's documented limit: statistics are computed
// for up to 10,000 Tasks/Reservations for any given threshold.
const twilioStatsCap = 10_000

type trQueue struct {
	SID          string `json:"sid"`
	FriendlyName string `json:"friendly_name"`
}

type trMeta struct {
	NextPageURL string `json:"next_page_url"`
}

// maxTwilioCalls bounds the tasks of one queue in one interval: more is a
// broken answer, and each becomes a call record in memory.
const maxTwilioCalls = 1_000_000

// trCount is an integer that TaskRouter writes as a number or, in some
// maps (tasks_by_status), as a numeric string.
type trCount int64

func (n *trCount) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := parseFinite(s)
	if err != nil || math.Abs(v) > float64(maxRecordSeconds) {
		// NaN or a huge value would convert to an arbitrary int64.
		return fmt.Errorf("%s is not a number up to %d", b, maxRecordSeconds)
	}
	*n = trCount(v)
	return nil
}

type trRealTime struct {
	LongestTaskWaitingAge trCount            `json:"longest_task_waiting_age"`
	LongestRelativeAge    *trCount           `json:"longest_relative_task_age_in_queue"`
	TasksByStatus         map[string]trCount `json:"tasks_by_status"`
	TotalAvailableWorkers trCount            `json:"total_available_workers"`
	ActivityStatistics    []struct {
		FriendlyName string  `json:"friendly_name"`
		Workers      trCount `json:"workers"`
	} `json:"activity_statistics"`
}

type trDuration struct {
	Avg   float64 `json:"avg"`
	Max   float64 `json:"max"`
	Total float64 `json:"total"`
}

type trSplit struct {
	TasksCanceled        trCount `json:"tasks_canceled"`
	ReservationsAccepted trCount `json:"reservations_accepted"`
}

type trCumulative struct {
	ReservationsAccepted      trCount     `json:"reservations_accepted"`
	TasksCanceled             trCount     `json:"tasks_canceled"`
	TasksMoved                trCount     `json:"tasks_moved"`
	AvgTaskAcceptanceTime     trCount     `json:"avg_task_acceptance_time"`
	WaitDurationUntilAccepted *trDuration `json:"wait_duration_until_accepted"`
	WaitDurationUntilCanceled *trDuration `json:"wait_duration_until_canceled"`
	// WaitDurationInQueueUntilAccepted counts from the moment the task
	// entered this queue (Twilio: "relative wait duration").
	WaitDurationInQueueUntilAccepted *trDuration `json:"wait_duration_in_queue_until_accepted"`
	SplitByWaitTime                  map[string]struct {
		Above trSplit `json:"above"`
		Below trSplit `json:"below"`
	} `json:"split_by_wait_time"`
}

func (s *twilioTaskRouter) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	cur := trCursor{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return nil, fmt.Errorf("twilio_taskrouter: bad cursor: %w", err)
		}
	}
	if cur.Ends == nil {
		cur.Ends = map[string]time.Time{}
	}
	if cur.Steps == nil {
		cur.Steps = map[string]int{}
	}
	s.client.startRun()
	queues, err := s.listQueues(ctx, b)
	if errors.Is(err, errBudget) {
		return json.Marshal(cur) // nothing read: the next run starts over
	}
	if err != nil {
		return nil, err
	}
	// Live gauges first, so that a long backfill never leaves them stale.
	for _, q := range queues {
		if err := s.realTime(ctx, q, b); errors.Is(err, errBudget) {
			return json.Marshal(cur)
		} else if err != nil {
			return nil, err
		}
	}
	end := b.Now.Add(-s.delay).Truncate(time.Minute)
	known := map[string]bool{}
	for _, q := range queues {
		known[q.SID] = true
		if err := s.cumulative(ctx, q, end, &cur, b); errors.Is(err, errBudget) {
			return json.Marshal(cur)
		} else if err != nil {
			return nil, err
		}
	}
	for sid := range cur.Ends {
		if !known[sid] {
			delete(cur.Ends, sid) // a deleted (or unselected) queue
			delete(cur.Steps, sid)
		}
	}
	return json.Marshal(cur)
}

func (s *twilioTaskRouter) url(path string, q url.Values) string {
	u := *s.base
	u.Path = strings.TrimRight(s.base.Path, "/") + path
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *twilioTaskRouter) queuePath(sid, what string) string {
	return "/v1/Workspaces/" + url.PathEscape(s.workspace) + "/TaskQueues/" + url.PathEscape(sid) + what
}

// listQueues pages through the workspace's TaskQueues (meta.next_page_url)
// and returns the selected ones sorted by SID.
func (s *twilioTaskRouter) listQueues(ctx context.Context, b *collectors.Batch) ([]trQueue, error) {
	next := s.url("/v1/Workspaces/"+url.PathEscape(s.workspace)+"/TaskQueues", url.Values{"PageSize": {strconv.Itoa(twilioPageSize)}})
	var out []trQueue
	for page := 0; next != ""; page++ {
		var resp struct {
			Meta       trMeta            `json:"meta"`
			TaskQueues []json.RawMessage `json:"task_queues"`
		}
		if _, err := s.client.getJSON(ctx, next, &resp); err != nil {
			return nil, err
		}
		for i, rawQ := range resp.TaskQueues {
			var q trQueue
			pos := fmt.Sprintf("TaskQueues page %d item %d", page, i)
			if err := json.Unmarshal(rawQ, &q); err != nil {
				b.Reject("bad_json", pos, err)
				continue
			}
			if q.SID == "" {
				b.Reject("missing_field", pos, errors.New("task queue without sid"))
				continue
			}
			if q.FriendlyName == "" {
				q.FriendlyName = q.SID
			}
			if s.queues == nil || s.queues[q.SID] || s.queues[q.FriendlyName] {
				out = append(out, q)
			}
		}
		var err error
		if next, err = s.sameHost(resp.Meta.NextPageURL); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SID < out[j].SID })
	return out, nil
}

// sameHost accepts a next-page URL only on the configured host: the
// credentials are never sent anywhere else.
func (s *twilioTaskRouter) sameHost(next string) (string, error) {
	if next == "" {
		return "", nil
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != s.base.Host || u.Scheme != s.base.Scheme {
		return "", fmt.Errorf("twilio_taskrouter: next_page_url %q is not on %s", redactURL(next), s.base.Host)
	}
	return next, nil
}

func (s *twilioTaskRouter) statsQuery() url.Values {
	q := url.Values{}
	if s.taskChan != "" {
		q.Set("TaskChannel", s.taskChan)
	}
	return q
}

func (s *twilioTaskRouter) realTime(ctx context.Context, q trQueue, b *collectors.Batch) error {
	var rt trRealTime
	if _, err := s.client.getJSON(ctx, s.url(s.queuePath(q.SID, "/RealTimeStatistics"), s.statsQuery()), &rt); err != nil {
		return err
	}
	for status, n := range rt.TasksByStatus {
		if n < 0 {
			b.Reject("bad_number", s.queuePath(q.SID, "/RealTimeStatistics"), fmt.Errorf("tasks_by_status.%s is negative (%d)", status, n))
			return nil
		}
	}
	if rt.LongestTaskWaitingAge < 0 || rt.TotalAvailableWorkers < 0 {
		b.Reject("bad_number", s.queuePath(q.SID, "/RealTimeStatistics"), fmt.Errorf("longest_task_waiting_age %d or total_available_workers %d is negative", rt.LongestTaskWaitingAge, rt.TotalAvailableWorkers))
		return nil
	}
	// The in-queue age is what the caller feels in this queue; the age
	// from creation includes a transferred call's earlier queues.
	longest := rt.LongestTaskWaitingAge
	if rt.LongestRelativeAge != nil {
		if *rt.LongestRelativeAge < 0 {
			b.Reject("bad_number", s.queuePath(q.SID, "/RealTimeStatistics"), fmt.Errorf("longest_relative_task_age_in_queue %d is negative", *rt.LongestRelativeAge))
			return nil
		}
		longest = *rt.LongestRelativeAge
	}
	snap := record.Snapshot{Queue: q.FriendlyName, At: b.Now, HasWait: true,
		CallsWaiting: int(rt.TasksByStatus["pending"] + rt.TasksByStatus["reserved"]),
		LongestWait:  time.Duration(longest) * time.Second,
		Agents:       map[string]int{}}
	for _, a := range rt.ActivityStatistics {
		if a.Workers < 0 {
			b.Reject("bad_number", s.queuePath(q.SID, "/RealTimeStatistics"), fmt.Errorf("activity %q: negative workers %d", a.FriendlyName, a.Workers))
			return nil
		}
		snap.Agents[strings.ToLower(a.FriendlyName)] += int(a.Workers)
	}
	if len(rt.ActivityStatistics) == 0 {
		snap.Agents["available"] = int(rt.TotalAvailableWorkers)
	}
	b.Snapshots = append(b.Snapshots, snap)
	return nil
}

// cumulative turns the statistics of every interval between the queue's
// cursor and end into calls, advancing the cursor interval by interval.
func (s *twilioTaskRouter) cumulative(ctx context.Context, q trQueue, end time.Time, cur *trCursor, b *collectors.Batch) error {
	start, ok := cur.Ends[q.SID]
	oldest := end.Add(-twilioHistory)
	switch {
	case !ok:
		start = end.Add(-s.since)
	case start.Before(oldest):
		b.Reject("history_lost", q.FriendlyName, fmt.Errorf("statistics from %s to %s are older than TaskRouter keeps (30 days) and were not counted", start.Format(time.RFC3339), oldest.Format(time.RFC3339)))
		start = oldest
	}
	step := s.interval
	if m := cur.Steps[q.SID]; m > 0 && time.Duration(m)*time.Minute < step {
		step = time.Duration(m) * time.Minute
	}
	for start.Before(end) {
		to := start.Add(step)
		if to.After(end) {
			to = end
		}
		qv := s.statsQuery()
		qv.Set("StartDate", start.UTC().Format(time.RFC3339))
		qv.Set("EndDate", to.UTC().Format(time.RFC3339))
		splits := make([]string, len(s.split))
		for i, t := range s.split {
			splits[i] = strconv.Itoa(t)
		}
		qv.Set("SplitByWaitTime", strings.Join(splits, ","))
		path := s.queuePath(q.SID, "/CumulativeStatistics")
		var st trCumulative
		if _, err := s.client.getJSON(ctx, s.url(path, qv), &st); err != nil {
			return err
		}
		n, capped := st.ReservationsAccepted+st.TasksCanceled, s.capped(&st)
		if capped && to.Sub(start) > time.Minute {
			// Truncated buckets: ask again for the first half (whole
			// minutes), and keep the shorter step for this queue.
			step = max((to.Sub(start) / 2).Truncate(time.Minute), time.Minute)
			cur.Steps[q.SID] = int(step / time.Minute)
			continue
		}
		if capped {
			b.Reject("stats_truncated", fmt.Sprintf("%s %s..%s", path, qv.Get("StartDate"), qv.Get("EndDate")),
				fmt.Errorf("%d accepted and %d canceled tasks in one minute reach TaskRouter's limit of %d per threshold: the wait buckets of this minute are incomplete", st.ReservationsAccepted, st.TasksCanceled, twilioStatsCap))
		}
		s.emit(b, q, start, to, &st, path)
		cur.Ends[q.SID] = to
		start = to
		if n < twilioStatsCap/4 && step < s.interval {
			// Quiet again: grow the step back towards the interval.
			step = min(2*step, s.interval)
			cur.Steps[q.SID] = int(step / time.Minute)
		}
		if step >= s.interval {
			delete(cur.Steps, q.SID)
		}
		if b.Full() {
			// A chunk ends at an interval: the cursor resumes after it.
			c, err := json.Marshal(cur)
			if err != nil {
				return err
			}
			if err := b.Flush(ctx, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// capped reports whether TaskRouter's 10,000 limit may have truncated the
// wait split of an interval. Twilio documents "up to 10,000
// Tasks/Reservations for any given threshold" without saying whether
// accepted reservations and canceled tasks share the 10,000, so either
// reading is covered: 10,000 of one kind, or 10,000 of both together with
// a threshold whose above + below falls short of the totals. A short split
// below 10,000 together is not the limit (tasks the split leaves out, see
// groups): asking again in halves would not change it.
func (s *twilioTaskRouter) capped(st *trCumulative) bool {
	if max(st.ReservationsAccepted, st.TasksCanceled) >= twilioStatsCap {
		return true
	}
	if st.ReservationsAccepted+st.TasksCanceled < twilioStatsCap {
		return false
	}
	for _, v := range st.SplitByWaitTime {
		if v.Above.ReservationsAccepted+v.Below.ReservationsAccepted < st.ReservationsAccepted ||
			v.Above.TasksCanceled+v.Below.TasksCanceled < st.TasksCanceled {
			return true
		}
	}
	return false
}

// trGroup is a number of calls whose wait lies in (lo, hi] seconds.
type trGroup struct {
	n      int
	lo, hi float64
}

// emit adds the answered and abandoned calls of one interval. IDs derive
// from queue, interval and position, so a re-read interval dedups.
func (s *twilioTaskRouter) emit(b *collectors.Batch, q trQueue, from, to time.Time, st *trCumulative, path string) {
	splits := map[int][2]trSplit{} // threshold -> below, above
	for k, v := range st.SplitByWaitTime {
		t, err := strconv.Atoi(k)
		if err != nil || t <= 0 {
			b.Reject("bad_number", path+" split_by_wait_time", fmt.Errorf("threshold %q is not a positive number of seconds", k))
			continue
		}
		splits[t] = [2]trSplit{v.Below, v.Above}
	}
	id := fmt.Sprintf("tr:%s:%d-%d:", q.SID, from.Unix(), to.Unix())
	// In-queue waits (see the type's comment): the relative duration,
	// else the one from creation (identical for tasks never transferred),
	// else the average from creation.
	// Canceled tasks have no in-queue total: a transferred one brings its
	// earlier life into cancelTotal, and spread keeps it inside the bucket
	// the split gives it rather than moving it out (documented).
	acceptTotal := float64(st.AvgTaskAcceptanceTime) * float64(st.ReservationsAccepted)
	acceptMax := 0.0
	if d := st.WaitDurationInQueueUntilAccepted; d != nil {
		acceptTotal, acceptMax = d.Total, d.Max
	} else if d := st.WaitDurationUntilAccepted; d != nil {
		acceptTotal, acceptMax = d.Total, d.Max
	}
	cancelTotal, cancelMax := 0.0, 0.0
	if d := st.WaitDurationUntilCanceled; d != nil {
		cancelTotal, cancelMax = d.Total, d.Max
	}
	for _, o := range []struct {
		out      record.CallOutcome
		tag      string
		n        trCount
		count    func(trSplit) trCount
		total, m float64
	}{
		{record.OutcomeAnswered, "a", st.ReservationsAccepted, func(x trSplit) trCount { return x.ReservationsAccepted }, acceptTotal, acceptMax},
		{record.OutcomeAbandoned, "c", st.TasksCanceled, func(x trSplit) trCount { return x.TasksCanceled }, cancelTotal, cancelMax},
	} {
		if o.n < 0 || o.n > maxTwilioCalls {
			b.Reject("bad_number", path, fmt.Errorf("%s count %d is not 0 to %d", o.out, o.n, maxTwilioCalls))
			continue
		}
		// The waits are spread from the total and bounded by the max: both
		// must be what calls can wait, or every call would carry the excess.
		if limit := record.MaxCallDuration.Seconds(); !(o.m >= 0 && o.m <= limit && o.total >= 0 && o.total <= float64(o.n)*limit) {
			b.Reject("bad_number", path, fmt.Errorf("%s waits (max %gs, total %gs over %d calls) are outside [0, %s] per call", o.out, o.m, o.total, o.n, record.MaxCallDuration))
			continue
		}
		groups := s.groups(int(o.n), splits, o.count, o.m)
		n := 0
		for _, w := range spread(groups, o.total) {
			c := record.Call{ID: id + o.tag + strconv.Itoa(n), Queue: q.FriendlyName, Channel: s.channel,
				EnqueuedAt: to.Add(-w), EndedAt: to, Wait: w, Outcome: o.out, HandleUnknown: true}
			if o.out == record.OutcomeAnswered {
				c.AnsweredAt = to
			}
			b.Calls = append(b.Calls, c)
			n++
		}
	}
	// Tasks the workflow moved on to another queue left this one
	// unanswered: timed-out calls here, counted again where they end.
	// TaskRouter reports no wait for them; they carry 0 seconds.
	if st.TasksMoved < 0 || st.TasksMoved > maxTwilioCalls {
		b.Reject("bad_number", path, fmt.Errorf("tasks_moved %d is not 0 to %d", st.TasksMoved, maxTwilioCalls))
		return
	}
	for i := range int(st.TasksMoved) {
		b.Calls = append(b.Calls, record.Call{ID: id + "m" + strconv.Itoa(i), Queue: q.FriendlyName, Channel: s.channel,
			EnqueuedAt: to, EndedAt: to, Outcome: record.OutcomeTimeout, HandleUnknown: true})
	}
}

// groups splits n calls by the "below" counts of the configured thresholds
// that Twilio answered: (0, t1], [t1+1, t2], …, [tk+1, max]. Waits are
// whole seconds, so a call above t waited at least t+1. When a threshold's
// below + above falls short of n, the split left tasks out (TaskRouter's
// 10,000 limit, tasks it keeps out of the split): those are a group of
// their own between 0 and the longest wait, not calls above the last
// threshold.
func (s *twilioTaskRouter) groups(n int, splits map[int][2]trSplit, count func(trSplit) trCount, maxWait float64) []trGroup {
	covered := n
	for _, t := range s.split {
		if v, ok := splits[t]; ok {
			covered = min(covered, int(count(v[0])+count(v[1])))
		}
	}
	covered = max(covered, 0)
	var out []trGroup
	prevT, prevN := 0, 0
	for _, t := range s.split {
		v, ok := splits[t]
		if !ok {
			continue
		}
		c := min(max(int(count(v[0])), prevN), covered) // cumulative, never beyond the covered
		lo := float64(prevT)
		if prevT > 0 {
			lo++
		}
		out = append(out, trGroup{n: c - prevN, lo: lo, hi: float64(t)})
		prevT, prevN = t, c
	}
	lo := float64(prevT)
	if prevT > 0 {
		lo++
	}
	out = append(out, trGroup{n: covered - prevN, lo: lo, hi: max(maxWait, lo)})
	if n > covered {
		out = append(out, trGroup{n: n - covered, lo: 0, hi: maxWait})
	}
	return out
}

// spread gives every call of every group one wait inside its group, at the
// same relative place f in each group, with f chosen so that the waits add
// up to total (clamped to the groups' bounds when total is out of reach).
func spread(groups []trGroup, total float64) []time.Duration {
	minSum, maxSum := 0.0, 0.0
	for _, g := range groups {
		minSum += float64(g.n) * g.lo
		maxSum += float64(g.n) * g.hi
	}
	f := 0.0
	if maxSum > minSum {
		f = min(max((total-minSum)/(maxSum-minSum), 0), 1)
	}
	var out []time.Duration
	for _, g := range groups {
		w := time.Duration((g.lo + f*(g.hi-g.lo)) * float64(time.Second))
		for range g.n {
			out = append(out, w)
		}
	}
	return out
}
