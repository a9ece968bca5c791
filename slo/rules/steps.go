package rules

import (
	"fmt"
	"regexp"
	"sort"
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

// periodOf is the period of the term period sums: the multiple of the
// step nearest to an hour (at least one step). Windows longer than it are
// summed from one sample per period instead of one per step: a 28d window
// of 1m steps reads 672 period sums and 60 open-period values instead of
// 40,320 steps.
func periodOf(step time.Duration) time.Duration {
	n := (time.Hour + step/2) / step
	if n < 1 {
		n = 1
	}
	return n * step
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
//     objectives or windows read each counter once); and, as
//     servq_term="steps:<selector>", a 1 for every evaluation, whose sums
//     count the steps a window holds (the coverage);
//   - the term period sums (see termPeriods), from which every window
//     longer than the period is summed: per term and window,
//     servq:slo_term_events:increase<window>;
//   - the recordings of the SLOs themselves, one rule per series name
//     and window for all of them (see sloRules): their steps, window
//     counts, ratios and coverage.
type steps struct {
	service      string
	step, period time.Duration
	terms        []sli.Term
	seen         map[string]bool
	long         map[time.Duration]bool // term windows the SLOs read
	slos         []stepSLO
	// backfill writes the period sums without reading their own past
	// values (see termPeriods).
	backfill bool
}

const (
	recTermEvents = "servq:slo_term_events:increase"
	// recTermPeriod and recTermOpen are the term period sums.
	recTermPeriod = "servq:slo_term_events:period"
	recTermOpen   = "servq:slo_term_events:open_period"
	// stepsPrefix names the step counts of a term: servq_term="steps:<selector>".
	stepsPrefix = "steps:"
)

func newSteps(cfg *config.Config) *steps {
	step := Step(cfg)
	return &steps{service: cfg.Global.Service, step: step, period: periodOf(step), seen: map[string]bool{}, long: map[time.Duration]bool{}}
}

// summed says whether a window is summed from the term period sums
// rather than from the SLO's steps.
func (b *steps) summed(w time.Duration) bool { return w > b.period }

// sideOf is the sum of terms with their signs, from the term series rec.
func (b *steps) sideOf(terms []sli.Term, rec string) string {
	if len(terms) == 0 {
		return "vector(0)"
	}
	var out strings.Builder
	for i, t := range terms {
		key := b.term(t)
		e := fmt.Sprintf("sum(%s{servq_term=%s})", rec, strconv.Quote(key))
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

// term registers a term and returns its servq_term.
func (b *steps) term(t sli.Term) string {
	key := t.Key()
	if !b.seen[key] {
		b.seen[key] = true
		b.terms = append(b.terms, t) // its sign is the SLOs'
	}
	return key
}

// window is the events of one side over w: the SLO's steps summed over w
// up to the period, the term windows added up beyond it.
func (b *steps) window(terms []sli.Term, stepRec string, sel func(string) string, w time.Duration) string {
	if !b.summed(w) {
		return fmt.Sprintf("clamp_min(sum_over_time(%s[%s]), 0)", sel(stepRec), sli.Window(span(w, b.step)))
	}
	b.long[w] = true
	return fmt.Sprintf("clamp_min(%s, 0)", b.sideOf(terms, recTermEvents+sli.Window(w)))
}

// group is the steps group: the term steps, their period sums and
// windows first, then every SLO's rules.
func (b *steps) group() (Group, error) {
	var parts []string
	for _, t := range b.terms {
		read := t
		if b.backfill && t.Raw != nil {
			// A backfill evaluates the past, which may be from before
			// servq pre-summed the counters: the raw ones are there in
			// any case, and their steps are the same.
			read = *t.Raw
		}
		parts = append(parts, fmt.Sprintf("label_replace(%s, \"servq_term\", %s, \"\", \"\")",
			sli.TermStep(read, b.step, lastWithin), strconv.Quote(replacement(t.Key()))))
	}
	for _, t := range b.terms {
		if len(b.long) == 0 {
			break // no term windows, no step counts
		}
		parts = append(parts, fmt.Sprintf("label_replace(vector(1), \"servq_term\", %s, \"\", \"\")", strconv.Quote(replacement(stepsPrefix+t.Key()))))
	}
	rules := []Rule{{Record: recTermEvents + sli.Window(b.step), Expr: strings.Join(parts, "\nor\n")}}
	rules = append(rules, b.termPeriods()...)
	slos, err := b.sloRules()
	if err != nil {
		return Group{}, err
	}
	return Group{Name: "servq-slo-steps", Interval: sli.Window(b.step), Rules: append(rules, slos...)}, nil
}

// termPeriods are the rules that sum the term steps per period and the
// term windows longer than the period from those sums, exactly: a window
// holds the same steps as the sum of its steps would, reading one sample
// per period of the window instead of one per step.
//
// Let C(t) be the sum of a term's steps recorded up to t, and call the
// evaluations whose time() lies in the first step of a period (time() %
// period < step) marks: one an evaluation period when none is missed.
//
//   - open_period (A) is C(t) - C(m), m the last mark at or before t: the
//     steps since it, 0 at a mark. Each evaluation adds its step to the
//     last value (or restarts at its step when there is none within a
//     period: a gap in evaluation longer than a period loses the steps
//     of the open period before it, on top of the gap's own);
//   - period (H), recorded at marks only, is C(m) - C(m'), m' the mark
//     before: the last open value plus the mark's step;
//   - the term window over w is C(t) - C(t - w): the sum of H over the
//     marks in (t - w, t], which is C(m_t) - C(m_{t-w}), plus A(t) =
//     C(t) - C(m_t), minus A(t - w) = C(t - w) - C(m_{t-w}).
//
// This holds for any set of marks: a missed or an extra mark changes
// which steps H and A hold, not their sum, so the windows stay exact
// when evaluations are missed (their steps are missing, as with the sum
// of steps) or time() falls on a boundary. The ranges are those of span
// (half a step short of w): the marks of (t - w, t], and A at the last
// evaluation at or before t - w, so the window holds the steps of the
// evaluations in (t - w, t], as sum_over_time over the steps does.
//
// Backfilling tools (promtool tsdb create-blocks-from rules, vmalert's
// replay) evaluate a rule over a range at once, so a rule cannot read its
// own earlier values there; for them (servq rules --level) the period
// sums are computed from the steps alone, which is exact when no
// evaluation is missing, as in a backfill: A(t) is the sum of the steps
// since the mark, over a range of as many steps as t is past the mark
// (one branch per step of the period), and H the sum of the period's
// steps at the mark.
func (b *steps) termPeriods() []Rule {
	if len(b.long) == 0 {
		return nil
	}
	stepRec := recTermEvents + sli.Window(b.step)
	p := sli.Window(b.period)
	ps, ss := sli.Num(b.period.Seconds()), sli.Num(b.step.Seconds())
	// The last open value, or nothing yet: 0.
	last := fmt.Sprintf("(last_over_time(%s[%s]) or %s * 0)", recTermOpen, p, stepRec)
	period := fmt.Sprintf("(%s + %s)\nand on() (vector(time() %% %s) < %s)", last, stepRec, ps, ss)
	open := fmt.Sprintf("(%s + %s)\n* (time() %% %s >= bool %s)", last, stepRec, ps, ss)
	if b.backfill {
		period = fmt.Sprintf("sum_over_time(%s[%s])\nand on() (vector(time() %% %s) < %s)", stepRec, sli.Window(span(b.period, b.step)), ps, ss)
		var branches []string
		for j := time.Duration(1); j*b.step < b.period; j++ {
			branches = append(branches, fmt.Sprintf("(sum_over_time(%s[%s]) and on() (vector(time() %% %s) >= %s < %s))",
				stepRec, sli.Window(span(j*b.step, b.step)), ps, sli.Num((j*b.step).Seconds()), sli.Num(((j+1)*b.step).Seconds())))
		}
		open = strings.Join(append(branches, stepRec+" * 0"), "\nor ")
	}
	rules := []Rule{{Record: recTermPeriod, Expr: period}, {Record: recTermOpen, Expr: open}}
	var ws []time.Duration
	for w := range b.long {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i] < ws[j] })
	for _, w := range ws {
		r := sli.Window(span(w, b.step))
		rules = append(rules, Rule{Record: recTermEvents + sli.Window(w), Expr: fmt.Sprintf(
			"(sum_over_time(%s[%s]) or %s * 0)\n+ %s\n- (last_over_time(%s[%s] offset %s) or %s * 0)",
			recTermPeriod, r, recTermOpen, recTermOpen, recTermOpen, p, r, recTermOpen)})
	}
	return rules
}

// stepSLO is an SLO whose events are sums of servq counters, as the
// steps group records it.
type stepSLO struct {
	id      string
	own     map[string]string // the SLO's labels of its own (config labels)
	counts  *sli.Counts
	window  time.Duration
	windows []time.Duration // its ratio windows
}

// add registers an SLO whose events are sums of servq counters and
// returns its bad events over a window, for the low-volume guard of its
// alerts. Its recordings are written by sloRules, together with every
// other such SLO's.
func (b *steps) add(s *config.SLO, c *sli.Counts, id string, sel func(string) string, windows []time.Duration) func(time.Duration) string {
	for _, t := range append(append([]sli.Term(nil), c.Bad...), c.Total...) {
		b.term(t)
	}
	// The term windows its recordings read (sloRules) are known now,
	// before the steps group is written: its window and ratio windows.
	for _, w := range append([]time.Duration{s.Window.D()}, windows...) {
		if b.summed(w) {
			b.long[w] = true
		}
	}
	b.slos = append(b.slos, stepSLO{id: id, own: s.Labels, counts: c, window: s.Window.D(), windows: windows})
	window, ss := s.Window.D(), sli.Window(b.step)
	return func(w time.Duration) string {
		if w == window && sli.Window(w) != ss {
			return sel(recBadEvents + sli.Window(w))
		}
		return b.window(c.Bad, recBadEvents+ss, sel, w)
	}
}

// recTermWeight holds, per SLO, side and term, the sign with which the
// term's events count on that side of the SLO: the rules that record
// every SLO at once join the term series with it.
const recTermWeight = "servq:slo_term_weight"

// sloRules are the recordings of every SLO whose events are sums of
// servq counters, one rule per recorded series name and window for all
// of them: Prometheus spends a fixed time on every rule at every
// evaluation (it formats the expression, parses it again, runs it and
// commits its samples: about half a millisecond), so that 50 SLOs
// recorded one rule each cost over a thousand rules and most of an
// evaluation's time, where these are a few dozen whatever the number of
// SLOs. The series are the same, label for label, as one rule per SLO
// would record:
//
//   - servq:slo_term_weight{servq_term, servq_side="bad"|"total", SLO
//     labels}: the indicator's sign of every term on each side;
//   - servq:slo_bad_events:increase<step> and servq:slo_events:increase<step>:
//     each SLO's events of the last step, the term steps times their
//     weights, summed per SLO;
//   - servq:slo_bad_events:increase<window> and servq:slo_events:increase<window>
//     for every SLO window, the budget in events;
//   - slo:sli_error:ratio_rate<w>, bad over total events in w for every
//     SLO that records w: windows up to the period sum the SLO's steps,
//     longer ones add up the term windows times their weights;
//   - servq:slo_window_coverage:ratio, the share of its window whose steps
//     every term of the SLO holds.
//
// Each rule selects the SLOs it records by sloth_id, so that series of
// the same names recorded by other rules (custom SLOs, other rule files)
// are never read.
func (b *steps) sloRules() ([]Rule, error) {
	if len(b.slos) == 0 {
		return nil, nil
	}
	ss := sli.Window(b.step)
	var weights []constRow
	perID := map[string]map[string]string{}
	for _, s := range b.slos {
		perID[s.id] = s.own
		for _, side := range []struct {
			name  string
			terms []sli.Term
		}{{"bad", s.counts.Bad}, {"total", s.counts.Total}} {
			// A term on one side twice counts with the sum of its signs.
			sum := map[string]float64{}
			var keys []string
			for _, t := range side.terms {
				k := b.term(t)
				if _, ok := sum[k]; !ok {
					keys = append(keys, k)
				}
				sum[k] += t.Sign
			}
			for _, k := range keys {
				weights = append(weights, constRow{value: sum[k], id: s.id, packed: []string{side.name, k}})
			}
		}
	}
	weightExpr, err := constExpr(b.service, []string{"servq_side", "servq_term"}, weights, perID)
	if err != nil {
		return nil, err
	}
	rules := []Rule{{Record: recTermWeight, Expr: weightExpr}}

	all := make([]string, len(b.slos))
	for i, s := range b.slos {
		all[i] = s.id
	}
	stepLabels := map[string]string{"sloth_window": ss}
	rules = append(rules,
		Rule{Record: recBadEvents + ss, Expr: weighted("bad", all, recTermEvents+ss), Labels: stepLabels},
		Rule{Record: recEvents + ss, Expr: weighted("total", all, recTermEvents+ss), Labels: stepLabels})

	// The SLO windows: events (the budget in events) and coverage.
	byWindow := map[time.Duration][]string{}
	for _, s := range b.slos {
		byWindow[s.window] = append(byWindow[s.window], s.id)
	}
	for _, w := range sortedDurations(byWindow) {
		ws, ids := sli.Window(w), byWindow[w]
		if ws == ss {
			continue // the steps are that window's events
		}
		wl := map[string]string{"sloth_window": ws}
		rules = append(rules,
			Rule{Record: recBadEvents + ws, Expr: b.events("bad", ids, w), Labels: wl},
			Rule{Record: recEvents + ws, Expr: b.events("total", ids, w), Labels: wl})
	}
	// Ratios of every window some SLO records.
	ratioIDs := map[time.Duration][]string{}
	for _, s := range b.slos {
		for _, w := range s.windows {
			ratioIDs[w] = append(ratioIDs[w], s.id)
		}
	}
	for _, w := range sortedDurations(ratioIDs) {
		ids := ratioIDs[w]
		bad, total := b.events("bad", ids, w), b.events("total", ids, w)
		// Without traffic in w the ratio is 0 (total * 0 keeps the
		// SLO's labels), as one rule per SLO would record with "or
		// vector(0)".
		rules = append(rules, Rule{Record: recErrorRatio + sli.Window(w),
			Expr:   fmt.Sprintf("(\n  %s\n/\n  (%s > 0)\n)\nor\n  %s * 0", bad, total, total),
			Labels: map[string]string{"sloth_window": sli.Window(w)}})
	}
	// (One rule for all windows: rules of one name without labels of
	// their own are duplicates to promtool's linter.)
	var coverage []string
	for _, w := range sortedDurations(byWindow) {
		coverage = append(coverage, fmt.Sprintf("clamp_max(%s * %s / %s, 1)",
			b.stepCounts(byWindow[w], w), sli.Num(b.step.Seconds()), sli.Num(w.Seconds())))
	}
	return append(rules, Rule{Record: recCoverage, Expr: balancedOr(coverage)}), nil
}

// events is one side's events over w of the SLOs ids, one series per SLO
// with its labels (and sloth_window of the steps when summed from them):
// their steps summed over w up to the period, the term windows times
// their weights beyond it.
func (b *steps) events(side string, ids []string, w time.Duration) string {
	rec := recBadEvents
	if side == "total" {
		rec = recEvents
	}
	if !b.summed(w) {
		return fmt.Sprintf("clamp_min(sum_over_time(%s[%s]), 0)",
			sli.Selector(rec+sli.Window(b.step), idMatcher(ids)), sli.Window(span(w, b.step)))
	}
	return "clamp_min(" + weighted(side, ids, recTermEvents+sli.Window(w)) + ", 0)"
}

// weighted is one side of the SLOs ids from the term series rec: each
// term's series times its weight, summed per SLO. (The term series are
// summed by servq_term first: a ruler that adds labels of its own, or a
// series left over from an older rule file, must not make the match
// many-to-many, which would fail the rule for every SLO at once.)
func weighted(side string, ids []string, rec string) string {
	return fmt.Sprintf("sum without (servq_term, servq_side) (%s * on(servq_term) group_left() sum by (servq_term) (%s))",
		sli.Selector(recTermWeight, merge(idMatcher(ids), map[string]string{"servq_side": side})), rec)
}

// stepCounts is, per SLO of ids, the number of steps of w that every
// one of its terms holds: the least over its terms (a term added to the
// config later has fewer), without labels but the SLO's.
func (b *steps) stepCounts(ids []string, w time.Duration) string {
	if !b.summed(w) {
		return fmt.Sprintf("sum without (sloth_window) (count_over_time(%s[%s]))",
			sli.Selector(recEvents+sli.Window(b.step), idMatcher(ids)), sli.Window(span(w, b.step)))
	}
	// The step counts are the term series servq_term="steps:<term>":
	// renamed to their term, they join the weights of the SLOs' terms.
	counts := fmt.Sprintf("sum by (servq_term) (label_replace(%s, \"servq_term\", \"$1\", \"servq_term\", %s))",
		sli.Selector(recTermEvents+sli.Window(w), map[string]string{"servq_term": "=~" + regexp.QuoteMeta(stepsPrefix) + ".*"}),
		strconv.Quote(regexp.QuoteMeta(stepsPrefix)+"(.*)"))
	return fmt.Sprintf("min without (servq_term, servq_side) (%s * 0 + on(servq_term) group_left() %s)",
		sli.Selector(recTermWeight, idMatcher(ids)), counts)
}

// idMatcher selects the SLOs ids by sloth_id.
func idMatcher(ids []string) map[string]string {
	if len(ids) == 1 {
		return map[string]string{"sloth_id": ids[0]}
	}
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = regexp.QuoteMeta(id)
	}
	return map[string]string{"sloth_id": "=~" + strings.Join(quoted, "|")}
}

func sortedDurations[V any](m map[time.Duration]V) []time.Duration {
	out := make([]time.Duration, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
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
