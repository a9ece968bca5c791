package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/servq/servq/deploy/testenv"
)

// --web.enable-pprof serves /debug/pprof/ behind the web config's basic
// auth; without the flag the path does not exist.
func TestPprofFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildServq(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	start := func(args ...string) string {
		dir := t.TempDir()
		webCfg := filepath.Join(dir, "web.yml")
		os.WriteFile(webCfg, []byte("basic_auth_users:\n  ops: "+string(hash)+"\n"), 0o600)
		addr := testenv.FreeAddr(t)
		var logs bytes.Buffer
		cmd := exec.Command(bin, append([]string{"--web.listen-address=" + addr, "--web.config.file=" + webCfg,
			"--storage.path=" + filepath.Join(dir, "data")}, args...)...)
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
		return "http://" + addr
	}
	// get polls until the server answers (it is starting).
	get := func(base string, auth bool) (int, string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			req, _ := http.NewRequest("GET", base+"/debug/pprof/", nil)
			if auth {
				req.SetBasicAuth("ops", "pw")
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	off := start()
	if code, _ := get(off, true); code != http.StatusNotFound {
		t.Errorf("without --web.enable-pprof: /debug/pprof/ = %d, want 404", code)
	}
	on := start("--web.enable-pprof")
	if code, _ := get(on, false); code != http.StatusUnauthorized {
		t.Errorf("with --web.enable-pprof, no credentials: /debug/pprof/ = %d, want 401", code)
	}
	if code, body := get(on, true); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("with --web.enable-pprof: /debug/pprof/ = %d\n%.300s", code, body)
	}
}
