package grafana

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastBackoff shortens the 5xx backoff (not Retry-After) for a test.
func fastBackoff(t *testing.T) {
	old := retryBase
	retryBase = time.Millisecond
	t.Cleanup(func() { retryBase = old })
}

// failing answers the first n requests matching method and path with fn.
func failing(f *fakeGrafana, method, path string, n int32, fn func(http.ResponseWriter)) *atomic.Int32 {
	var seen atomic.Int32
	f.setHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != method || r.URL.Path != path {
			return false
		}
		if seen.Add(1) <= n {
			fn(w)
			return true
		}
		return false
	})
	return &seen
}

func html500(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprint(w, "<html>\n<body>upstream   exploded</body>\n</html>")
}

// TestRetry5xxThenSuccess: a GET answered 500 twice succeeds on the third
// try.
func TestRetry5xxThenSuccess(t *testing.T) {
	fastBackoff(t)
	f := newFake(t, testToken)
	seen := failing(f, http.MethodGet, "/api/folders/servq", 2, html500)
	ds, rs := input()
	res, err := Provision(context.Background(), testOptions(f), ds, rs)
	if err != nil || !res.FolderCreated || seen.Load() != 3 {
		t.Fatalf("res %+v, err %v, %d tries", res, err, seen.Load())
	}
}

// Test500NonJSONGivesUp: a 500 with an HTML body, every time: after
// maxAttempts tries, an error with the status and the body's start on one
// line.
func Test500NonJSONGivesUp(t *testing.T) {
	fastBackoff(t)
	f := newFake(t, testToken)
	seen := failing(f, http.MethodGet, "/api/dashboards/uid/servq-overview", 100, html500)
	ds, rs := input()
	_, err := Provision(context.Background(), testOptions(f), ds, rs)
	if err == nil {
		t.Fatal("no error")
	}
	want := `GET /api/dashboards/uid/servq-overview: 500 Internal Server Error: <html> <body>upstream exploded</body> </html>`
	if !strings.Contains(err.Error(), want) || seen.Load() != int32(maxAttempts) {
		t.Errorf("error %q after %d tries, want %q after %d", err, seen.Load(), want, maxAttempts)
	}
	if strings.Contains(err.Error(), "Editor role") {
		t.Error("auth hint on a 500")
	}
}

// TestPostNotRetriedOn5xx: a POST that failed with 5xx may have been done;
// it is not repeated.
func TestPostNotRetriedOn5xx(t *testing.T) {
	fastBackoff(t)
	f := newFake(t, testToken)
	seen := failing(f, http.MethodPost, "/api/v1/provisioning/alert-rules", 100, func(w http.ResponseWriter) {
		msg(w, http.StatusBadGateway, "bad gateway")
	})
	ds, rs := input()
	_, err := Provision(context.Background(), testOptions(f), ds, rs)
	if err == nil || !strings.Contains(err.Error(), "502") || seen.Load() != 1 {
		t.Errorf("err %v after %d tries", err, seen.Load())
	}
}

// Test429HonoursRetryAfter: 429 with Retry-After: 1 is retried after a
// second (not after the short backoff), also for a POST.
func Test429HonoursRetryAfter(t *testing.T) {
	fastBackoff(t)
	f := newFake(t, testToken)
	seen := failing(f, http.MethodPost, "/api/folders", 1, func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "1")
		msg(w, http.StatusTooManyRequests, "too many requests")
	})
	start := time.Now()
	res, err := Provision(context.Background(), testOptions(f), nil, nil)
	if err != nil || !res.FolderCreated || seen.Load() != 2 {
		t.Fatalf("res %+v, err %v, %d tries", res, err, seen.Load())
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %s, before Retry-After", d)
	}
}

// Test429WaitEndsWithContext: a Retry-After longer than the context's
// deadline ends when the context does, with the 429 in the error.
func Test429WaitEndsWithContext(t *testing.T) {
	f := newFake(t, testToken)
	failing(f, http.MethodGet, "/api/folders/servq", 100, func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "30")
		msg(w, http.StatusTooManyRequests, "slow down")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Provision(ctx, testOptions(f), nil, nil)
	// Retry-After alone would wait 30 s; 20 s leaves a loaded machine slack.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("not a deadline error: %v", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.RetryAfter != 30*time.Second ||
		!strings.Contains(err.Error(), "GET /api/folders/servq: 429 Too Many Requests: slow down (Retry-After 30s)") {
		t.Errorf("error %v (%#v)", err, ae)
	}
}

// Test429TooLongRetryAfter: a Retry-After beyond maxRetryAfter is not
// waited for at all.
func Test429TooLongRetryAfter(t *testing.T) {
	f := newFake(t, testToken)
	seen := failing(f, http.MethodGet, "/api/folders/servq", 100, func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "3600")
		msg(w, http.StatusTooManyRequests, "quota")
	})
	start := time.Now()
	_, err := Provision(context.Background(), testOptions(f), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "Retry-After 1h0m0s") ||
		seen.Load() != 1 || time.Since(start) > 20*time.Second { // not the hour
		t.Errorf("err %v after %d tries", err, seen.Load())
	}
}
