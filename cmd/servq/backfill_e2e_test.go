package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
)

// recentHistory is a tickets export and a queue_log of the 60 days up to
// now, with the hand-counted totals by metric.
type recentHistory struct {
	tickets, queueLog []string
	totals            map[string]float64
}

// seamTotals are the queries whose values are counted by hand. The
// backfill's last sample is up to a step (here an hour) before its end:
// an instant query's lookback would miss it, the 2h range does not.
var seamTotals = map[string]string{
	"created":   `sum(last_over_time(servq_tickets_created_total[2h]))`,
	"solved":    `sum(last_over_time(servq_tickets_solved_total[2h]))`,
	"good":      `sum(last_over_time(servq_ticket_slo_events_total{slo="reply-1h",result="good"}[2h]))`,
	"bad":       `sum(last_over_time(servq_ticket_slo_events_total{slo="reply-1h",result="bad"}[2h]))`,
	"offered":   `sum(last_over_time(servq_calls_offered_total[2h]))`,
	"answered":  `sum(last_over_time(servq_calls_answered_total[2h]))`,
	"abandoned": `sum(last_over_time(servq_calls_abandoned_total[2h]))`,
}

func makeRecentHistory(now time.Time) recentHistory {
	h := recentHistory{totals: map[string]float64{}}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	first := now.Truncate(time.Hour).Add(-60 * 24 * time.Hour)
	for d := 0; d < 60; d++ {
		base := first.Add(time.Duration(d) * 24 * time.Hour)
		for i := 0; i < 2+d%3; i++ {
			created := base.Add(time.Duration(1+i)*time.Hour + 7*time.Minute)
			reply := created.Add(30 * time.Minute)
			if i%2 == 1 {
				reply = created.Add(2 * time.Hour) // after the 1h deadline
				h.totals["bad"]++
			} else {
				h.totals["good"]++
			}
			h.totals["created"]++
			status, solved, upd := "open", "", reply
			if i%3 != 2 {
				status, upd = "solved", created.Add(5*time.Hour)
				solved = ts(upd)
				h.totals["solved"]++
			}
			h.tickets = append(h.tickets, fmt.Sprintf("R%d-%d,%s,%s,support,%s,%s,%s,1", d, i, ts(created), ts(upd), status, ts(reply), solved))
		}
		for j := 0; j < 2+d%2; j++ {
			h.queueLog = append(h.queueLog, call(fmt.Sprintf("r%d.%d", d, j), base.Add(time.Duration(10+j)*time.Hour), j%2 == 0)...)
			h.totals["offered"]++
			if j%2 == 0 {
				h.totals["answered"]++
			} else {
				h.totals["abandoned"]++
			}
		}
	}
	return h
}

// call is the queue_log lines of a call that ends at end.
func call(id string, end time.Time, answer bool) []string {
	enter := end.Add(-2 * time.Minute)
	lines := []string{fmt.Sprintf("%d|%s|sales|NONE|ENTERQUEUE||5550000|1", enter.Unix(), id)}
	if answer {
		return append(lines, fmt.Sprintf("%d|%s|sales|SIP/100|CONNECT|10|%s.1|2", enter.Add(10*time.Second).Unix(), id, id),
			fmt.Sprintf("%d|%s|sales|SIP/100|COMPLETECALLER|10|110|1", end.Unix(), id))
	}
	return append(lines, fmt.Sprintf("%d|%s|sales|NONE|ABANDON|1|1|120", end.Unix(), id))
}

const seamConfig = `
global: {time_zone: UTC, service: support}
collectors:
  - name: helpdesk
    type: tickets_file
    schedule: "@every 1s"
    path: %s
    mapping: {id: id, created_at: created, updated_at: updated, queue: queue, status: status, first_reply_at: first_reply, solved_at: solved, agent_replies: replies}
  - {name: pbx, type: asterisk_queue_log, schedule: "@every 1s", path: %s}
slos:
  - {name: reply-1h, indicator: ticket_first_reply, threshold: 1h, objective: 90}
push:
  url: %s/api/v1/import/prometheus
  interval: 1s
  username: servq-push
  password: ${SERVQ_TEST_VM_PASSWORD}
  extra_labels: {instance: servq-e2e}
`

// TestBackfill60DaysThenRunIntoVictoriaMetrics: 60 days of tickets and
// calls backfilled by the servq binary into a VictoriaMetrics that
// requires basic auth (the push section's credentials, the password from
// the environment), then `servq run` on the backfill's store pushes into
// the same VictoriaMetrics while new tickets and calls come in. No
// counter series resets across the seam, and the totals equal the hand
// count of the history plus the new records. Wrong credentials fail the
// backfill with the answer's status and without the secret.
func TestBackfill60DaysThenRunIntoVictoriaMetrics(t *testing.T) {
	bin := buildServq(t)
	vmBin := testenv.Binary(t, "victoria-metrics", "victoria-metrics-prod")
	dir := t.TempDir()
	now := time.Now().UTC()
	h := makeRecentHistory(now)
	tickets, ql := filepath.Join(dir, "tickets.csv"), filepath.Join(dir, "queue_log")
	header := "id,created,updated,queue,status,first_reply,solved,replies"
	if err := os.WriteFile(tickets, []byte(header+"\n"+strings.Join(h.tickets, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ql, []byte(strings.Join(h.queueLog, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	const password = "vm-Pa55-e2e-7c1f9"
	vmAddr := testenv.FreeAddr(t)
	vm := testenv.Start(t, vmAddr, "/health", vmBin, "-httpListenAddr="+vmAddr, "-storageDataPath="+t.TempDir(),
		"-retentionPeriod=100y", "-loggerLevel=ERROR", "-search.latencyOffset=0s", "-search.disableCache",
		"-httpAuth.username=servq-push", "-httpAuth.password="+password)
	// The test's own queries log in through the URL.
	query := "http://servq-push:" + password + "@" + vmAddr
	cfg := filepath.Join(dir, "servq.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(seamConfig, tickets, ql, vm.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	backfill := func(password string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--config.file=" + cfg, "backfill", "--import.url=" + vm.URL}, args...)...)
		cmd.Env = append(os.Environ(), "SERVQ_TEST_VM_PASSWORD="+password)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// Wrong credentials: refused by VictoriaMetrics, said so, no secret
	// shown; the store is left as it was (the next backfill may run).
	const wrong = "wrong-Pa55-3b8e"
	out, err := backfill(wrong, "--since=2h", "--collector=pbx", "--storage.path="+filepath.Join(dir, "other"))
	if err == nil || !strings.Contains(out, "401") || !strings.Contains(out, "/api/v1/import/prometheus") {
		t.Errorf("backfill with a wrong password: %v\n%s", err, out)
	}
	for _, secret := range []string{wrong, password} {
		if strings.Contains(out, secret) {
			t.Errorf("the backfill's output shows the secret %q:\n%s", secret, out)
		}
	}

	storage := filepath.Join(dir, "data")
	if out, err := backfill(password, "--since=61d", "--step=1h", "--storage.path="+storage); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	flush := func() {
		if r, err := httpGet(query + "/internal/force_flush"); err == nil {
			r.Close()
		}
	}
	value := func(expr string) (float64, bool) {
		s, err := testenv.QueryE(query, expr)
		if err != nil || len(s) != 1 {
			return 0, false
		}
		return s[0].Value, true
	}
	// VictoriaMetrics takes the import in the background: wait until it
	// shows the hand counts (a wait that fails shows what it showed last).
	equalTotals := func(what string) {
		t.Helper()
		last := ""
		testenv.Eventually(t, 30*time.Second, what+" equal to the hand counts", func() bool {
			flush()
			var diff []string
			for k, expr := range seamTotals {
				if v, ok := value(expr); !ok || v != h.totals[k] {
					diff = append(diff, fmt.Sprintf("%s = %v (%v), hand count %v", expr, v, ok, h.totals[k]))
				}
			}
			sort.Strings(diff)
			if d := strings.Join(diff, "; "); d != last {
				last = d
				t.Logf("%s: %s", what, d)
			}
			return len(diff) == 0
		})
	}
	equalTotals("the backfilled totals")

	// servq run continues from the backfill's store and pushes every
	// second; new records come in after its first push.
	t.Setenv("SERVQ_TEST_VM_PASSWORD", password)
	addr := testenv.FreeAddr(t)
	run := testenv.Start(t, addr, "/-/ready", bin, "run", "--config.file="+cfg, "--storage.path="+storage, "--web.listen-address="+addr)
	testenv.Eventually(t, 30*time.Second, "servq run's first push", func() bool {
		flush()
		v, ok := value(`sum(servq_push_total{result="success"})`)
		return ok && v > 0
	})
	at := time.Now().UTC()
	appendLines(t, tickets, fmt.Sprintf("N1,%s,%s,support,solved,%s,%s,1",
		at.Add(-10*time.Minute).Format(time.RFC3339), at.Add(-time.Minute).Format(time.RFC3339),
		at.Add(-5*time.Minute).Format(time.RFC3339), at.Add(-time.Minute).Format(time.RFC3339)))
	appendLines(t, ql, append(call("n1", at, true), call("n2", at, false)...)...)
	for k, n := range map[string]float64{"created": 1, "solved": 1, "good": 1, "offered": 2, "answered": 1, "abandoned": 1} {
		h.totals[k] += n
	}
	equalTotals("the totals with the new records")

	// Across the whole range, backfilled hours then live seconds, no
	// counter series of the model resets, and each is one series.
	counters := `{__name__=~"servq_(tickets|ticket_slo|calls)_.+_total"}`
	s, err := testenv.QueryE(query, `resets(`+counters+`[62d]) keep_metric_names`)
	if err != nil || len(s) < len(seamTotals) {
		t.Fatalf("resets: %v %v", s, err)
	}
	for _, x := range s {
		if x.Value != 0 {
			t.Errorf("resets over the seam: %v = %v", x.Metric, x.Value)
		}
	}
	for _, c := range []struct {
		expr string
		min  float64
	}{
		// History and live samples are in the same series: an hourly
		// sample from the first call on, 60 days ago less 10 hours.
		{`min(count_over_time(servq_calls_offered_total[62d]))`, 59 * 24},
		{`count(servq_calls_offered_total)`, 1},
	} {
		if v, ok := value(c.expr); !ok || v < c.min || (c.min == 1 && v != 1) {
			t.Errorf("%s = %v (%v), want %v", c.expr, v, ok, c.min)
		}
	}
	if strings.Contains(run.Log(), password) {
		t.Errorf("servq run's log shows the push password")
	}
	t.Logf("%d counter series, none reset; totals %v", len(s), h.totals)
}
