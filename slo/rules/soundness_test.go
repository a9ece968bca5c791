package rules

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
)

// The property the burn-rate alerts must have for every SLO window from 1h
// to 90d and every objective, shown by real promtool on the generated
// rules (one run per window and objective, two at a time):
//
//   - a steady error ratio of 90 % of the budget fires no alert, page or
//     ticket, at any evaluation from the start (windows filling) until an
//     hour after the longest alert window is full; the recorded ratios
//     read 90 % of the budget in every window, so the silence is not for
//     want of data;
//   - a full outage after two good hours (the fastest pair's 1h window
//     full of good calls, the worst case) pages by the end of that 1h
//     window, with the default low-volume guard of 3 bad events;
//   - where every factor is floored or scaled above 1× (all windows but
//     28d, whose 3d/6h ticket is Sloth's 0.9333×, and 30d's 1×), a steady
//     ratio at exactly the budget fires nothing either.
//
// The cost of a run is evaluations × samples per range, so the steady
// input is sampled every 5m and the rules evaluated every 30m: a steady
// ratio is the same in every window from the start, so no state is
// skipped, and the runs of 73h take a second or two. (A 5m window then
// holds the two samples at its ends, which promtool's Prometheus 2
// includes; should a version leave one out, the check that every window
// reads 90 % of the budget fails rather than the silence passing.) The
// outage is sampled every minute.
func TestBurnAlertsSoundForEveryWindowAndObjective(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	for _, w := range []string{"1h", "1d", "7d", "14d", "28d", "30d", "90d"} {
		for _, o := range []float64{80, 90, 95, 99, 99.9} {
			t.Run(fmt.Sprintf("%s/%g", w, o), func(t *testing.T) {
				t.Parallel()
				checkSound(t, promtool, w, o)
			})
		}
	}
}

const (
	steadyStep = 5  // minutes between the steady samples
	evalEvery  = 30 // minutes between rule evaluations
)

// perMin is the calls offered a minute in each queue: enough that 90 % of
// a 0.1 % budget is 54 abandoned calls an hour, well over the low-volume
// guard.
const perMin = 1000.0

func checkSound(t *testing.T, promtool, window string, objective float64) {
	dir := t.TempDir()
	atBudget := window != "28d" && window != "30d"
	// The SLI groups count the events of one evaluation interval per
	// step, so the rules are generated for the test's interval.
	cfgText := fmt.Sprintf(`
global: {service: svc}
rules: {interval: %[3]dm}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: steady, indicator: call_abandonment, objective: %[1]g, window: %[2]s, filters: {queue: steady}}
  - {name: outage, indicator: call_abandonment, objective: %[1]g, window: %[2]s, filters: {queue: outage}}
`, objective, window, evalEvery)
	if atBudget {
		cfgText += fmt.Sprintf("  - {name: at-budget, indicator: call_abandonment, objective: %g, window: %s, filters: {queue: at-budget}}\n", objective, window)
	}
	rules := promtoolRules(t, dir, cfgText)
	cfg, err := config.Parse([]byte(cfgText), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.SLOs[0]
	budget := (100 - objective) / 100
	// Recorded ratio windows of one SLO, and the horizon: an hour past
	// the longest alert window.
	f, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inputRecordings(cfg)(f)
	// Groups in their file order (SLI, meta, alerts): without an order
	// promtool evaluates them in map order, and with evaluations 30m apart
	// an alert group that ran before its SLI group would read ratios too
	// old for the lookback and stay silent for want of data.
	var order []string
	for _, g := range f.Groups {
		order = append(order, fmt.Sprintf("%q", g.Name))
	}
	ratios := len(ratioWindows(s))
	var longest time.Duration
	for _, p := range activePairs(s) {
		longest = max(longest, p.Long)
	}
	horizon := int((longest + time.Hour).Minutes())

	// Counters of one queue, n steps of step minutes.
	counters := func(queue string, step, n int, bad string) string {
		l := `collector="pbx",channel="phone",queue="` + queue + `"`
		return fmt.Sprintf(`
      - {series: 'servq_calls_offered_total{%[1]s}', values: '0+%[2]gx%[3]d'}
      - {series: 'servq_calls_abandoned_total{%[1]s}', values: '%[4]s'}
      - {series: 'servq_calls_abandoned_short_total{%[1]s}', values: '0x%[3]d'}`, l, perMin*float64(step), n, bad)
	}
	n := horizon / steadyStep
	steady := counters("steady", steadyStep, n, fmt.Sprintf("0+%gx%d", 0.9*budget*perMin*steadyStep, n))
	never := func(slo string, at int) string {
		return fmt.Sprintf(`
      - {expr: 'count(count_over_time(ALERTS{sloth_slo="%s"}[%dm])) or vector(0)', eval_time: %dm, exp_samples: [{labels: '{}', value: 0}]}`, slo, at, at)
	}
	checks := never("steady", horizon) + fmt.Sprintf(`
      - {expr: 'count(abs({__name__=~"%s.+",sloth_slo="steady"} / %s - 0.9) < 1e-6)', eval_time: %dm, exp_samples: [{labels: '{}', value: %d}]}`,
		recErrorRatio, exact(budget), horizon, ratios)
	if atBudget {
		steady += counters("at-budget", steadyStep, n, fmt.Sprintf("0+%gx%d", budget*perMin*steadyStep, n))
		checks += never("at-budget", horizon)
	}
	// The outage: good calls for two hours, then every call abandoned
	// from minute 120 on.
	outage := counters("outage", 1, 180, fmt.Sprintf("0x120 %g+%gx59", perMin, perMin))
	test := fmt.Sprintf(`rule_files: [%s]
evaluation_interval: %dm
group_eval_order: [%s]
tests:
  - interval: %dm
    input_series:%s
    promql_expr_test:%s
  - interval: 1m
    input_series:%s
    promql_expr_test:%s
      - {expr: 'count(ALERTS{sloth_slo="outage",severity="page",alertstate="firing"})', eval_time: 180m, exp_samples: [{labels: '{}', value: 1}]}
`, rules, evalEvery, strings.Join(order, ", "), steadyStep, steady, checks, outage, never("outage", 120))
	file := filepath.Join(dir, "test.yml")
	if err := os.WriteFile(file, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "test", "rules", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s\n--- test file:\n%s", err, out, test)
	}
}

func exact(v float64) string { return fmt.Sprintf("%.17g", v) }
