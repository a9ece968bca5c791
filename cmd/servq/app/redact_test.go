package app

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/internal/redact"
	"github.com/servq/servq/internal/redact/echotest"
)

// A vendor (or proxy) that echoes the request back in its error body
// reflects the credentials servq sent. Neither the log, the landing page,
// the status API, /metrics nor a failed reload's answer may show them, in
// any encoding, whether the body is JSON or plain text.
func TestEchoedCredentialsAreRedacted(t *testing.T) {
	for _, asJSON := range []bool{true, false} {
		name := map[bool]string{true: "json", false: "plain"}[asJSON]
		t.Run(name, func(t *testing.T) {
			echo := echotest.Server(t, asJSON)
			var logs testenv.LogBuffer
			dir := t.TempDir()
			file := filepath.Join(dir, "servq.yml")
			cfg := echotest.Config(echo.URL)
			if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			svc, err := New(Options{ConfigFile: file, StoragePath: filepath.Join(dir, "data"),
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err != nil {
				t.Fatal(err)
			}
			svc.Start()
			web := httptest.NewServer(svc.Handler("/metrics"))
			srv := web.URL
			t.Cleanup(func() {
				web.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				svc.Shutdown(ctx)
			})
			testenv.Eventually(t, 30*time.Second, "every collector to fail and a push to fail", func() bool {
				for _, st := range svc.Runner().Statuses() {
					if st.Error == "" {
						return false
					}
				}
				return strings.Contains(logs.String(), "push failed")
			})
			// The echo reached servq: each error quotes it, redacted.
			for _, st := range svc.Runner().Statuses() {
				if !strings.Contains(st.Error, redact.Placeholder) {
					t.Errorf("collector %s: the error does not quote the echoed credentials: %s", st.Name, st.Error)
				}
			}
			// A reload whose error quotes a URL with the token in it.
			bad := strings.Replace(cfg, "url: "+echo.URL+"\n    email:", "url: ftp://servq:"+echotest.ZendeskToken+"@zd.example.com\n    email:", 1)
			if bad == cfg {
				t.Fatal("the zendesk url was not replaced")
			}
			os.WriteFile(file, []byte(bad), 0o644)
			code, reload := post(t, srv+"/-/reload")
			if code != 500 || !strings.Contains(reload, "collectors[1].url") || !strings.Contains(reload, redact.Placeholder) {
				t.Errorf("reload answer = %d %q, want the located error with the token redacted", code, reload)
			}
			_, landing := get(t, srv+"/")
			_, status := get(t, srv+"/api/v1/collectors")
			_, metrics := get(t, srv+"/metrics")
			for what, text := range map[string]string{"log": logs.String(), "reload answer": reload,
				"landing page": landing, "/api/v1/collectors": status, "/metrics": metrics} {
				if leaks := echotest.Leaks(text); len(leaks) > 0 {
					t.Errorf("the %s shows %s", what, strings.Join(leaks, ", "))
				}
			}
			if !strings.Contains(landing, "error: ") || !strings.Contains(landing, "Last reload failed") {
				t.Errorf("the landing page shows neither the collector errors nor the reload error")
			}
		})
	}
}
