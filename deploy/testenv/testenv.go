// Package testenv starts the real components servq works with —
// Prometheus, promtool, VictoriaMetrics, Alertmanager — on 127.0.0.1 for
// integration tests. Tests never mock them: when a binary is missing the
// test is skipped, or fails when SERVQ_INTEGRATION=require (as the README's
// test command sets it, after installing the Debian packages).
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/servq/servq/config"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binary returns the path of a program the test needs.
func Binary(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not installed (Debian packages prometheus, prometheus-alertmanager, victoria-metrics; the README's test command installs them)", strings.Join(names, "/"))
	if os.Getenv("SERVQ_INTEGRATION") == "require" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Process is a started server, stopped at test cleanup.
type Process struct {
	URL string
	cmd *exec.Cmd
	log *LogBuffer
}

// Log returns what the process printed so far.
func (p *Process) Log() string { return p.log.String() }

// Start runs bin with args, waits until readyPath answers 200 on addr and
// stops the process when the test ends. Its output is shown if the test fails.
func Start(t testing.TB, addr, readyPath, bin string, args ...string) *Process {
	t.Helper()
	log := &LogBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &Process{URL: "http://" + addr, cmd: cmd, log: log}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", filepath.Base(bin), p.Log())
		}
	})
	if err := waitReady(p.URL+readyPath, 60*time.Second, exited); err != nil {
		t.Fatalf("%s did not become ready: %v\n%s", bin, err, p.Log())
	}
	// A process that failed to bind may exit just after another server on
	// the same address answered; the answer was then not ours.
	select {
	case <-exited:
		t.Fatalf("%s exited right after %s answered (was that another server?)\n%s", bin, p.URL, p.Log())
	default:
	}
	return p
}

// LogBuffer collects output that is written concurrently (a process's
// stdout and stderr, a logger used by several goroutines) and read by the
// test while writing goes on.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// WaitHTTP polls u until it answers 200 or the timeout passes.
func WaitHTTP(u string, timeout time.Duration) error { return waitReady(u, timeout, nil) }

// waitReady is WaitHTTP that gives up at once when exited closes: the
// process that should answer is gone.
func waitReady(u string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("the process exited before %s answered", u)
		default:
		}
		resp, err := http.Get(u)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	*Process
	Dir string
}

// StartPrometheus runs Prometheus with the given prometheus.yml content
// (rule files referenced in it are relative to its directory, Dir).
func StartPrometheus(t testing.TB, configYAML string, files map[string]string) *Prometheus {
	t.Helper()
	bin := Binary(t, "prometheus")
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(configYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	p := Start(t, addr, "/-/ready", bin,
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-lifecycle", "--log.level=warn")
	return &Prometheus{Process: p, Dir: dir}
}

// Sample is one series of an instant-query result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query against a Prometheus-compatible API.
func Query(t testing.TB, base, expr string) []Sample {
	t.Helper()
	s, err := QueryE(base, expr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// QueryE is Query returning the error.
func QueryE(base, expr string) ([]Sample, error) { return QueryAtE(base, expr, time.Time{}) }

// QueryAtE runs an instant query evaluated at a given time (zero: now).
// Evaluated at a scrape's own timestamp, increase() over a series born at
// 0 is exact: there is nothing to extrapolate at either end.
func QueryAtE(base, expr string, at time.Time) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := url.Values{"query": {expr}}
	if !at.IsZero() {
		q.Set("time", fmt.Sprintf("%.3f", float64(at.UnixMilli())/1e3))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: %v", expr, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, body.Error)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		var v float64
		if s, ok := r.Value[1].(string); ok {
			fmt.Sscan(s, &v)
		}
		out = append(out, Sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// Eventually polls cond every 200ms until it returns true, failing the test
// when it has not after eventuallySlack × timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	// timeout is what the wait needs on an idle 2-core machine. A CI
	// machine shared with other jobs runs the same work several times
	// slower, and a wait that fails there tests the machine, not servq:
	// waits fail only when the condition is stuck, at eventuallySlack
	// times the bound.
	deadline := time.Now().Add(timeout * eventuallySlack)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout*eventuallySlack, what)
}

// eventuallySlack multiplies every Eventually bound (see there).
const eventuallySlack = 4

// StartVictoriaMetrics runs a single-node VictoriaMetrics.
func StartVictoriaMetrics(t testing.TB) *Process {
	t.Helper()
	bin := Binary(t, "victoria-metrics", "victoria-metrics-prod")
	addr := FreeAddr(t)
	return Start(t, addr, "/health", bin,
		"-httpListenAddr="+addr, "-storageDataPath="+t.TempDir(), "-loggerLevel=ERROR",
		// Make freshly pushed samples searchable at once.
		"-search.latencyOffset=0s", "-search.disableCache")
}

// SetConfigEnv sets every environment variable the config file at path
// refers to (its secrets, as a user would before `servq check`).
func SetConfigEnv(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range config.ReferencedEnv(b) {
		t.Setenv(v, "example")
	}
}
