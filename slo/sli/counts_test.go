package sli

import (
	"testing"

	"github.com/servq/servq/config"
)

// Counts and the rate expressions are the same definition: for constant
// per-second rates r of each counter, bad/total of Counts equals what the
// rate expression computes. Checked on the hand-computed example of the
// promtool SLI test (10 offered, 8 answered, 7 within 20s, 2 abandoned, 1
// short; per minute).
func TestCountsMatchTheRateDefinitions(t *testing.T) {
	cfg, err := config.Parse([]byte(`
slos:
  - {name: sl-bad, indicator: call_service_level, threshold: 20s, objective: 80, abandon_policy: count_as_bad}
  - {name: sl-short, indicator: call_service_level, threshold: 20s, objective: 80, abandon_policy: exclude_short}
  - {name: sl-answered, indicator: call_service_level, threshold: 20s, objective: 80, abandon_policy: exclude_all}
  - {name: abandon, indicator: call_abandonment, objective: 95}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	value := map[string]float64{
		callsOffered: 10, callsAnswered: 8, callsAbandoned: 2, callsShort: 1, callWaitBucket: 7,
	}
	sum := func(ts []Term) float64 {
		var v float64
		for _, t := range ts {
			v += t.Sign * value[t.Metric]
		}
		return max(v, 0)
	}
	want := map[string][2]float64{"sl-bad": {3, 10}, "sl-short": {2, 9}, "sl-answered": {1, 8}, "abandon": {1, 9}}
	for _, s := range cfg.SLOs {
		c, err := CountsFor(cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]float64{sum(c.Bad), sum(c.Total)}; got != want[s.Name] {
			t.Errorf("%s: bad, total = %v, want %v", s.Name, got, want[s.Name])
		}
	}
}
