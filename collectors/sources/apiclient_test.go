package sources

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// Each documented form of a wait, read at 10:00:00 UTC.
func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	unix := now.Unix()
	for _, tc := range []struct {
		name   string
		header []string // name, value pairs
		want   time.Duration
		ok     bool
	}{
		{"Retry-After seconds (Zendesk, Freshdesk, Jira, Twilio)", []string{"Retry-After", "120"}, 2 * time.Minute, true},
		{"Retry-After HTTP date", []string{"Retry-After", "Mon, 23 Nov 2026 10:00:30 GMT"}, 30 * time.Second, true},
		{"Retry-After HTTP date already past", []string{"Retry-After", "Mon, 23 Nov 2026 09:59:00 GMT"}, 0, true},
		{"Retry-After wins over a reset header", []string{"Retry-After", "5", "X-RateLimit-Reset", "2026-11-23T10:30Z"}, 5 * time.Second, true},
		{"a Retry-After that is neither form falls back to the reset", []string{"Retry-After", "soon", "Ratelimit-Reset", "9"}, 9 * time.Second, true},
		{"X-RateLimit-Reset unix seconds", []string{"X-RateLimit-Reset", strconv.FormatInt(unix+60, 10)}, time.Minute, true},
		{"X-RateLimit-Reset unix milliseconds", []string{"X-RateLimit-Reset", strconv.FormatInt(unix*1000+1500, 10)}, 1500 * time.Millisecond, true},
		{"X-RateLimit-Reset seconds from now", []string{"X-RateLimit-Reset", "45"}, 45 * time.Second, true},
		{"RateLimit-Reset seconds from now (IETF, Zendesk)", []string{"Ratelimit-Reset", "15"}, 15 * time.Second, true},
		// Jira Cloud: the ISO 8601 reset instant without seconds, read as
		// the end of its minute (the real reset lies within it).
		{"Jira yyyy-MM-ddTHH:mmZ", []string{"X-RateLimit-Reset", "2026-11-23T10:02Z"}, 3 * time.Minute, true},
		{"Jira form with an offset", []string{"X-RateLimit-Reset", "2026-11-23T11:01+01:00"}, 2 * time.Minute, true},
		{"Jira form, the current minute", []string{"X-RateLimit-Reset", "2026-11-23T10:00Z"}, time.Minute, true},
		{"Jira form, a past minute", []string{"X-RateLimit-Reset", "2026-11-23T09:58Z"}, 0, true},
		{"RFC 3339 with seconds and fraction", []string{"X-RateLimit-Reset", "2026-11-23T10:00:45.5Z"}, 45500 * time.Millisecond, true},
		{"RFC 3339 without a zone is no instant", []string{"X-RateLimit-Reset", "2026-11-23T10:02"}, 0, false},
		{"no header", nil, 0, false},
	} {
		hdr := http.Header{}
		for i := 0; i+1 < len(tc.header); i += 2 {
			hdr.Set(tc.header[i], tc.header[i+1])
		}
		got, ok := retryAfter(hdr, now)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
