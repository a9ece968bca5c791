package rules

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// inputRecordings returns a change that puts first in a rule file a group
// recording every SLO input (servq_slo_input_total) from the raw counters
// of a test's input series, as servq sums them: per collector and copy
// (instance, job, …), the sum of the series the input's raw selector
// matches, at every evaluation. The promtool tests feed raw counters and
// expect the values computed by hand from them: with this group, they
// check that the rules reading the inputs compute them.
func inputRecordings(cfg *config.Config) func(*File) {
	var rules []Rule
	for _, s := range cfg.SLOs {
		ins, err := sli.Inputs(cfg, s)
		if err != nil {
			panic(err)
		}
		for _, in := range ins {
			expr := fmt.Sprintf("sum without (queue, channel, priority, outcome, le, survey, kind, result, slo) (%s)", in.Term.Selector())
			for _, l := range [][2]string{{"slo", in.SLO}, {"input", in.Name}, {"definition", in.Definition}} {
				expr = fmt.Sprintf("label_replace(%s, %q, %s, \"\", \"\")", expr, l[0], strconv.Quote(l[1]))
			}
			rules = append(rules, Rule{Record: sli.SLOInput, Expr: expr})
		}
	}
	return func(f *File) {
		if len(rules) > 0 && !strings.HasPrefix(f.Groups[0].Name, "test-") {
			f.Groups = append([]Group{{Name: "test-slo-inputs", Interval: sli.Window(Step(cfg)), Rules: rules}}, f.Groups...)
		}
	}
}

// Upgrading reads the SLO inputs instead of the raw counters from the next
// evaluation on, and every window sums across the switch: the step series
// are named after the raw selectors (sli.Term.Key) either way. Here servq
// serves the inputs from minute 60 (upgraded then), the rules read the raw
// counters until minute 90 and the inputs after, and the 30d window (from
// hourly period sums) and the 1h ratio at minute 180 hold every event
// counted by hand.
func TestWindowsSumAcrossTheSwitchToInputs(t *testing.T) {
	t.Parallel()
	const cfgText = `
global: {service: svc}
slos:
  - {name: abandon, indicator: call_abandonment, objective: 95, window: 30d}
`
	cfg, err := config.Parse([]byte(cfgText), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	counts, err := sli.StepCounts(cfg, cfg.SLOs[0])
	if err != nil {
		t.Fatal(err)
	}
	ins, err := sli.Inputs(cfg, cfg.SLOs[0])
	if err != nil {
		t.Fatal(err)
	}
	// The servq-slo-steps group's first rule as it was before (raw
	// counters) until minute 90, as it is now after.
	switchAt := func(f *File) {
		for gi := range f.Groups {
			g := &f.Groups[gi]
			if g.Name != "servq-slo-steps" {
				continue
			}
			now := g.Rules[0].Expr
			before := now
			for _, tm := range append(counts.Bad, counts.Total...) {
				before = strings.ReplaceAll(before, tm.Selector(), tm.Raw.Selector())
			}
			if before == now || strings.Contains(before, sli.SLOInput) {
				t.Fatalf("the step rule does not read the inputs:\n%s", now)
			}
			g.Rules[0].Expr = fmt.Sprintf("((%s) and on() (vector(time()) < 5400))\nor\n((%s) and on() (vector(time()) >= 5400))", before, now)
		}
	}
	// Inputs as servq serves them from minute 60: born at 0, then the
	// sums of the raw series (offered 15, abandoned 3, short 1 a minute).
	var inputSeries strings.Builder
	perMinute := map[string]int{"offered": 15, "abandoned": 3, "short": 1}
	for _, in := range ins {
		fmt.Fprintf(&inputSeries, "    - series: '%s{collector=\"pbx\",slo=%q,input=%q,definition=%q}'\n      values: '_x60 0+%dx120'\n",
			sli.SLOInput, in.SLO, in.Name, in.Definition, perMinute[in.Name])
	}
	// 180 steps: bad = (3 - 1) × 180 = 360, total = (15 - 1) × 180 =
	// 2520; the last hour 120 of 840.
	runPromtoolTestOf(t, cfgText, `
- interval: 1m
  input_series:
    - series: 'servq_calls_offered_total{collector="pbx",queue="a",channel="phone"}'
      values: '0+10x180'
    - series: 'servq_calls_offered_total{collector="pbx",queue="b",channel="phone"}'
      values: '0+5x180'
    - series: 'servq_calls_abandoned_total{collector="pbx",queue="a",channel="phone"}'
      values: '0+2x180'
    - series: 'servq_calls_abandoned_total{collector="pbx",queue="b",channel="phone"}'
      values: '0+1x180'
    - series: 'servq_calls_abandoned_short_total{collector="pbx",queue="a",channel="phone"}'
      values: '0+1x180'
    - series: 'servq_calls_abandoned_short_total{collector="pbx",queue="b",channel="phone"}'
      values: '0x180'
`+inputSeries.String()+`
  promql_expr_test:
    - expr: servq:slo_bad_events:increase30d
      eval_time: 180m
      exp_samples: [{labels: 'servq:slo_bad_events:increase30d{sloth_id="svc-abandon",sloth_service="svc",sloth_slo="abandon",sloth_window="30d"}', value: 360}]
    - expr: servq:slo_events:increase30d
      eval_time: 180m
      exp_samples: [{labels: 'servq:slo_events:increase30d{sloth_id="svc-abandon",sloth_service="svc",sloth_slo="abandon",sloth_window="30d"}', value: 2520}]
    - expr: slo:sli_error:ratio_rate1h
      eval_time: 180m
      exp_samples: [{labels: 'slo:sli_error:ratio_rate1h{sloth_id="svc-abandon",sloth_service="svc",sloth_slo="abandon",sloth_window="1h"}', value: 0.14285714285714285}]
`, func(f *File) {
		// Not the test recordings of the inputs: the inputs are the
		// series above, from minute 60 only.
		if f.Groups[0].Name == "test-slo-inputs" {
			f.Groups = f.Groups[1:]
		}
		switchAt(f)
	})
}
