package replay

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// importServer keeps every line imported.
type importServer struct {
	mu    sync.Mutex
	lines []string
}

func (s *importServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	b, _ := io.ReadAll(zr)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		s.lines = append(s.lines, l)
	}
	w.WriteHeader(http.StatusNoContent)
}

// steps feeds im the samples of a replay of n steps as Run does: each
// step's samples, then (from the third step on) a series born at the next
// step written at 0 at this one, before the next step.
func steps(t *testing.T, im *Import, n int, stopAfter int) {
	t.Helper()
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	fam := func(name string, at time.Time, v float64) []*dto.MetricFamily {
		return []*dto.MetricFamily{{Name: proto.String(name), Type: dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(v)}, TimestampMs: proto.Int64(at.UnixMilli())}}}}
	}
	for i := 0; i < n && i < stopAfter; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		if i >= 2 {
			if err := im.Samples(at.Add(-time.Minute), fam(fmt.Sprintf("born_%d_total", i), at.Add(-time.Minute), 0)); err != nil {
				t.Fatal(err)
			}
		}
		if err := im.Samples(at, append(fam("a_total", at, float64(i)), fam("b_total", at, float64(2*i))...)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportResumesAfterWhatWasAcked: an import interrupted after some
// requests, then run again from the start with Skip set to what the first
// acknowledged, sends together every sample of an uninterrupted import,
// each once.
func TestImportResumesAfterWhatWasAcked(t *testing.T) {
	whole := &importServer{}
	srv := httptest.NewServer(whole)
	defer srv.Close()
	im := &Import{URL: srv.URL, Batch: 150}
	steps(t, im, 40, 40)
	if err := im.Finish(); err != nil {
		t.Fatal(err)
	}
	want := append([]string(nil), whole.lines...)
	sort.Strings(want)

	for _, stop := range []int{1, 2, 3, 7, 20, 39} {
		got := &importServer{}
		srv := httptest.NewServer(got)
		var acked time.Time
		im := &Import{URL: srv.URL, Batch: 150, Acked: func(through time.Time) error {
			if through.Before(acked) {
				t.Errorf("acked %s after %s", through, acked)
			}
			acked = through
			return nil
		}}
		steps(t, im, 40, stop) // interrupted: the buffer is lost
		again := &Import{URL: srv.URL, Batch: 150, Skip: acked}
		steps(t, again, 40, 40)
		if err := again.Finish(); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		lines := append([]string(nil), got.lines...)
		sort.Strings(lines)
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Errorf("interrupted after step %d (acked through %s): sent\n%s\nwant\n%s", stop, acked, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	}
}
