package sources

import (
	"bytes"
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
)

// httpJSON polls any REST API that answers JSON and has no plugin of its
// own: one URL, a dotted path to the array of items, a mapping of record
// fields to dotted paths in each item, one of four pagination styles and an
// optional watermark for incremental reads.
type httpJSON struct {
	spec    httpJSONSpec
	client  *apiClient
	mapper  *hjMapper
	times   timeParser
	header  http.Header
	urlPath string // the configured URL's path, for positions and errors
	host    string // scheme://host of the configured URL: Link headers are followed there only
	settle  time.Duration
}

type httpJSONSpec struct {
	// Named, not embedded: the strict decoder skips unexported anonymous
	// fields, so an embedded politeSpec's keys would be unknown.
	Polite politeSpec `yaml:",inline"`

	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"`
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	// AuthHeader (default Authorization) carries AuthValue, a secret.
	AuthHeader    string        `yaml:"auth_header"`
	AuthValue     config.Secret `yaml:"auth_value"`
	AuthValueFile string        `yaml:"auth_value_file"`

	Record     string            `yaml:"record"`
	Items      string            `yaml:"items"`
	Mapping    map[string]string `yaml:"mapping"`
	TimeFormat string            `yaml:"time_format"`
	TimeZone   string            `yaml:"time_zone"`
	StatusMap  map[string]string `yaml:"status_map"`
	OutcomeMap map[string]string `yaml:"outcome_map"`
	Survey     string            `yaml:"survey"`
	Kind       string            `yaml:"kind"`

	Pagination struct {
		Type         string `yaml:"type"`
		NextCursor   string `yaml:"next_cursor"`
		CursorParam  string `yaml:"cursor_param"`
		HasMore      string `yaml:"has_more"`
		LastPage     string `yaml:"last_page"`
		KeepCursor   bool   `yaml:"keep_cursor"`
		PageParam    string `yaml:"page_param"`
		PerPageParam string `yaml:"per_page_param"`
		PerPage      int    `yaml:"per_page"`
		FirstPage    *int   `yaml:"first_page"`
		TotalPages   string `yaml:"total_pages"`
	} `yaml:"pagination"`

	Incremental struct {
		SinceParam  string `yaml:"since_param"`
		SinceFormat string `yaml:"since_format"`
		Watermark   string `yaml:"watermark"`
		// Ascending says the API lists items oldest watermark first, so
		// that a pass the request budget cuts short is complete up to the
		// last watermark it delivered. servq cannot tell the order from
		// the answers; without it only a complete pass claims anything.
		Ascending bool `yaml:"ascending"`
		// SettleLag holds back items whose watermark is less than this
		// old at the start of a pass (default 0): an API served from a
		// search index or replica lists a change late, and the cursor's
		// watermark would pass it for good. They come again in a later
		// pass, as since stays at or before them.
		SettleLag *config.Duration `yaml:"settle_lag"`
	} `yaml:"incremental"`
}

const (
	hjSincePlaceholder  = "{{.since}}"
	hjCursorPlaceholder = "{{.cursor}}"
	hjDefaultPerPage    = 100
)

// Fields a mapping can name besides the ticket fields of tickets_file.
var (
	hjTicketExtra = map[string]bool{"sla_breaches": true, "deleted": true}
	hjCallFields  = map[string]bool{"id": true, "queue": true, "agent": true, "channel": true, "enqueued_at": true, "answered_at": true,
		"ended_at": true, "wait_seconds": true, "talk_seconds": true, "hold_seconds": true, "wrap_seconds": true, "outcome": true}
	hjSurveyFields = map[string]bool{"id": true, "survey": true, "kind": true, "score": true, "ticket_id": true, "channel": true,
		"queue": true, "submitted_at": true, "servqual": true, "weights": true}
)

// hjFields lists the mappable fields of a record type.
func hjFields(rec string) map[string]bool {
	switch rec {
	case "ticket":
		m := map[string]bool{}
		for k := range ticketFields {
			m[k] = true
		}
		for k := range hjTicketExtra {
			m[k] = true
		}
		return m
	case "call":
		return hjCallFields
	case "survey":
		return hjSurveyFields
	}
	return nil
}

func init() {
	collectors.Register("http_json", newHTTPJSON)
}

func newHTTPJSON(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
	s := &httpJSON{}
	if err := c.DecodeSpec(&s.spec); err != nil {
		return nil, err
	}
	sp := &s.spec
	if err := sp.Polite.check(c); err != nil {
		return nil, err
	}
	if sp.URL == "" {
		return nil, c.Errorf("url", "is required")
	}
	probe := strings.NewReplacer(hjSincePlaceholder, "x", hjCursorPlaceholder, "x").Replace(sp.URL)
	if strings.Contains(probe, "{{") {
		return nil, c.Errorf("url", "unknown placeholder (known: %s, %s)", hjSincePlaceholder, hjCursorPlaceholder)
	}
	u, ok := parseHTTPURL(probe)
	if !ok {
		return nil, c.Errorf("url", "must be an absolute http(s) URL")
	}
	s.urlPath, s.host = u.Path, u.Scheme+"://"+u.Host
	switch sp.Method = strings.ToUpper(sp.Method); sp.Method {
	case "":
		sp.Method = http.MethodGet
	case http.MethodGet, http.MethodPost:
	default:
		return nil, c.Errorf("method", "must be GET or POST")
	}
	if sp.Body != "" && sp.Method != http.MethodPost {
		return nil, c.Errorf("body", "needs method: POST")
	}
	if strings.Contains(strings.NewReplacer(hjSincePlaceholder, "", hjCursorPlaceholder, "").Replace(sp.Body), "{{") {
		return nil, c.Errorf("body", "unknown placeholder (known: %s, %s)", hjSincePlaceholder, hjCursorPlaceholder)
	}

	// Credentials: a secret header, never a plain one.
	s.header = http.Header{}
	for _, k := range sortedKeys(sp.Headers) {
		ck := http.CanonicalHeaderKey(k)
		if ck == "Authorization" || ck == "Cookie" || ck == "Proxy-Authorization" {
			return nil, c.Errorf("headers."+k, "put credentials in auth_header and auth_value (or auth_value_file), which are kept secret")
		}
		s.header.Set(ck, sp.Headers[k])
	}
	secret, err := resolveSecret(c, "auth_value", sp.AuthValue, sp.AuthValueFile)
	if err != nil {
		return nil, err
	}
	if sp.AuthHeader != "" && secret == "" {
		return nil, c.Errorf("auth_header", "needs auth_value or auth_value_file")
	}
	authHeader := sp.AuthHeader
	if authHeader == "" {
		authHeader = "Authorization"
	}
	var auth func(*http.Request)
	if secret != "" {
		auth = func(r *http.Request) { r.Header.Set(authHeader, secret.Reveal()) }
	}
	s.client = newAPIClient(sp.Polite, auth)

	// Records.
	fields := hjFields(sp.Record)
	if fields == nil {
		return nil, c.Errorf("record", "must be ticket, call or survey")
	}
	for _, k := range sortedKeys(sp.Mapping) {
		if !fields[k] {
			return nil, c.Errorf("mapping."+k, "unknown %s field %q (known: %s)", sp.Record, k, strings.Join(sortedKeys(fields), ", "))
		}
		if sp.Mapping[k] == "" {
			return nil, c.Errorf("mapping."+k, "must name a path in the item")
		}
	}
	required := map[string][]string{"ticket": {"id", "created_at"}, "call": {"id", "enqueued_at", "outcome"}, "survey": {"id", "submitted_at"}}
	for _, req := range required[sp.Record] {
		if sp.Mapping[req] == "" {
			return nil, c.Errorf("mapping", "mapping.%s is required for record %s", req, sp.Record)
		}
	}
	if s.times, err = newTimeParser(sp.TimeFormat, sp.TimeZone); err != nil {
		return nil, c.Errorf("time_zone", "%v", err)
	}
	if sp.Record != "ticket" && len(sp.StatusMap) > 0 {
		return nil, c.Errorf("status_map", "applies to record ticket only")
	}
	if sp.Record != "call" && len(sp.OutcomeMap) > 0 {
		return nil, c.Errorf("outcome_map", "applies to record call only")
	}
	for _, k := range sortedKeys(sp.OutcomeMap) {
		if !hjOutcome(sp.OutcomeMap[k]) {
			return nil, c.Errorf("outcome_map."+k, "%q is not an outcome (answered, abandoned, timeout, transferred, voicemail)", sp.OutcomeMap[k])
		}
	}
	if sp.Record == "survey" {
		if sp.Survey == "" && sp.Mapping["survey"] == "" {
			return nil, c.Errorf("survey", "is required for record survey (the survey label), or map it with mapping.survey")
		}
		if sp.Kind == "" && sp.Mapping["kind"] == "" {
			return nil, c.Errorf("kind", "is required for record survey (csat, nps, ces), or map it with mapping.kind")
		}
		if sp.Kind != "" {
			if _, ok := surveyScales[record.SurveyKind(sp.Kind)]; !ok || (sp.Kind == string(record.KindSERVQUAL) && sp.Mapping["servqual"] == "") {
				return nil, c.Errorf("kind", "unknown kind %q (csat, nps, ces; servqual needs mapping.servqual)", sp.Kind)
			}
		}
		if sp.Mapping["score"] == "" && sp.Mapping["servqual"] == "" {
			return nil, c.Errorf("mapping", "mapping.score is required for record survey")
		}
	} else if sp.Survey != "" || sp.Kind != "" {
		return nil, c.Errorf("survey", "survey and kind apply to record survey only")
	}
	s.mapper = &hjMapper{record: sp.Record, mapping: sp.Mapping, times: s.times, statusMap: sp.StatusMap,
		outcomeMap: sp.OutcomeMap, survey: sp.Survey, kind: sp.Kind}

	// Pagination.
	pg := &sp.Pagination
	usesCursor := strings.Contains(sp.URL, hjCursorPlaceholder) || strings.Contains(sp.Body, hjCursorPlaceholder)
	switch pg.Type {
	case "", "none":
		pg.Type = "none"
	case "cursor":
		if pg.NextCursor == "" {
			return nil, c.Errorf("pagination.next_cursor", "is required for type cursor (the path of the next cursor in the answer)")
		}
		if pg.CursorParam == "" && !usesCursor {
			return nil, c.Errorf("pagination.cursor_param", "is required for type cursor, unless url or body holds %s", hjCursorPlaceholder)
		}
	case "link", "page":
	default:
		return nil, c.Errorf("pagination.type", "unknown type %q (none, cursor, link, page)", pg.Type)
	}
	if usesCursor && pg.Type != "cursor" {
		return nil, c.Errorf("url", "%s needs pagination.type cursor", hjCursorPlaceholder)
	}
	if pg.Type != "cursor" && (pg.NextCursor != "" || pg.CursorParam != "" || pg.HasMore != "" || pg.LastPage != "" || pg.KeepCursor) {
		return nil, c.Errorf("pagination", "next_cursor, cursor_param, has_more, last_page and keep_cursor apply to type cursor only")
	}
	if pg.Type == "page" {
		if pg.PageParam == "" {
			return nil, c.Errorf("pagination.page_param", "is required for type page")
		}
		if pg.PerPage < 0 {
			return nil, c.Errorf("pagination.per_page", "must not be negative")
		}
		if pg.PerPage == 0 {
			pg.PerPage = hjDefaultPerPage
		}
		if pg.FirstPage == nil {
			one := 1
			pg.FirstPage = &one
		}
	} else if pg.PageParam != "" || pg.PerPageParam != "" || pg.TotalPages != "" || pg.PerPage != 0 || pg.FirstPage != nil {
		return nil, c.Errorf("pagination", "page_param, per_page_param, per_page, first_page and total_pages apply to type page only")
	}

	// Incremental reads.
	inc := &sp.Incremental
	usesSince := strings.Contains(sp.URL, hjSincePlaceholder) || strings.Contains(sp.Body, hjSincePlaceholder)
	switch inc.SinceFormat {
	case "":
		inc.SinceFormat = "rfc3339"
	case "rfc3339", "unix", "unix_ms":
	default:
		return nil, c.Errorf("incremental.since_format", "must be rfc3339, unix or unix_ms")
	}
	if (inc.SinceParam != "" || usesSince) && inc.Watermark == "" {
		return nil, c.Errorf("incremental.watermark", "is required to send a since value (the item's update time, e.g. updated_at)")
	}
	if inc.Watermark != "" && inc.SinceParam == "" && !usesSince {
		return nil, c.Errorf("incremental.since_param", "is required with a watermark, unless url or body holds %s", hjSincePlaceholder)
	}
	if inc.Ascending && inc.Watermark == "" {
		return nil, c.Errorf("incremental.ascending", "needs incremental.watermark: the order it states is that of the watermark")
	}
	if s.settle, err = settleLag(c, inc.SettleLag, 0); err != nil {
		return nil, err
	}
	if s.settle > 0 && inc.Watermark == "" {
		return nil, c.Errorf("incremental.settle_lag", "needs incremental.watermark: the lag is measured on it")
	}
	if s.settle > 0 && sp.Pagination.KeepCursor {
		return nil, c.Errorf("incremental.settle_lag", "cannot be used with pagination.keep_cursor: a vendor stream cursor never returns an item held back")
	}
	return s, nil
}

func hjOutcome(o string) bool {
	switch record.CallOutcome(o) {
	case record.OutcomeAnswered, record.OutcomeAbandoned, record.OutcomeTimeout, record.OutcomeTransferred, record.OutcomeVoicemail:
		return true
	}
	return false
}

// hjCursor is what http_json remembers between runs.
type hjCursor struct {
	// Watermark is the highest watermark of the items read so far
	// (RFC3339Nano); the next round asks for items since then. IDs are
	// the items already delivered at exactly that instant: the API
	// returns them again (since is inclusive) and they are skipped.
	Watermark string   `json:"watermark,omitempty"`
	IDs       []string `json:"ids,omitempty"`
	// Stream is the vendor cursor the next round starts from
	// (pagination.keep_cursor).
	Stream string `json:"stream,omitempty"`
	// Round is a pass over the pages that a run's request budget ended;
	// the next run continues it.
	Round *hjRound `json:"round,omitempty"`
}

// hjRound is one pass over the pages, from the first to the last.
type hjRound struct {
	Since  string   `json:"since,omitempty"`   // the since value of this pass, as sent
	Cursor string   `json:"cursor,omitempty"`  // cursor pagination: next page's cursor
	Next   string   `json:"next,omitempty"`    // link pagination: next page's URL
	Page   int      `json:"page,omitempty"`    // page pagination: next page's number
	Pages  int      `json:"pages,omitempty"`   // pages read so far (positions)
	Max    string   `json:"max,omitempty"`     // highest watermark seen in this pass
	MaxIDs []string `json:"max_ids,omitempty"` // ids seen at Max
	// Started is the clock of the run that began the pass (RFC 3339): a
	// complete pass has every change made before its first request.
	Started string `json:"started,omitempty"`
	// Unordered: an item came with a watermark below one before it,
	// although incremental.ascending says otherwise; the pass then claims
	// nothing until it is complete.
	Unordered bool `json:"unordered,omitempty"`
}

func (s *httpJSON) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	var cur hjCursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return nil, fmt.Errorf("bad cursor: %w", err)
		}
	}
	s.client.startRun()
	r := cur.Round
	if r == nil {
		r = s.newRound(&cur, b.Now)
	}
	var curWM time.Time
	if cur.Watermark != "" {
		curWM, _ = time.Parse(time.RFC3339Nano, cur.Watermark)
	}
	sp := &s.spec
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		reqURL, body := s.request(r)
		resp, err := s.client.do(ctx, sp.Method, reqURL, body, s.header)
		if errors.Is(err, errBudget) {
			// Commit the complete pages; the next run continues here.
			b.Watermark = s.partialWatermark(r)
			cur.Round = r
			return json.Marshal(cur)
		}
		if err != nil {
			return nil, err
		}
		page := r.Pages + 1
		var doc any
		dec := json.NewDecoder(bytes.NewReader(resp.Body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%s %s: page %d is not JSON: %v", sp.Method, s.urlPath, page, err)
		}
		items, err := hjItems(doc, sp.Items)
		if err != nil {
			return nil, fmt.Errorf("%s %s: page %d: %v", sp.Method, s.urlPath, page, err)
		}
		for i, it := range items {
			s.item(it, fmt.Sprintf("%s page %d item %d", s.urlPath, page, i), curWM, &cur, r, b)
		}
		r.Pages = page
		done, err := s.advance(r, &cur, doc, resp.Header, reqURL, len(items))
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		if b.Full() {
			// A chunk ends at a page, with the round in progress as a
			// budget-cut run leaves it: a resumed run continues there.
			cur.Round = r
			c, err := json.Marshal(cur)
			if err != nil {
				return nil, err
			}
			if err := b.Flush(ctx, c); err != nil {
				return nil, err
			}
		}
	}
	// The pass is complete: it has every change made before it began,
	// less the settle lag (a pass from before servq recorded that claims
	// nothing), and the cursor's watermark moves to the highest one seen.
	b.Watermark = time.Unix(0, 0)
	if started, err := time.Parse(time.RFC3339Nano, r.Started); err == nil {
		b.Watermark = started.Add(-s.settle)
	}
	if r.Max != "" {
		maxT, _ := time.Parse(time.RFC3339Nano, r.Max)
		switch {
		case cur.Watermark == "" || maxT.After(curWM):
			cur.Watermark, cur.IDs = r.Max, r.MaxIDs
		case maxT.Equal(curWM):
			for _, id := range r.MaxIDs {
				if !slices.Contains(cur.IDs, id) {
					cur.IDs = append(cur.IDs, id)
				}
			}
		}
	}
	cur.Round = nil
	return json.Marshal(cur)
}

// newRound starts a pass at the first page: since the watermark, or
// spec.since back from now on the first run.
func (s *httpJSON) newRound(cur *hjCursor, now time.Time) *hjRound {
	r := &hjRound{Cursor: cur.Stream, Started: now.UTC().Format(time.RFC3339Nano)}
	if s.spec.Pagination.Type == "page" {
		r.Page = *s.spec.Pagination.FirstPage
	}
	if s.spec.Incremental.Watermark != "" {
		since := now.Add(-s.spec.Polite.since())
		if cur.Watermark != "" {
			if wm, err := time.Parse(time.RFC3339Nano, cur.Watermark); err == nil {
				since = wm
			}
		}
		r.Since = hjFormatSince(since, s.spec.Incremental.SinceFormat)
	}
	return r
}

func hjFormatSince(t time.Time, format string) string {
	switch format {
	case "unix":
		return strconv.FormatInt(t.Unix(), 10)
	case "unix_ms":
		return strconv.FormatInt(t.UnixMilli(), 10)
	}
	// Whole seconds, rounded down: since stays inclusive of the watermark.
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// request builds the URL and body of the round's next page.
func (s *httpJSON) request(r *hjRound) (string, []byte) {
	sp := &s.spec
	body := []byte(nil)
	if sp.Body != "" {
		esc := func(v string) string {
			j, _ := json.Marshal(v)
			return string(j[1 : len(j)-1])
		}
		body = []byte(strings.NewReplacer(hjSincePlaceholder, esc(r.Since), hjCursorPlaceholder, esc(r.Cursor)).Replace(sp.Body))
	}
	if sp.Pagination.Type == "link" && r.Next != "" {
		return r.Next, body
	}
	raw := strings.NewReplacer(hjSincePlaceholder, url.QueryEscape(r.Since), hjCursorPlaceholder, url.QueryEscape(r.Cursor)).Replace(sp.URL)
	set := map[string]string{}
	// With keep_cursor the vendor's cursor replaces the since value.
	if sp.Incremental.SinceParam != "" && r.Since != "" && !(sp.Pagination.KeepCursor && r.Cursor != "") {
		set[sp.Incremental.SinceParam] = r.Since
	}
	switch sp.Pagination.Type {
	case "cursor":
		if sp.Pagination.CursorParam != "" && r.Cursor != "" {
			set[sp.Pagination.CursorParam] = r.Cursor
		}
	case "page":
		set[sp.Pagination.PageParam] = strconv.Itoa(r.Page)
		if sp.Pagination.PerPageParam != "" {
			set[sp.Pagination.PerPageParam] = strconv.Itoa(sp.Pagination.PerPage)
		}
	}
	if len(set) == 0 {
		return raw, body
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw, body // checked in the factory; the client reports it
	}
	q := u.Query()
	for k, v := range set {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String(), body
}

// partialWatermark is the completeness watermark of a pass the request
// budget cut short: the highest watermark it delivered when the API lists
// in that order (every change before it came first; items of that very
// instant may still follow), else none: an unordered list may still hold
// changes of any age on its later pages.
func (s *httpJSON) partialWatermark(r *hjRound) time.Time {
	if !s.spec.Incremental.Ascending || r.Unordered || r.Max == "" {
		return time.Unix(0, 0)
	}
	maxT, err := time.Parse(time.RFC3339Nano, r.Max)
	if err != nil {
		return time.Unix(0, 0)
	}
	return maxT
}

// advance moves the round to the next page; done is true after the last.
func (s *httpJSON) advance(r *hjRound, cur *hjCursor, doc any, h http.Header, reqURL string, n int) (done bool, err error) {
	pg := &s.spec.Pagination
	switch pg.Type {
	case "cursor":
		v, _ := hjPath(doc, pg.NextCursor)
		next := hjText(v)
		more := true
		if pg.HasMore != "" {
			hv, _ := hjPath(doc, pg.HasMore)
			more = hjText(hv) == "true"
		}
		if pg.LastPage != "" {
			lv, _ := hjPath(doc, pg.LastPage)
			more = more && hjText(lv) != "true"
		}
		if !more || next == "" || next == r.Cursor || n == 0 {
			if pg.KeepCursor {
				if next != "" {
					cur.Stream = next
				} else {
					cur.Stream = r.Cursor
				}
			}
			return true, nil
		}
		r.Cursor = next
	case "link":
		next := hjLinkNext(h.Values("Link"))
		if next == "" {
			return true, nil
		}
		base, _ := url.Parse(reqURL)
		ref, err := url.Parse(next)
		if err != nil || base == nil {
			return false, fmt.Errorf("%s %s: page %d: bad Link rel=next", s.spec.Method, s.urlPath, r.Pages)
		}
		u := base.ResolveReference(ref)
		if u.Scheme+"://"+u.Host != s.host {
			// The credentials go to the configured host only.
			return false, fmt.Errorf("%s %s: page %d: Link rel=next points to another host (%s); not following it with the credentials", s.spec.Method, s.urlPath, r.Pages, u.Host)
		}
		r.Next = u.String()
	case "page":
		if n == 0 {
			return true, nil
		}
		if pg.TotalPages != "" {
			v, ok := hjPath(doc, pg.TotalPages)
			if ok {
				total, err := strconv.Atoi(hjText(v))
				if err != nil {
					return false, fmt.Errorf("%s %s: page %d: %s is not a page count", s.spec.Method, s.urlPath, r.Pages, pg.TotalPages)
				}
				// Pages count from first_page: the last is first+total-1.
				if r.Page >= *pg.FirstPage+total-1 {
					return true, nil
				}
			}
		}
		r.Page++
	default:
		return true, nil
	}
	return false, nil
}

// item delivers one item, unless it was delivered at the watermark already.
func (s *httpJSON) item(it any, pos string, curWM time.Time, cur *hjCursor, r *hjRound, b *collectors.Batch) {
	if _, ok := it.(map[string]any); !ok {
		b.Reject("bad_json", pos, fmt.Errorf("not a JSON object"))
		return
	}
	if wmPath := s.spec.Incremental.Watermark; wmPath != "" {
		v, _ := hjPath(it, wmPath)
		txt := hjText(v)
		if txt == "" {
			b.Reject("missing_field", pos, fmt.Errorf("watermark %q is missing", wmPath))
			return
		}
		wm, err := s.times.parse(txt)
		if err != nil {
			b.Reject("bad_time", pos, fmt.Errorf("watermark %q: %q is not a time in format %s", wmPath, txt, s.times.format))
			return
		}
		idv, _ := hjPath(it, s.spec.Mapping["id"])
		id := hjText(idv)
		var maxT time.Time
		if r.Max != "" {
			maxT, _ = time.Parse(time.RFC3339Nano, r.Max)
			if s.spec.Incremental.Ascending && wm.Before(maxT) {
				r.Unordered = true // not the order incremental.ascending claims
			}
		}
		if !curWM.IsZero() && wm.Equal(curWM) && slices.Contains(cur.IDs, id) {
			return
		}
		if s.settle > 0 {
			if started, err := time.Parse(time.RFC3339Nano, r.Started); err == nil && wm.After(started.Add(-s.settle)) {
				return // not settled: a later pass lists it again
			}
		}
		switch {
		case r.Max == "" || wm.After(maxT):
			r.Max, r.MaxIDs = wm.UTC().Format(time.RFC3339Nano), []string{id}
		case wm.Equal(maxT) && !slices.Contains(r.MaxIDs, id):
			r.MaxIDs = append(r.MaxIDs, id)
		}
	}
	s.mapper.add(it, pos, b)
}

// hjItems finds the array of items; a missing or null one is an empty page.
func hjItems(doc any, path string) ([]any, error) {
	v, ok := hjPath(doc, path)
	if !ok || v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		where := path
		if where == "" {
			where = "the answer"
		}
		return nil, fmt.Errorf("items: %s is not an array", where)
	}
	return items, nil
}

// hjPath follows a dotted path (data.tickets, fields.0.value) into decoded
// JSON; "" is the document itself.
func hjPath(v any, path string) (any, bool) {
	if path == "" || path == "." {
		return v, true
	}
	for _, part := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[part]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// hjText renders a JSON value as the text a mapping parses: strings
// trimmed, numbers as written, arrays of scalars joined with commas (tags),
// objects as JSON.
func hjText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				j, _ := json.Marshal(x)
				return string(j)
			}
			if t := hjText(e); t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, ",")
	}
	j, _ := json.Marshal(v)
	return string(j)
}

// hjLinkNext returns the target of rel="next" in RFC 8288 Link headers.
func hjLinkNext(values []string) string {
	for _, h := range values {
		for len(h) > 0 {
			lt := strings.IndexByte(h, '<')
			if lt < 0 {
				break
			}
			gt := strings.IndexByte(h[lt:], '>')
			if gt < 0 {
				break
			}
			target := h[lt+1 : lt+gt]
			rest := h[lt+gt+1:]
			end := strings.IndexByte(rest, '<')
			params := rest
			if end >= 0 {
				params = rest[:end]
			}
			for _, p := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), ",")), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
			if end < 0 {
				break
			}
			h = rest[end:]
		}
	}
	return ""
}

// hjMapper turns one JSON object into a ticket, call or survey record
// through a mapping of record fields to dotted paths. exec uses it with
// the identity mapping.
type hjMapper struct {
	record     string
	mapping    map[string]string
	times      timeParser
	statusMap  map[string]string
	outcomeMap map[string]string
	survey     string // default survey label
	kind       string // default survey kind
}

func (m *hjMapper) add(it any, pos string, b *collectors.Batch) {
	get := func(path string) (string, bool) {
		v, ok := hjPath(it, path)
		return hjText(v), ok
	}
	switch m.record {
	case "ticket":
		tf := &ticketsFile{mapping: m.mapping, times: m.times, statusMap: m.statusMap}
		tk, ok := tf.ticket(row{pos: pos, get: get}, b)
		if !ok {
			return
		}
		if p := m.mapping["sla_breaches"]; p != "" {
			txt, _ := get(p)
			tk.SLABreaches = strings.FieldsFunc(txt, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
		}
		if p := m.mapping["deleted"]; p != "" {
			if txt, _ := get(p); txt != "" {
				d, err := strconv.ParseBool(strings.ToLower(txt))
				if err != nil {
					b.Reject("bad_value", pos, fmt.Errorf("%q (deleted): %q is not true/false", p, txt))
					return
				}
				tk.Deleted = d
			}
		}
		b.Tickets = append(b.Tickets, tk)
	case "call":
		if c, ok := m.call(get, pos, b); ok {
			b.Calls = append(b.Calls, c)
		}
	case "survey":
		if r, ok := m.surveyResponse(it, get, pos, b); ok {
			b.Surveys = append(b.Surveys, r)
		}
	}
}

// fieldReader reads mapped fields and rejects the item at the first bad
// one.
type fieldReader struct {
	m   *hjMapper
	get func(string) (string, bool)
	pos string
	b   *collectors.Batch
	ok  bool
}

func (f *fieldReader) str(field string) string {
	p := f.m.mapping[field]
	if p == "" {
		return ""
	}
	v, _ := f.get(p)
	return v
}

func (f *fieldReader) bad(reason, field, format string, args ...any) {
	if f.ok {
		f.b.Reject(reason, f.pos, fmt.Errorf("%q (%s): %s", f.m.mapping[field], field, fmt.Sprintf(format, args...)))
	}
	f.ok = false
}

func (f *fieldReader) time(field string, required bool) time.Time {
	v := f.str(field)
	if v == "" {
		if required {
			f.bad("missing_field", field, "is empty")
		}
		return time.Time{}
	}
	t, err := f.m.times.parse(v)
	if err != nil {
		f.bad("bad_time", field, "%q is not a time in format %s", v, f.m.times.format)
		return t
	}
	// The bounds the quality model enforces, checked here to name the
	// line and field.
	if err := record.CheckTime(t, f.b.Now); err != nil {
		f.bad("bad_time", field, "%v", err)
	}
	return t
}

func (f *fieldReader) seconds(field string) (time.Duration, bool) {
	v := f.str(field)
	if v == "" {
		return 0, false
	}
	x, err := parseFinite(v)
	if err != nil {
		f.bad("bad_number", field, "%q is not a number of seconds", v)
		return 0, false
	}
	d, err := record.Seconds(x, record.MaxCallDuration)
	if err != nil {
		f.bad("bad_number", field, "%v", err)
		return 0, false
	}
	return d, true
}

func (m *hjMapper) call(get func(string) (string, bool), pos string, b *collectors.Batch) (record.Call, bool) {
	f := &fieldReader{m: m, get: get, pos: pos, b: b, ok: true}
	c := record.Call{ID: f.str("id"), Queue: f.str("queue"), Agent: f.str("agent"), Channel: f.str("channel")}
	if c.ID == "" {
		f.bad("missing_id", "id", "is empty")
		return c, false
	}
	c.EnqueuedAt = f.time("enqueued_at", true)
	c.AnsweredAt = f.time("answered_at", false)
	c.EndedAt = f.time("ended_at", false)
	out := strings.ToLower(f.str("outcome"))
	if mapped, ok := m.outcomeMap[out]; ok {
		out = mapped
	}
	if !hjOutcome(out) && f.ok {
		f.bad("bad_value", "outcome", "%q is not an outcome (answered, abandoned, timeout, transferred, voicemail; see outcome_map)", out)
	}
	c.Outcome = record.CallOutcome(out)
	wait, hasWait := f.seconds("wait_seconds")
	c.Talk, _ = f.seconds("talk_seconds")
	c.Hold, _ = f.seconds("hold_seconds")
	c.Wrap, _ = f.seconds("wrap_seconds")
	if !f.ok {
		return c, false
	}
	// Without a wait, the times tell it: until answer, or until the
	// caller left.
	switch {
	case hasWait:
		c.Wait = wait
	case !c.AnsweredAt.IsZero():
		c.Wait = max(c.AnsweredAt.Sub(c.EnqueuedAt), 0)
	case !c.EndedAt.IsZero() && !c.Outcome.Answered():
		c.Wait = max(c.EndedAt.Sub(c.EnqueuedAt), 0)
	}
	if err := record.CheckDuration(c.Wait, record.MaxCallDuration); err != nil {
		f.bad("bad_time", "enqueued_at", "the wait its times give: %v", err)
		return c, false
	}
	return c, true
}

func (m *hjMapper) surveyResponse(it any, get func(string) (string, bool), pos string, b *collectors.Batch) (record.SurveyResponse, bool) {
	f := &fieldReader{m: m, get: get, pos: pos, b: b, ok: true}
	r := record.SurveyResponse{ID: f.str("id"), Survey: f.str("survey"), Kind: record.SurveyKind(strings.ToLower(f.str("kind"))),
		TicketID: f.str("ticket_id"), Channel: f.str("channel"), Queue: f.str("queue")}
	if r.ID == "" {
		f.bad("missing_id", "id", "is empty")
		return r, false
	}
	if r.Survey == "" {
		r.Survey = m.survey
	}
	if r.Kind == "" {
		r.Kind = record.SurveyKind(m.kind)
	}
	r.SubmittedAt = f.time("submitted_at", true)
	if !f.ok {
		return r, false
	}
	scale, known := surveyScales[r.Kind]
	switch {
	case r.Survey == "":
		f.bad("missing_field", "survey", "is empty")
	case !known:
		f.bad("bad_value", "kind", "%q is not a survey kind (csat, nps, ces, servqual)", r.Kind)
	}
	if !f.ok {
		return r, false
	}
	if r.Kind != record.KindSERVQUAL {
		txt := f.str("score")
		v, err := parseFinite(txt)
		switch {
		case txt == "":
			f.bad("bad_score", "score", "no score")
		case err != nil || v < scale[0] || v > scale[1]:
			f.bad("bad_score", "score", "%q is not a score from %g to %g", txt, scale[0], scale[1])
		}
		r.Score, r.HasScore = v, f.ok
		return r, f.ok
	}
	// SERVQUAL: [{"item": 1-22 or "dimension": ..., "expectation": 1-7, "perception": 1-7}, ...]
	items, _ := hjPath(it, m.mapping["servqual"])
	list, isList := items.([]any)
	if !isList || len(list) == 0 {
		f.bad("bad_score", "servqual", "is not a list of answered items")
		return r, false
	}
	for i, x := range list {
		obj, _ := x.(map[string]any)
		q := record.ServqualItem{}
		if n, err := strconv.Atoi(hjText(obj["item"])); err == nil {
			q.Dimension = record.ServqualDimension(n)
		} else if d := hjText(obj["dimension"]); isDimension(d) {
			q.Dimension = d
		}
		if q.Dimension == "" {
			f.bad("bad_score", "servqual", "item %d: no item number 1-22 or dimension", i)
			return r, false
		}
		for _, side := range []struct {
			key string
			v   *float64
			has *bool
		}{{"expectation", &q.Expectation, &q.HasE}, {"perception", &q.Perception, &q.HasP}} {
			txt := hjText(obj[side.key])
			if txt == "" {
				continue
			}
			v, err := parseFinite(txt)
			if err != nil || v < 1 || v > 7 {
				f.bad("bad_score", "servqual", "item %d: %s %q is not a score from 1 to 7", i, side.key, txt)
				return r, false
			}
			*side.v, *side.has = v, true
		}
		if q.HasE || q.HasP {
			r.Servqual = append(r.Servqual, q)
		}
	}
	if p := m.mapping["weights"]; p != "" {
		w, _ := hjPath(it, p)
		if obj, ok := w.(map[string]any); ok {
			for _, dim := range sortedKeys(obj) {
				v, err := parseFinite(hjText(obj[dim]))
				if !isDimension(dim) || err != nil || v < 0 || v > 100 {
					f.bad("bad_score", "weights", "%s: %q is not 0-100 points of a SERVQUAL dimension", dim, hjText(obj[dim]))
					return r, false
				}
				if r.Weights == nil {
					r.Weights = map[string]float64{}
				}
				r.Weights[dim] = v
			}
		}
	}
	return r, true
}
