package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// freshdesk reads tickets from the Freshdesk API v2 list endpoint
// (GET /api/v2/tickets) ordered by updated_at ascending, with the stats
// embedded (first response, resolution, reopen times).
//
// Incremental reading is keyset-like: every query starts at the watermark
// (the last updated_at delivered) and the cursor keeps the ids already
// delivered at exactly that second. After a page that moved the watermark
// the next query starts again from the new watermark at page 1, rather
// than asking for page N+1 of the old query: a ticket updated while we
// page moves to the end of the updated_at order and would shift every
// later page by one, and page N+1 would then skip a ticket for good.
// Only pages that are all at one second (a bulk update) are paged
// through, which also keeps far below Freshdesk's 300-page limit.
type freshdesk struct {
	base     *url.URL
	client   *apiClient
	groups   map[int64]string
	statuses map[int]string
	reserve  int
	since    time.Duration
	settle   time.Duration
	perPage  int
}

type freshdeskSpec struct {
	politeSpec `yaml:",inline"`
	URL        string           `yaml:"url"`
	APIKey     config.Secret    `yaml:"api_key"`
	APIKeyFile string           `yaml:"api_key_file"`
	Groups     map[int64]string `yaml:"groups"`
	Statuses   map[int]string   `yaml:"statuses"`
	// RateLimitReserve ends a run (as the request budget does) when
	// X-RateLimit-Remaining falls below it, leaving the rest of the
	// account's per-minute quota to agents and other integrations.
	RateLimitReserve int `yaml:"rate_limit_reserve"`
	// SettleLag: only tickets updated at least this long ago are
	// delivered (default 1m). Freshdesk documents no consistency for the
	// list (a replica or index can show a change after a newer change of
	// another ticket), and without a lag the watermark would pass a late one.
	SettleLag *config.Duration `yaml:"settle_lag"`
}

// Freshdesk's documented codes (ticket properties: status, priority,
// source). Custom statuses (6 and up) are named by the `statuses` key.
var (
	freshdeskStatus   = map[int]string{2: "open", 3: "pending", 4: "solved", 5: "closed"}
	freshdeskPriority = map[int]string{1: "low", 2: "medium", 3: "high", 4: "urgent"}
	freshdeskSource   = map[int]string{1: "email", 2: "portal", 3: "phone", 7: "chat", 9: "feedback_widget", 10: "outbound_email"}
	// ticketStatuses is servq's status vocabulary (record.Ticket.Status).
	ticketStatuses = []string{"new", "open", "pending", "hold", "solved", "closed", "deleted"}
)

const (
	freshdeskSettleLag = time.Minute
	freshdeskPerPage   = 100 // the documented maximum of per_page
	freshdeskMaxPage   = 300 // "a maximum of 300 pages will be returned"
)

func init() {
	collectors.Register("freshdesk", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		var spec freshdeskSpec
		if err := c.DecodeSpec(&spec); err != nil {
			return nil, err
		}
		if err := spec.politeSpec.check(c); err != nil {
			return nil, err
		}
		base, err := apiBaseURL(spec.URL, "https://acme.freshdesk.com")
		if err != nil {
			return nil, c.Errorf("url", "%v", err)
		}
		key, err := resolveSecret(c, "api_key", spec.APIKey, spec.APIKeyFile)
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, c.Errorf("api_key", "is required (or api_key_file): the API key of an agent (Profile settings → View API key)")
		}
		for code, st := range spec.Statuses {
			if code < 2 {
				return nil, c.Errorf("statuses", "status code %d: Freshdesk status codes start at 2", code)
			}
			if !slices.Contains(ticketStatuses, st) {
				return nil, c.Errorf("statuses", "status %d: %q is not one of %s", code, st, strings.Join(ticketStatuses, ", "))
			}
		}
		if spec.RateLimitReserve < 0 {
			return nil, c.Errorf("rate_limit_reserve", "must not be negative")
		}
		settle, err := settleLag(c, spec.SettleLag, freshdeskSettleLag)
		if err != nil {
			return nil, err
		}
		statuses := map[int]string{}
		for k, v := range freshdeskStatus {
			statuses[k] = v
		}
		for k, v := range spec.Statuses {
			statuses[k] = v
		}
		// Basic auth with the API key as user name and "X" as password.
		auth := redact.BasicAuth(key.Reveal(), "X")
		client := newAPIClient(spec.politeSpec, func(r *http.Request) { r.Header.Set("Authorization", auth) })
		return &freshdesk{base: base, client: client, groups: spec.Groups, statuses: statuses,
			reserve: spec.RateLimitReserve, since: spec.politeSpec.since(), settle: settle, perPage: freshdeskPerPage}, nil
	})
}

// watermark is the cursor of an updated-at ordered API: the last update
// time delivered and the ids delivered with exactly that time. Items at
// earlier times were all delivered before the watermark got there.
type watermark struct {
	At  time.Time `json:"at"`
	IDs []string  `json:"ids,omitempty"`
	// Page is the next page of a query from At when a run ended while
	// paging through items that all share one time (0: the first).
	Page int `json:"page,omitempty"`
}

// seen reports whether an item updated at `at` was delivered already.
func (w *watermark) seen(id string, at time.Time) bool {
	return at.Before(w.At) || (at.Equal(w.At) && slices.Contains(w.IDs, id))
}

// advance records a delivered item (items come in updated order).
func (w *watermark) advance(id string, at time.Time) {
	switch {
	case at.After(w.At):
		w.At, w.IDs = at, []string{id}
	case at.Equal(w.At) && !slices.Contains(w.IDs, id):
		w.IDs = append(w.IDs, id)
	}
}

// loadWatermark decodes a cursor, or starts `since` before now.
func loadWatermark(raw []byte, now time.Time, since time.Duration) (watermark, error) {
	if len(raw) == 0 {
		return watermark{At: now.Add(-since).UTC().Truncate(time.Second)}, nil
	}
	var w watermark
	if err := json.Unmarshal(raw, &w); err != nil || w.At.IsZero() {
		return w, fmt.Errorf("unreadable cursor %q: %v", raw, err)
	}
	return w, nil
}

// resume is the cursor of a run that stops before asking for page.
func (w watermark) resume(page int) []byte {
	if page > 1 {
		w.Page = page
	}
	return w.encode()
}

func (w watermark) encode() []byte {
	b, _ := json.Marshal(w)
	return b
}

// fdTicket is the part of a Freshdesk ticket (with include=stats) that
// servq uses.
type fdTicket struct {
	ID          *int64   `json:"id"`
	Status      int      `json:"status"`
	Priority    int      `json:"priority"`
	Source      int      `json:"source"`
	GroupID     *int64   `json:"group_id"`
	Tags        []string `json:"tags"`
	FrEscalated bool     `json:"fr_escalated"`
	NrEscalated bool     `json:"nr_escalated"`
	Spam        bool     `json:"spam"`
	Deleted     bool     `json:"deleted"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   string   `json:"updated_at"`
	Stats       *struct {
		FirstRespondedAt *string `json:"first_responded_at"`
		ResolvedAt       *string `json:"resolved_at"`
		ClosedAt         *string `json:"closed_at"`
		ReopenedAt       *string `json:"reopened_at"`
	} `json:"stats"`
}

func (f *freshdesk) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	f.client.startRun()
	wm, err := loadWatermark(raw, b.Now, f.since)
	if err != nil {
		return nil, err
	}
	page := max(wm.Page, 1)
	wm.Page = 0
	// Only changes made before cutoff are delivered: later ones may not
	// all be listed yet (settle_lag).
	cutoff := b.Now.Add(-f.settle)
	// The completeness watermark: a run that reads to the last page, or
	// to the first ticket updated after cutoff, has every change made
	// before cutoff: a ticket changed earlier is listed at its last
	// update, which the restarting queries reach. A run that stops early
	// (budget, rate-limit reserve) has every change before the last
	// updated_at it delivered, by the ascending order; tickets of that
	// very second may still follow.
	partial := func() []byte {
		b.Watermark = wm.At
		return wm.resume(page)
	}
	for {
		// One second before the watermark: whether updated_since is
		// inclusive or not, the tickets of the watermark's own second
		// come back and the cursor's ids tell which were delivered.
		since := wm.At.Add(-time.Second)
		q := url.Values{
			"updated_since": {since.UTC().Format(time.RFC3339)},
			"include":       {"stats"},
			"order_by":      {"updated_at"},
			"order_type":    {"asc"},
			"per_page":      {strconv.Itoa(f.perPage)},
			"page":          {strconv.Itoa(page)},
		}
		u := *f.base
		u.Path += "/api/v2/tickets"
		u.RawQuery = q.Encode()
		var items []json.RawMessage
		hdr, err := f.client.getJSON(ctx, u.String(), &items)
		if errors.Is(err, errBudget) {
			return partial(), nil // the pages so far are complete
		}
		if err != nil {
			return nil, err
		}
		before := wm.At
		pos := fmt.Sprintf("%s?updated_since=%s&page=%d", u.Path, q.Get("updated_since"), page)
		for i, it := range items {
			if at, ok := fdUpdatedAt(it); ok && at.After(cutoff) {
				// Not settled: this ticket and all after it (the list
				// is ascending) are read by a later run.
				b.Watermark = cutoff
				return wm.encode(), nil
			}
			f.ticket(it, fmt.Sprintf("%s #%d", pos, i), &wm, b)
		}
		more := len(items) >= f.perPage || strings.Contains(hdr.Get("Link"), `rel="next"`)
		if len(items) == 0 || !more {
			b.Watermark = cutoff
			return wm.encode(), nil
		}
		if wm.At.After(before) {
			page = 1
		} else if page++; page > freshdeskMaxPage {
			// A whole page within one second: page on at the same
			// watermark, as far as Freshdesk lists.
			b.Reject("page_limit", pos, fmt.Errorf("more than %d tickets were updated in the second %s; Freshdesk lists at most %d pages, the rest of that second is skipped",
				freshdeskMaxPage*f.perPage, wm.At.Format(time.RFC3339), freshdeskMaxPage))
			wm = watermark{At: wm.At.Add(time.Second)}
			page = 1
		}
		if f.reserve > 0 {
			if left, err := strconv.Atoi(hdr.Get("X-Ratelimit-Remaining")); err == nil && left < f.reserve {
				return partial(), nil // leave the quota to others; the next run continues
			}
		}
		if b.Full() {
			// A chunk ends at a page with the cursor a budget-cut run
			// commits: a resumed run continues with the next page.
			if err := b.Flush(ctx, wm.resume(page)); err != nil {
				return nil, err
			}
		}
	}
}

// fdUpdatedAt reads a listed ticket's updated_at, if it is readable.
func fdUpdatedAt(raw json.RawMessage) (time.Time, bool) {
	var t struct {
		UpdatedAt string `json:"updated_at"`
	}
	if json.Unmarshal(raw, &t) != nil {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339, t.UpdatedAt)
	return at, err == nil
}

// ticket maps one listed ticket; a bad one is rejected, never the run.
func (f *freshdesk) ticket(raw json.RawMessage, pos string, wm *watermark, b *collectors.Batch) {
	var t fdTicket
	if err := json.Unmarshal(raw, &t); err != nil {
		// Reject it once: when its id and updated_at are readable, the
		// watermark moves past it as past any delivered ticket.
		var lenient struct {
			ID        json.Number `json:"id"`
			UpdatedAt string      `json:"updated_at"`
		}
		if json.Unmarshal(raw, &lenient) == nil && lenient.ID != "" {
			if at, e := time.Parse(time.RFC3339, lenient.UpdatedAt); e == nil {
				if wm.seen(lenient.ID.String(), at) {
					return
				}
				defer wm.advance(lenient.ID.String(), at)
			}
		}
		b.Reject("bad_json", pos, err)
		return
	}
	if t.ID == nil {
		b.Reject("missing_field", pos, errors.New("no id"))
		return
	}
	id := strconv.FormatInt(*t.ID, 10)
	pos += " (ticket " + id + ")"
	updated, err := time.Parse(time.RFC3339, t.UpdatedAt)
	if err != nil {
		b.Reject("bad_time", pos, fmt.Errorf("updated_at %q: %v", t.UpdatedAt, err))
		return
	}
	if wm.seen(id, updated) {
		return
	}
	tk := record.Ticket{ID: id, UpdatedAt: updated, Tags: t.Tags, Deleted: t.Deleted || t.Spam}
	if tk.CreatedAt, err = time.Parse(time.RFC3339, t.CreatedAt); err != nil {
		b.Reject("bad_time", pos, fmt.Errorf("created_at %q: %v", t.CreatedAt, err))
		wm.advance(id, updated) // this version of the ticket is dealt with
		return
	}
	var ok bool
	if tk.Status, ok = f.statuses[t.Status]; !ok {
		tk.Status = "open" // an unnamed custom status: see the statuses key
	}
	if tk.Deleted {
		tk.Status = "deleted"
	}
	if tk.Priority, ok = freshdeskPriority[t.Priority]; !ok && t.Priority != 0 {
		tk.Priority = "priority_" + strconv.Itoa(t.Priority)
	}
	if tk.Channel, ok = freshdeskSource[t.Source]; !ok && t.Source != 0 {
		tk.Channel = "source_" + strconv.Itoa(t.Source)
	}
	if t.GroupID != nil {
		if tk.Queue, ok = f.groups[*t.GroupID]; !ok {
			tk.Queue = strconv.FormatInt(*t.GroupID, 10)
		}
	}
	if st := t.Stats; st != nil {
		tm := func(field string, v *string) time.Time {
			if v == nil || *v == "" || err != nil {
				return time.Time{}
			}
			x, e := time.Parse(time.RFC3339, *v)
			if e != nil {
				err = fmt.Errorf("stats.%s %q: %v", field, *v, e)
			}
			return x
		}
		tk.FirstReplyAt = tm("first_responded_at", st.FirstRespondedAt)
		tk.SolvedAt = tm("resolved_at", st.ResolvedAt)
		if tk.SolvedAt.IsZero() {
			tk.SolvedAt = tm("closed_at", st.ClosedAt)
		}
		// Freshdesk keeps the last reopen time only, not a count: a
		// reopened ticket has been reopened at least once. Later reopens
		// are counted by the quality model when it sees the solved
		// ticket open again.
		if !tm("reopened_at", st.ReopenedAt).IsZero() {
			tk.Reopens = 1
		}
		if err != nil {
			b.Reject("bad_time", pos, err)
			wm.advance(id, updated)
			return
		}
	}
	// Only the escalation flags whose meaning Freshdesk documents are
	// breaches: fr_escalated (first response time breached) and
	// nr_escalated (next response time breached). is_escalated means
	// "escalated for any reason" (a manual escalation, a rule, a
	// breach of either kind) and says nothing about resolution time, so
	// it is not read: Freshdesk has no field that tells a resolution
	// breach.
	if t.FrEscalated {
		tk.SLABreaches = append(tk.SLABreaches, "first_reply")
	}
	if t.NrEscalated {
		tk.SLABreaches = append(tk.SLABreaches, "next_reply")
	}
	b.Tickets = append(b.Tickets, tk)
	wm.advance(id, updated)
}
