package sli

import (
	"fmt"
	"math"
	"time"

	"github.com/servq/servq/config"
)

// Term is one counter of a linear combination: Sign × sum(Metric{Matchers}).
// Matchers are equalities; a histogram bucket carries its bound in Le.
type Term struct {
	Sign     float64
	Metric   string
	Matchers map[string]string
	Le       *float64
	// Raw, on a servq_slo_input_total term (StepCounts), is the raw
	// counters it pre-sums: its step series is named after them (Key),
	// and backfilling rules read them.
	Raw *Term
}

// Key names the step series of a term (servq_term): the selector of the
// raw counters it counts, also for a servq_slo_input_total term, so that
// the steps recorded from raw counters before servq pre-summed them and
// those recorded from servq_slo_input_total after are one series, and
// every window sums across the switch.
func (t Term) Key() string {
	if t.Raw != nil {
		return t.Raw.Selector()
	}
	return t.Selector()
}

// Selector is the term's series selector.
func (t Term) Selector() string {
	if t.Le == nil {
		return Selector(t.Metric, t.Matchers)
	}
	return Selector(t.Metric, with(t.Matchers, "le", LeMatcher(*t.Le)))
}

// Counts are an SLO's bad and total events as sums of counters, for exact
// counts over a period (reports): each side is clamped at 0 after summing.
// Custom SLOs read arbitrary PromQL and have no Counts.
type Counts struct {
	Bad, Total []Term
}

func plus(m string, f map[string]string) Term  { return Term{Sign: 1, Metric: m, Matchers: f} }
func minus(m string, f map[string]string) Term { return Term{Sign: -1, Metric: m, Matchers: f} }

// CountsFor returns the counters of an SLO's indicator, by the same
// definitions as For.
func CountsFor(cfg *config.Config, s *config.SLO) (*Counts, error) {
	f := s.Filters
	switch s.Indicator {
	case "ticket_first_reply", "ticket_resolution":
		corr := minus(ticketSLOCorr, map[string]string{"slo": s.Name})
		return &Counts{
			Bad:   []Term{plus(ticketSLOEvents, map[string]string{"slo": s.Name, "result": "bad"}), corr},
			Total: []Term{plus(ticketSLOEvents, map[string]string{"slo": s.Name}), corr},
		}, nil
	case "ticket_fcr":
		return &Counts{
			Bad:   []Term{plus(ticketsSolved, f), minus(ticketsFCR, f)},
			Total: []Term{plus(ticketsSolved, f)},
		}, nil
	case "call_service_level":
		var total []Term
		switch s.AbandonPolicy {
		case config.AbandonExcludeShort:
			total = []Term{plus(callsOffered, f), minus(callsShort, f)}
		case config.AbandonExcludeAll:
			total = []Term{plus(callsAnswered, f)}
		default:
			total = []Term{plus(callsOffered, f)}
		}
		le := s.Threshold.D().Seconds()
		within := minus(callWaitBucket, with(f, "outcome", "answered"))
		within.Le = &le
		bad := append(append([]Term(nil), total...), within)
		return &Counts{Bad: bad, Total: total}, nil
	case "call_abandonment":
		return &Counts{
			Bad:   []Term{plus(callsAbandoned, f), minus(callsShort, f)},
			Total: []Term{plus(callsOffered, f), minus(callsShort, f)},
		}, nil
	case "csat":
		min := s.CSATMin
		if min == 0 {
			min = cfg.Model.CSATSatisfiedMin
		}
		var bad []Term
		if below := math.Ceil(min) - 1; below >= 1 {
			t, r := plus(csatBucket, f), minus(csatRetBucket, f)
			t.Le, r.Le = &below, &below
			bad = []Term{t, r}
		}
		return &Counts{Bad: bad, Total: []Term{plus(csatCount, f), minus(csatRetCount, f)}}, nil
	case "custom":
		return nil, nil
	}
	return nil, fmt.Errorf("slo %s: unknown indicator %q", s.Name, s.Indicator)
}

// TermStep is the increase of a term's counters over one step, exactly:
// for every series (its copies collapsed by Dedup) its last sample at or
// before a minute mark a (a multiple of step since the epoch, the last
// at or before the evaluation) minus its last sample at or before a -
// step, summed (the term's sign is the caller's). Evaluated every step,
// consecutive evaluations take consecutive marks, so the steps of a
// window add up to each counter's value at its end minus its value at
// its start: what increase() computes over the window, without
// extrapolation and reading only the last `within` of raw samples, so
// the cost of an SLO window no longer grows with its raw samples.
//
//   - Both values come from one read of the raw series: a subquery
//     evaluates the last samples at the marks of the last two steps, and
//     idelta takes the difference of its last two points. (Two instant
//     reads, now and `offset step`, read every series twice.)
//   - Samples are looked up with last_over_time over within rather than
//     an instant selector: range selectors skip the staleness markers of a
//     failed scrape, so a gap in scraping shorter than within moves its
//     events to the first step after it instead of losing them.
//   - A series with no sample within the lookback of a - step (a new
//     series) counts from its first sample, as increase() does: servq
//     serves new series at 0 for global.new_series_delay, so their first
//     events are seen.
//   - A decrease counts 0, not the whole new value: after Dedup a decrease
//     is most often the leading copy of a series going away, not a reset;
//     a true reset (a histogram whose buckets changed) loses the events
//     of the one step it falls in.
//
// The result is one sample without labels, 0 without series.
func TermStep(t Term, step, within time.Duration) string {
	last := Dedup(fmt.Sprintf("last_over_time(%s[%s])", t.Selector(), Window(within)))
	// The subquery's range of two steps holds the marks a and a - step
	// (and a - 2 steps when the evaluation falls on a mark, on
	// Prometheus 2, whose ranges include their start).
	return fmt.Sprintf("(sum(clamp_min(idelta(%s[%s:%s]), 0)) or vector(0))", last, Window(2*step), Window(step))
}
