package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/deploy/testenv"
)

// TestBackfillInterruptedThenRerunEqualsUninterrupted: the real binary is
// interrupted (SIGINT) right after its 500th step, when samples were
// already sent to VictoriaMetrics. It exits 1 saying where it stopped and
// that nothing was committed: the store is byte for byte as before, no
// OpenMetrics file, no work directory left (nor the stale one of an
// earlier killed backfill). Running the same command again then gives
// exactly what an uninterrupted backfill gives: the same OpenMetrics file
// byte for byte, and the same samples in VictoriaMetrics, each once
// (VictoriaMetrics without deduplication keeps every copy it is sent:
// the re-run resumes the import after what was acknowledged).
func TestBackfillInterruptedThenRerunEqualsUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and interrupts the binary")
	}
	vmBin := testenv.Binary(t, "victoria-metrics", "victoria-metrics-prod")
	bin := filepath.Join(t.TempDir(), "servq")
	if out, err := exec.Command("go", "build", "-tags", "servqtest", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	_, cfg := writeHistory(t, dir)
	startVM := func() *testenv.Process {
		addr := testenv.FreeAddr(t)
		return testenv.Start(t, addr, "/health", vmBin, "-httpListenAddr="+addr, "-storageDataPath="+t.TempDir(),
			"-retentionPeriod=100y", "-loggerLevel=ERROR",
			"-search.latencyOffset=0s", "-search.disableCache")
	}
	args := func(vm, om, storage string) []string {
		return []string{"--config.file=" + cfg, "backfill", "--from=2026-09-01", "--to=2026-11-01", "--step=1h",
			"-o", om, "--import.url=" + vm, "--storage.path=" + storage, "--label=job=servq"}
	}

	refVM, refOM := startVM(), filepath.Join(dir, "ref.om")
	if out, err := exec.Command(bin, args(refVM.URL, refOM, filepath.Join(dir, "ref"))...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted backfill: %v\n%s", err, out)
	}

	vm, om, storage := startVM(), filepath.Join(dir, "history.om"), filepath.Join(dir, "data")
	st, err := state.Open(storage)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update("other", func(tx *state.Tx) error { return tx.Put(state.SpaceMeta, []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := dumpStore(t, storage)
	if err := os.MkdirAll(filepath.Join(storage, ".backfill-123", "servq-replay-4"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args(vm.URL, om, storage)...)
	cmd.Env = append(os.Environ(), "SERVQ_TEST_HOLD_BACKFILL_AFTER_STEP=500", "SERVQ_TEST_IMPORT_BATCH=65536")
	log, logDone := startBackfillUntil(t, cmd, "servq-test: holding backfill after step 500")
	testenv.Eventually(t, 30*time.Second, "samples sent before the interruption", func() bool {
		return len(vmExport(t, vm.URL)) > 0
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-logDone
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("interrupted backfill: %v, want exit status 1\n%s", err, log.String())
	}
	for _, want := range []string{"interrupted after the step at 2026-09-21T19:00:00Z", "nothing was committed", "run the same command again",
		"does not send them again"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the message does not say %q:\n%s", want, log.String())
		}
	}
	if after := dumpStore(t, storage); after != before {
		t.Errorf("the store changed:\n%s\nwas\n%s", after, before)
	}
	if _, err := os.Stat(om); !os.IsNotExist(err) {
		t.Errorf("%s written by an interrupted backfill (%v)", om, err)
	}
	if left, _ := filepath.Glob(filepath.Join(storage, ".backfill-*")); len(left) != 0 {
		t.Errorf("work directories left: %v", left)
	}

	if _, err := os.Stat(filepath.Join(storage, importCheckpointFile)); err != nil {
		t.Errorf("no import checkpoint after the interruption: %v", err)
	}
	out, err := exec.Command(bin, args(vm.URL, om, storage)...).CombinedOutput()
	if err != nil {
		t.Fatalf("backfill run again: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "resuming the import: the samples through 2026-09-2") {
		t.Errorf("the re-run does not say it resumes the import:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(storage, importCheckpointFile)); !os.IsNotExist(err) {
		t.Errorf("import checkpoint left after a complete backfill (%v)", err)
	}
	sameOutput(t, "the re-run", om, refOM)
	var diff string
	testenv.Eventually(t, 30*time.Second, "the same series in both VictoriaMetrics", func() bool {
		a, b := vmExport(t, vm.URL), vmExport(t, refVM.URL)
		diff = ""
		if len(a) != len(b) {
			diff = "series: " + strconv.Itoa(len(a)) + " and " + strconv.Itoa(len(b))
		}
		for i := 0; diff == "" && i < len(a); i++ {
			if a[i] != b[i] {
				diff = a[i] + "\n" + b[i]
			}
		}
		return len(b) > 10 && diff == ""
	})
}

// vmExport is every servq series in VictoriaMetrics with its samples, one
// JSON line each, sorted.
func vmExport(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.PostForm(base+"/api/v1/export", url.Values{"match[]": {`{__name__=~"servq_.+"}`}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %s %v: %s", resp.Status, err, b)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	sort.Strings(lines)
	return lines
}

// dumpStore is every bucket, key and value of the store, in order.
func dumpStore(t *testing.T, dir string) string {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, state.FileName), 0o600, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out strings.Builder
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				out.WriteString(prefix + string(k) + "/\n")
				return walk(prefix+string(k)+"/", b.Bucket(k))
			}
			fmt.Fprintf(&out, "%s%q=%q\n", prefix, k, v)
			return nil
		})
	}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			out.WriteString(string(name) + "/\n")
			return walk(string(name)+"/", b)
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestImportCheckpointBelongsToItsBackfill: a checkpoint is used only by
// the same backfill (config, target, labels, step, collectors) starting
// no earlier than the interrupted one.
func TestImportCheckpointBelongsToItsBackfill(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte("collectors: []\n"), 0o644)
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	through := start.Add(100 * time.Hour)
	key := importKey(cfg, "http://vm/api/v1/import/prometheus", map[string]string{"job": "servq"}, time.Hour, []string{"pbx"})
	path := filepath.Join(dir, importCheckpointFile)
	if err := (importCheckpoint{path: path, key: key, start: start}).save(through); err != nil {
		t.Fatal(err)
	}
	load := func(key string, start time.Time) bool {
		got, ok := importCheckpoint{path: path, key: key, start: start}.load()
		if ok && !got.Equal(through) {
			t.Errorf("through %s, want %s", got, through)
		}
		return ok
	}
	if !load(key, start) || !load(key, start.Add(24*time.Hour)) {
		t.Error("the same backfill, or one starting later, does not resume")
	}
	if load(key, start.Add(-time.Hour)) {
		t.Error("a backfill reaching further back resumes (its first part was never sent)")
	}
	for i, other := range []string{
		importKey(cfg, "http://vm2/api/v1/import/prometheus", map[string]string{"job": "servq"}, time.Hour, []string{"pbx"}),
		importKey(cfg, "http://vm/api/v1/import/prometheus", map[string]string{"job": "x"}, time.Hour, []string{"pbx"}),
		importKey(cfg, "http://vm/api/v1/import/prometheus", map[string]string{"job": "servq"}, time.Minute, []string{"pbx"}),
		importKey(cfg, "http://vm/api/v1/import/prometheus", map[string]string{"job": "servq"}, time.Hour, []string{"pbx", "zd"}),
	} {
		if load(other, start) {
			t.Errorf("variant %d resumes another backfill's import", i)
		}
	}
	os.WriteFile(cfg, []byte("collectors: []\n# changed\n"), 0o644)
	if load(importKey(cfg, "http://vm/api/v1/import/prometheus", map[string]string{"job": "servq"}, time.Hour, []string{"pbx"}), start) {
		t.Error("a changed config resumes")
	}
}

// TestBackfillStuckAfterInterruptExitsWithinBound: a step that ignores
// cancellation (a source or server that never answers) does not keep an
// interrupted backfill alive: it exits 1 once the bound passed, having
// committed nothing, and the next backfill removes the work directory it
// had to leave.
func TestBackfillStuckAfterInterruptExitsWithinBound(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and interrupts the binary")
	}
	bin := filepath.Join(t.TempDir(), "servq")
	if out, err := exec.Command("go", "build", "-tags", "servqtest", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	_, cfg := writeHistory(t, dir)
	storage, om := filepath.Join(dir, "data"), filepath.Join(dir, "history.om")
	st, err := state.Open(storage)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := dumpStore(t, storage)
	args := []string{"--config.file=" + cfg, "backfill", "--from=2026-09-01", "--to=2026-11-01", "--step=1h", "-o", om, "--storage.path=" + storage}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SERVQ_TEST_STUCK_BACKFILL_AFTER_STEP=50", "SERVQ_TEST_BACKFILL_STOP_WAIT=2s")
	log, logDone := startBackfillUntil(t, cmd, "servq-test: stuck in backfill step 50")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { <-logDone; exited <- cmd.Wait() }()
	select {
	case err = <-exited:
	case <-time.After(2 * time.Minute): // far beyond the 2s bound
		cmd.Process.Kill()
		t.Fatal("the interrupted backfill did not exit")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("stuck backfill: %v, want exit status 1\n%s", err, log.String())
	}
	for _, want := range []string{"interrupted: stopping (at most 2s)", "did not stop within 2s", "nothing committed", "run the same command again"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the messages do not say %q:\n%s", want, log.String())
		}
	}
	if after := dumpStore(t, storage); after != before {
		t.Errorf("the store changed:\n%s\nwas\n%s", after, before)
	}
	if _, err := os.Stat(om); !os.IsNotExist(err) {
		t.Errorf("%s written (%v)", om, err)
	}
	if left, _ := filepath.Glob(filepath.Join(storage, ".backfill-*")); len(left) != 1 {
		t.Fatalf("work directories %v, want the stuck one", left)
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("backfill run again: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(storage, ".backfill-*")); len(left) != 0 {
		t.Errorf("work directories left: %v", left)
	}
}

// startBackfillUntil starts cmd and returns once a line of its stderr
// begins with marker (a test hook's announcement). log collects every
// line; read it only after done is closed, when stderr has ended.
func startBackfillUntil(t *testing.T, cmd *exec.Cmd, marker string) (log *bytes.Buffer, done <-chan struct{}) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log = &bytes.Buffer{}
	reached, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), marker) {
				close(reached)
			}
		}
	}()
	select {
	case <-reached:
	case <-ended:
		cmd.Wait()
		t.Fatalf("backfill ended before %q:\n%s", marker, log.String())
	case <-time.After(5 * time.Minute): // only when stuck
		cmd.Process.Kill()
		t.Fatalf("backfill never reached %q", marker)
	}
	return log, ended
}

// sameOutput fails the test unless the OpenMetrics file om of what (an
// interrupted backfill run again) is byte for byte the uninterrupted
// backfill's ref, which is not empty.
func sameOutput(t *testing.T, what, om, ref string) {
	t.Helper()
	got, err := os.ReadFile(om)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("the OpenMetrics file of %s differs from the uninterrupted backfill's (%d and %d bytes)", what, len(got), len(want))
	}
}
