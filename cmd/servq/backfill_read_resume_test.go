package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ticketAPI is a help desk API read by an http_json collector: 100
// tickets over the history, updated after a since parameter, 10 a page,
// pages numbered from 1 until an empty one. It logs every request, and
// refuses (403) the page fail when it is set.
type ticketAPI struct {
	mu    sync.Mutex
	asked []string // "since page" of each request
	fail  int
}

const apiTickets, apiPerPage = 100, 10

func (a *ticketAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	since, _ := time.Parse(time.RFC3339, r.URL.Query().Get("since"))
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	a.mu.Lock()
	a.asked = append(a.asked, r.URL.Query().Get("since")+" "+strconv.Itoa(page))
	fail := a.fail
	a.mu.Unlock()
	if page == fail {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	var items []string
	for i := 0; i < apiTickets; i++ {
		created := histStart.Add(time.Duration(i)*14*time.Hour + 7*time.Minute)
		updated, replied, status := created.Add(3*time.Hour), created.Add(time.Duration(20+i%3*40)*time.Minute), "solved"
		if updated.Before(since) {
			continue
		}
		items = append(items, fmt.Sprintf(`{"id": "A%d", "created": %q, "updated": %q, "replied": %q, "status": %q}`,
			i, created.Format(time.RFC3339), updated.Format(time.RFC3339), replied.Format(time.RFC3339), status))
	}
	lo, hi := min((page-1)*apiPerPage, len(items)), min(page*apiPerPage, len(items))
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "["+strings.Join(items[lo:hi], ",")+"]")
}

// requests is what was asked since the last call, and forgets it.
func (a *ticketAPI) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.asked
	a.asked = nil
	return r
}

const apiCollector = `
  - name: api
    type: http_json
    schedule: "@every 1m"
    url: %s/tickets
    record: ticket
    mapping: {id: id, created_at: created, updated_at: updated, first_reply_at: replied, status: status}
    pagination: {type: page, page_param: page}
    incremental: {since_param: since, watermark: updated}
    since: 1d
`

// TestBackfillReadingResumesAfterInterruptAndKill: the real binary reads
// an API source (pages of 10, chunks of 20 records) and two files. It is
// interrupted (SIGINT) after the API's 2nd chunk, then run again and
// killed (kill -9) after the tickets file's 10th chunk, then run again to
// the end. The API is asked each page once over the three runs, as often
// as by an uninterrupted backfill; the third run says which sources it
// resumes where; its OpenMetrics file is byte for byte the uninterrupted
// backfill's, and no reading is left behind.
func TestBackfillReadingResumesAfterInterruptAndKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and interrupts the binary")
	}
	bin := filepath.Join(t.TempDir(), "servq")
	if out, err := exec.Command("go", "build", "-tags", "servqtest", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	api := &ticketAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	_, cfg := writeHistory(t, dir)
	b, _ := os.ReadFile(cfg)
	withAPI := strings.Replace(string(b), "collectors:\n", "collectors:"+fmt.Sprintf(apiCollector, srv.URL), 1)
	if err := os.WriteFile(cfg, []byte(withAPI), 0o644); err != nil {
		t.Fatal(err)
	}
	command := func(om, storage string, env ...string) *exec.Cmd {
		cmd := exec.Command(bin, "--config.file="+cfg, "backfill", "--from=2026-09-01", "--to=2026-11-01", "--step=1h",
			"-o", om, "--storage.path="+storage)
		cmd.Env = append(os.Environ(), append(env, "SERVQ_TEST_BACKFILL_CHUNK=20")...)
		return cmd
	}

	refOM := filepath.Join(dir, "ref.om")
	if out, err := command(refOM, filepath.Join(dir, "ref")).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted backfill: %v\n%s", err, out)
	}
	want := api.requests()
	if len(want) < apiTickets/apiPerPage {
		t.Fatalf("the uninterrupted backfill asked the API %q", want)
	}

	om, storage := filepath.Join(dir, "history.om"), filepath.Join(dir, "data")
	wait := func(cmd *exec.Cmd, done <-chan struct{}) error { <-done; return cmd.Wait() }

	// Interrupted during the API's reading.
	cmd := command(om, storage, "SERVQ_TEST_HOLD_AFTER_CHUNK=2")
	log, done := startBackfillUntil(t, cmd, "servq-test: holding api after chunk 2")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := wait(cmd, done); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("interrupted backfill: %v, want exit status 1\n%s", err, log)
	}
	readDir := filepath.Join(storage, backfillReadDir)
	if !strings.Contains(log.String(), "run the same command again to resume: what the sources handed over is kept in "+readDir) {
		t.Errorf("the interrupted backfill does not say it resumes:\n%s", log)
	}
	first := api.requests()
	if !slices.Equal(first, want[:4]) {
		t.Fatalf("the interrupted backfill asked %q, want the first 4 pages %q", first, want[:4])
	}

	// Killed during the tickets file's reading: the API is asked only
	// the pages after its 2nd chunk.
	cmd = command(om, storage, "SERVQ_TEST_HOLD_AFTER_CHUNK=10")
	log, done = startBackfillUntil(t, cmd, "servq-test: holding helpdesk after chunk 10")
	if !strings.Contains(log.String(), "resuming the reading of an interrupted backfill: api continues after its chunk 2 (40 records), helpdesk from the start, pbx from the start; start 2026-09-01T00:00:00Z kept from the first run, end 2026-11-01T00:00:00Z; delete "+readDir+" to start over") {
		t.Errorf("the second backfill does not say what it resumes:\n%s", log)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait(cmd, done)
	second := api.requests()
	if !slices.Equal(append(first, second...), want) {
		t.Errorf("the second backfill asked %q after %q, want %q in all", second, first, want)
	}

	out, err := command(om, storage).CombinedOutput()
	if err != nil {
		t.Fatalf("backfill run a third time: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "api read (100 records), helpdesk continues after its chunk 10 (200 records), pbx from the start") {
		t.Errorf("the third backfill does not say what it resumes:\n%s", out)
	}
	if third := api.requests(); len(third) != 0 {
		t.Errorf("the third backfill asked the API %q, which was read", third)
	}
	sameOutput(t, "the resumed backfill", om, refOM)
	for _, c := range []string{"api: 100 records read", "helpdesk: 546 records read"} {
		if !strings.Contains(string(out), c) {
			t.Errorf("the resumed backfill does not say %q:\n%s", c, out)
		}
	}
	if names := dirNames(t, storage); names != "servq.db" {
		t.Errorf("storage after the complete backfill: %s", names)
	}
}

// TestBackfillResumedReadingKeepsItsRange: a backfill --since 61d whose
// API source failed on its 5th page is run again 3 hours later: it keeps
// the start of the first run (the clock moved), ends at the new now (the
// range ends now), says so, asks the API only the pages it had not read,
// and writes what a backfill never interrupted writes over that range. A
// changed range or config reads from the start.
func TestBackfillResumedReadingKeepsItsRange(t *testing.T) {
	api := &ticketAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "servq.yml")
	if err := os.WriteFile(cfg, []byte("global: {time_zone: UTC}\ncollectors:"+fmt.Sprintf(apiCollector, srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	now := histStart.AddDate(0, 0, histDays).Add(30 * time.Minute)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	runFrom := func(since, from, storage, om string, clock time.Time) (int, string) {
		var stderr bytes.Buffer
		code := backfill(cfg, backfillOptions{since: since, from: from, step: time.Hour, storage: storage, output: om, chunkSize: 20,
			now: func() time.Time { return clock }}, logger, &stderr)
		return code, stderr.String()
	}
	run := func(since, storage, om string, clock time.Time) (int, string) {
		return runFrom(since, "", storage, om, clock)
	}
	// The reference: the first run's start, up to the re-run's now.
	refOM := filepath.Join(dir, "ref.om")
	if code, log := runFrom("", now.AddDate(0, 0, -61).Format(time.RFC3339), filepath.Join(dir, "ref"), refOM, now.Add(3*time.Hour)); code != 0 {
		t.Fatalf("uninterrupted backfill: %d\n%s", code, log)
	}
	want := api.requests()

	om, storage := filepath.Join(dir, "out.om"), filepath.Join(dir, "data")
	readDir := filepath.Join(storage, backfillReadDir)
	api.fail = 5
	if code, log := run("61d", storage, om, now); code != 1 || !strings.Contains(log, "403") || !strings.Contains(log, "run the same command again to resume") {
		t.Fatalf("backfill with the API failing: %d\n%s", code, log)
	}
	first := api.requests()
	api.fail = 0
	code, log := run("61d", storage, om, now.Add(3*time.Hour))
	if code != 0 {
		t.Fatalf("backfill run again: %d\n%s", code, log)
	}
	if !strings.Contains(log, "resuming the reading of an interrupted backfill: api continues after its chunk 2 (40 records); start 2026-09-01T00:30:00Z kept from the first run, end now, 2026-11-01T03:30:00Z; delete "+readDir+" to start over") {
		t.Errorf("the re-run does not say what it resumes:\n%s", log)
	}
	// The failed page is asked again; nothing else is asked twice.
	if second := api.requests(); !slices.Equal(append(first[:len(first)-1], second...), want) {
		t.Errorf("asked %q, then %q; want %q in all", first, second, want)
	}
	sameOutput(t, "the resumed backfill", om, refOM)
	if names := dirNames(t, storage); names != "servq.db" {
		t.Errorf("storage after the complete backfill: %s", names)
	}

	// Another range, then another config: read from the start.
	storage = filepath.Join(dir, "data2")
	api.fail = 5
	if code, log := run("61d", storage, om, now); code != 1 {
		t.Fatalf("backfill with the API failing: %d\n%s", code, log)
	}
	api.requests()
	if code, log := run("30d", storage, om, now); code != 1 || !strings.Contains(log, "discarding the reading of an interrupted backfill with another config, range, step or collectors") {
		t.Fatalf("backfill of another range: %d\n%s", code, log)
	}
	if asked := api.requests(); len(asked) == 0 || !strings.HasSuffix(asked[0], " 1") || asked[0] == want[0] {
		t.Errorf("the backfill of another range asked %q first, want its own range's page 1", asked)
	}
	api.fail = 0
	if err := os.WriteFile(cfg, append([]byte("# changed\n"), fmt.Sprintf("global: {time_zone: UTC}\ncollectors:"+apiCollector, srv.URL)...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, log = run("30d", storage, om, now)
	if code != 0 || !strings.Contains(log, "discarding the reading") || strings.Contains(log, "resuming the reading") {
		t.Fatalf("backfill with another config: %d\n%s", code, log)
	}
	if asked := api.requests(); len(asked) == 0 || !strings.HasSuffix(asked[0], " 1") {
		t.Errorf("the backfill with another config asked %q first, want page 1", asked)
	}
	if names := dirNames(t, storage); names != "servq.db" {
		t.Errorf("storage after the complete backfill: %s", names)
	}
}
