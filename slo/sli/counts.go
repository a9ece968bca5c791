package sli

import (
	"fmt"
	"math"

	"github.com/servq/servq/config"
)

// Term is one counter of a linear combination: Sign × sum(Metric{Matchers}).
// Matchers are equalities; a histogram bucket carries its bound in Le.
type Term struct {
	Sign     float64
	Metric   string
	Matchers map[string]string
	Le       *float64
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
