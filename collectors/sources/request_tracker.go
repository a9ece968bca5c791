package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// requestTracker reads tickets from Request Tracker 5 through its REST2
// API (RT::REST2, core in RT 5): a TicketSQL search on LastUpdated finds
// what changed, and each changed ticket's history gives the first agent
// reply, the agent replies, the first resolve and the reopens.
//
// The cursor is the newest LastUpdated seen (RT keeps seconds) and the ids
// of the tickets read at that second; the next search starts at that
// second and skips those ids.
type requestTracker struct {
	client    *apiClient
	base      string // .../REST/2.0
	query     string
	loc       *time.Location
	perPage   int
	statusMap map[string]string
	channel   string
	since     time.Duration
	settle    time.Duration
}

type requestTrackerSpec struct {
	// A named field: config's strict key check skips unexported embedded
	// fields.
	Polite       politeSpec        `yaml:",inline"`
	URL          string            `yaml:"url"`
	Token        config.Secret     `yaml:"token"`
	TokenFile    string            `yaml:"token_file"`
	Username     string            `yaml:"username"`
	Password     config.Secret     `yaml:"password"`
	PasswordFile string            `yaml:"password_file"`
	Query        string            `yaml:"query"`
	TimeZone     string            `yaml:"time_zone"`
	PerPage      int               `yaml:"per_page"`
	StatusMap    map[string]string `yaml:"status_map"`
	Channel      string            `yaml:"channel"`
	// SettleLag: only tickets whose LastUpdated is at least this old are
	// delivered (default 1m). RT stamps LastUpdated when a transaction
	// starts, and a long one (mail processing, scrips) commits later: a
	// search in between lists newer tickets without it, and the cursor
	// would pass it.
	SettleLag *config.Duration `yaml:"settle_lag"`
}

// rtSettleLag is the default settle_lag of request_tracker.
const rtSettleLag = time.Minute

// rtMaxPerPage is REST2's largest page (RT::REST2 "Paging": default 20,
// up to 100).
const rtMaxPerPage = 100

// rtStatuses maps RT's default lifecycle to servq's status vocabulary;
// new and open pass through, as do statuses not listed.
var rtStatuses = map[string]string{"resolved": "solved", "rejected": "closed", "stalled": "pending"}

func init() {
	collectors.Register("request_tracker", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		var spec requestTrackerSpec
		if err := c.DecodeSpec(&spec); err != nil {
			return nil, err
		}
		if err := spec.Polite.check(c); err != nil {
			return nil, err
		}
		u, ok := parseHTTPURL(spec.URL)
		if spec.URL == "" {
			return nil, c.Errorf("url", "is required (the RT web address, e.g. https://rt.example.com or https://example.com/rt)")
		}
		if !ok || u.RawQuery != "" {
			return nil, c.Errorf("url", "must be an http(s) address without a query string, e.g. https://rt.example.com")
		}
		token, err := resolveSecret(c, "token", spec.Token, spec.TokenFile)
		if err != nil {
			return nil, err
		}
		password, err := resolveSecret(c, "password", spec.Password, spec.PasswordFile)
		if err != nil {
			return nil, err
		}
		var auth func(*http.Request)
		switch {
		case token != "" && (spec.Username != "" || password != ""):
			return nil, c.Errorf("token", "set either token (or token_file) or username and password, not both")
		case token != "":
			auth = func(r *http.Request) { r.Header.Set("Authorization", "token "+token.Reveal()) }
		case spec.Username != "" && password != "":
			hdr := redact.BasicAuth(spec.Username, password.Reveal())
			auth = func(r *http.Request) { r.Header.Set("Authorization", hdr) }
		case spec.Username != "":
			return nil, c.Errorf("password", "is required with username (or use token)")
		default:
			return nil, c.Errorf("token", "is required: an RT auth token (Logged in as → Settings → Auth Tokens), or username and password")
		}
		loc := time.UTC
		if spec.TimeZone != "" {
			if loc, err = time.LoadLocation(spec.TimeZone); err != nil {
				return nil, c.Errorf("time_zone", "unknown time zone %q", spec.TimeZone)
			}
		}
		if spec.PerPage < 0 || spec.PerPage > rtMaxPerPage {
			return nil, c.Errorf("per_page", "must be between 1 and %d (REST2's largest page)", rtMaxPerPage)
		}
		perPage := spec.PerPage
		if perPage == 0 {
			perPage = rtMaxPerPage
		}
		settle, err := settleLag(c, spec.SettleLag, rtSettleLag)
		if err != nil {
			return nil, err
		}
		statuses := map[string]string{}
		for k, v := range rtStatuses {
			statuses[k] = v
		}
		for k, v := range spec.StatusMap {
			v = strings.ToLower(v)
			switch v {
			case "new", "open", "pending", "hold", "solved", "closed", "deleted":
			default:
				return nil, c.Errorf("status_map."+k, "unknown status %q (new, open, pending, hold, solved, closed, deleted)", v)
			}
			statuses[strings.ToLower(k)] = v
		}
		return &requestTracker{
			client:    newAPIClient(spec.Polite, auth),
			base:      strings.TrimRight(u.String(), "/") + "/REST/2.0",
			query:     strings.TrimSpace(spec.Query),
			loc:       loc,
			perPage:   perPage,
			statusMap: statuses,
			channel:   spec.Channel,
			since:     spec.Polite.since(),
			settle:    settle,
		}, nil
	})
}

// rtCursor is what the next run continues from.
type rtCursor struct {
	// Since is the newest LastUpdated read (UTC, whole seconds).
	Since time.Time `json:"since"`
	// IDs are the tickets read whose LastUpdated is Since.
	IDs []string `json:"ids,omitempty"`
}

// rtText is a JSON string that RT sometimes sends as a number.
type rtText string

func (t *rtText) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = rtText(s)
		return nil
	}
	if string(b) == "null" {
		*t = ""
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("not a string or number: %s", b)
	}
	*t = rtText(n.String())
	return nil
}

// rtRef is REST2's reference to another record ({"type", "id", "_url"},
// plus the fields asked for with fields[Name]=...).
type rtRef struct {
	ID   rtText `json:"id"`
	Name string `json:"Name"`
}

// rtPage is REST2's collection format ("Example of plural resources").
// total and pages are null when the user may not see every record.
type rtPage[T any] struct {
	Count   int      `json:"count"`
	Page    int      `json:"page"`
	Pages   *float64 `json:"pages"`
	PerPage int      `json:"per_page"`
	Items   []T      `json:"items"`
}

// more reports whether a page after p exists.
func (p *rtPage[T]) more(asked int) bool {
	per := p.PerPage
	if per <= 0 {
		per = asked
	}
	if len(p.Items) < per || len(p.Items) == 0 {
		return false
	}
	return p.Pages == nil || float64(p.Page) < *p.Pages
}

type rtTicket struct {
	ID          rtText          `json:"id"`
	Status      string          `json:"Status"`
	Created     string          `json:"Created"`
	Resolved    string          `json:"Resolved"`
	LastUpdated string          `json:"LastUpdated"`
	Priority    rtText          `json:"Priority"`
	Queue       json.RawMessage `json:"Queue"`
	Requestor   json.RawMessage `json:"Requestor"`
}

type rtTransaction struct {
	ID       rtText
	Type     string // Create, Correspond, Comment, Status, Set, ...
	Field    string
	OldValue rtText
	NewValue rtText
	Created  string
	Creator  json.RawMessage
}

// UnmarshalJSON matches keys exactly: a transaction has both "type"
// ("transaction") and "Type" (its kind), which encoding/json would mix up.
func (x *rtTransaction) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, dst := range map[string]any{"id": &x.ID, "Type": &x.Type, "Field": &x.Field, "OldValue": &x.OldValue,
		"NewValue": &x.NewValue, "Created": &x.Created, "Creator": &x.Creator} {
		if v, ok := m[k]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, dst); err != nil {
				return fmt.Errorf("%s: %v", k, err)
			}
		}
	}
	return nil
}

// rtTime parses REST2's W3CDTF timestamps in UTC. RT stores an unset date
// as 1970-01-01 00:00:00, which is the zero time here.
func rtTime(s string) (time.Time, error) {
	if s == "" || s == "Not set" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a W3CDTF time", s)
	}
	if t.Unix() <= 0 {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}

// refID reads a reference's name or id; REST2 sends "" for records the
// user may not see.
func refID(raw json.RawMessage, name bool) string {
	var r rtRef
	if len(raw) == 0 || json.Unmarshal(raw, &r) != nil {
		return ""
	}
	if name && r.Name != "" {
		return r.Name
	}
	return string(r.ID)
}

func refIDs(raw json.RawMessage) []string {
	var rs []rtRef
	if len(raw) == 0 || json.Unmarshal(raw, &rs) != nil {
		return nil
	}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, strings.ToLower(string(r.ID)))
	}
	return out
}

func (s *requestTracker) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	s.client.startRun()
	cur := rtCursor{Since: b.Now.Add(-s.since).UTC().Truncate(time.Second)}
	if len(raw) > 0 {
		// An unreadable cursor (another type's, a damaged store) starts
		// over from since: what is read twice counts once.
		var c rtCursor
		if err := json.Unmarshal(raw, &c); err == nil && !c.Since.IsZero() {
			cur = c
		}
	}
	seen := map[string]bool{}
	for _, id := range cur.IDs {
		seen[id] = true
	}
	done := func() ([]byte, error) {
		cur.Since = cur.Since.UTC()
		cur.IDs = cur.IDs[:0]
		for id := range seen {
			cur.IDs = append(cur.IDs, id)
		}
		sortIDs(cur.IDs)
		return json.Marshal(cur)
	}
	// Only changes made before cutoff are delivered (settle_lag).
	cutoff := b.Now.Add(-s.settle)
	// The completeness watermark: a run that reads the last page, or up
	// to the first ticket updated after cutoff, has every change made
	// before cutoff, as each changed ticket is listed at its
	// LastUpdated. A run the request budget ends has every
	// change before the newest LastUpdated it delivered (the search is
	// ascending; tickets of that very second may still follow).
	stopped := func() ([]byte, error) {
		b.Watermark = cur.Since.UTC()
		return done()
	}
	page := 1
	for {
		var p rtPage[rtTicket]
		pos := fmt.Sprintf("/REST/2.0/tickets since %s page %d", cur.Since.Format(time.RFC3339), page)
		if _, err := s.client.getJSON(ctx, s.searchURL(cur.Since, page), &p); err != nil {
			if errors.Is(err, errBudget) {
				return stopped()
			}
			return nil, err
		}
		advanced := false
		for i, it := range p.Items {
			ipos := fmt.Sprintf("%s item %d (ticket %s)", pos, i+1, it.ID)
			id := string(it.ID)
			if id == "" {
				b.Reject("missing_field", ipos, errors.New("no id"))
				continue
			}
			lu, err := rtTime(it.LastUpdated)
			if err != nil || lu.IsZero() {
				b.Reject("bad_time", ipos, fmt.Errorf("LastUpdated: %q is not a W3CDTF time", it.LastUpdated))
				continue
			}
			if lu.Before(cur.Since) || (lu.Equal(cur.Since) && seen[id]) {
				continue // read before (or the time_zone is set east of RT's)
			}
			if lu.After(cutoff) {
				// Not settled: this ticket and all after it (the search
				// is ascending) are read by a later run.
				b.Watermark = cutoff
				return done()
			}
			tks, err := s.ticket(ctx, it, lu, ipos, b)
			if err != nil {
				if errors.Is(err, errBudget) {
					return stopped()
				}
				return nil, err
			}
			b.Tickets = append(b.Tickets, tks...)
			if lu.After(cur.Since) {
				cur.Since, seen, advanced = lu, map[string]bool{}, true
			}
			seen[id] = true
		}
		if !p.more(s.perPage) {
			b.Watermark = cutoff
			return done()
		}
		// The search is ordered by LastUpdated: when the cursor moved,
		// search again from it (tickets updated meanwhile move to the end
		// and cannot shift unread ones past a page boundary); when the
		// whole page shared one second, turn the page.
		if advanced {
			page = 1
		} else {
			page++
		}
		if b.Full() {
			// A chunk ends at a page with the cursor a budget-cut run
			// would commit: a resumed run searches again from Since,
			// skipping the ids of that second it has seen.
			c, err := done()
			if err != nil {
				return nil, err
			}
			if err := b.Flush(ctx, c); err != nil {
				return nil, err
			}
		}
	}
}

// sortIDs orders RT's numeric ids numerically (shorter first), so that the
// cursor is deterministic.
func sortIDs(ids []string) {
	sort.Slice(ids, func(i, j int) bool {
		if len(ids[i]) != len(ids[j]) {
			return len(ids[i]) < len(ids[j])
		}
		return ids[i] < ids[j]
	})
}

// searchURL is the TicketSQL search of tickets updated since t (RT reads
// the date in the API user's time zone), oldest update first.
func (s *requestTracker) searchURL(t time.Time, page int) string {
	q := fmt.Sprintf("LastUpdated >= '%s'", t.In(s.loc).Format("2006-01-02 15:04:05"))
	if s.query != "" {
		q = "(" + s.query + ") AND " + q
	}
	v := url.Values{
		"query":         {q},
		"fields":        {"Queue,Status,Priority,Created,Resolved,LastUpdated,Requestor"},
		"fields[Queue]": {"Name"},
		"orderby":       {"LastUpdated", "id"},
		"order":         {"ASC", "ASC"},
		"per_page":      {strconv.Itoa(s.perPage)},
		"page":          {strconv.Itoa(page)},
	}
	return s.base + "/tickets?" + v.Encode()
}

// status maps an RT status to servq's vocabulary.
func (s *requestTracker) status(rt string) string {
	rt = strings.ToLower(strings.TrimSpace(rt))
	if m, ok := s.statusMap[rt]; ok {
		return m
	}
	return rt
}

func solvedState(st string) bool { return st == "solved" || st == "closed" }

// ticket maps one search item and its history; nil when the item was
// rejected, err when a request failed.
//
// A resolved ticket's SolvedAt is its first resolve (RT's Resolved is the
// latest). A ticket resolved and reopened between two runs is reported
// open with its reopen; its solve is counted when it is resolved again,
// with the first resolve's time. (Reporting it as it stood at the first
// resolve too would count its reopen twice when a run is read again.)
func (s *requestTracker) ticket(ctx context.Context, it rtTicket, updated time.Time, pos string, b *collectors.Batch) ([]record.Ticket, error) {
	tk := record.Ticket{ID: string(it.ID), Queue: refID(it.Queue, true), Channel: s.channel, Priority: string(it.Priority), UpdatedAt: updated}
	tk.Status = s.status(it.Status)
	tk.Deleted = tk.Status == "deleted"
	var err error
	if tk.CreatedAt, err = rtTime(it.Created); err != nil || tk.CreatedAt.IsZero() {
		b.Reject("bad_time", pos, fmt.Errorf("Created: %q is not a W3CDTF time", it.Created))
		return nil, nil
	}
	resolved, err := rtTime(it.Resolved)
	if err != nil {
		b.Reject("bad_time", pos, fmt.Errorf("Resolved: %v", err))
		return nil, nil
	}
	requestors := map[string]bool{}
	for _, r := range refIDs(it.Requestor) {
		requestors[r] = true
	}
	var firstSolve time.Time
	for page := 1; ; page++ {
		var p rtPage[rtTransaction]
		v := url.Values{
			"fields":   {"Type,Creator,Created,Field,OldValue,NewValue"},
			"per_page": {strconv.Itoa(rtMaxPerPage)},
			"page":     {strconv.Itoa(page)},
		}
		hpath := "/ticket/" + url.PathEscape(tk.ID) + "/history"
		if _, err := s.client.getJSON(ctx, s.base+hpath+"?"+v.Encode(), &p); err != nil {
			return nil, err
		}
		for i, tx := range p.Items {
			var at time.Time
			switch tx.Type {
			case "Correspond", "Status", "Set":
				if at, err = rtTime(tx.Created); err != nil || at.IsZero() {
					b.Reject("bad_time", fmt.Sprintf("/REST/2.0%s page %d item %d", hpath, page, i+1), fmt.Errorf("Created of transaction %s: %q is not a W3CDTF time", tx.ID, tx.Created))
					return nil, nil
				}
			}
			switch {
			case tx.Type == "Correspond":
				if requestors[strings.ToLower(refID(tx.Creator, false))] {
					continue // the customer writing again
				}
				tk.AgentReplies++
				if tk.FirstReplyAt.IsZero() {
					tk.FirstReplyAt = at
				}
			case tx.Type == "Status" || (tx.Type == "Set" && tx.Field == "Status"):
				from, to := s.status(string(tx.OldValue)), s.status(string(tx.NewValue))
				if solvedState(to) && !solvedState(from) && firstSolve.IsZero() {
					firstSolve = at
				}
				if solvedState(from) && !solvedState(to) && to != "deleted" {
					tk.Reopens++
				}
			}
		}
		if !p.more(rtMaxPerPage) {
			break
		}
	}
	if solvedState(tk.Status) {
		// The first resolve; RT's Resolved is the latest one.
		tk.SolvedAt = resolved
		if !firstSolve.IsZero() {
			tk.SolvedAt = firstSolve
		}
	}
	return []record.Ticket{tk}, nil
}
