package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
)

// stuck bounds waits that only expire when something hangs.
const stuck = 20 * time.Second

// hangs is a Shutdown that never returns (a store that does not close).
type hangs struct{}

func (hangs) Shutdown(context.Context) error { select {} }

// bounded is a Shutdown that returns when its bound ends.
type bounded struct{}

func (bounded) Shutdown(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

// servq exits at the latest closeGrace after --shutdown-timeout, whatever
// still hangs, and says so with a non-zero exit code.
func TestShutdownIsBounded(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	done := make(chan int, 1)
	go func() { done <- shutdown(bounded{}, hangs{}, time.Millisecond, log) }()
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("exit code after a hanging shutdown = %d, want 1", code)
		}
	case <-time.After(closeGrace + stuck):
		t.Fatal("shutdown did not give up")
	}
	if code := shutdown(bounded{}, bounded{}, time.Millisecond, log); code != 1 {
		t.Errorf("exit code when the service's work outlived the timeout = %d, want 1", code)
	}
	ok := shutdownFunc(func(context.Context) error { return nil })
	if code := shutdown(bounded{}, ok, time.Millisecond, log); code != 0 {
		t.Errorf("exit code when only web requests outlived the timeout = %d, want 0", code)
	}
}

type shutdownFunc func(context.Context) error

func (f shutdownFunc) Shutdown(ctx context.Context) error { return f(ctx) }

// The real binary stops at once on SIGTERM while a collector waits on a
// vendor that never answers and a report waits in its retry backoff (the
// old servq waited 30s for the first and 1+5+15 minutes for the second).
func TestSIGTERMDoesNotWaitForVendorsOrReports(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildServq(t)
	dir := t.TempDir()
	entered := make(chan struct{}, 1)
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-r.Context().Done() // never answers
	}))
	defer vendor.Close()
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer prom.Close()
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
collectors:
  - {name: fd, type: freshdesk, schedule: "@every 1h", url: %s, api_key: k, request_timeout: 1h, timeout: 1h}
reports:
  - {name: weekly, schedule: "@every 1s", period: week, prometheus_url: %s, formats: [json], directory: %s}
`, vendor.URL, prom.URL, filepath.Join(dir, "reports"))), 0o644)
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "servq.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("servq's log:\n%s", b)
		}
	}()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waited := false
	defer func() {
		if !waited {
			cmd.Process.Kill()
			<-exited
		}
	}()
	<-entered
	testenv.Eventually(t, stuck, "the report in its retry backoff", func() bool {
		v, ok := scrapeValue("http://"+addr+"/metrics", `servq_report_runs_total{report="weekly",result="error"}`)
		return ok && v >= 1
	})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		waited = true
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			t.Errorf("servq exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(stuck):
		t.Fatal("servq did not exit on SIGTERM")
	}
}
