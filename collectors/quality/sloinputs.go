package quality

import (
	"fmt"
	"strings"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// sloInput is one input of an SLO (sli.Input) as the model counts it:
// each commit adds to servq_slo_input_total{slo, input, definition} what
// it adds to the series the input's raw selector matches. The rules then
// read one series per SLO input and collector instead of one per queue
// and channel, and the sum is exact by construction: the same deltas, in
// the same transaction, published together.
type sloInput struct {
	labels [3]string // slo, input, definition
	fam    *family
	count  bool // a histogram's _count
	// bucket is the index of the term's le among the family's bounds (a
	// histogram's _bucket); -1 when le is no bound, which PromQL's
	// selector would match nothing of either.
	bucket  int
	isBkt   bool
	matches []labelMatch
}

// labelMatch is one filter of a selector, on the label at idx of a
// series (-1: the family has no such label, which PromQL reads as "").
type labelMatch struct {
	idx   int
	match func(string) bool // sli.ValueMatcher
}

func (m labelMatch) ok(labels []string) bool {
	v := ""
	if m.idx >= 0 && m.idx < len(labels) {
		v = labels[m.idx]
	}
	return m.match(v)
}

// SLOInputs are the labels (slo, input, definition) of every SLO input
// the model counts, counted in yet or not: what servq_slo_input_info
// lists for the rules to check against.
func (m *Model) SLOInputs() [][3]string {
	out := make([][3]string, len(m.inputs))
	for i, in := range m.inputs {
		out[i] = in.labels
	}
	return out
}

// newSLOInputs resolves the inputs of every SLO of cfg against the
// catalog.
func newSLOInputs(cfg *config.Config, byName map[string]*family) ([]sloInput, error) {
	var out []sloInput
	for _, s := range cfg.SLOs {
		ins, err := sli.Inputs(cfg, s)
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			si, err := resolveInput(in, byName)
			if err != nil {
				return nil, fmt.Errorf("slo %s: %w", s.Name, err)
			}
			out = append(out, si)
		}
	}
	return out, nil
}

func resolveInput(in sli.Input, byName map[string]*family) (sloInput, error) {
	si := sloInput{labels: [3]string{in.SLO, in.Name, in.Definition}, bucket: -1}
	name := in.Term.Metric
	if si.fam = byName[name]; si.fam == nil {
		for _, suffix := range []string{"_bucket", "_count"} {
			if f := byName[strings.TrimSuffix(name, suffix)]; f != nil && f.kind == kindHistogram {
				si.fam, si.count, si.isBkt = f, suffix == "_count", suffix == "_bucket"
			}
		}
	}
	if si.fam == nil {
		return si, fmt.Errorf("input %s reads %s, which servq does not export", in.Name, name)
	}
	if si.isBkt {
		if in.Term.Le == nil {
			return si, fmt.Errorf("input %s reads buckets of %s without a bound", in.Name, name)
		}
		for i, b := range si.fam.buckets {
			if b == *in.Term.Le {
				si.bucket = i
			}
		}
	}
	for k, v := range in.Term.Matchers {
		match, err := sli.ValueMatcher(v)
		if err != nil {
			return si, fmt.Errorf("filters.%s: %w", k, err)
		}
		m := labelMatch{idx: -1, match: match}
		for i, l := range si.fam.labels {
			if l == k {
				m.idx = i
			}
		}
		si.matches = append(si.matches, m)
	}
	return si, nil
}

// of is what a run's delta of the input's family adds to the input.
func (in *sloInput) of(d *delta) float64 {
	switch {
	case in.count:
		return float64(d.count)
	case in.isBkt:
		var n uint64
		for i := 0; i <= in.bucket && i < len(d.counts); i++ {
			n += d.counts[i] // per bucket: the cumulative le count
		}
		return float64(n)
	}
	return d.value
}

func (in *sloInput) matchesLabels(labels []string) bool {
	for _, m := range in.matches {
		if !m.ok(labels) {
			return false
		}
	}
	return true
}

// sloInputs adds to every SLO input what this run adds to the series it
// sums; an input whose series the run touches exists from then on, at 0
// if nothing was added (the catalog's rule for counters an SLO reads).
// It runs once per commit, after every other delta and before they are
// written.
func (r *run) sloInputs() {
	ins := r.m.inputs
	if len(ins) == 0 {
		return
	}
	add := make(map[int]float64)
	for f, byKey := range r.deltas {
		if len(r.m.inputsOf[f]) == 0 {
			continue
		}
		for key, d := range byKey {
			for _, i := range r.cs.inputsFor(f, key, d.labels, r.m) {
				add[i] += ins[i].of(d)
			}
		}
	}
	for i, v := range add {
		r.add(r.m.cat.sloInput, v, ins[i].labels[:]...)
	}
}

// inputsFor is the inputs that sum the series key of f, remembered per
// series: the filters are matched once per series, not per commit.
// Called with cs.commit held.
func (cs *colState) inputsFor(f *family, key string, labels []string, m *Model) []int {
	byKey := cs.inputMatch[f]
	if byKey == nil {
		byKey = map[string][]int{}
		cs.inputMatch[f] = byKey
	}
	if got, ok := byKey[key]; ok {
		return got
	}
	var got []int
	for _, i := range m.inputsOf[f] {
		if m.inputs[i].matchesLabels(labels) {
			got = append(got, i)
		}
	}
	byKey[key] = got
	return got
}
