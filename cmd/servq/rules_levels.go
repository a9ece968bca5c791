package main

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/servq/servq/slo/rules"
)

// ruleLevels gives each recorded series name of f its level: 1 when its
// expression reads raw series only, else one more than the deepest
// recorded series it reads. Backfilling rules (promtool tsdb
// create-blocks-from rules, vmalert -replay.*) evaluates a rule against
// what the storage held before the run, so a rule of level n reads its
// inputs only from passes 1..n-1: a file needs one pass per level.
func ruleLevels(f *rules.File) (map[string]int, int, error) {
	reads := map[string][]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record == "" {
				continue
			}
			expr, err := parser.ParseExpr(r.Expr)
			if err != nil {
				return nil, 0, fmt.Errorf("group %s, rule %s: %w", g.Name, r.Record, err)
			}
			if _, ok := reads[r.Record]; !ok {
				reads[r.Record] = []string{}
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					for _, m := range vs.LabelMatchers {
						if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
							reads[r.Record] = append(reads[r.Record], m.Value)
						}
					}
				}
				return nil
			})
		}
	}
	level := map[string]int{}
	visiting := map[string]bool{}
	var visit func(name string) (int, error)
	visit = func(name string) (int, error) {
		if l, ok := level[name]; ok {
			return l, nil
		}
		if visiting[name] {
			return 0, fmt.Errorf("recording rule %s reads itself through other rules", name)
		}
		visiting[name] = true
		l := 1
		for _, in := range reads[name] {
			if _, recorded := reads[in]; !recorded || in == name {
				// (A rule reading its own earlier values, the
				// live open period of the SLO windows, needs no
				// earlier pass; backfills get the form without
				// it, rules.GenerateBackfill.)
				continue
			}
			d, err := visit(in)
			if err != nil {
				return 0, err
			}
			l = max(l, d+1)
		}
		level[name] = l
		return l, nil
	}
	depth := 0
	for name := range reads {
		l, err := visit(name)
		if err != nil {
			return nil, 0, err
		}
		depth = max(depth, l)
	}
	return level, depth, nil
}

// ruleLevel is f with only the recording rules of level n (level and
// depth from ruleLevels), in their groups (groups left empty are
// dropped); alerts are left out, as rule backfills ignore them.
func ruleLevel(f *rules.File, level map[string]int, depth, n int) (*rules.File, error) {
	if n < 1 || n > depth {
		return nil, fmt.Errorf("--level %d: the recording rules are %d levels deep (1..%d)", n, depth, depth)
	}
	out := &rules.File{}
	for _, g := range f.Groups {
		kept := rules.Group{Name: g.Name, Interval: g.Interval}
		for _, r := range g.Rules {
			if r.Record != "" && level[r.Record] == n {
				kept.Rules = append(kept.Rules, r)
			}
		}
		if len(kept.Rules) > 0 {
			out.Groups = append(out.Groups, kept)
		}
	}
	return out, nil
}
