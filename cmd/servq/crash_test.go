package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
)

// buildServq compiles the real binary once per test run.
func buildServq(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "servq")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writeQueueLog writes n answered calls and m abandoned calls to an
// Asterisk queue_log.
func writeQueueLog(t *testing.T, path string, answered, abandoned int) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	ts := int64(1_790_000_000)
	for i := 0; i < answered+abandoned; i++ {
		id := fmt.Sprintf("%d.%d", ts, i)
		fmt.Fprintf(w, "%d|%s|support|NONE|ENTERQUEUE||5551234|1\n", ts, id)
		if i < answered {
			fmt.Fprintf(w, "%d|%s|support|SIP/100|CONNECT|12|%s.b|3\n", ts+12, id, id)
			fmt.Fprintf(w, "%d|%s|support|SIP/100|COMPLETECALLER|12|60|1\n", ts+72, id)
		} else {
			fmt.Fprintf(w, "%d|%s|support|NONE|ABANDON|1|1|30\n", ts+30, id)
		}
		ts += 2
	}
	w.Flush()
	f.Close()
}

func scrapeValue(url, series string) (float64, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestKill9MidCollectionLosesAndDoublesNothing runs the real binary on a
// large queue_log that takes many small runs to read, kills it with SIGKILL
// at several points (often in the middle of a run), restarts it, and checks
// that the final counters are exactly the hand-computed totals.
func TestKill9MidCollectionLosesAndDoublesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := buildServq(t)
	dir := t.TempDir()
	const answered, abandoned = 3000, 1000
	qlog := filepath.Join(dir, "queue_log")
	writeQueueLog(t, qlog, answered, abandoned)
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte(`
collectors:
  - name: pbx
    type: asterisk_queue_log
    schedule: "@every 1s"
    path: `+qlog+`
    max_read_bytes: 20000
`), 0o644)
	addr := testenv.FreeAddr(t)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--log.level=warn")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if err := testenv.WaitHTTP("http://"+addr+"/-/ready", 20*time.Second); err != nil {
			cmd.Process.Kill()
			t.Fatal(err)
		}
		return cmd
	}
	metrics := "http://" + addr + "/metrics"
	offered := `servq_calls_offered_total{channel="phone",collector="pbx",queue="support"}`
	for kill := 0; kill < 4; kill++ {
		cmd := start()
		// Let it commit a little, then kill it without warning.
		time.Sleep(time.Duration(700+kill*450) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	cmd := start()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	testenv.Eventually(t, 120*time.Second, "all calls counted", func() bool {
		v, ok := scrapeValue(metrics, offered)
		return ok && v >= answered+abandoned
	})
	time.Sleep(2 * time.Second) // a few more runs with nothing new
	want := map[string]float64{
		offered: answered + abandoned,
		`servq_calls_answered_total{channel="phone",collector="pbx",queue="support"}`:  answered,
		`servq_calls_abandoned_total{channel="phone",collector="pbx",queue="support"}`: abandoned,
		// Every answered call waited 12s: the sum is exact.
		`servq_call_wait_seconds_sum{channel="phone",collector="pbx",outcome="answered",queue="support"}`: 12 * answered,
		`servq_call_handle_seconds_sum{channel="phone",collector="pbx",queue="support"}`:                  60 * answered,
	}
	for series, w := range want {
		if v, ok := scrapeValue(metrics, series); !ok || v != w {
			t.Errorf("%s = %v (found %v), want %v", series, v, ok, w)
		}
	}
}
