package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// politeSpec are the keys every API source shares: how hard it may hit
// the vendor and how far back its first run reads.
type politeSpec struct {
	// RequestTimeout bounds one HTTP request (default 30s).
	RequestTimeout config.Duration `yaml:"request_timeout"`
	// MaxRequests bounds the requests of one run (default 200). A run that
	// reaches it commits what it read and continues at the next run, so a
	// first backfill never floods the vendor.
	MaxRequests int `yaml:"max_requests_per_run"`
	// Retries of a request that failed with a network error, 429 or 5xx
	// (default 4), with exponential backoff and jitter.
	Retries *int `yaml:"retries"`
	// Since is how far back the first run reads (default 30d).
	Since config.Duration `yaml:"since"`
}

// Defaults of politeSpec.
const (
	defaultRequestTimeout = 30 * time.Second
	defaultMaxRequests    = 200
	defaultRetries        = 4
	defaultSince          = 30 * 24 * time.Hour
	// maxRetryAfter is the longest Retry-After a run waits for; a longer
	// one ends the run (nothing committed) with a collectors.BackoffError:
	// the runner remembers the wait in the store and skips runs until then.
	maxRetryAfter = 5 * time.Minute
	// maxVendorWait bounds a wait the runner remembers. The vendors'
	// waits are seconds to an hour (Jira's hourly quota); a longer one
	// is far more likely a reset header in a unit servq misreads than a
	// real quota, and skipping the collector's runs for that long would
	// stop it silently: after a day it asks again, one request.
	maxVendorWait = 24 * time.Hour
)

func (p *politeSpec) check(c *config.Collector) error {
	switch {
	case p.RequestTimeout < 0:
		return c.Errorf("request_timeout", "must not be negative")
	case p.MaxRequests < 0:
		return c.Errorf("max_requests_per_run", "must not be negative")
	case p.Retries != nil && (*p.Retries < 0 || *p.Retries > 10):
		return c.Errorf("retries", "must be between 0 and 10")
	case p.Since < 0:
		return c.Errorf("since", "must not be negative")
	}
	return nil
}

func (p *politeSpec) since() time.Duration {
	if p.Since == 0 {
		return defaultSince
	}
	return p.Since.D()
}

// apiClient is the polite HTTP client of API sources: per-request
// timeouts, retries with exponential backoff and jitter on network errors,
// 429 and 5xx, Retry-After honoured, a request budget per run. Errors name
// the request by method and path (never the query string, which may carry
// a token) and quote the vendor's error message.
type apiClient struct {
	http    *http.Client
	auth    func(*http.Request) // sets credentials; its values never reach errors
	retries int
	budget  int
	used    int
	base    time.Duration // first backoff
	// sleep waits d or until ctx ends (tests replace it).
	sleep func(ctx context.Context, d time.Duration) error
	// now reads the clock for reset headers that name an instant (tests
	// replace it).
	now func() time.Time
	// Header is sent with every request (Accept, User-Agent).
	Header http.Header
}

func newAPIClient(p politeSpec, auth func(*http.Request)) *apiClient {
	timeout := p.RequestTimeout.D()
	if timeout == 0 {
		timeout = defaultRequestTimeout
	}
	retries := defaultRetries
	if p.Retries != nil {
		retries = *p.Retries
	}
	budget := p.MaxRequests
	if budget == 0 {
		budget = defaultMaxRequests
	}
	return &apiClient{
		http: &http.Client{Timeout: timeout}, auth: auth, retries: retries, budget: budget,
		base: time.Second, sleep: sleepCtx, now: time.Now,
		Header: http.Header{"Accept": {"application/json"}, "User-Agent": {"servq"}},
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// startRun resets the request budget; sources call it at the start of
// Collect.
func (c *apiClient) startRun() { c.used = 0 }

// errBudget ends a run early: the source commits what it has and the next
// run continues from its cursor.
var errBudget = errors.New("request budget of this run used up")

// apiError is a non-2xx answer after retries.
type apiError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += " (check the credentials and the API scopes listed in the README for this source)"
	}
	return msg
}

// response is a 2xx answer.
type response struct {
	Header http.Header
	Body   []byte
}

// do sends one request, retrying where that is safe. body may be nil.
func (c *apiClient) do(ctx context.Context, method, rawURL string, body []byte, header http.Header) (*response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %v", redactURL(err.Error()))
	}
	path := u.Path
	var last error
	var lastRA time.Duration // Retry-After of the last answer, if any
	for attempt := 0; attempt <= c.retries; attempt++ {
		if c.budget > 0 && c.used >= c.budget {
			return nil, errBudget
		}
		c.used++
		var rd io.Reader
		if body != nil {
			rd = strings.NewReader(string(body))
		}
		req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v", method, path, err)
		}
		for k, vs := range c.Header {
			req.Header[k] = vs
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		if body != nil && req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.auth != nil {
			c.auth(req)
		}
		resp, err := c.http.Do(req)
		var wait time.Duration
		lastRA = 0
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// url.Error repeats the URL, query string included: keep the
			// cause only.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			last = fmt.Errorf("%s %s: %v", method, path, err)
		default:
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				if rerr != nil {
					last = fmt.Errorf("%s %s: reading the answer: %v", method, path, rerr)
					break
				}
				return &response{Header: resp.Header, Body: b}, nil
			}
			e := &apiError{Method: method, Path: path, Status: resp.StatusCode, Message: vendorMessage(b)}
			if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode/100 != 5 {
				return nil, e // 4xx other than 429: retrying changes nothing
			}
			last = e
			if ra, ok := retryAfter(resp.Header, c.now()); ok {
				ra = min(ra, maxVendorWait)
				if ra > maxRetryAfter {
					return nil, &collectors.BackoffError{Wait: ra, Err: fmt.Errorf("%w; the vendor asks to wait %s, longer than a run waits: runs are skipped until then", e, ra.Round(time.Second))}
				}
				wait, lastRA = ra, ra
			}
		}
		if attempt == c.retries {
			if lastRA > 0 {
				// Out of retries while the vendor still asks to wait:
				// the next runs honour that wait too.
				return nil, &collectors.BackoffError{Wait: lastRA, Err: last}
			}
			break
		}
		if wait == 0 {
			// Exponential backoff with full jitter: base·2^attempt, a
			// random part of it, so that many servqs do not retry in step.
			d := c.base << attempt
			wait = d/2 + rand.N(d/2+1)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, errors.Join(last, err)
		}
	}
	return nil, last
}

// getJSON GETs rawURL and decodes a JSON answer into out.
func (c *apiClient) getJSON(ctx context.Context, rawURL string, out any) (http.Header, error) {
	r, err := c.do(ctx, http.MethodGet, rawURL, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(r.Body, out); err != nil {
		u, _ := url.Parse(rawURL)
		path := ""
		if u != nil {
			path = u.Path
		}
		return nil, fmt.Errorf("GET %s: the answer is not the expected JSON: %v", path, err)
	}
	return r.Header, nil
}

// retryAfter reads how long a vendor asks to wait, in the forms they
// document:
//
//   - Retry-After: delay-seconds or an HTTP date (RFC 9110; Zendesk,
//     Freshdesk, Jira and Twilio send seconds);
//   - X-RateLimit-Reset: Jira Cloud sends the ISO 8601 instant the limit
//     resets at, to the minute ("2026-11-23T10:02Z"); other APIs send a
//     unix time (seconds, some milliseconds) or seconds from now;
//   - RateLimit-Reset (the IETF RateLimit fields, Zendesk's
//     ratelimit-reset): seconds from now.
//
// Retry-After wins when both are present: it is the vendor's own answer
// to this request, the reset headers describe a quota window.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	for _, k := range []string{"X-RateLimit-Reset", "Ratelimit-Reset"} {
		v := strings.TrimSpace(h.Get(k))
		if v == "" {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			switch {
			case n > 1e12: // a unix time in milliseconds (until the year 33658 in seconds)
				return max(time.UnixMilli(n).Sub(now), 0), true
			case n > 1e9: // a unix time in seconds (a delay would be 31 years)
				return max(time.Unix(n, 0).Sub(now), 0), true
			}
			return time.Duration(n) * time.Second, true
		}
		if t, ok := parseISOInstant(v); ok {
			return max(t.Sub(now), 0), true
		}
	}
	return 0, false
}

// isoMinuteLayouts are Jira's documented reset form, yyyy-MM-ddTHH:mmZ,
// and the same with a numeric offset; isoResetLayouts the full RFC 3339
// forms (time.Parse accepts fractions after the seconds).
var (
	isoMinuteLayouts = []string{"2006-01-02T15:04Z07:00", "2006-01-02T15:04Z0700"}
	isoResetLayouts  = []string{time.RFC3339, "2006-01-02T15:04:05Z0700"}
)

// parseISOInstant parses an ISO 8601 reset instant with a zone (Z or an
// offset). An instant given to the minute is read as the end of that
// minute: Atlassian computes the reset as the request's time plus the
// Retry-After period and writes it without seconds, so the start of the
// minute can lie before the real reset, and a request sent before it
// "will fail and return the same or longer Retry-After period".
func parseISOInstant(v string) (time.Time, bool) {
	for _, l := range isoMinuteLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.Add(time.Minute), true
		}
	}
	for _, l := range isoResetLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// vendorMessage extracts the error text of common JSON error bodies
// ({"error": "..."}, {"message": "..."}, {"description": ...},
// {"errors": [...]}) or the start of a text body.
func vendorMessage(b []byte) string {
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		var parts []string
		for _, k := range []string{"error", "message", "description", "details", "errors", "errorMessages"} {
			if v, ok := m[k]; ok {
				switch v := v.(type) {
				case string:
					parts = append(parts, v)
				default:
					j, _ := json.Marshal(v)
					parts = append(parts, string(j))
				}
			}
		}
		if len(parts) > 0 {
			return oneLine(strings.Join(parts, "; "))
		}
	}
	return oneLine(string(b))
}

// oneLine makes a vendor's text fit for an error message: configured
// secrets redacted (a server or proxy may echo the request's credentials),
// control characters replaced, one line of at most maxVendorMessage bytes.
func oneLine(s string) string { return redact.Text(s, maxVendorMessage) }

// maxVendorMessage bounds the vendor text quoted in an error.
const maxVendorMessage = 300

// redactURL drops query strings from text that quotes a URL.
func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		end := strings.IndexAny(s[i:], "\" ")
		if end < 0 {
			return s[:i]
		}
		return s[:i] + s[i+end:]
	}
	return s
}

// resolveSecret reads a secret given inline or as a file; field names the
// key for errors.
func resolveSecret(c *config.Collector, field string, value config.Secret, file string) (config.Secret, error) {
	s, err := config.ResolveSecret(value, file)
	if err != nil {
		return "", c.Errorf(field+"_file", "%v", err)
	}
	return s, nil
}

// parseHTTPURL parses raw as an absolute http or https URL: ok is false
// when it does not parse, has another scheme or no host.
func parseHTTPURL(raw string) (u *url.URL, ok bool) {
	u, err := url.Parse(raw)
	return u, err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// apiBaseURL checks the url key of an API source: http(s), a host, no
// query, no credentials.
func apiBaseURL(raw, example string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("is required (e.g. %s)", example)
	}
	u, ok := parseHTTPURL(strings.TrimRight(raw, "/"))
	if !ok {
		return nil, fmt.Errorf("%q is not an http(s) URL such as %s", redactURL(raw), example)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("must be the bare base URL (no credentials, query or fragment), such as %s", example)
	}
	return u, nil
}

// settleLag resolves the settle_lag key of a source whose search or
// export is not immediately consistent: a change becomes visible there
// some time after the update time it carries. The source delivers only
// changes at least this old, so that one which shows up late is still
// ahead of its watermark when it appears; without it, the watermark moves
// past the late change's time and the change is skipped for good unless
// the record changes again. def is the source's default.
func settleLag(c *config.Collector, v *config.Duration, def time.Duration) (time.Duration, error) {
	if v == nil {
		return def, nil
	}
	if *v < 0 {
		return 0, c.Errorf("settle_lag", "must not be negative")
	}
	if v.D() > 24*time.Hour {
		return 0, c.Errorf("settle_lag", "%s is more than a day: every record would be reported that late", v.D())
	}
	return v.D(), nil
}
