package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/slo/rules"
	"gopkg.in/yaml.v3"
)

// histCall is a call of a test history: when it ended and whether the
// caller gave up.
type histCall struct {
	end       time.Time
	abandoned bool
}

// ruleChecks are recordings of each depth of the generated SLO rules
// (window ratio, burn rate over a ratio, budget over the period burn
// rate) and their values computed by hand from the calls: ratio(a, b) is
// the abandoned share of the calls that ended in (a, b]; since is when the
// rule backfill started.
func ruleChecks(calls []histCall, since time.Time) []struct {
	record string
	want   func(at time.Time) float64
} {
	ratio := func(a, b time.Time) float64 {
		var bad, total float64
		for _, c := range calls {
			for _, edge := range []time.Time{a, b} {
				if d := c.end.Sub(edge); d > -20*time.Second && d < 20*time.Second {
					panic(fmt.Sprintf("call at %s is too near the window edge %s to count by hand", c.end, edge))
				}
			}
			if c.end.After(a) && !c.end.After(b) {
				total++
				if c.abandoned {
					bad++
				}
			}
		}
		if total == 0 {
			return 0
		}
		return bad / total
	}
	return []struct {
		record string
		want   func(at time.Time) float64
	}{
		{"slo:sli_error:ratio_rate1h", func(at time.Time) float64 { return ratio(at.Add(-time.Hour), at) }},
		{"slo:current_burn_rate:ratio", func(at time.Time) float64 { return ratio(at.Add(-5*time.Minute), at) / 0.1 }},
		// The period's window holds the step recordings from the start
		// of the rule backfill on.
		{"slo:period_error_budget_remaining:ratio", func(at time.Time) float64 { return 1 - ratio(since, at)/0.1 }},
	}
}

// checkRuleBackfill backfills the generated recording rules over the
// history as the README's Day one says: one promtool pass per level of
// `servq rules --level`, each against a Prometheus that holds the history
// and the levels before, and one vmalert replay per level into
// VictoriaMetrics. The recorded SLI, burn rate and remaining error budget
// (the deepest level) equal the hand counts at their evaluation times; a
// level left out leaves the budget absent or at 1 (its inputs recorded as
// 0), and fails.
func checkRuleBackfill(t *testing.T, bin, promtool, promBin, vmalert, cfg, historyBlocks, vmURL string, calls []histCall, start, end time.Time) {
	t.Helper()
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "servq.rules.yml")
	out, err := exec.Command(bin, "rules", "--config.file="+cfg, "-o", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("servq rules: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`recording rules (\d+) levels deep`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("servq rules does not tell the levels:\n%s", out)
	}
	depth, _ := strconv.Atoi(string(m[1]))
	checkReadmeLevels(t, depth)
	// Every check time is a call's end plus 2m30s, so that the calls
	// stay far from the windows' edges.
	var at []time.Time
	for _, c := range calls {
		if a := c.end.Add(150 * time.Second); a.After(start.Add(time.Hour)) && !a.After(end) {
			at = append(at, a)
		}
	}
	if len(at) < 3 {
		t.Fatalf("only %d check times in %s..%s", len(at), start, end)
	}
	checks := ruleChecks(calls, start)
	// Each level is written to the same file, as the README's loop does:
	// Prometheus and promtool offset a group's evaluations by a hash of
	// its name and file, and the same file keeps the levels of a group
	// on the same times (each reads the level below at its own time).
	levelFile := filepath.Join(dir, "level.yml")
	writeLevel := func(t *testing.T, n int) {
		if out, err := exec.Command(bin, "rules", "--config.file="+cfg, fmt.Sprintf("--level=%d", n), "-o", levelFile).CombinedOutput(); err != nil {
			t.Fatalf("servq rules --level %d: %v\n%s", n, err, out)
		}
	}
	// Prometheus: the history's blocks, then each level's blocks added
	// before the next level is evaluated (Prometheus restarted to load
	// them, as it would at its next compaction).
	data := filepath.Join(dir, "data")
	copyBlocks(t, historyBlocks, data)
	pcfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(pcfg, []byte("global: {}\n"), 0o644)
	startProm := func(t *testing.T) string {
		addr := testenv.FreeAddr(t)
		return testenv.Start(t, addr, "/-/ready", promBin, "--config.file="+pcfg, "--storage.tsdb.path="+data,
			"--storage.tsdb.retention.time=100y", "--web.listen-address="+addr, "--log.level=warn").URL
	}
	for i := 0; i < depth; i++ {
		ok := t.Run(fmt.Sprintf("promtool level %d", i+1), func(t *testing.T) {
			writeLevel(t, i+1)
			url := startProm(t)
			out := filepath.Join(dir, fmt.Sprintf("blocks-%d", i+1))
			if b, err := exec.Command(promtool, "tsdb", "create-blocks-from", "rules", "--url="+url,
				fmt.Sprintf("--start=%d", start.Unix()), fmt.Sprintf("--end=%d", end.Unix()), "--eval-interval=60s",
				"--output-dir="+out, levelFile).CombinedOutput(); err != nil {
				t.Fatalf("promtool create-blocks-from rules, level %d: %v\n%s", i+1, err, b)
			}
			copyBlocks(t, out, data)
		})
		if !ok {
			return
		}
	}
	t.Run("promtool recordings", func(t *testing.T) {
		url := startProm(t)
		compareRecordings(t, "promtool", url, "timestamp(%s)", checks, at)
	})

	// vmalert replays each level into VictoriaMetrics, which is flushed
	// before the next reads it (vmalert's -replay.rulesDelay would wait
	// a fixed time instead).
	for i := 0; i < depth; i++ {
		writeLevel(t, i+1)
		if out, err := exec.Command(vmalert, "-rule="+levelFile, "-datasource.url="+vmURL, "-remoteWrite.url="+vmURL,
			"-replay.timeFrom="+start.Format(time.RFC3339), "-replay.timeTo="+end.Format(time.RFC3339),
			"-datasource.queryStep=1m", "-replay.disableProgressBar", "-loggerLevel=ERROR").CombinedOutput(); err != nil {
			t.Fatalf("vmalert replay, level %d: %v\n%s", i+1, err, out)
		}
		if r, err := httpGet(vmURL + "/internal/force_flush"); err != nil {
			t.Fatal(err)
		} else {
			r.Close()
		}
	}
	compareRecordings(t, "vmalert", vmURL, "tlast_over_time(%s[2m])", checks, at)
}

// compareRecordings compares each recording, at its last evaluation up
// to each check time (found by the stamp query), with the hand count.
func compareRecordings(t *testing.T, name, url, stamp string, checks []struct {
	record string
	want   func(at time.Time) float64
}, at []time.Time) {
	t.Helper()
	for _, c := range checks {
		for _, a := range at {
			ts, err := testenv.QueryAtE(url, fmt.Sprintf(stamp, c.record), a)
			if err != nil || len(ts) != 1 {
				t.Errorf("%s: no %s recorded by %s: %v %v", name, c.record, a.Format(time.RFC3339), ts, err)
				continue
			}
			evalAt := time.UnixMilli(int64(math.Round(ts[0].Value * 1e3)))
			got, err := testenv.QueryAtE(url, c.record, evalAt)
			if err != nil {
				t.Fatal(err)
			}
			want := c.want(evalAt)
			if len(got) != 1 || math.Abs(got[0].Value-want) > 1e-9 {
				t.Errorf("%s: %s at %s = %+v, hand count %v", name, c.record, evalAt.Format(time.RFC3339), got, want)
			} else {
				t.Logf("%s: %s at %s = %v", name, c.record, evalAt.Format(time.RFC3339), want)
			}
		}
	}
}

// copyBlocks copies the TSDB blocks (ULID directories) of from into to.
func copyBlocks(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() || len(e.Name()) != 26 {
			continue
		}
		if out, err := exec.Command("cp", "-r", filepath.Join(from, e.Name()), filepath.Join(to, e.Name())).CombinedOutput(); err != nil {
			t.Fatalf("copying block %s: %v\n%s", e.Name(), err, out)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no blocks in %s", from)
	}
}

// checkReadmeLevels: the README's Day one loop runs as many levels as the
// generated rules have.
func checkReadmeLevels(t *testing.T, depth int) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`for level in \$\(seq (\d+)\)`).FindSubmatch(b)
	if m == nil || string(m[1]) != strconv.Itoa(depth) {
		t.Errorf("README (Day one) loops over levels %q; the generated recording rules are %d levels deep: update it", m, depth)
	}
}

// TestRuleLevels: levels follow what each recording reads, and --level
// keeps only that level's recordings.
func TestRuleLevels(t *testing.T) {
	f := &rules.File{Groups: []rules.Group{
		{Name: "a", Interval: "1m", Rules: []rules.Rule{
			{Record: "x:step", Expr: `sum(rate(raw_total[5m]))`},
			{Record: "x:win", Expr: `sum_over_time(x:step[1h]) / sum_over_time({__name__="x:step"}[1h])`},
			{Alert: "Burn", Expr: `x:ratio > 1`},
		}},
		{Name: "b", Rules: []rules.Rule{
			{Record: "x:ratio", Expr: `x:win / on() group_left vector(2) or vector(0)`},
			{Record: "x:const", Expr: `vector(1)`},
		}},
	}}
	level, depth, err := ruleLevels(f)
	if err != nil {
		t.Fatal(err)
	}
	if depth != 3 || level["x:step"] != 1 || level["x:win"] != 2 || level["x:ratio"] != 3 || level["x:const"] != 1 {
		t.Errorf("levels %v, depth %d", level, depth)
	}
	two, err := ruleLevel(f, level, depth, 2)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := yaml.Marshal(two); len(two.Groups) != 1 || len(two.Groups[0].Rules) != 1 || two.Groups[0].Interval != "1m" || two.Groups[0].Rules[0].Record != "x:win" {
		t.Errorf("level 2:\n%s", b)
	}
	if _, err := ruleLevel(f, level, depth, 4); err == nil || !strings.Contains(err.Error(), "3 levels deep") {
		t.Errorf("level 4: %v", err)
	}
	// A rule reading its own earlier values (the live open period) needs
	// no earlier pass: its level is that of what else it reads.
	f.Groups[1].Rules[0].Expr = `x:win + last_over_time(x:ratio[1h])`
	if level, _, err := ruleLevels(f); err != nil || level["x:ratio"] != 3 {
		t.Errorf("a self-read: levels %v, %v", level, err)
	}
	f.Groups[1].Rules[1].Expr = `x:ratio`
	f.Groups[1].Rules[0].Expr = `x:win + x:const`
	if _, _, err := ruleLevels(f); err == nil || !strings.Contains(err.Error(), "reads itself") {
		t.Errorf("a cycle: %v", err)
	}
}
