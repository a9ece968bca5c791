package rules

import (
	"fmt"
	"strconv"
	"strings"
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

// steps builds the group "servq-slo-steps": the step recordings and
// windows of every SLO with a built-in indicator, in one group so that
// each window sums steps recorded at the same evaluations as itself.
//
//   - servq:slo_term_events:increase<step>{servq_term="<selector>"}: the
//     events of the last interval of every counter selector an SLO reads
//     (sli.TermStep), one series per selector, in one rule: the only
//     raw reads, over lastWithin, shared by the SLOs that read the same
//     counters (SLOs over the call counters with different thresholds,
//     objectives or windows read each counter once);
//   - per SLO, servq:slo_bad_events:increase<step> and
//     servq:slo_events:increase<step>, its indicator's sums of those;
//   - servq:slo_bad_events:increase<window> and
//     servq:slo_events:increase<window>, the sums of the steps over the
//     SLO window (the budget in events);
//   - slo:sli_error:ratio_rate<w> for every window, bad over total steps
//     summed over w.
type steps struct {
	step  time.Duration
	terms []sli.Term
	seen  map[string]bool
	rules []Rule
}

const recTermStep = "servq:slo_term_events:increase"

func newSteps(cfg *config.Config) *steps {
	return &steps{step: Step(cfg), seen: map[string]bool{}}
}

// side is the sum of terms with their signs, from the term steps.
func (b *steps) side(terms []sli.Term) string {
	if len(terms) == 0 {
		return "vector(0)"
	}
	var out strings.Builder
	for i, t := range terms {
		key := t.Selector()
		if !b.seen[key] {
			b.seen[key] = true
			b.terms = append(b.terms, t) // its sign is the SLOs'
		}
		e := fmt.Sprintf("sum(%s%s{servq_term=%s})", recTermStep, sli.Window(b.step), strconv.Quote(key))
		switch {
		case i == 0 && t.Sign < 0:
			out.WriteString("-" + e)
		case i == 0:
			out.WriteString(e)
		case t.Sign < 0:
			out.WriteString("\n- " + e)
		default:
			out.WriteString("\n+ " + e)
		}
	}
	return out.String()
}

// group is the steps group: the term steps first, then every SLO's rules.
func (b *steps) group() Group {
	var parts []string
	for _, t := range b.terms {
		parts = append(parts, fmt.Sprintf("label_replace(%s, \"servq_term\", %s, \"\", \"\")",
			sli.TermStep(t, b.step, lastWithin), strconv.Quote(t.Selector())))
	}
	rules := append([]Rule{{Record: recTermStep + sli.Window(b.step), Expr: strings.Join(parts, "\nor\n")}}, b.rules...)
	return Group{Name: "servq-slo-steps", Interval: sli.Window(b.step), Rules: rules}
}

// add adds the rules of one SLO whose events are sums of servq counters,
// and returns its bad events over a window, for the low-volume guard.
func (b *steps) add(s *config.SLO, c *sli.Counts, labels map[string]string, sel func(string) string, windows []time.Duration) func(time.Duration) string {
	step := b.step
	ss := sli.Window(step)
	badStep, totalStep := recBadEvents+ss, recEvents+ss
	bad, total := c.Bad, c.Total
	if s.Indicator == "ticket_first_reply" || s.Indicator == "ticket_resolution" {
		// Every ticket event is good or bad (one per ticket and SLO):
		// the total is the good events plus the bad side, so the bad
		// series are read once, not again among all of them.
		good := bad[0]
		good.Matchers = merge(good.Matchers, map[string]string{"result": "good"})
		total = append([]sli.Term{good}, bad...)
	}
	stepLabels := merge(labels, map[string]string{"sloth_window": ss})
	b.rules = append(b.rules,
		Rule{Record: badStep, Expr: b.side(bad), Labels: stepLabels},
		Rule{Record: totalStep, Expr: b.side(total), Labels: stepLabels})
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
		b.rules = append(b.rules,
			Rule{Record: recBadEvents + ws, Expr: badWindow, Labels: wl},
			Rule{Record: recEvents + ws, Expr: totalWindow, Labels: wl})
		badWindow, totalWindow = sel(recBadEvents+ws), sel(recEvents+ws)
	}
	for _, w := range windows {
		expr := ratio(sum(badStep, w), sum(totalStep, w))
		if w == window {
			expr = ratio(badWindow, totalWindow)
		}
		b.rules = append(b.rules, Rule{Record: recErrorRatio + sli.Window(w), Expr: expr,
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
