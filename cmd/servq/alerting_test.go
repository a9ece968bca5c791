package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
)

// amWebhook is the body Alertmanager POSTs to a webhook receiver
// (version 4 of its documented webhook format).
type amWebhook struct {
	Version  string `json:"version"`
	Receiver string `json:"receiver"`
	Status   string `json:"status"`
	Alerts   []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

// TestBreachReachesOnCall runs the whole path an on-call engineer depends
// on: servq reads a ticket export, a real Prometheus scrapes it and
// evaluates the rules `servq rules` wrote, a real Alertmanager routes the
// page to a webhook on 127.0.0.1. A burst of tickets that missed their
// first-reply deadline must arrive there as a page with the SLO's labels.
func TestBreachReachesOnCall(t *testing.T) {
	amBin := testenv.Binary(t, "prometheus-alertmanager", "alertmanager")
	bin := buildServq(t)
	dir := t.TempDir()

	// The receiver: records every notification by receiver name.
	var mu sync.Mutex
	got := map[string][]amWebhook{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m amWebhook
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body is not Alertmanager's JSON: %v\n%s", err, b)
		}
		mu.Lock()
		got[strings.TrimPrefix(r.URL.Path, "/")] = append(got[strings.TrimPrefix(r.URL.Path, "/")], m)
		mu.Unlock()
	}))
	defer hook.Close()

	// servq: tickets from a JSONL export, one SLO, every second.
	export := filepath.Join(dir, "tickets.jsonl")
	now := time.Now().UTC()
	var lines []string
	for i := 0; i < 10; i++ { // on time: replied 10 minutes after creation
		lines = append(lines, fmt.Sprintf(`{"id":"ok-%d","queue":"support","channel":"email","priority":"normal","status":"open","created_at":%q,"first_reply_at":%q}`,
			i, now.Add(-20*time.Minute).Format(time.RFC3339), now.Add(-10*time.Minute).Format(time.RFC3339)))
	}
	writeFile(t, export, strings.Join(lines, "\n")+"\n")
	cfgFile := filepath.Join(dir, "servq.yml")
	writeFile(t, cfgFile, fmt.Sprintf(`
global: {service: helpdesk, new_series_delay: 5s}
collectors:
  - name: desk
    type: tickets_file
    schedule: "@every 1s"
    path: %s
    mapping: {id: id, queue: queue, channel: channel, priority: priority, status: status, created_at: created_at, first_reply_at: first_reply_at}
slos:
  - name: reply-1h
    indicator: ticket_first_reply
    threshold: 1h
    objective: 99
    window: 30d
    alerting:
      labels: {team: support}
      runbook_url: https://runbooks.example/reply-1h
rules:
  job: servq
  # Evaluated every second like the rest of this Prometheus: the SLO
  # steps count the events of exactly one interval.
  interval: 1s
  grafana_interval: 10s
`, export))
	servqAddr := testenv.FreeAddr(t)

	// The rule file, exactly as a user makes it.
	rulesFile := filepath.Join(dir, "servq.rules.yml")
	rulesYAML := runServqRules(t, bin, cfgFile, rulesFile)

	// Alertmanager: page to /page, everything else to /ticket.
	amAddr := testenv.FreeAddr(t)
	amDir := t.TempDir()
	amCfg := filepath.Join(amDir, "alertmanager.yml")
	writeFile(t, amCfg, fmt.Sprintf(`
route:
  receiver: ticket
  group_by: [alertname, sloth_id]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="page"']
      receiver: page
receivers:
  - name: page
    webhook_configs: [{url: %q, send_resolved: false}]
  - name: ticket
    webhook_configs: [{url: %q, send_resolved: false}]
`, hook.URL+"/page", hook.URL+"/ticket"))
	testenv.Start(t, amAddr, "/-/ready", amBin, "--config.file="+amCfg, "--storage.path="+filepath.Join(amDir, "data"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")

	prom := testenv.StartPrometheus(t, fmt.Sprintf(`
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [servq.rules.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
scrape_configs:
  - job_name: servq
    static_configs: [{targets: [%q]}]
`, amAddr, servqAddr), map[string]string{"servq.rules.yml": string(rulesYAML)})
	// servq starts once Prometheus is scraping for it (Prometheus hands
	// new targets to its scrapers up to 5s after start): its first run's
	// series are served at 0 for the new-series delay, long enough for
	// the 1s scrape to record that 0 first.
	waitForScrapes(t, prom.URL, "servq")
	testenv.Start(t, servqAddr, "/-/ready", bin, "run", "--config.file="+cfgFile,
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+servqAddr)

	// Before the breach: the bad series exists at 0 and nothing fires.
	testenv.Eventually(t, 60*time.Second, "Prometheus sees the SLO's bad events at 0", func() bool {
		s, err := testenv.QueryE(prom.URL, `servq_ticket_slo_events_total{slo="reply-1h",result="bad"}`)
		return err == nil && len(s) == 1 && s[0].Value == 0
	})
	testenv.Eventually(t, 30*time.Second, "the SLI is recorded as 0 errors", func() bool {
		s, err := testenv.QueryE(prom.URL, `slo:sli_error:ratio_rate5m{sloth_slo="reply-1h"}`)
		return err == nil && len(s) == 1 && s[0].Value == 0
	})
	if s := testenv.Query(t, prom.URL, `ALERTS{alertname="Reply1hErrorBudgetBurn"}`); len(s) != 0 {
		t.Fatalf("alert before any breach: %v", s)
	}

	// The breach: ten tickets created two hours ago, never replied. Their
	// 1h deadline has passed: servq counts ten bad events at once.
	var late []string
	for i := 0; i < 10; i++ {
		late = append(late, fmt.Sprintf(`{"id":"late-%d","queue":"support","channel":"email","priority":"normal","status":"open","created_at":%q}`,
			i, now.Add(-2*time.Hour).Format(time.RFC3339)))
	}
	f, err := os.OpenFile(export, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(strings.Join(late, "\n") + "\n")
	f.Close()

	testenv.Eventually(t, 90*time.Second, "the page reaches the on-call webhook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["page"]) > 0
	})
	mu.Lock()
	msg := got["page"][0]
	mu.Unlock()
	if msg.Version != "4" || msg.Receiver != "page" || msg.Status != "firing" || len(msg.Alerts) != 1 {
		t.Fatalf("notification = %+v", msg)
	}
	a := msg.Alerts[0]
	for k, v := range map[string]string{
		"alertname": "Reply1hErrorBudgetBurn", "severity": "page", "sloth_severity": "page",
		"sloth_id": "helpdesk-reply-1h", "sloth_service": "helpdesk", "sloth_slo": "reply-1h", "team": "support",
	} {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	// The ten good tickets were counted in servq's first run, the ten bad
	// ones later; both series were scraped at 0 first (new-series delay),
	// so every event is an increase: the 5m error ratio is 10/20.
	if a.Annotations["runbook_url"] != "https://runbooks.example/reply-1h" ||
		!strings.Contains(a.Annotations["summary"], "SLO reply-1h of helpdesk is burning its error budget too fast (page)") ||
		!strings.Contains(a.Annotations["description"], "14.4× over 1h and 5m") {
		t.Errorf("annotations = %v", a.Annotations)
	}
	// 10 bad of 20 events: 50 % (the steps count exactly; the window may
	// still miss the good tickets' increase by a scrape's timing, hence
	// the margin), never the 100 % that a view blind to the good tickets'
	// increase would give.
	m := regexp.MustCompile(`Short-window error ratio now: ([0-9.]+)%`).FindStringSubmatch(a.Annotations["description"])
	if m == nil {
		t.Fatalf("description without the error ratio: %q", a.Annotations["description"])
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 40 || v > 70 {
		t.Errorf("short-window error ratio %v%%, want about 50%% (10 bad of 20)", v)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runServqRules runs `servq rules` on cfgFile as a user does, writing file,
// and returns what it wrote.
func runServqRules(t *testing.T, bin, cfgFile, file string) []byte {
	t.Helper()
	if out, err := exec.Command(bin, "rules", "--config.file="+cfgFile, "-o", file).CombinedOutput(); err != nil {
		t.Fatalf("servq rules: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
