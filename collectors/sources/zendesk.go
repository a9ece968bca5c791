package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// zendesk reads Zendesk Support through its incremental exports:
//
//   - tickets from the cursor-based incremental ticket export
//     (GET /api/v2/incremental/tickets/cursor.json), with each ticket's
//     metric set (reply and resolution times, replies, reopens) and its
//     group sideloaded (include=metric_sets,groups);
//   - SLA breaches from the incremental ticket metric event export
//     (GET /api/v2/incremental/ticket_metric_events.json), events of type
//     "breach", paged with cursor pagination (page[size], page[after],
//     meta.has_more). Its time-based form (end_time, next_page) cannot get
//     past a page of events that all share one second: the next page
//     starts at that second again and returns the same events, so a
//     second with more events than a page stalled the export for good. A breach is merged into the ticket record of the same
//     run; a breached ticket the ticket export did not list in this run is
//     read with GET /api/v2/tickets/show_many.json (100 ids a request), so
//     that every breach travels on a complete ticket record.
//
// The cursor holds the export's after_cursor, the metric event export's
// next start_time and the breaches whose ticket could not be read yet (the
// request budget ran out). Everything is read again from there after a
// failed run; the quality model counts every event once.
type zendesk struct {
	base      string // scheme://host, no trailing slash
	client    *apiClient
	since     time.Duration
	queues    map[string]string
	complaint map[string]bool
	breaches  bool
}

type zendeskSpec struct {
	// Polite are the shared keys of API sources (request_timeout,
	// max_requests_per_run, retries, since). A named field: config's strict
	// key walker skips unexported embedded structs.
	Polite politeSpec `yaml:",inline"`
	// Subdomain (acme for https://acme.zendesk.com) or URL (a host-mapped
	// domain, or a test server): exactly one.
	Subdomain string `yaml:"subdomain"`
	URL       string `yaml:"url"`
	// API token authentication (email/token:TOKEN) or an OAuth access
	// token (Bearer): exactly one.
	Email          string        `yaml:"email"`
	Token          config.Secret `yaml:"token"`
	TokenFile      string        `yaml:"token_file"`
	OAuthToken     config.Secret `yaml:"oauth_token"`
	OAuthTokenFile string        `yaml:"oauth_token_file"`
	// Queues maps group ids to queue label values; groups not listed use
	// their name (sideloaded), or their id when the name is unknown.
	Queues map[string]string `yaml:"queues"`
	// ComplaintTags mark a ticket with any of these tags as a complaint.
	ComplaintTags []string `yaml:"complaint_tags"`
	// SLABreaches reads the metric event export for SLA breaches (default
	// true; false saves its requests on plans without SLA policies).
	SLABreaches *bool `yaml:"sla_breaches"`
}

// zendeskCursor is everything a run hands to the next one.
type zendeskCursor struct {
	// TicketsCursor is the after_cursor of the last complete page of the
	// ticket export; TicketsStart the start_time used until there is one.
	TicketsCursor string `json:"tickets_cursor,omitempty"`
	TicketsStart  int64  `json:"tickets_start,omitempty"`
	// EventsStart is the start_time of the next metric event page;
	// EventsSeen the breach events at that very second already read (the
	// next page starts with them again).
	EventsStart int64   `json:"events_start,omitempty"`
	EventsSeen  []int64 `json:"events_seen,omitempty"`
	// EventsAfter is the page[after] cursor of a metric event query from
	// EventsFrom that a run's budget cut short: the next run continues it
	// (or, should Zendesk refuse the cursor, starts again at EventsStart).
	EventsAfter string `json:"events_after,omitempty"`
	EventsFrom  int64  `json:"events_from,omitempty"`
	// Pending are breaches (by ticket id) read from the metric events
	// whose ticket record is still to be read.
	Pending map[string][]string `json:"pending,omitempty"`
	// Resume names the step (tickets, events, pending) the request budget
	// cut short: the next run starts with it.
	Resume string `json:"resume,omitempty"`
}

// Zendesk API paths.
const (
	zendeskTicketsPath  = "/api/v2/incremental/tickets/cursor.json"
	zendeskEventsPath   = "/api/v2/incremental/ticket_metric_events.json"
	zendeskShowManyPath = "/api/v2/tickets/show_many.json"
	// zendeskShowManyMax is the most ids show_many accepts in one request.
	zendeskShowManyMax = 100
	// zendeskEventsPageSize is the page[size] of the metric event export,
	// the most cursor pagination returns.
	zendeskEventsPageSize = 100
	// zendeskMinAge: incremental exports refuse a start_time within the
	// last minute.
	zendeskMinAge = 60
)

var zendeskSubdomainRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

func init() {
	collectors.Register("zendesk", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		var spec zendeskSpec
		if err := c.DecodeSpec(&spec); err != nil {
			return nil, err
		}
		if err := spec.Polite.check(c); err != nil {
			return nil, err
		}
		z := &zendesk{since: spec.Polite.since(), queues: spec.Queues, complaint: map[string]bool{}, breaches: true}
		if spec.SLABreaches != nil {
			z.breaches = *spec.SLABreaches
		}
		switch {
		case spec.Subdomain != "" && spec.URL != "":
			return nil, c.Errorf("url", "set either subdomain or url, not both")
		case spec.Subdomain != "":
			if !zendeskSubdomainRE.MatchString(spec.Subdomain) {
				return nil, c.Errorf("subdomain", "%q is not a Zendesk subdomain (acme for https://acme.zendesk.com)", spec.Subdomain)
			}
			z.base = "https://" + spec.Subdomain + ".zendesk.com"
		case spec.URL != "":
			base, err := zendeskBaseURL(spec.URL)
			if err != nil {
				return nil, c.Errorf("url", "%v", err)
			}
			z.base = base
		default:
			return nil, c.Errorf("subdomain", "subdomain or url is required")
		}

		token, err := resolveSecret(c, "token", spec.Token, spec.TokenFile)
		if err != nil {
			return nil, err
		}
		oauth, err := resolveSecret(c, "oauth_token", spec.OAuthToken, spec.OAuthTokenFile)
		if err != nil {
			return nil, err
		}
		var auth func(*http.Request)
		switch {
		case oauth != "" && (token != "" || spec.Email != ""):
			return nil, c.Errorf("oauth_token", "set either oauth_token or email and token, not both")
		case oauth != "":
			auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+oauth.Reveal()) }
		case spec.Email == "" && token == "":
			return nil, c.Errorf("email", "credentials are required: email and token (an API token), or oauth_token")
		case spec.Email == "":
			return nil, c.Errorf("email", "is required with token (the agent's e-mail address)")
		case token == "":
			return nil, c.Errorf("token", "is required with email (an API token; or token_file)")
		default:
			// BasicAuth registers "email/token:TOKEN" for redaction.
			hdr := redact.BasicAuth(spec.Email+"/token", token.Reveal())
			auth = func(r *http.Request) { r.Header.Set("Authorization", hdr) }
		}

		for id, q := range spec.Queues {
			if _, err := strconv.ParseInt(id, 10, 64); err != nil {
				return nil, c.Errorf("queues."+id, "%q is not a group id (a number)", id)
			}
			if strings.TrimSpace(q) == "" {
				return nil, c.Errorf("queues."+id, "the queue name must not be empty")
			}
		}
		for i, tag := range spec.ComplaintTags {
			if strings.TrimSpace(tag) == "" {
				return nil, c.Errorf(fmt.Sprintf("complaint_tags[%d]", i), "must not be empty")
			}
			z.complaint[strings.ToLower(strings.TrimSpace(tag))] = true
		}
		z.client = newAPIClient(spec.Polite, auth)
		return z, nil
	})
}

// zendeskBaseURL checks a configured url: https, or http to this machine
// only (credentials never cross a network in clear).
func zendeskBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL such as https://acme.zendesk.com", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", fmt.Errorf("http is allowed for localhost only: use https")
		}
	default:
		return "", fmt.Errorf("%q: the scheme must be https", raw)
	}
	if u.User != nil || u.RawQuery != "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("give the address only (https://acme.zendesk.com), without user, path or query")
	}
	return u.Scheme + "://" + u.Host, nil
}

// zendeskRun is the state of one Collect.
type zendeskRun struct {
	z      *zendesk
	b      *collectors.Batch
	cur    *zendeskCursor
	index  map[string]int    // ticket id -> its last record in b.Tickets
	groups map[string]string // group id -> name, from sideloads
	// exported is how far the ticket export got in this run: the newest
	// generated_timestamp of its complete pages; exportEnded is set once
	// it said end_of_stream.
	exported    time.Time
	exportEnded bool
}

func (z *zendesk) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	z.client.startRun()
	cur := &zendeskCursor{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, cur); err != nil {
			return nil, fmt.Errorf("bad cursor: %w", err)
		}
	}
	start := min(b.Now.Add(-z.since).Unix(), b.Now.Unix()-zendeskMinAge)
	if cur.TicketsCursor == "" && cur.TicketsStart == 0 {
		cur.TicketsStart = start
	}
	if cur.EventsStart == 0 {
		cur.EventsStart = start
	}
	if cur.Pending == nil {
		cur.Pending = map[string][]string{}
	}
	r := &zendeskRun{z: z, b: b, cur: cur, index: map[string]int{}, groups: map[string]string{}}

	// Each step stops at errBudget with the pages it completed; the cursor
	// then points after them and the next run goes on from there, starting
	// with the step that was cut short. The ticket export and the metric
	// event export spend a request even when idle: without the rotation a
	// small budget would starve the steps after them for ever.
	steps := []zendeskStep{{"tickets", r.tickets}, {"events", r.events}, {"pending", r.resolvePending}}
	first := max(0, slices.IndexFunc(steps, func(s zendeskStep) bool { return s.name == cur.Resume }))
	cur.Resume = ""
	var err error
	for i := range steps {
		step := steps[(first+i)%len(steps)]
		if step.name == "events" && !z.breaches {
			continue
		}
		if err = step.run(ctx); err != nil {
			if errors.Is(err, errBudget) {
				cur.Resume = step.name
			}
			break
		}
	}
	if err == nil && first != 0 {
		err = r.resolvePending(ctx) // breaches found after the pending step
		if errors.Is(err, errBudget) {
			cur.Resume = "pending"
		}
	}
	if err != nil && !errors.Is(err, errBudget) {
		return nil, err
	}
	if len(cur.Pending) == 0 {
		cur.Pending = nil
	}
	b.Watermark = r.watermark()
	return json.Marshal(cur)
}

// watermark is the run's completeness watermark, from the ticket export
// alone: deadline verdicts need replies and solves, which travel on ticket
// records; breaches are Zendesk's own verdicts and wait for nothing.
//
// The cursor-based export has no end_time. Its end_of_stream means "every
// change up to the request", less the minute the incremental exports hold
// back; the request came after b.Now, so b.Now minus that minute is safe.
// A run the request budget cut short got as far as the export's order
// key, generated_timestamp, of its last complete page (what end_time is
// in the time-based exports). A run that did not reach the ticket export
// claims nothing; the quality model keeps the watermark it had.
func (r *zendeskRun) watermark() time.Time {
	complete := r.b.Now.Add(-zendeskMinAge * time.Second)
	switch {
	case r.exportEnded:
		return complete
	case r.exported.IsZero():
		return time.Unix(0, 0)
	case r.exported.After(complete):
		return complete // a clock skewed against Zendesk's: claim no more than the export can hold
	}
	return r.exported
}

type zendeskStep struct {
	name string
	run  func(context.Context) error
}

// zendeskTicketPage is one page of the ticket export or of show_many.
type zendeskTicketPage struct {
	Tickets     []json.RawMessage `json:"tickets"`
	MetricSets  []json.RawMessage `json:"metric_sets"` // sideload as a top-level list
	Groups      []zendeskGroup    `json:"groups"`
	AfterCursor *string           `json:"after_cursor"`
	EndOfStream bool              `json:"end_of_stream"`
}

type zendeskGroup struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type zendeskTicket struct {
	ID       int64    `json:"id"`
	GroupID  *int64   `json:"group_id"`
	Priority *string  `json:"priority"`
	Status   string   `json:"status"`
	Tags     []string `json:"tags"`
	Via      struct {
		Channel string `json:"channel"`
	} `json:"via"`
	CreatedAt          string `json:"created_at"`
	UpdatedAt          string `json:"updated_at"`
	GeneratedTimestamp *int64 `json:"generated_timestamp"`
	SatisfactionRating *struct {
		Score string `json:"score"`
	} `json:"satisfaction_rating"`
	MetricSet *zendeskMetricSet `json:"metric_set"`
}

// zendeskMinutes is a metric set duration: calendar and business minutes
// (or seconds), null while the metric is not fulfilled.
type zendeskMinutes struct {
	Calendar *float64 `json:"calendar"`
	Business *float64 `json:"business"`
}

type zendeskMetricSet struct {
	TicketID            int64          `json:"ticket_id"`
	Reopens             int            `json:"reopens"`
	Replies             int            `json:"replies"`
	SolvedAt            *string        `json:"solved_at"`
	ReplyMinutes        zendeskMinutes `json:"reply_time_in_minutes"`
	ReplySeconds        zendeskMinutes `json:"reply_time_in_seconds"`
	FirstResolutionMins zendeskMinutes `json:"first_resolution_time_in_minutes"`
	FullResolutionMins  zendeskMinutes `json:"full_resolution_time_in_minutes"`
}

// tickets follows the cursor-based ticket export to its end.
func (r *zendeskRun) tickets(ctx context.Context) error {
	for page := 1; ; page++ {
		q := url.Values{"include": {"metric_sets,groups"}}
		if r.cur.TicketsCursor != "" {
			q.Set("cursor", r.cur.TicketsCursor)
		} else {
			q.Set("start_time", strconv.FormatInt(r.cur.TicketsStart, 10))
		}
		var p zendeskTicketPage
		if _, err := r.z.client.getJSON(ctx, r.z.base+zendeskTicketsPath+"?"+q.Encode(), &p); err != nil {
			return err
		}
		if at := r.page(&p, fmt.Sprintf("%s page %d", zendeskTicketsPath, page)); at.After(r.exported) {
			r.exported = at
		}
		prev := r.cur.TicketsCursor
		if p.AfterCursor != nil && *p.AfterCursor != "" {
			r.cur.TicketsCursor = *p.AfterCursor
		}
		if p.EndOfStream {
			r.exportEnded = true
			return nil
		}
		// A page that does not move the cursor would be fetched forever.
		// It stops the run without claiming the export complete.
		if r.cur.TicketsCursor == prev {
			return nil
		}
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
}

// flush commits the tickets read so far as a chunk once the batch is full
// (collectors.Batch.Flush), at a page boundary of the ticket export: the
// cursor then resumes the export after the page, with the other steps
// still to come. Breaches found later for the flushed tickets are pending
// and fetched with show_many, as for tickets of earlier runs.
func (r *zendeskRun) flush(ctx context.Context) error {
	if !r.b.Full() {
		return nil
	}
	c, err := json.Marshal(r.cur)
	if err != nil {
		return err
	}
	if err := r.b.Flush(ctx, c); err != nil {
		return err
	}
	clear(r.index)
	return nil
}

// page turns the tickets of one page into records and returns the newest
// export position among them: generated_timestamp (the export's order),
// else updated_at (never later than it).
func (r *zendeskRun) page(p *zendeskTicketPage, where string) (newest time.Time) {
	for _, g := range p.Groups {
		r.groups[strconv.FormatInt(g.ID, 10)] = g.Name
	}
	sets := map[int64]*zendeskMetricSet{}
	for i, raw := range p.MetricSets {
		var ms zendeskMetricSet
		if err := json.Unmarshal(raw, &ms); err != nil {
			r.b.Reject("bad_json", fmt.Sprintf("%s metric_sets[%d]", where, i), err)
			continue
		}
		sets[ms.TicketID] = &ms
	}
	for i, raw := range p.Tickets {
		pos := fmt.Sprintf("%s tickets[%d]", where, i)
		var t zendeskTicket
		if err := json.Unmarshal(raw, &t); err != nil {
			r.b.Reject("bad_json", pos, err)
			continue
		}
		if t.MetricSet == nil {
			t.MetricSet = sets[t.ID]
		}
		// A rejected ticket is dealt with too: it counts for the position.
		at := time.Time{}
		if t.GeneratedTimestamp != nil {
			at = time.Unix(*t.GeneratedTimestamp, 0).UTC()
		} else if u, err := time.Parse(time.RFC3339Nano, t.UpdatedAt); err == nil {
			at = u.UTC()
		}
		if at.After(newest) {
			newest = at
		}
		if tk, ok := r.ticket(&t, pos); ok {
			r.add(tk)
		}
	}
	return newest
}

// add appends a ticket record, with the breaches still pending for it.
func (r *zendeskRun) add(tk record.Ticket) {
	if pend, ok := r.cur.Pending[tk.ID]; ok {
		tk.SLABreaches = zendeskMerge(tk.SLABreaches, pend...)
		delete(r.cur.Pending, tk.ID)
	}
	r.index[tk.ID] = len(r.b.Tickets)
	r.b.Tickets = append(r.b.Tickets, tk)
}

func zendeskMerge(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// ticket maps one Zendesk ticket to a record; ok is false when it was
// rejected.
func (r *zendeskRun) ticket(t *zendeskTicket, pos string) (tk record.Ticket, ok bool) {
	if t.ID <= 0 {
		r.b.Reject("missing_field", pos, errors.New("ticket without id"))
		return tk, false
	}
	id := strconv.FormatInt(t.ID, 10)
	pos += " (ticket " + id + ")"
	parse := func(field, v string) (time.Time, bool) {
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			r.b.Reject("bad_time", pos, fmt.Errorf("%s: %q is not an ISO 8601 time", field, v))
			return time.Time{}, false
		}
		return at.UTC(), true
	}
	if t.CreatedAt == "" {
		r.b.Reject("missing_field", pos, errors.New("ticket without created_at"))
		return tk, false
	}
	tk = record.Ticket{ID: id, Channel: t.Via.Channel, Status: strings.ToLower(t.Status), Tags: t.Tags}
	if tk.CreatedAt, ok = parse("created_at", t.CreatedAt); !ok {
		return tk, false
	}
	if t.UpdatedAt != "" {
		if tk.UpdatedAt, ok = parse("updated_at", t.UpdatedAt); !ok {
			return tk, false
		}
	}
	if t.GroupID != nil {
		gid := strconv.FormatInt(*t.GroupID, 10)
		switch name := r.groups[gid]; {
		case r.z.queues[gid] != "":
			tk.Queue = r.z.queues[gid]
		case name != "":
			tk.Queue = name
		default:
			tk.Queue = gid
		}
	}
	if t.Priority != nil {
		tk.Priority = *t.Priority
	}
	if t.SatisfactionRating != nil {
		switch s := t.SatisfactionRating.Score; s {
		case "good", "bad": // offered and unoffered are not ratings
			tk.Satisfaction = s
		}
	}
	for _, tag := range t.Tags {
		if r.z.complaint[strings.ToLower(tag)] {
			tk.Complaint = true
		}
	}
	tk.Deleted = tk.Status == "deleted"

	if ms := t.MetricSet; ms != nil {
		if err := ms.check(); err != nil {
			r.b.Reject("bad_number", pos, err)
			return tk, false
		}
		tk.Reopens, tk.AgentReplies = ms.Reopens, ms.Replies
		// First reply: the seconds when Zendesk gives them, else minutes.
		switch {
		case ms.ReplySeconds.Calendar != nil:
			tk.FirstReplyAt = tk.CreatedAt.Add(zendeskDur(*ms.ReplySeconds.Calendar, time.Second))
		case ms.ReplyMinutes.Calendar != nil:
			tk.FirstReplyAt = tk.CreatedAt.Add(zendeskDur(*ms.ReplyMinutes.Calendar, time.Minute))
		}
		if !tk.FirstReplyAt.IsZero() && ms.ReplyMinutes.Business != nil {
			tk.FirstReplyBusiness = zendeskDur(*ms.ReplyMinutes.Business, time.Minute)
		}
		if tk.Status == "solved" || tk.Status == "closed" {
			// servq's resolution is created -> first solve. solved_at is
			// the latest solve: exact when never reopened, otherwise the
			// first resolution time gives the first solve.
			first := ms.FirstResolutionMins
			if first.Calendar == nil {
				first = ms.FullResolutionMins
			}
			var solvedAt time.Time
			if ms.SolvedAt != nil && *ms.SolvedAt != "" {
				if solvedAt, ok = parse("metric_set.solved_at", *ms.SolvedAt); !ok {
					return tk, false
				}
			}
			switch {
			case !solvedAt.IsZero() && ms.Reopens == 0:
				tk.SolvedAt = solvedAt
			case first.Calendar != nil:
				tk.SolvedAt = tk.CreatedAt.Add(zendeskDur(*first.Calendar, time.Minute))
			default:
				tk.SolvedAt = solvedAt
			}
			if first.Business != nil {
				tk.ResolutionBusiness = zendeskDur(*first.Business, time.Minute)
			}
		}
	}
	return tk, true
}

// check refuses a metric set with negative counts or a duration beyond
// maxRecordSeconds: a negative count would subtract from the totals, and a
// huge duration overflows time.Duration into a negative one.
func (ms *zendeskMetricSet) check() error {
	if ms.Reopens < 0 || ms.Replies < 0 {
		return fmt.Errorf("metric_set: reopens %d, replies %d: counts must not be negative", ms.Reopens, ms.Replies)
	}
	for _, d := range []struct {
		name string
		m    zendeskMinutes
		unit float64
	}{{"reply_time_in_minutes", ms.ReplyMinutes, 60}, {"reply_time_in_seconds", ms.ReplySeconds, 1},
		{"first_resolution_time_in_minutes", ms.FirstResolutionMins, 60}, {"full_resolution_time_in_minutes", ms.FullResolutionMins, 60}} {
		for _, v := range []*float64{d.m.Calendar, d.m.Business} {
			if v != nil && *v*d.unit > float64(maxRecordSeconds) {
				return fmt.Errorf("metric_set.%s: %g is beyond ten years", d.name, *v)
			}
		}
	}
	return nil
}

func zendeskDur(v float64, unit time.Duration) time.Duration {
	if v < 0 {
		return 0
	}
	return time.Duration(v * float64(unit))
}

// zendeskEventsPage is one page of the metric event export with cursor
// pagination.
type zendeskEventsPage struct {
	Events []json.RawMessage `json:"ticket_metric_events"`
	Meta   struct {
		HasMore     bool   `json:"has_more"`
		AfterCursor string `json:"after_cursor"`
	} `json:"meta"`
}

type zendeskEvent struct {
	ID         int64  `json:"id"`
	TicketID   int64  `json:"ticket_id"`
	Metric     string `json:"metric"`
	InstanceID int    `json:"instance_id"`
	Type       string `json:"type"`
	Time       string `json:"time"`
	Deleted    bool   `json:"deleted"`
}

// events reads the metric event export from its start_time, keeping the
// breaches, page by page with the page[after] cursor until has_more is
// false. The cursor's start_time moves to the second of the last event
// read; the next run's query starts at that second again (events of a
// second may still be added), so the breaches of that second are
// remembered and skipped when read again.
func (r *zendeskRun) events(ctx context.Context) error {
	from, after := r.cur.EventsStart, ""
	if r.cur.EventsAfter != "" && r.cur.EventsFrom != 0 {
		from, after = r.cur.EventsFrom, r.cur.EventsAfter
	}
	r.cur.EventsAfter, r.cur.EventsFrom = "", 0
	if from > r.b.Now.Unix()-zendeskMinAge {
		return nil // too recent for the export; the next run asks
	}
	for page := 1; ; page++ {
		u := r.z.base + zendeskEventsPath + "?start_time=" + strconv.FormatInt(from, 10) + "&page[size]=" + strconv.Itoa(zendeskEventsPageSize)
		if after != "" {
			u += "&page[after]=" + url.QueryEscape(after)
		}
		var p zendeskEventsPage
		_, err := r.z.client.getJSON(ctx, u, &p)
		var ae *apiError
		if after != "" && errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			// A cursor Zendesk no longer accepts: start again at the
			// second of the last event read; seen breaches are skipped.
			from, after = r.cur.EventsStart, ""
			continue
		}
		if errors.Is(err, errBudget) && after != "" {
			r.cur.EventsAfter, r.cur.EventsFrom = after, from
		}
		if err != nil {
			return err
		}
		where := fmt.Sprintf("%s page %d", zendeskEventsPath, page)
		for i, raw := range p.Events {
			var e zendeskEvent
			if err := json.Unmarshal(raw, &e); err != nil {
				r.b.Reject("bad_json", fmt.Sprintf("%s ticket_metric_events[%d]", where, i), err)
				continue
			}
			at, terr := time.Parse(time.RFC3339Nano, e.Time)
			if terr == nil && at.Unix() > r.cur.EventsStart {
				// A later second: the breaches remembered were of an
				// earlier one, which no query from here returns.
				r.cur.EventsStart, r.cur.EventsSeen = at.Unix(), nil
			}
			if e.Type != "breach" || e.Deleted { // deleted: the breach no longer holds
				continue
			}
			if e.TicketID <= 0 || e.Metric == "" {
				r.b.Reject("missing_field", fmt.Sprintf("%s ticket_metric_events[%d] (event %d)", where, i, e.ID), errors.New("breach without ticket_id or metric"))
				continue
			}
			if e.ID != 0 && slices.Contains(r.cur.EventsSeen, e.ID) {
				continue
			}
			if e.ID != 0 && terr == nil && at.Unix() == r.cur.EventsStart {
				r.cur.EventsSeen = append(r.cur.EventsSeen, e.ID)
			}
			r.breach(strconv.FormatInt(e.TicketID, 10), zendeskBreachName(e.Metric, e.InstanceID))
		}
		if !p.Meta.HasMore || p.Meta.AfterCursor == "" || len(p.Events) == 0 {
			return nil
		}
		after = p.Meta.AfterCursor
	}
}

// zendeskBreachName names a breached metric as servq does: reply_time
// instance 1 is the first reply, later instances the next replies.
func zendeskBreachName(metric string, instance int) string {
	switch metric {
	case "reply_time":
		if instance > 1 {
			return "next_reply"
		}
		return "first_reply"
	case "resolution_time":
		return "resolution"
	}
	return strings.ToLower(metric)
}

// breach adds a breach to the ticket's record of this run, or keeps it
// until the ticket is read.
func (r *zendeskRun) breach(id, name string) {
	if i, ok := r.index[id]; ok {
		r.b.Tickets[i].SLABreaches = zendeskMerge(r.b.Tickets[i].SLABreaches, name)
		return
	}
	r.cur.Pending[id] = zendeskMerge(r.cur.Pending[id], name)
}

// resolvePending reads the tickets of pending breaches, 100 at a time.
// Tickets Zendesk no longer returns (deleted, merged away) drop their
// breaches: the model does not count breaches of deleted tickets either.
func (r *zendeskRun) resolvePending(ctx context.Context) error {
	ids := make([]string, 0, len(r.cur.Pending))
	for id := range r.cur.Pending {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := strconv.ParseInt(ids[i], 10, 64)
		b, _ := strconv.ParseInt(ids[j], 10, 64)
		return a < b
	})
	for n := 0; len(ids) > 0; n++ {
		chunk := ids[:min(len(ids), zendeskShowManyMax)]
		ids = ids[len(chunk):]
		q := url.Values{"ids": {strings.Join(chunk, ",")}, "include": {"metric_sets,groups"}}
		var p zendeskTicketPage
		if _, err := r.z.client.getJSON(ctx, r.z.base+zendeskShowManyPath+"?"+q.Encode(), &p); err != nil {
			return err
		}
		r.page(&p, fmt.Sprintf("%s request %d", zendeskShowManyPath, n+1))
		for _, id := range chunk {
			delete(r.cur.Pending, id)
		}
	}
	return nil
}
