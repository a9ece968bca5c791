package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
)

// TestPrometheusSeesWhatServqKnows checks the numbers where alerts,
// dashboards and reports read them: in a real Prometheus scraping the real
// servq binary, against hand-counted truth.
//
//  1. A batch of tickets first seen already replied and solved (a periodic
//     export, a catch-up after downtime) creates its series with their
//     values. Served at 0 for the new-series delay first, every increment
//     is visible to increase() and to the generated SLI rules.
//  2. A ticket replied in time but delivered after its deadline (the
//     export was written before the deadline, the next one after) counts
//     good and is never bad: the deadline waits for the source's watermark.
//  3. /api/v1/slos agrees with Prometheus.
func TestPrometheusSeesWhatServqKnows(t *testing.T) {
	bin := buildServq(t)
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }

	// desk: one open ticket, not yet due, to start with.
	desk := filepath.Join(dir, "desk.jsonl")
	writeFile(t, desk, fmt.Sprintf(`{"id":"open-1","queue":"support","channel":"email","status":"open","created_at":%q}`+"\n", ts(-10*time.Minute)))
	// export: written 65 minutes ago, when ticket L (created 70 minutes
	// ago, reply due 10 minutes ago) was still unanswered.
	export := filepath.Join(dir, "export.jsonl")
	writeFile(t, export, fmt.Sprintf(`{"id":"L","queue":"support","channel":"email","status":"open","created_at":%q}`+"\n", ts(-70*time.Minute)))
	if err := os.Chtimes(export, now.Add(-65*time.Minute), now.Add(-65*time.Minute)); err != nil {
		t.Fatal(err)
	}
	mapping := `{id: id, queue: queue, channel: channel, status: status, created_at: created_at, first_reply_at: first_reply_at, solved_at: solved_at}`
	cfgFile := filepath.Join(dir, "servq.yml")
	writeFile(t, cfgFile, fmt.Sprintf(`
global: {service: helpdesk, new_series_delay: 3s}
# The SLO step rules see a new series' first increments only when the
# series was published at 0 at least one rules interval before them: the
# 3s delay needs a 1s interval (defaults: 2m delay, 1m interval).
rules: {interval: 1s, grafana_interval: 10s}
collectors:
  - {name: desk, type: tickets_file, schedule: "@every 1s", path: %s, mapping: %s}
  - {name: export, type: tickets_file, schedule: "@every 1s", path: %s, mapping: %s}
slos:
  - {name: reply-1h, indicator: ticket_first_reply, threshold: 1h, objective: 90, window: 30d}
  - {name: solve-4h, indicator: ticket_resolution, threshold: 4h, objective: 90, window: 30d}
`, desk, mapping, export, mapping))
	rulesFile := filepath.Join(dir, "servq.rules.yml")
	rulesYAML := runServqRules(t, bin, cfgFile, rulesFile)
	servqAddr := testenv.FreeAddr(t)
	prom := testenv.StartPrometheus(t, fmt.Sprintf(`
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [servq.rules.yml]
scrape_configs:
  - job_name: servq
    static_configs: [{targets: [%q]}]
`, servqAddr), map[string]string{"servq.rules.yml": string(rulesYAML)})
	waitForScrapes(t, prom.URL, "servq")
	testenv.Start(t, servqAddr, "/-/ready", bin, "run", "--config.file="+cfgFile,
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+servqAddr)

	sum := func(expr string) (float64, bool) {
		s, err := testenv.QueryE(prom.URL, "sum("+expr+")")
		if err != nil || len(s) != 1 {
			return 0, false
		}
		return s[0].Value, true
	}
	events := func(collector, slo, result string) string {
		return fmt.Sprintf(`servq_ticket_slo_events_total{collector=%q,slo=%q,result=%q}`, collector, slo, result)
	}
	testenv.Eventually(t, 60*time.Second, "Prometheus scraping both collectors' SLO series at 0", func() bool {
		a, ok1 := sum(events("desk", "reply-1h", "bad"))
		b, ok2 := sum(events("export", "reply-1h", "bad"))
		return ok1 && ok2 && a == 0 && b == 0
	})

	// 1. Five tickets first seen solved, in a queue and channel servq has
	// never seen. First reply within 1h: a, b, c, d good, e bad (2h).
	// Solved within 4h: a, b good; c, d, e bad.
	var lines []string
	for _, tk := range []struct {
		id            string
		reply, solved time.Duration
	}{{"a", 10 * time.Minute, 2 * time.Hour}, {"b", 20 * time.Minute, 3 * time.Hour}, {"c", 30 * time.Minute, 5 * time.Hour},
		{"d", 40 * time.Minute, 6 * time.Hour}, {"e", 2 * time.Hour, 8 * time.Hour}} {
		created := -10 * time.Hour
		lines = append(lines, fmt.Sprintf(`{"id":%q,"queue":"vip","channel":"phone","status":"solved","created_at":%q,"first_reply_at":%q,"solved_at":%q}`,
			tk.id, ts(created), ts(created+tk.reply), ts(created+tk.solved)))
	}
	appendLines(t, desk, lines...)

	truth := map[string]float64{
		events("desk", "reply-1h", "good"): 4, events("desk", "reply-1h", "bad"): 1,
		events("desk", "solve-4h", "good"): 2, events("desk", "solve-4h", "bad"): 3,
		`servq_tickets_created_total{collector="desk",queue="vip"}`:                               5,
		`servq_tickets_solved_total{collector="desk",queue="vip"}`:                                5,
		`servq_ticket_resolution_seconds_count{collector="desk",queue="vip"}`:                     5,
		`servq_ticket_first_reply_seconds_bucket{collector="desk",queue="vip",le=~"3600(\\.0)?"}`: 4, // OpenMetrics writes 3600.0
	}
	var mismatch string
	testenv.Eventually(t, 60*time.Second, "Prometheus holding the batch's values", func() bool {
		for expr, want := range truth {
			if v, ok := sum(expr); !ok || v != want {
				mismatch = fmt.Sprintf("%s = %v (present %v), want %v", expr, v, ok, want)
				return false
			}
		}
		return true
	})
	t.Logf("last mismatch before the values arrived: %s", mismatch)
	// Evaluated at the newest scrape's timestamp, increase() has nothing
	// to extrapolate: it must be the truth exactly. Before the new-series
	// delay it was 0 for every series created with its value.
	last := lastScrape(t, prom.URL, `servq_tickets_created_total{collector="desk",queue="vip"}`)
	for expr, want := range truth {
		s, err := testenv.QueryAtE(prom.URL, "sum(increase("+expr+"[1h]))", last)
		if err != nil || len(s) != 1 || math.Abs(s[0].Value-want) > 1e-9 {
			t.Errorf("increase(%s[1h]) = %v (%v), want %v", expr, s, err, want)
		}
	}
	// The generated SLI rules see the same: 1 bad of 5 replies, 3 of 5
	// solves, over 5 minutes (where the symptom was a ratio of 1).
	testenv.Eventually(t, 30*time.Second, "the recorded 5m error ratios", func() bool {
		r, ok1 := sum(`slo:sli_error:ratio_rate5m{sloth_slo="reply-1h"}`)
		s, ok2 := sum(`slo:sli_error:ratio_rate5m{sloth_slo="solve-4h"}`)
		return ok1 && ok2 && math.Abs(r-0.2) < 1e-9 && math.Abs(s-0.6) < 1e-9
	})

	// 2. Ticket L is still unanswered as of its export's watermark (65
	// minutes ago), although the clock is 10 minutes past its deadline:
	// no verdict yet.
	testenv.Eventually(t, 30*time.Second, "export's ticket counted created", func() bool {
		v, ok := sum(`servq_tickets_created_total{collector="export"}`)
		return ok && v == 1
	})
	time.Sleep(3 * time.Second) // several runs and scrapes
	// The next export has L's reply, made 50 minutes after creation.
	appendLines(t, export, fmt.Sprintf(`{"id":"L","queue":"support","channel":"email","status":"open","created_at":%q,"first_reply_at":%q}`,
		ts(-70*time.Minute), ts(-20*time.Minute)))
	testenv.Eventually(t, 30*time.Second, "L counted good", func() bool {
		v, ok := sum(events("export", "reply-1h", "good"))
		return ok && v == 1
	})
	if v, ok := sum(fmt.Sprintf(`max_over_time(%s[10m])`, events("export", "reply-1h", "bad"))); !ok || v != 0 {
		t.Errorf("L was counted bad at some point (max bad over 10m = %v): a late-delivered in-time reply must never be bad", v)
	}
	if v, ok := sum(`servq_ticket_slo_corrections_total`); ok && v != 0 {
		t.Errorf("corrections = %v, want none (the watermark held the verdict)", v)
	}

	// 3. The status page counts what Prometheus counts: reply-1h has 5 + 1
	// events, 1 bad.
	var status struct {
		Data []struct {
			Name       string
			Bad, Total float64
			SLI        *float64
		}
	}
	resp, err := http.Get("http://" + servqAddr + "/api/v1/slos")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	var found bool
	for _, d := range status.Data {
		if d.Name != "reply-1h" {
			continue
		}
		found = true
		if d.Bad != 1 || d.Total != 6 {
			t.Errorf("/api/v1/slos reply-1h: %v bad of %v, want 1 of 6", d.Bad, d.Total)
		}
	}
	if !found {
		t.Fatalf("/api/v1/slos has no reply-1h: %+v", status)
	}
	last = lastScrape(t, prom.URL, `servq_tickets_created_total{collector="export"}`)
	for expr, want := range map[string]float64{`servq_ticket_slo_events_total{slo="reply-1h"}`: 6, `servq_ticket_slo_events_total{slo="reply-1h",result="bad"}`: 1} {
		s, err := testenv.QueryAtE(prom.URL, "sum(increase("+expr+"[1h]))", last)
		if err != nil || len(s) != 1 || math.Abs(s[0].Value-want) > 1e-9 {
			t.Errorf("Prometheus increase(%s[1h]) = %v (%v), want %v as /api/v1/slos", expr, s, err, want)
		}
	}
	// The window SLI rule agrees within one scrape's extrapolation.
	testenv.Eventually(t, 30*time.Second, "the window error ratio 1/6", func() bool {
		v, ok := sum(`slo:sli_error:ratio_rate30d{sloth_slo="reply-1h"}`)
		return ok && math.Abs(v-1.0/6) < 0.02
	})
}

// waitForScrapes waits until Prometheus scrapes the job's target (up
// exists, 0 while nothing listens there): a target's first run then
// happens in view.
func waitForScrapes(t *testing.T, prom, job string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "Prometheus scraping job "+job, func() bool {
		s, err := testenv.QueryE(prom, fmt.Sprintf(`up{job=%q}`, job))
		return err == nil && len(s) == 1
	})
}

// lastScrape is the timestamp of the newest sample of a series.
func lastScrape(t *testing.T, prom, selector string) time.Time {
	t.Helper()
	s := testenv.Query(t, prom, "max(timestamp("+selector+"))")
	if len(s) != 1 {
		t.Fatalf("no sample of %s", selector)
	}
	return time.UnixMilli(int64(math.Round(s[0].Value * 1e3)))
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}
