package rules

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// inputRecordings returns a change that puts first in a rule file a group
// recording every SLO input (servq_slo_input_total) from the raw counters
// of a test's input series, as servq sums them: per collector and copy
// (instance, job, …), the sum of the series the input's raw selector
// matches, at every evaluation. The promtool tests feed raw counters and
// expect the values computed by hand from them: with this group, they
// check that the rules reading the inputs compute them.
func inputRecordings(cfg *config.Config) func(*File) {
	var rules []Rule
	for _, s := range cfg.SLOs {
		ins, err := sli.Inputs(cfg, s)
		if err != nil {
			panic(err)
		}
		for _, in := range ins {
			expr := fmt.Sprintf("sum without (queue, channel, priority, outcome, le, survey, kind, result, slo) (%s)", in.Term.Selector())
			for _, l := range [][2]string{{"slo", in.SLO}, {"input", in.Name}, {"definition", in.Definition}} {
				expr = fmt.Sprintf("label_replace(%s, %q, %s, \"\", \"\")", expr, l[0], strconv.Quote(l[1]))
			}
			rules = append(rules, Rule{Record: sli.SLOInput, Expr: expr})
		}
	}
	return func(f *File) {
		if len(rules) > 0 && !strings.HasPrefix(f.Groups[0].Name, "test-") {
			f.Groups = append([]Group{{Name: "test-slo-inputs", Interval: sli.Window(Step(cfg)), Rules: rules}}, f.Groups...)
		}
	}
}
