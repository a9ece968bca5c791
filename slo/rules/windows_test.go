package rules

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/config"
)

// pairWant is one expected alert pair; the factors are computed by hand.
type pairWant struct {
	sev             string
	long, short     time.Duration
	factor          float64
	floored, shrunk bool
	replaced        []float64 // factors of the pairs it stands for
}

const (
	pg = config.SeverityPage
	tk = config.SeverityTicket
	h  = time.Hour
	m  = time.Minute
)

// The pairs of every SLO window:
//
//	from 28d up, factor = fraction × window / long: 28d 0.02 × 672 =
//	13.44, 0.05 × 112 = 5.6, 0.10 × 28 = 2.8, 0.10 × 28/3 = 0.9333;
//	30d 14.4, 6, 3, 1; 90d 43.2, 18, 9, 3;
//	below 28d the 30d rates 14.4, 6, 3, 1, the 1 floored to 1.2; a long
//	window beyond the SLO window shrinks to it (short: a 12th), and the
//	lower factor of two pairs over the same windows stays.
var pairsPerWindow = []struct {
	window time.Duration
	want   []pairWant
}{
	{h, []pairWant{
		{pg, h, 5 * m, 6, false, true, []float64{14.4}},
		{tk, h, 5 * m, 1.2, true, true, []float64{3}},
	}},
	{6 * h, []pairWant{
		{pg, h, 5 * m, 14.4, false, false, nil},
		{pg, 6 * h, 30 * m, 6, false, false, nil},
		{tk, 6 * h, 30 * m, 1.2, true, true, []float64{3}},
	}},
	{day, []pairWant{
		{pg, h, 5 * m, 14.4, false, false, nil},
		{pg, 6 * h, 30 * m, 6, false, false, nil},
		{tk, day, 2 * h, 1.2, true, true, []float64{3}},
	}},
	{2 * day, []pairWant{
		{pg, h, 5 * m, 14.4, false, false, nil},
		{pg, 6 * h, 30 * m, 6, false, false, nil},
		{tk, day, 2 * h, 3, false, false, nil},
		{tk, 2 * day, 4 * h, 1.2, true, true, nil},
	}},
	{7 * day, []pairWant{
		{pg, h, 5 * m, 14.4, false, false, nil},
		{pg, 6 * h, 30 * m, 6, false, false, nil},
		{tk, day, 2 * h, 3, false, false, nil},
		{tk, 3 * day, 6 * h, 1.2, true, false, nil},
	}},
	{14 * day, []pairWant{
		{pg, h, 5 * m, 14.4, false, false, nil},
		{pg, 6 * h, 30 * m, 6, false, false, nil},
		{tk, day, 2 * h, 3, false, false, nil},
		{tk, 3 * day, 6 * h, 1.2, true, false, nil},
	}},
	{28 * day, []pairWant{
		{pg, h, 5 * m, 13.44, false, false, nil},
		{pg, 6 * h, 30 * m, 5.6, false, false, nil},
		{tk, day, 2 * h, 2.8, false, false, nil},
		{tk, 3 * day, 6 * h, 2.8 / 3, false, false, nil},
	}},
	{30 * day, []pairWant{
		{pg, h, 5 * m, 14.4, false, false, nil},
		{pg, 6 * h, 30 * m, 6, false, false, nil},
		{tk, day, 2 * h, 3, false, false, nil},
		{tk, 3 * day, 6 * h, 1, false, false, nil},
	}},
	{90 * day, []pairWant{
		{pg, h, 5 * m, 43.2, false, false, nil},
		{pg, 6 * h, 30 * m, 18, false, false, nil},
		{tk, day, 2 * h, 9, false, false, nil},
		{tk, 3 * day, 6 * h, 3, false, false, nil},
	}},
}

func TestPairsPerWindow(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	for _, c := range pairsPerWindow {
		got := pairsFor(c.window)
		if len(got) != len(c.want) {
			t.Errorf("window %s: %d pairs %+v, want %d", c.window, len(got), got, len(c.want))
			continue
		}
		for i, w := range c.want {
			g := got[i]
			ok := g.Severity == w.sev && g.Long == w.long && g.Short == w.short && near(g.Factor, w.factor) &&
				g.Floored == w.floored && g.Shrunk == w.shrunk && len(g.Replaced) == len(w.replaced)
			for j := 0; ok && j < len(w.replaced); j++ {
				ok = near(g.Replaced[j].Factor, w.replaced[j])
			}
			if !ok {
				t.Errorf("window %s, pair %d: got %+v, want %+v", c.window, i, g, w)
			}
		}
	}
}

// Odd windows: the short window of a shrunk pair is whole minutes.
func TestShrunkShortWindowIsWholeMinutes(t *testing.T) {
	got := pairsFor(90 * m)
	if got[1].Long != 90*m || got[1].Short != 7*m {
		t.Errorf("90m window: shrunk 6h/30m page pair %s/%s, want 1h30m/7m", got[1].Long, got[1].Short)
	}
}

// Thresholds (error ratios) by hand for each window at one or two
// objectives, with the cap at (1 + budget) / 2.
func TestThresholdsPerWindow(t *testing.T) {
	for _, c := range []struct {
		window    time.Duration
		objective float64
		want      []float64
		capped    []bool
	}{
		// 6 × 0.001; 1.2 × 0.001.
		{h, 99.9, []float64{0.006, 0.0012}, []bool{false, false}},
		// 6 × 0.2 = 1.2 > 0.6: capped; 1.2 × 0.2.
		{h, 80, []float64{0.6, 0.24}, []bool{true, false}},
		// 14.4 × 0.05 = 0.72 > 0.525; 6 × 0.05; 1.2 × 0.05.
		{day, 95, []float64{0.525, 0.3, 0.06}, []bool{true, false, false}},
		// 14.4 × 0.1 = 1.44 > 0.55; 6 × 0.1 = 0.6 > 0.55; 3 × 0.1; 1.2 × 0.1.
		{2 * day, 90, []float64{0.55, 0.55, 0.3, 0.12}, []bool{true, true, false, false}},
		{7 * day, 99, []float64{0.144, 0.06, 0.03, 0.012}, nil},
		// 3 × 0.2 is exactly the cap of 0.6: not capped.
		{7 * day, 80, []float64{0.6, 0.6, 0.6, 0.24}, []bool{true, true, false, false}},
		{14 * day, 99.9, []float64{0.0144, 0.006, 0.003, 0.0012}, nil},
		// 13.44 × 0.05 = 0.672 > 0.525; 5.6 × 0.05; 2.8 × 0.05; 0.9333 × 0.05.
		{28 * day, 95, []float64{0.525, 0.28, 0.14, 0.14 / 3}, []bool{true, false, false, false}},
		{30 * day, 99, []float64{0.144, 0.06, 0.03, 0.01}, nil},
		{30 * day, 80, []float64{0.6, 0.6, 0.6, 0.2}, []bool{true, true, false, false}},
		{90 * day, 99, []float64{0.432, 0.18, 0.09, 0.03}, nil},
		// 43.2, 18 and 9 × 0.1 are all over 0.55; 3 × 0.1.
		{90 * day, 90, []float64{0.55, 0.55, 0.55, 0.3}, []bool{true, true, true, false}},
	} {
		budget := (100 - c.objective) / 100
		pairs := pairsFor(c.window)
		if len(pairs) != len(c.want) {
			t.Errorf("window %s: %d pairs, want %d", c.window, len(pairs), len(c.want))
			continue
		}
		for i, p := range pairs {
			th, capped := p.Threshold(budget)
			wantCapped := c.capped != nil && c.capped[i]
			if math.Abs(th-c.want[i]) > 1e-12 || capped != wantCapped {
				t.Errorf("window %s, objective %g, pair %s/%s: threshold %v capped %v, want %v capped %v",
					c.window, c.objective, p.Long, p.Short, th, capped, c.want[i], wantCapped)
			}
		}
	}
}

// Every window from 1h to 90d in steps of an hour, every objective from
// 50 % to 99.99 %: each threshold is above the budget (a steady ratio at
// the budget never fires) except the 3d/6h ticket of 28d to under 30d
// (Sloth's catalogue, noted by servq rules) and of 30d (1×: a ratio at
// the budget is not above it), and below 100 % errors (an outage fires);
// the page always has a 1h/5m pair or a shorter one.
func TestThresholdsAboveBudgetBelowOutage(t *testing.T) {
	for w := time.Hour; w <= 90*day; w += time.Hour {
		pairs := pairsFor(w)
		if pairs[0].Severity != pg || pairs[0].Long > time.Hour {
			t.Fatalf("window %s: fastest page pair %+v", w, pairs[0])
		}
		for _, o := range []float64{50, 80, 90, 95, 99, 99.5, 99.9, 99.99} {
			budget := (100 - o) / 100
			for _, p := range pairs {
				th, _ := p.Threshold(budget)
				sloth := w >= scaleFrom && w < 30*day && p.Long == 3*day
				below := th < budget*(1-1e-12)
				at := !below && th <= budget*(1+1e-12)
				if below && !sloth || at && w != 30*day || th >= 1 {
					t.Errorf("window %s, objective %g, pair %s/%s: threshold %v (budget %v)", w, o, p.Long, p.Short, th, budget)
				}
			}
		}
	}
}

// The notes of servq rules, one per adjusted pair, each true: a capped
// factor × budget is called impossible only when it is beyond 100 %.
func TestWarnings(t *testing.T) {
	cfg, err := config.Parse([]byte(`
global: {service: svc}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: week, indicator: call_abandonment, objective: 99, window: 7d}
  - {name: daily, indicator: call_abandonment, objective: 99.9, window: 1d}
  - {name: sloth, indicator: call_abandonment, objective: 99, window: 28d}
  - {name: queue, indicator: call_abandonment, objective: 95, window: 30d}
  - {name: sl, indicator: call_abandonment, objective: 80, window: 30d}
  - {name: hourly, indicator: call_abandonment, objective: 99, window: 1h, alerting: {ticket: false}}
  - {name: quiet, indicator: call_abandonment, objective: 99, window: 7d, alerting: {page: false, ticket: false}}
  - {name: classic, indicator: call_abandonment, objective: 99, window: 30d}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"slo week (window 1w): the 3d/6h ticket alert burns at 1.2×, not the 30d window's 1×: at least 1.2× below 28d, so that a steady error ratio at the budget never fires it",
		"slo daily (window 1d): the 3d/6h ticket alert runs over 1d/2h, as 3d is longer than the SLO window; burns at 1.2×, not the 30d window's 1×: at least 1.2× below 28d, so that a steady error ratio at the budget never fires it",
		"slo daily (window 1d): the 1d/2h ticket alert at 3× is left out: the 3d/6h alert, shrunk to 1d/2h at 1.2×, fires whenever it would",
		"slo sloth (window 4w): the 3d/6h ticket alert burns at 0.9333×, the 30d window's budget share scaled to this window as in Sloth's 28d catalogue: a steady error ratio between 93.33% and 100% of the budget fires it although the objective is met",
		"slo queue (window 30d): the 1h/5m page alert is capped at 52.5% errors, halfway from the budget to 100%: 14.4× of a 5% budget would be 72% errors, beyond that halfway mark",
		"slo sl (window 30d): the 1h/5m page alert is capped at 60% errors, halfway from the budget to 100%: 14.4× of a 20% budget would be 288% errors, which cannot happen",
		"slo sl (window 30d): the 6h/30m page alert is capped at 60% errors, halfway from the budget to 100%: 6× of a 20% budget would be 120% errors, which cannot happen",
		"slo hourly (window 1h): the 6h/30m page alert runs over 1h/5m, as 6h is longer than the SLO window",
		"slo hourly (window 1h): the 1h/5m page alert at 14.4× is left out: the 6h/30m alert, shrunk to 1h/5m at 6×, fires whenever it would",
		"Prometheus must keep at least 30d of samples (slo queue reads 30d; the Prometheus Operator keeps 24h by default, kube-prometheus-stack 10d): until it holds that much, servq:slo_window_coverage:ratio is below 1 and window ratios cover only what it has",
	}
	got := Warnings(cfg)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
