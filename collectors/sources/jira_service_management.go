package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// jsm reads the requests of a Jira Service Management (Cloud) project.
//
// Incremental approach: the Service Management request list
// (GET /rest/servicedeskapi/request) has no "updated since" filter and
// pages by offset, so every run would read the whole desk. Jira's JQL
// search (GET /rest/api/3/search/jql, the successor of the removed
// /rest/api/3/search) can: `project = KEY AND updated >= "yyyy/MM/dd
// HH:mm" ORDER BY updated ASC, key ASC`, paged by nextPageToken. For each
// changed issue the SLA cycles come from GET
// /rest/servicedeskapi/request/{issueIdOrKey}/sla, where the SLA
// calendars have already turned elapsed time into business time.
//
// The cursor is a watermark like freshdesk's: the last `updated`
// delivered (milliseconds) and the issues delivered at exactly that time,
// plus the query and page token of the page being read when a run ended
// on its request budget (SLA requests count). JQL compares minutes in the
// API user's time zone, which every run reads from the account's profile
// (GET /rest/api/3/myself, timeZone): each query starts at the
// watermark's minute in that zone and the issues before the watermark are
// skipped. A bound written in another zone would start the query hours
// late (west of it) and skip every update in between.
//
// The search is eventually consistent (Atlassian: seconds, minutes after
// bulk edits), so only issues updated settle_lag before the run are
// delivered; a newer one ends the run and is read by a later one.
type jsm struct {
	base        *url.URL
	client      *apiClient
	project     string
	filter      string
	zone        *time.Location // time_zone, if set: must match the profile's
	settle      time.Duration
	firstSLA    string
	resolveSLA  string
	statuses    map[string]string
	since       time.Duration
	maxResults  int
	slaPageSize int
}

type jsmSpec struct {
	politeSpec       `yaml:",inline"`
	URL              string            `yaml:"url"`
	Email            string            `yaml:"email"`
	APIToken         config.Secret     `yaml:"api_token"`
	APITokenFile     string            `yaml:"api_token_file"`
	Project          string            `yaml:"project"`
	JQLFilter        string            `yaml:"jql_filter"`
	TimeZone         string            `yaml:"time_zone"`
	FirstResponseSLA string            `yaml:"first_response_sla"`
	ResolutionSLA    string            `yaml:"resolution_sla"`
	Statuses         map[string]string `yaml:"statuses"`
	SettleLag        *config.Duration  `yaml:"settle_lag"`
}

// jsmSettleLag is the default settle_lag: Atlassian documents that most
// changes reach search within seconds and bulk edits take longer.
const jsmSettleLag = 2 * time.Minute

// jsmScopedPrefix is the path of the API gateway form of the base URL,
// https://api.atlassian.com/ex/jira/{cloudId}, which scoped API tokens
// require (the site URL answers them 401).
const jsmScopedPrefix = "/ex/jira/"

var jiraProjectKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,254}$`)

// jiraTime is how Jira's REST API writes times (2026-11-02T08:00:00.000+0000).
const jiraTime = "2006-01-02T15:04:05.000-0700"

func init() {
	collectors.Register("jira_service_management", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		spec := jsmSpec{FirstResponseSLA: "Time to first response", ResolutionSLA: "Time to resolution"}
		if err := c.DecodeSpec(&spec); err != nil {
			return nil, err
		}
		if err := spec.politeSpec.check(c); err != nil {
			return nil, err
		}
		base, err := apiBaseURL(spec.URL, "https://acme.atlassian.net")
		if err != nil {
			return nil, c.Errorf("url", "%v", err)
		}
		if p := strings.TrimRight(base.Path, "/"); p != "" && !(strings.HasPrefix(p, jsmScopedPrefix) && !strings.Contains(p[len(jsmScopedPrefix):], "/") && len(p) > len(jsmScopedPrefix)) {
			return nil, c.Errorf("url", "must be the site URL (https://acme.atlassian.net, classic API tokens) or https://api.atlassian.com/ex/jira/{cloudId} (scoped API tokens), not a path %q", p)
		}
		if spec.Email == "" {
			return nil, c.Errorf("email", "is required: the Atlassian account email of the API token's owner")
		}
		token, err := resolveSecret(c, "api_token", spec.APIToken, spec.APITokenFile)
		if err != nil {
			return nil, err
		}
		if token == "" {
			return nil, c.Errorf("api_token", "is required (or api_token_file): an API token from id.atlassian.com → Security → API tokens")
		}
		if !jiraProjectKey.MatchString(spec.Project) {
			return nil, c.Errorf("project", "%q is not a Jira project key (upper-case letters, digits, _; e.g. SUP)", spec.Project)
		}
		var zone *time.Location
		if spec.TimeZone != "" {
			if zone, err = time.LoadLocation(spec.TimeZone); err != nil {
				return nil, c.Errorf("time_zone", "%v", err)
			}
		}
		if strings.Contains(strings.ToLower(spec.JQLFilter), "order by") {
			return nil, c.Errorf("jql_filter", "must not contain ORDER BY: servq orders by updated itself")
		}
		if m := spec.politeSpec.MaxRequests; m > 0 && m < 3 {
			return nil, c.Errorf("max_requests_per_run", "must be at least 3: each run reads the account's time zone, and each changed request needs a search and an SLA request")
		}
		settle, err := settleLag(c, spec.SettleLag, jsmSettleLag)
		if err != nil {
			return nil, err
		}
		if spec.FirstResponseSLA == "" || spec.ResolutionSLA == "" {
			return nil, c.Errorf("first_response_sla", "first_response_sla and resolution_sla must not be empty")
		}
		statuses := map[string]string{}
		for name, st := range spec.Statuses {
			if !slices.Contains(ticketStatuses, st) {
				return nil, c.Errorf("statuses", "status %q: %q is not one of %s", name, st, strings.Join(ticketStatuses, ", "))
			}
			statuses[strings.ToLower(name)] = st
		}
		auth := redact.BasicAuth(spec.Email, token.Reveal())
		client := newAPIClient(spec.politeSpec, func(r *http.Request) { r.Header.Set("Authorization", auth) })
		return &jsm{base: base, client: client, project: spec.Project, filter: spec.JQLFilter, zone: zone, settle: settle,
			firstSLA: spec.FirstResponseSLA, resolveSLA: spec.ResolutionSLA, statuses: statuses,
			since: spec.politeSpec.since(), maxResults: 100, slaPageSize: 50}, nil
	})
}

// jsmCursor is the watermark plus where a run stopped inside a query.
type jsmCursor struct {
	watermark
	From  string `json:"from,omitempty"`  // JQL lower bound of the query being read
	Token string `json:"token,omitempty"` // nextPageToken of the page being read ("" = first)
	Zone  string `json:"zone,omitempty"`  // the zone From is written in
}

// jsmUpdated reads an issue's `updated`, if it is readable.
func jsmUpdated(raw json.RawMessage) (time.Time, bool) {
	var is struct {
		Fields struct {
			Updated string `json:"updated"`
		} `json:"fields"`
	}
	if json.Unmarshal(raw, &is) != nil {
		return time.Time{}, false
	}
	at, err := time.Parse(jiraTime, is.Fields.Updated)
	return at, err == nil
}

type jiraIssue struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Fields struct {
		Created        string   `json:"created"`
		Updated        string   `json:"updated"`
		ResolutionDate *string  `json:"resolutiondate"`
		Labels         []string `json:"labels"`
		Priority       *struct {
			Name string `json:"name"`
		} `json:"priority"`
		Status *struct {
			Name           string `json:"name"`
			StatusCategory struct {
				Key string `json:"key"`
			} `json:"statusCategory"`
		} `json:"status"`
	} `json:"fields"`
}

type jiraSearchPage struct {
	Issues        []json.RawMessage `json:"issues"`
	NextPageToken string            `json:"nextPageToken"`
	IsLast        *bool             `json:"isLast"`
}

// jsmDate and jsmDuration are the servicedeskapi's DateDTO and DurationDTO.
type jsmDate struct {
	EpochMillis *int64 `json:"epochMillis"`
}

type jsmDuration struct {
	Millis int64 `json:"millis"`
}

type jsmCycle struct {
	Breached    bool         `json:"breached"`
	StartTime   *jsmDate     `json:"startTime"`
	StopTime    *jsmDate     `json:"stopTime"`
	ElapsedTime *jsmDuration `json:"elapsedTime"`
}

type jsmSLA struct {
	Name            string     `json:"name"`
	OngoingCycle    *jsmCycle  `json:"ongoingCycle"`
	CompletedCycles []jsmCycle `json:"completedCycles"`
}

type jsmSLAPage struct {
	Values     []jsmSLA `json:"values"`
	IsLastPage bool     `json:"isLastPage"`
	Size       int      `json:"size"`
}

func (j *jsm) jql(from string) string {
	q := fmt.Sprintf(`project = "%s" AND updated >= "%s"`, j.project, from)
	if j.filter != "" {
		q += " AND (" + j.filter + ")"
	}
	return q + " ORDER BY updated ASC, key ASC"
}

// jqlMinute is how JQL writes a date and time.
const jqlMinute = "2006/01/02 15:04"

// floorMinute is the JQL bound of a watermark: its minute in the API
// user's zone. When a fall-back transition repeats that wall-clock minute,
// the text names two instants an hour (or the zone's shift) apart, and
// Jira does not document which one it reads; the later reading would
// start the search after the watermark and skip the changes between. The
// bound is then the minute one shift earlier, which names one instant
// before the watermark under either reading (the issues before the
// watermark are skipped as delivered).
func floorMinute(t time.Time, zone *time.Location) string {
	wall := t.In(zone).Format(jqlMinute)
	for _, shift := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		if t.Add(shift).In(zone).Format(jqlMinute) == wall {
			return t.Add(-shift).In(zone).Format(jqlMinute)
		}
	}
	return wall
}

// profileZone reads the time zone JQL dates are compared in: the API
// account's profile zone (the site's default when the profile has none),
// as /rest/api/3/myself reports it. A configured time_zone that differs
// fails the run rather than skipping updates.
func (j *jsm) profileZone(ctx context.Context) (*time.Location, error) {
	u := *j.base
	u.Path += "/rest/api/3/myself"
	var me struct {
		TimeZone string `json:"timeZone"`
	}
	if _, err := j.client.getJSON(ctx, u.String(), &me); err != nil {
		return nil, err
	}
	if me.TimeZone == "" {
		return nil, fmt.Errorf("GET %s: the answer has no timeZone: servq cannot tell the zone JQL dates are read in", u.Path)
	}
	zone, err := time.LoadLocation(me.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("GET %s: the account's time zone %q is unknown here: %v", u.Path, me.TimeZone, err)
	}
	if j.zone != nil && j.zone.String() != zone.String() {
		return nil, fmt.Errorf("time_zone is %s but the Jira profile of the API account is in %s, in which JQL compares dates: remove time_zone or set it to %s", j.zone, zone, zone)
	}
	return zone, nil
}

// authHint completes a 401 with the URL form the token needs.
func (j *jsm) authHint(err error) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		return err
	}
	if strings.HasPrefix(j.base.Path, jsmScopedPrefix) {
		return fmt.Errorf("%w; through api.atlassian.com/ex/jira/{cloudId} only scoped API tokens (and OAuth) work: a classic token needs the site URL (https://<site>.atlassian.net); a scoped token needs the scopes read:jira-work, read:jira-user and read:servicedesk-request", err)
	}
	return fmt.Errorf("%w; a scoped API token is refused at the site URL: use url: https://api.atlassian.com/ex/jira/{cloudId} (the cloudId is at https://<site>.atlassian.net/_edge/tenant_info); classic tokens work at the site URL", err)
}

func (j *jsm) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	out, err := j.collect(ctx, raw, b)
	return out, j.authHint(err)
}

func (j *jsm) collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	j.client.startRun()
	var cur jsmCursor
	if len(raw) == 0 {
		cur.At = b.Now.Add(-j.since).UTC().Truncate(time.Minute)
	} else if err := json.Unmarshal(raw, &cur); err != nil || cur.At.IsZero() {
		return nil, fmt.Errorf("unreadable cursor %q: %v", raw, err)
	}
	// The run's first request: the budget (at least 3) cannot end it.
	zone, err := j.profileZone(ctx)
	if err != nil {
		return nil, err
	}
	from, token := cur.From, cur.Token
	if cur.Zone != "" && cur.Zone != zone.String() {
		from, token = "", "" // the bound was written in the old zone
	}
	if from == "" {
		from, token = floorMinute(cur.At, zone), ""
	}
	wm := cur.watermark
	cutoff := b.Now.Add(-j.settle)
	// The completeness watermark: a run that reads the last page, or up
	// to the first issue updated after cutoff, has every change made
	// before cutoff, as each changed issue is listed at its last update.
	// A run the request budget ends has every change before the last
	// `updated` it delivered (the search is ascending; issues of that
	// very millisecond may still follow).
	stop := func() []byte { // the cursor of a run ending before the page (from, token) is done
		b.Watermark = wm.At
		c := jsmCursor{watermark: wm, From: from, Token: token, Zone: zone.String()}
		if token == "" && from == floorMinute(wm.At, zone) {
			c.From, c.Zone = "", "" // derivable
		}
		out, _ := json.Marshal(c)
		return out
	}
	done := func() ([]byte, error) {
		b.Watermark = cutoff
		out, _ := json.Marshal(jsmCursor{watermark: wm})
		return out, nil
	}
	for {
		q := url.Values{
			"jql":        {j.jql(from)},
			"fields":     {"created,updated,status,priority,resolutiondate,labels"},
			"maxResults": {strconv.Itoa(j.maxResults)},
		}
		if token != "" {
			q.Set("nextPageToken", token)
		}
		u := *j.base
		u.Path += "/rest/api/3/search/jql"
		u.RawQuery = q.Encode()
		var page jiraSearchPage
		_, err := j.client.getJSON(ctx, u.String(), &page)
		if errors.Is(err, errBudget) {
			return stop(), nil
		}
		var ae *apiError
		if token != "" && errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			// An expired page token from an earlier run: read the query
			// again from its start (what was delivered is skipped).
			token = ""
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, it := range page.Issues {
			if at, ok := jsmUpdated(it); ok && at.After(cutoff) {
				// Not settled: this issue and all after it (ascending)
				// are read by a later run.
				return done()
			}
			pos := fmt.Sprintf("%s?jql=updated>=%q page %q #%d", u.Path, from, token, i)
			if err := j.issue(ctx, it, pos, &wm, b); err != nil {
				if errors.Is(err, errBudget) {
					return stop(), nil // this page is read again from the issue after wm
				}
				return nil, err
			}
		}
		last := page.NextPageToken == "" || (page.IsLast != nil && *page.IsLast) || len(page.Issues) == 0
		if last {
			return done()
		}
		if next := floorMinute(wm.At, zone); next != from {
			from, token = next, "" // a new minute: a fresh query from there
		} else {
			token = page.NextPageToken
		}
		if b.Full() {
			// A chunk ends at a page with the cursor a budget-cut run
			// commits (stop's; the run's watermark stays unclaimed).
			w := b.Watermark
			c := stop()
			b.Watermark = w
			if err := b.Flush(ctx, c); err != nil {
				return nil, err
			}
		}
	}
}

// issue maps one issue and its SLAs. Only errors that end the run are
// returned; bad data is rejected.
func (j *jsm) issue(ctx context.Context, raw json.RawMessage, pos string, wm *watermark, b *collectors.Batch) error {
	var is jiraIssue
	if err := json.Unmarshal(raw, &is); err != nil || is.ID == "" {
		if err == nil {
			b.Reject("missing_field", pos, errors.New("no id"))
			return nil
		}
		// Reject it once: past a readable id and updated the watermark
		// moves as past any delivered issue.
		var lenient struct {
			ID     string `json:"id"`
			Fields struct {
				Updated string `json:"updated"`
			} `json:"fields"`
		}
		if json.Unmarshal(raw, &lenient) == nil && lenient.ID != "" {
			if at, e := time.Parse(jiraTime, lenient.Fields.Updated); e == nil {
				at = at.UTC()
				if wm.seen(lenient.ID, at) {
					return nil
				}
				defer wm.advance(lenient.ID, at)
			}
		}
		b.Reject("bad_json", pos, err)
		return nil
	}
	pos += " (" + is.Key + ")"
	updated, err := time.Parse(jiraTime, is.Fields.Updated)
	if err != nil {
		b.Reject("bad_time", pos, fmt.Errorf("updated %q: %v", is.Fields.Updated, err))
		return nil
	}
	updated = updated.UTC()
	if wm.seen(is.ID, updated) {
		return nil
	}
	tk := record.Ticket{ID: is.ID, Queue: j.project, UpdatedAt: updated, Tags: is.Fields.Labels}
	tk.CreatedAt, err = time.Parse(jiraTime, is.Fields.Created)
	tk.CreatedAt = tk.CreatedAt.UTC()
	if err != nil {
		b.Reject("bad_time", pos, fmt.Errorf("created %q: %v", is.Fields.Created, err))
		wm.advance(is.ID, updated)
		return nil
	}
	if p := is.Fields.Priority; p != nil {
		tk.Priority = strings.ToLower(p.Name)
	}
	if s := is.Fields.Status; s != nil {
		if st, ok := j.statuses[strings.ToLower(s.Name)]; ok {
			tk.Status = st
		} else {
			switch s.StatusCategory.Key {
			case "new":
				tk.Status = "new"
			case "done":
				tk.Status = "solved"
			default: // indeterminate
				tk.Status = "open"
			}
		}
	}
	var resolved time.Time
	if rd := is.Fields.ResolutionDate; rd != nil && *rd != "" {
		if resolved, err = time.Parse(jiraTime, *rd); err == nil {
			resolved = resolved.UTC()
		} else {
			b.Reject("bad_time", pos, fmt.Errorf("resolutiondate %q: %v", *rd, err))
			wm.advance(is.ID, updated)
			return nil
		}
	}

	slas, err := j.slas(ctx, is.ID)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		slas = nil // not a customer request (an issue created in Jira itself)
	case err != nil:
		return err
	}
	for _, s := range slas {
		cycles := s.CompletedCycles
		breached := false
		for _, c := range cycles {
			breached = breached || c.Breached
		}
		if s.OngoingCycle != nil && s.OngoingCycle.Breached {
			breached = true
		}
		var first *jsmCycle
		if len(cycles) > 0 {
			first = &cycles[0]
		}
		switch s.Name {
		case j.firstSLA:
			if first != nil && first.StopTime != nil && first.StopTime.EpochMillis != nil {
				tk.FirstReplyAt = time.UnixMilli(*first.StopTime.EpochMillis).UTC()
				if first.ElapsedTime != nil {
					tk.FirstReplyBusiness = time.Duration(first.ElapsedTime.Millis) * time.Millisecond
				}
			}
			if breached {
				tk.SLABreaches = append(tk.SLABreaches, "first_reply")
			}
		case j.resolveSLA:
			if first != nil && first.StopTime != nil && first.StopTime.EpochMillis != nil {
				tk.SolvedAt = time.UnixMilli(*first.StopTime.EpochMillis).UTC()
				if first.ElapsedTime != nil {
					tk.ResolutionBusiness = time.Duration(first.ElapsedTime.Millis) * time.Millisecond
				}
			}
			// A resolution cycle starts at creation and again at each
			// reopen: cycles after the first are reopens.
			n := len(cycles)
			if s.OngoingCycle != nil {
				n++
			}
			tk.Reopens = max(n-1, 0)
			if breached {
				tk.SLABreaches = append(tk.SLABreaches, "resolution")
			}
		default:
			if breached {
				tk.SLABreaches = append(tk.SLABreaches, s.Name)
			}
		}
	}
	if tk.SolvedAt.IsZero() {
		tk.SolvedAt = resolved
	}
	b.Tickets = append(b.Tickets, tk)
	wm.advance(is.ID, updated)
	return nil
}

// slas reads every SLA of a request, page by page.
func (j *jsm) slas(ctx context.Context, id string) ([]jsmSLA, error) {
	var all []jsmSLA
	for start := 0; ; {
		u := *j.base
		u.Path += "/rest/servicedeskapi/request/" + url.PathEscape(id) + "/sla"
		u.RawQuery = url.Values{"start": {strconv.Itoa(start)}, "limit": {strconv.Itoa(j.slaPageSize)}}.Encode()
		var p jsmSLAPage
		if _, err := j.client.getJSON(ctx, u.String(), &p); err != nil {
			return nil, err
		}
		all = append(all, p.Values...)
		if p.IsLastPage || len(p.Values) == 0 {
			return all, nil
		}
		start += len(p.Values)
	}
}
