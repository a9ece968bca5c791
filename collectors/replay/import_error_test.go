package replay

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/servq/servq/internal/redact"
)

// TestImportRefusalIsOneSafeLine: a target refusing the credentials gets
// an error that says where they come from, and its body, remote text that
// may echo the request, is shown on one line, bounded, without the secret.
func TestImportRefusalIsOneSafeLine(t *testing.T) {
	const token = "vm-bearer-5d1e8a77c2"
	redact.Add(token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte("denied for " + r.Header.Get("Authorization") + "\n\x1b[31mred\u202e\n" + strings.Repeat("z", 5000)))
	}))
	defer srv.Close()
	im := &Import{URL: srv.URL, Batch: 1, Headers: http.Header{"Authorization": {"Bearer " + token}}}
	at := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	err := im.Samples(at, []*dto.MetricFamily{{Name: proto.String("a_total"), Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1)}, TimestampMs: proto.Int64(at.UnixMilli())}}}})
	if err == nil {
		err = im.Flush()
	}
	if err == nil {
		t.Fatal("a 401 was taken for success")
	}
	msg := err.Error()
	for _, want := range []string{"401 Unauthorized", "push.username and push.password, or push.bearer_token", "denied for Bearer " + redact.Placeholder} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, token) || strings.ContainsAny(msg, "\n\x1b\u202e") || len(msg) > 600 {
		t.Errorf("error is not one safe, bounded line (%d bytes): %q", len(msg), msg)
	}
}
