package sli

import (
	"fmt"
	"hash/fnv"

	"github.com/servq/servq/config"
)

// SLOInput is the counter family in which servq pre-sums, per SLO, the
// counters its indicator reads (collectors/quality): the rules' steps read
// a few series per SLO instead of every queue's and channel's.
const SLOInput = "servq_slo_input_total"

// SLOInputInfo is 1 for every input of the running config's SLOs, counted
// or not yet (cmd/servq/app): the rules' ServqSLOInputNotServed checks
// that what they read is served.
const SLOInputInfo = "servq_slo_input_info"

// Input is one sum of counters an SLO's indicator reads: servq adds to
// servq_slo_input_total{slo=SLO, input=Name, definition=Definition}
// exactly what it adds to the series Term selects, at the same commit.
type Input struct {
	SLO, Name, Definition string
	// Term is the raw counters summed (Sign 1): metric, the SLO's
	// filters and the bucket bound, as the SLI's PromQL selects them.
	Term Term
}

// inputNames name the inputs by the raw counter they sum.
var inputNames = map[string]string{
	callsOffered:   "offered",
	callsAnswered:  "answered",
	callsAbandoned: "abandoned",
	callsShort:     "short",
	callWaitBucket: "answered_within",
	ticketsSolved:  "solved",
	ticketsFCR:     "solved_first_contact",
	csatBucket:     "scored_below",
	csatCount:      "scored",
	csatRetBucket:  "retracted_below",
	csatRetCount:   "retracted",
	ticketSLOCorr:  "corrected",
}

func inputName(t Term) string {
	if t.Metric == ticketSLOEvents {
		if r := t.Matchers["result"]; r != "" {
			return r // good, bad
		}
		return "events"
	}
	return inputNames[t.Metric]
}

// definition is a short hash of the raw selector an input sums: a change
// of the SLO's filters or threshold is another selector, so its input is
// another series, counting from 0 from the reload that brought it, and
// never mixing two definitions in one series.
func definition(selector string) string {
	h := fnv.New32a()
	h.Write([]byte(selector))
	return fmt.Sprintf("%08x", h.Sum32())
}

// rawStepCounts is CountsFor as the step rules count it: a ticket SLO's
// total is its good plus its bad events (each ticket event is one of the
// two), so the bad events are read once, not again among all of them.
func rawStepCounts(cfg *config.Config, s *config.SLO) (*Counts, error) {
	c, err := CountsFor(cfg, s)
	if err != nil || c == nil {
		return c, err
	}
	if s.Indicator == "ticket_first_reply" || s.Indicator == "ticket_resolution" {
		good := c.Bad[0]
		good.Matchers = with(good.Matchers, "result", "good")
		c.Total = append([]Term{good}, c.Bad...)
	}
	return c, nil
}

// Inputs are the distinct sums of counters an SLO's step counts read, in
// a fixed order; nil for a custom SLO.
func Inputs(cfg *config.Config, s *config.SLO) ([]Input, error) {
	c, err := rawStepCounts(cfg, s)
	if err != nil || c == nil {
		return nil, err
	}
	var out []Input
	seen := map[string]bool{}
	for _, t := range append(append([]Term(nil), c.Bad...), c.Total...) {
		sel := t.Selector()
		if seen[sel] {
			continue
		}
		seen[sel] = true
		t.Sign = 1
		out = append(out, Input{SLO: s.Name, Name: inputName(t), Definition: definition(sel), Term: t})
	}
	return out, nil
}

// inputTerm is the servq_slo_input_total term that counts what t counts.
func inputTerm(s *config.SLO, t Term) Term {
	raw := t
	raw.Sign = 1
	return Term{Sign: t.Sign, Metric: SLOInput, Raw: &raw, Matchers: map[string]string{
		"slo": s.Name, "input": inputName(t), "definition": definition(t.Selector()),
	}}
}

// StepCounts are the counts an SLO's step recordings read: its inputs,
// each a servq_slo_input_total term whose Raw is the counters it sums;
// nil for a custom SLO. Dashboards, reports and the status page keep
// CountsFor: they read breakdowns by queue and history from before the
// inputs existed.
func StepCounts(cfg *config.Config, s *config.SLO) (*Counts, error) {
	c, err := rawStepCounts(cfg, s)
	if err != nil || c == nil {
		return c, err
	}
	conv := func(ts []Term) []Term {
		out := make([]Term, len(ts))
		for i, t := range ts {
			out[i] = inputTerm(s, t)
		}
		return out
	}
	return &Counts{Bad: conv(c.Bad), Total: conv(c.Total)}, nil
}
