package sources

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
)

// A Retry-After the run does not wait for (longer than maxRetryAfter, or
// still asked for when the retries are used up) comes back as a
// collectors.BackoffError carrying the wait, so that the runner skips the
// next runs instead of asking again at every schedule.
func TestAPIClientReturnsTheVendorsWait(t *testing.T) {
	var n atomic.Int32
	ra := "3600"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", ra)
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	c, waits := testClient(4)
	var out any
	_, err := c.getJSON(context.Background(), srv.URL+"/x", &out)
	var be *collectors.BackoffError
	if !errors.As(err, &be) || be.Wait != time.Hour || n.Load() != 1 || len(*waits) != 0 {
		t.Fatalf("err %v (wait %v) after %d requests and waits %v: want a 1h BackoffError after one request", err, be, n.Load(), *waits)
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
		t.Errorf("the 429 is not kept in %v", err)
	}

	// A reset a year ahead (a header in a unit servq misreads, most
	// likely) is remembered as a day at most.
	ra = "31536000"
	n.Store(0)
	c, _ = testClient(4)
	_, err = c.getJSON(context.Background(), srv.URL+"/x", &out)
	if !errors.As(err, &be) || be.Wait != 24*time.Hour || n.Load() != 1 {
		t.Fatalf("err %v (wait %v) after %d requests: want a 24h BackoffError", err, be, n.Load())
	}

	ra = "60" // waited within the run, 2 retries, then the run gives up
	n.Store(0)
	c, waits = testClient(2)
	_, err = c.getJSON(context.Background(), srv.URL+"/x", &out)
	if !errors.As(err, &be) || be.Wait != time.Minute || n.Load() != 3 || len(*waits) != 2 {
		t.Fatalf("err %v after %d requests, waits %v: want a 1m BackoffError after 3 requests", err, n.Load(), *waits)
	}
}
