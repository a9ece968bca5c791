package rules

import (
	"fmt"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

const (
	// defaultStep is the evaluation interval of the SLI groups of
	// built-in indicators when rules.interval is not set: their step
	// recordings must know the interval they are evaluated at.
	defaultStep = time.Minute
	// lastWithin is how far back a step looks for a counter's last
	// sample: scrape gaps shorter than this lose no events. The raw
	// samples a step reads are those of this range, whatever the window.
	lastWithin = 10 * time.Minute
)

// Step is the evaluation interval of the SLI group of an SLO with a
// built-in indicator: rules.interval, else 1m. The group carries it as
// its interval, since its step recordings count the events of exactly
// one interval.
func Step(cfg *config.Config) time.Duration {
	if cfg.Rules.Interval > 0 {
		return cfg.Rules.Interval.D()
	}
	return defaultStep
}

// span is the range over the step recordings that holds the steps of
// the last w: w/step evaluations, a range half a step short of w so that
// it neither takes in the sample at t - w (Prometheus 2 ranges include
// their start, Prometheus 3 ranges do not) nor depends on evaluation
// jitter. A window shorter than the step holds the last step.
func span(w, step time.Duration) time.Duration {
	if w <= step {
		return step / 2
	}
	return w - step/2
}

// stepRules adds to g the recordings of an SLO whose events are sums of
// servq counters:
//
//   - servq:slo_bad_events:increase<step> and servq:slo_events:increase<step>,
//     the events of the last evaluation interval (sli.StepIncrease): the
//     only rules that read raw counters, over lastWithin;
//   - servq:slo_bad_events:increase<window> and
//     servq:slo_events:increase<window>, the sums of the steps over the
//     SLO window (the budget in events);
//   - slo:sli_error:ratio_rate<w> for every window, bad over total steps
//     summed over w.
//
// It returns the bad events over a window, for the low-volume guard.
func stepRules(cfg *config.Config, s *config.SLO, c *sli.Counts, labels map[string]string, sel func(string) string, windows []time.Duration, g *Group) func(time.Duration) string {
	step := Step(cfg)
	ss := sli.Window(step)
	badStep, totalStep := recBadEvents+ss, recEvents+ss
	stepLabels := merge(labels, map[string]string{"sloth_window": ss})
	g.Rules = append(g.Rules,
		Rule{Record: badStep, Expr: sli.StepIncrease(c.Bad, step, lastWithin), Labels: stepLabels},
		Rule{Record: totalStep, Expr: sli.StepIncrease(c.Total, step, lastWithin), Labels: stepLabels})
	sum := func(rec string, w time.Duration) string {
		return fmt.Sprintf("clamp_min(sum_over_time(%s[%s]), 0)", sel(rec), sli.Window(span(w, step)))
	}
	// sum() drops the labels of the one series, so that "or vector(0)"
	// (no traffic in w) adds nothing when there is a ratio.
	ratio := func(bad, total string) string {
		return fmt.Sprintf("(\n  sum(%s)\n/\n  (sum(%s) > 0)\n)\nor vector(0)", bad, total)
	}
	window := s.Window.D()
	ws := sli.Window(window)
	badWindow, totalWindow := sum(badStep, window), sum(totalStep, window)
	if ws != ss {
		wl := merge(labels, map[string]string{"sloth_window": ws})
		g.Rules = append(g.Rules,
			Rule{Record: recBadEvents + ws, Expr: badWindow, Labels: wl},
			Rule{Record: recEvents + ws, Expr: totalWindow, Labels: wl})
		badWindow, totalWindow = sel(recBadEvents+ws), sel(recEvents+ws)
	}
	for _, w := range windows {
		expr := ratio(sum(badStep, w), sum(totalStep, w))
		if w == window {
			expr = ratio(badWindow, totalWindow)
		}
		g.Rules = append(g.Rules, Rule{Record: recErrorRatio + sli.Window(w), Expr: expr,
			Labels: merge(labels, map[string]string{"sloth_window": sli.Window(w)})})
	}
	return func(w time.Duration) string {
		if w == window {
			return badWindow
		}
		return sum(badStep, w)
	}
}

// rawRules adds to g the recordings of a custom SLO: its queries are
// arbitrary PromQL, which servq cannot split into steps, so every window
// evaluates them over the whole window, with bad-event counts over the
// long alert windows and the SLO window, and the events of the window.
func rawRules(s *config.SLO, ind *sli.SLI, labels map[string]string, sel func(string) string, windows []time.Duration, g *Group) (func(time.Duration) string, error) {
	for _, w := range windows {
		ws := sli.Window(w)
		g.Rules = append(g.Rules, Rule{Record: recErrorRatio + ws, Expr: ind.ErrorRatio(ws),
			Labels: merge(labels, map[string]string{"sloth_window": ws})})
	}
	counted := map[time.Duration]bool{s.Window.D(): true}
	for _, p := range activePairs(s) {
		counted[p.Long] = true
	}
	for _, w := range windows {
		if !counted[w] {
			continue
		}
		ws := sli.Window(w)
		bad, err := ind.BadCount(ws)
		if err != nil {
			return nil, err
		}
		g.Rules = append(g.Rules, Rule{Record: recBadEvents + ws, Expr: bad,
			Labels: merge(labels, map[string]string{"sloth_window": ws})})
	}
	window := sli.Window(s.Window.D())
	total, err := ind.TotalCount(window)
	if err != nil {
		return nil, err
	}
	g.Rules = append(g.Rules, Rule{Record: recEvents + window, Expr: total,
		Labels: merge(labels, map[string]string{"sloth_window": window})})
	return func(w time.Duration) string { return sel(recBadEvents + sli.Window(w)) }, nil
}
