package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/deploy/testenv"
)

// TestKill9BetweenChunksLosesAndDoublesNothing: a first sync of an export
// of five chunks (collectors.DefaultChunkSize records each) is killed with
// SIGKILL right after its second chunk is committed, the restarted servq
// is killed right after its first chunk (the third overall), and a third
// start completes the sync. Every servq_ticket* value is then exactly what
// an undisturbed run of the same binary on a fresh store shows.
func TestKill9BetweenChunksLosesAndDoublesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := filepath.Join(t.TempDir(), "servq")
	if out, err := exec.Command("go", "build", "-tags", "servqtest", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	const tickets = 15000 // 45,000 rows: four chunks and the rest
	export := filepath.Join(dir, "tickets.csv")
	writeChunkExport(t, export, tickets)
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte(`global:
  new_series_delay: 0s
collectors:
  - name: export
    type: tickets_file
    schedule: "@every 1000h"
    path: `+export+`
    mapping: {id: id, queue: queue, status: status, created_at: created, first_reply_at: replied, solved_at: solved}
slos:
  - {name: reply-1h, indicator: ticket_first_reply, threshold: 1h, objective: 90}
`), 0o644)
	if 3*tickets <= 4*collectors.DefaultChunkSize {
		t.Fatal("the export makes too few chunks")
	}

	addr := testenv.FreeAddr(t)
	// start runs servq on store; with hold > 0 it waits until servq holds
	// after that chunk and kills it; else until the first run is over.
	start := func(store string, hold int) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+store, "--web.listen-address="+addr, "--log.level=warn")
		cmd.Env = append(os.Environ(), fmt.Sprint("SERVQ_TEST_HOLD_AFTER_CHUNK=", hold))
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if hold > 0 {
			held := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(stderr)
				found := false
				for sc.Scan() {
					if !found && strings.Contains(sc.Text(), fmt.Sprintf("servq-test: holding export after chunk %d", hold)) {
						found = true
						held <- true
					}
				}
				if !found {
					held <- false
				}
			}()
			select {
			case ok := <-held:
				if !ok {
					t.Fatal("servq exited before holding")
				}
			case <-time.After(3 * time.Minute):
				cmd.Process.Kill()
				t.Fatal("servq never held after the chunk")
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			return nil
		}
		go io.Copy(io.Discard, stderr)
		testenv.Eventually(t, 3*time.Minute, "the first run is over", func() bool {
			body, ok := get(addr, "/api/v1/collectors")
			return ok && strings.Contains(body, `"running":false`) && !strings.Contains(body, `"last_run":"0001-`)
		})
		return cmd
	}
	stop := func(cmd *exec.Cmd) { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }

	ref := start(filepath.Join(dir, "ref"), 0)
	want := ticketSeries(t, addr)
	stop(ref)
	if !strings.Contains(want, `result="bad",slo="reply-1h"`) || !strings.Contains(want, "servq_tickets_created_total") {
		t.Fatalf("the reference counts no tickets or no breach:\n%s", want)
	}

	store := filepath.Join(dir, "data")
	start(store, 2) // killed after chunk 2
	start(store, 1) // resumes at chunk 3, killed after it
	cmd := start(store, 0)
	defer stop(cmd)
	if got := ticketSeries(t, addr); got != want {
		t.Errorf("after kill -9 between chunks:\n%s\nundisturbed:\n%s", got, want)
	}
	if body, _ := get(addr, "/api/v1/collectors"); !strings.Contains(body, fmt.Sprintf(`"total_records":%d`, 3*tickets-2*collectors.DefaultChunkSize-collectors.DefaultChunkSize)) {
		// The third start reads what the two killed ones did not commit.
		t.Errorf("the last start read more or less than the rest: %s", body)
	}
}

func get(addr, path string) (string, bool) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err == nil && resp.StatusCode == 200
}

// ticketSeries is every servq_ticket* sample of /metrics, sorted.
func ticketSeries(t *testing.T, addr string) string {
	t.Helper()
	body, ok := get(addr, "/metrics")
	if !ok {
		t.Fatal("scrape failed")
	}
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "servq_ticket") {
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// writeChunkExport writes n tickets in three versions each (opened,
// replied, solved), versions 1000 tickets apart as an export appends
// them; a seventh of the replies miss the 1h SLO and a fifth of the
// tickets are never replied to.
func writeChunkExport(t *testing.T, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,queue,status,created,replied,solved")
	base := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return base.Add(d).Format(time.RFC3339) }
	row := func(i, v int) {
		created := time.Duration(i) * time.Minute
		reply := created + time.Duration(10+(i%7)*10)*time.Minute
		id := fmt.Sprint(uint32(i) * 2654435761)
		switch {
		case v == 0 || i%5 == 0:
			fmt.Fprintf(w, "%s,q%d,open,%s,,\n", id, i%3, ts(created))
		case v == 1:
			fmt.Fprintf(w, "%s,q%d,open,%s,%s,\n", id, i%3, ts(created), ts(reply))
		default:
			fmt.Fprintf(w, "%s,q%d,solved,%s,%s,%s\n", id, i%3, ts(created), ts(reply), ts(reply+time.Hour))
		}
	}
	for i := 0; i < n+2000; i++ {
		for v := 0; v < 3; v++ {
			if j := i - v*1000; j >= 0 && j < n {
				row(j, v)
			}
		}
	}
	w.Flush()
	f.Close()
}
