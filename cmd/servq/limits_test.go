package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors/runner"
	"github.com/servq/servq/deploy/testenv"
)

// A flood of idle keep-alive connections and of webhook bodies sent a byte
// at a time, many times more than the open-file limit allows, leaves
// /metrics answering and the file collector running: servq (started with
// RLIMIT_NOFILE 128, so a connection limit of 64) closes waiting
// connections to admit new ones and keeps descriptors for its files. With
// no limit, the flood took every descriptor: /metrics stopped answering and
// the collector failed with "too many open files".
func TestConnectionFloodUnderLowFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildServq(t)
	dir := t.TempDir()
	csv := filepath.Join(dir, "t.csv")
	os.WriteFile(csv, []byte("id,created\n1,2026-11-02T09:00:00Z\n"), 0o644)
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte(`collectors:
  - name: tickets
    type: tickets_file
    schedule: "@every 1s"
    path: `+csv+`
    mapping: {id: id, created_at: created}
  - name: svy
    type: survey_webhook
    schedule: "@every 1m"
    format: generic
    secret: s3cret
`), 0o644)
	addr := testenv.FreeAddr(t)
	p := testenv.Start(t, addr, "/-/ready", "/bin/sh", "-c", `ulimit -n 128 && exec "$0" "$@"`, bin,
		"--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		return c
	}
	// Slow bodies on the webhook, then 300 keep-alive connections left
	// idle after a request and 100 that never send one.
	for i := 0; i < 10; i++ {
		fmt.Fprintf(open(), "POST /webhooks/svy HTTP/1.1\r\nHost: servq\r\nContent-Length: 1000\r\n\r\n{")
	}
	var idle []net.Conn
	for i := 0; i < 300; i++ {
		c := open()
		fmt.Fprintf(c, "GET /-/healthy HTTP/1.1\r\nHost: servq\r\n\r\n")
		idle = append(idle, c)
	}
	for i := 0; i < 100; i++ {
		open()
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range idle { // each answered, or closed to make room
		c.SetReadDeadline(deadline)
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
		}
	}
	flooded := time.Now()

	resp, err := hc.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatalf("/metrics during the flood: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "servq_web_connections_evicted_total") {
		t.Fatalf("/metrics during the flood: %d", resp.StatusCode)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "servq_web_connections") {
			t.Log(l)
		}
	}
	// A run of the file collector that started after the flood succeeds.
	testenv.Eventually(t, 30*time.Second, "a successful tickets run after the flood", func() bool {
		resp, err := hc.Get(p.URL + "/api/v1/collectors")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var out struct{ Data []runner.Status }
		json.NewDecoder(resp.Body).Decode(&out)
		for _, s := range out.Data {
			if s.Name == "tickets" && s.LastRun.After(flooded) {
				if s.Error != "" {
					t.Fatalf("tickets run after the flood failed: %s", s.Error)
				}
				return true
			}
		}
		return false
	})
}
