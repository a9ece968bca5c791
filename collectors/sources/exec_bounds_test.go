//go:build unix

package sources

import (
	"strings"
	"testing"
)

// The generic record path (exec and http_json share it): call seconds and
// record times out of bounds are rejected where they are read, with line,
// field and bound, instead of overflowing time.Duration or dating a record
// in 1970 or 2099. Run clock 2026-11-23 10:00 UTC.
func TestExecNumbersAndTimesOutOfBoundsAreRejected(t *testing.T) {
	script := exScript(t, `cat <<'EOF'
{"type": "call", "id": "ok", "queue": "q", "enqueued_at": "2026-11-23T09:00:00Z", "wait_seconds": 30, "outcome": "abandoned"}
{"type": "call", "id": "wrapped", "queue": "q", "enqueued_at": "2026-11-23T09:00:00Z", "wait_seconds": 99999999999999999, "outcome": "abandoned"}
{"type": "call", "id": "week", "queue": "q", "enqueued_at": "2026-11-23T09:00:00Z", "talk_seconds": 604801, "outcome": "answered"}
{"type": "call", "id": "huge", "queue": "q", "enqueued_at": "2026-11-23T09:00:00Z", "hold_seconds": 1e300, "outcome": "answered"}
{"type": "call", "id": "epoch0", "queue": "q", "enqueued_at": "1970-01-01T00:00:00Z", "outcome": "abandoned"}
{"type": "call", "id": "future", "queue": "q", "enqueued_at": "2099-01-01T00:00:00Z", "outcome": "abandoned"}
{"type": "ticket", "id": "T", "created_at": "2026-11-23T11:30:00Z"}
{"type": "call", "id": "skew", "queue": "q", "enqueued_at": "2026-11-23T10:59:00Z", "wait_seconds": 5, "outcome": "abandoned"}
EOF
`)
	b, _ := hjCollect(t, exSource(t, script, ""), nil)
	if got := qlIDs(b.Calls); got != "ok skew" {
		t.Errorf("calls %s, want ok skew", got)
	}
	var rej []string
	for _, r := range b.Rejected {
		rej = append(rej, r.Reason+" "+r.Position)
	}
	want := "bad_number stdout:2, bad_number stdout:3, bad_number stdout:4, bad_time stdout:5, bad_time stdout:6, bad_time stdout:7"
	if got := strings.Join(rej, ", "); got != want {
		t.Errorf("rejections %s, want %s", got, want)
	}
	for _, r := range b.Rejected[:min(3, len(b.Rejected))] {
		if !strings.Contains(r.Err.Error(), "from 0 to 604800") {
			t.Errorf("%s: %v does not name the bound", r.Position, r.Err)
		}
	}
}
