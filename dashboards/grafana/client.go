package grafana

import (
	"bytes"
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
	"unicode/utf8"
)

// Retry policy. Variables so that tests can shorten the waits.
var (
	maxAttempts   = 4                      // first try included
	retryBase     = 500 * time.Millisecond // doubled after each failed try
	maxRetryAfter = 2 * time.Minute        // longer Retry-After: give up at once
)

// APIError is a non-2xx answer of Grafana.
type APIError struct {
	Method, Path string // the request, path without host
	StatusCode   int
	// Status is Grafana's "status" field, e.g. "version-mismatch" or
	// "name-exists" on a refused dashboard, empty when absent.
	Status string
	// Message is Grafana's "message" field, or the start of the body when
	// it was not JSON.
	Message string
	// RetryAfter is what a 429 or 503 asked for, when it was not honoured.
	RetryAfter time.Duration
}

const authHint = "check the token and the service account's role: Editor for the folder and dashboards; " +
	"for the alert rules Admin on Grafana 10.x (alert.provisioning:read/write), Editor from Grafana 11.0 (see dashboards/README.md)"

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Status != "" {
		b.WriteString(" (" + e.Status + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (Retry-After %s)", e.RetryAfter)
	}
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		b.WriteString("; " + authHint)
	}
	return b.String()
}

// isStatus reports whether err is an APIError with that status code.
func isStatus(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == code
}

// newAPIError reads Grafana's {"message", "status"} from body, falling back
// to the body's start when it is not JSON (a proxy's HTML page, say).
func newAPIError(method, path string, code int, body []byte, secret string) *APIError {
	e := &APIError{Method: method, Path: path, StatusCode: code}
	var m struct {
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	if json.Unmarshal(body, &m) == nil {
		e.Message, e.Status = m.Message, m.Status
	} else {
		e.Message = snippet(body)
	}
	// Grafana never echoes the token, but a proxy in front of it might.
	if secret != "" {
		e.Message = strings.ReplaceAll(e.Message, secret, "[redacted]")
		e.Status = strings.ReplaceAll(e.Status, secret, "[redacted]")
	}
	return e
}

// snippet is the start of a non-JSON body, on one line.
func snippet(body []byte) string {
	const limit = 200
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > limit {
		s = s[:limit]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// transport adds the token to requests for Grafana's host, retries, and
// tells the caller about non-2xx answers through the request's context
// (the sdk client hides the status code in an error string).
type transport struct {
	base   http.RoundTripper
	scheme string
	host   string
	token  string
}

type recorderKey struct{}

// recorder receives the last non-2xx answer of the requests made with a
// context that carries it.
type recorder struct {
	code       int
	body       []byte
	retryAfter time.Duration
}

func withRecorder(ctx context.Context) (context.Context, *recorder) {
	r := &recorder{}
	return context.WithValue(ctx, recorderKey{}, r), r
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		r := req.Clone(ctx)
		if attempt > 1 && req.Body != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		// Only towards Grafana itself: a redirect to another host must not
		// carry the token.
		if r.URL.Scheme == t.scheme && r.URL.Host == t.host {
			r.Header.Set("Authorization", "Bearer "+t.token)
		}
		resp, err := t.base.RoundTrip(r)
		wait, retry := t.retryable(req, resp, err, attempt)
		if !retry {
			if err == nil && resp.StatusCode >= 400 { // not a redirect being followed
				t.record(req, resp)
			}
			return resp, err
		}
		var last []byte
		if resp != nil {
			last, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			if err != nil {
				return nil, err
			}
			// Report the answer we were waiting out, not only the
			// cancellation.
			ae := newAPIError(req.Method, req.URL.EscapedPath(), resp.StatusCode, last, t.token)
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
				ae.RetryAfter = wait
			}
			return nil, &waitError{last: ae, ctxErr: ctx.Err()}
		case <-timer.C:
		}
	}
}

// waitError: the context ended while waiting to retry a failed request.
type waitError struct {
	last   *APIError
	ctxErr error
}

func (e *waitError) Error() string {
	return fmt.Sprintf("%v; gave up waiting to retry: %v", e.last, e.ctxErr)
}
func (e *waitError) Unwrap() []error { return []error{e.last, e.ctxErr} }

// retryable decides whether to try again, and after how long.
func (t *transport) retryable(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if attempt >= maxAttempts || req.Context().Err() != nil {
		return 0, false
	}
	if req.Body != nil && req.GetBody == nil {
		return 0, false
	}
	// A repeated POST may meet its own first try (a rule or folder that
	// was created before the 5xx): only 429, which Grafana answers before
	// doing anything, is retried for it.
	safe := req.Method != http.MethodPost
	backoff := retryBase << (attempt - 1)
	backoff += rand.N(backoff/4 + 1) // jitter
	switch {
	case err != nil:
		return backoff, safe
	case resp.StatusCode == http.StatusTooManyRequests:
		return retryAfter(resp, backoff)
	case resp.StatusCode == http.StatusServiceUnavailable && safe:
		return retryAfter(resp, backoff)
	case resp.StatusCode >= 500 && safe:
		return backoff, true
	}
	return 0, false
}

// retryAfter honours a Retry-After header, and gives up on one longer
// than maxRetryAfter.
func retryAfter(resp *http.Response, backoff time.Duration) (time.Duration, bool) {
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"))
	if !ok {
		return backoff, true
	}
	return d, d <= maxRetryAfter
}

// parseRetryAfter reads seconds or an HTTP date.
func parseRetryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = time.Until(at)
	} else {
		return 0, false
	}
	return max(d, 0), true
}

// record hands an error answer (4xx, 5xx) to the context's recorder,
// leaving the body readable for the caller.
func (t *transport) record(req *http.Request, resp *http.Response) {
	rec, _ := req.Context().Value(recorderKey{}).(*recorder)
	if rec == nil {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rec.code, rec.body = resp.StatusCode, body
	rec.retryAfter = retryAfterHeader(resp)
}

// retryAfterHeader is the Retry-After of a 429 or 503 that was not waited
// out, for the error.
func retryAfterHeader(resp *http.Response) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	d, _ := parseRetryAfter(resp.Header.Get("Retry-After"))
	return d
}

// client talks to one Grafana.
type client struct {
	http  *http.Client
	base  *url.URL
	token string
}

// url is the base URL joined with an escaped path ("/api/folders").
func (c *client) url(escapedPath string) string {
	return strings.TrimSuffix(c.base.String(), "/") + escapedPath
}

// do sends a JSON request and decodes a 2xx JSON answer into out (when
// out is not nil). Every other answer is an *APIError.
func (c *client) do(ctx context.Context, method, escapedPath string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encoding the body: %w", method, escapedPath, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(escapedPath), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, escapedPath, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "servq")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(method, escapedPath, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, escapedPath, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := newAPIError(method, escapedPath, resp.StatusCode, data, c.token)
		ae.RetryAfter = retryAfterHeader(resp)
		return ae
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, escapedPath, err)
		}
	}
	return nil
}

// transportError names the request; the error of http.Client carries the
// URL, which never holds the token (that only goes in a header).
func (c *client) transportError(method, path string, err error) error {
	var we *waitError
	if errors.As(err, &we) {
		we.last.Method, we.last.Path = method, path
		return we
	}
	return fmt.Errorf("%s %s: %w", method, path, err)
}

// sdkCall runs one call of the grafana-tools sdk and turns a non-2xx
// answer into an *APIError (the sdk's own errors say "HTTP error 404:
// returns ..." with neither method nor path).
func (c *client) sdkCall(ctx context.Context, method, path string, call func(context.Context) error) error {
	ctx, rec := withRecorder(ctx)
	err := call(ctx)
	if rec.code != 0 {
		ae := newAPIError(method, path, rec.code, rec.body, c.token)
		ae.RetryAfter = rec.retryAfter
		return ae
	}
	if err != nil {
		return c.transportError(method, path, err)
	}
	return nil
}
