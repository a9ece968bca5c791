package sources

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testClient(retries int) (*apiClient, *[]time.Duration) {
	var waits []time.Duration
	c := newAPIClient(politeSpec{Retries: &retries, MaxRequests: 10}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") })
	c.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return c, &waits
}

func TestAPIClientRetriesAndHonoursRetryAfter(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			t.Error("credentials not sent")
		}
		switch n.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.Write([]byte(`{"ok": true}`))
		}
	}))
	defer srv.Close()
	c, waits := testClient(4)
	var out struct{ OK bool }
	if _, err := c.getJSON(context.Background(), srv.URL+"/x", &out); err != nil || !out.OK {
		t.Fatalf("out %+v err %v", out, err)
	}
	if len(*waits) != 2 || (*waits)[0] != 7*time.Second || (*waits)[1] < time.Second || (*waits)[1] > 2*time.Second {
		t.Errorf("waits = %v, want Retry-After 7s then a jittered 1-2s backoff", *waits)
	}
}

func TestAPIClientErrorsAreClearAndSecretFree(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error": "Couldn't authenticate you"}`))
	}))
	defer srv.Close()
	c, waits := testClient(4)
	var out any
	_, err := c.getJSON(context.Background(), srv.URL+"/api/v2/tickets?api_key=s3cret", &out)
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != 401 || len(*waits) != 0 {
		t.Fatalf("err = %v, waits %v: want a 401 without retries", err, *waits)
	}
	msg := err.Error()
	if !strings.Contains(msg, "GET /api/v2/tickets: 401 Unauthorized: Couldn't authenticate you") || !strings.Contains(msg, "API scopes") || strings.Contains(msg, "s3cret") {
		t.Errorf("error %q", msg)
	}
}

func TestAPIClientBudgetAndGivingUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("<html>down for maintenance</html>"))
	}))
	defer srv.Close()
	c, waits := testClient(2)
	var out any
	_, err := c.getJSON(context.Background(), srv.URL+"/p", &out)
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable: <html>down for maintenance</html>") || len(*waits) != 2 {
		t.Errorf("err %v after %d waits, want the 503 after 2 retries", err, len(*waits))
	}
	// 3 requests used of 10; the budget then ends the run.
	for i := 0; i < 3; i++ {
		c.getJSON(context.Background(), srv.URL+"/p", &out)
	}
	if _, err := c.getJSON(context.Background(), srv.URL+"/p", &out); !errors.Is(err, errBudget) {
		t.Errorf("after 10 requests: %v, want errBudget", err)
	}
	c.startRun()
	if _, err := c.getJSON(context.Background(), srv.URL+"/p", &out); errors.Is(err, errBudget) {
		t.Error("a new run has a new budget")
	}
}

func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for h, want := range map[[2]string]time.Duration{
		{"Retry-After", "120"}:                           2 * time.Minute,
		{"Retry-After", "Mon, 23 Nov 2026 10:00:30 GMT"}: 30 * time.Second,
		{"X-RateLimit-Reset", "1795428060"}:              time.Unix(1795428060, 0).Sub(now),
		{"Ratelimit-Reset", "15"}:                        15 * time.Second,
		// Jira Cloud: the ISO 8601 reset instant, to the minute.
		{"X-RateLimit-Reset", "2026-11-23T10:02Z"}:      2 * time.Minute,
		{"X-RateLimit-Reset", "2026-11-23T11:01+01:00"}: time.Minute,
		{"X-RateLimit-Reset", "2026-11-23T10:00:45.5Z"}: 45500 * time.Millisecond,
		{"X-RateLimit-Reset", "2026-11-23T09:59Z"}:      0, // already past: no wait
	} {
		hdr := http.Header{}
		hdr.Set(h[0], h[1])
		got, ok := retryAfter(hdr, now)
		if !ok || got != want {
			t.Errorf("%s: %s = %v %v, want %v", h[0], h[1], got, ok, want)
		}
	}
}
