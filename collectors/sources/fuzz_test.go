package sources

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
)

// Whatever bytes a source file holds, a run returns records and
// rejections, never a panic, and a second run from its cursor re-emits
// nothing it already delivered.
func FuzzQueueLog(f *testing.F) {
	f.Add([]byte(fixture))
	f.Add([]byte("1|a|q|NONE|ENTERQUEUE\n2|a|q|x|CONNECT|99999999999999999999|\n3|a|q|x|COMPLETECALLER|-1|x\n"))
	f.Add([]byte("|||||\n\n\r\n1|b|q|NONE|EXITWITHKEY|1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "queue_log")
		os.WriteFile(path, data, 0o644)
		s := queueLogSource(t, path, "")
		b := &collectors.Batch{Now: time.Unix(2_000_000_000, 0)}
		cur, err := s.Collect(context.Background(), nil, b)
		if err != nil {
			t.Fatal(err)
		}
		b2 := &collectors.Batch{Now: b.Now}
		if _, err := s.Collect(context.Background(), cur, b2); err != nil {
			t.Fatal(err)
		}
		if len(b2.Calls) != 0 {
			t.Fatalf("second run re-emitted %d calls", len(b2.Calls))
		}
	})
}
