package sli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/servq/servq/config"
)

// KPI is a target's KPI as PromQL. Value returns one sample per group of
// Target.By (one overall when By is empty); survey KPIs return nothing for
// a group with fewer than min_responses responses in the window, so that
// no alert judges a handful of answers.
type KPI struct {
	Unit  string // "", "percent", "seconds", "score", "calls", "tickets"
	Value string
}

func by(labels []string, extra ...string) string {
	all := append(append([]string(nil), labels...), extra...)
	return "sum by (" + strings.Join(all, ", ") + ")"
}

func on(labels []string) string { return "on(" + strings.Join(labels, ", ") + ")" }

// increaseBy is sum by (labels) (increase(metric{matchers}[window])), each
// series' copies counted once.
func increaseBy(labels []string, metric string, matchers map[string]string, window string) string {
	return fmt.Sprintf("%s (%s)", by(labels), Dedup(fmt.Sprintf("increase(%s[%s])", Selector(metric, matchers), window)))
}

// csatNet is a CSAT counter minus its retractions (ticket ratings the
// customer changed; the new score is counted again), per group: a group
// without retractions keeps its value instead of vanishing from the
// subtraction.
func csatNet(labels []string, metric, retracted string, f map[string]string, w string) string {
	m := increaseBy(labels, metric, f, w)
	return fmt.Sprintf("(%s - (%s or %s * 0))", m, increaseBy(labels, retracted, f, w), m)
}

// ForTarget returns the PromQL of a KPI target.
func ForTarget(cfg *config.Config, t *config.Target) (*KPI, error) {
	f, b, w := t.Filters, t.By, ""
	if t.Window > 0 {
		w = Window(t.Window.D())
	}
	enough := func(count string) string {
		return fmt.Sprintf("(%s >= %d)", count, t.MinResponses)
	}
	// perResponse divides a per-group sum by a per-group count guarded
	// by min_responses.
	ratio := func(numerator, den string, scale float64) string {
		if scale != 1 {
			return fmt.Sprintf("%s * (%s) / %s", num(scale), numerator, enough(den))
		}
		return fmt.Sprintf("(%s) / %s", numerator, enough(den))
	}
	switch t.KPI {
	case "nps":
		all := increaseBy(b, "servq_nps_responses_total", f, w)
		cat := func(c string) string {
			return fmt.Sprintf("(%s or %s * 0)", increaseBy(b, "servq_nps_responses_total", with(f, "category", c), w), all)
		}
		return &KPI{Unit: "score", Value: ratio(cat("promoter")+" - "+cat("detractor"), all, 100)}, nil
	case "csat_average":
		return &KPI{Unit: "score", Value: ratio(csatNet(b, "servq_csat_score_sum", "servq_csat_retracted_score_sum", f, w), csatNet(b, "servq_csat_score_count", "servq_csat_retracted_score_count", f, w), 1)}, nil
	case "csat_satisfied":
		count := csatNet(b, "servq_csat_score_count", "servq_csat_retracted_score_count", f, w)
		return &KPI{Unit: "percent", Value: ratio(
			fmt.Sprintf("(%s or %s * 0)", csatNet(b, "servq_csat_satisfied_total", "servq_csat_satisfied_retracted_total", f, w), count),
			count, 100)}, nil
	case "ces_average":
		return &KPI{Unit: "score", Value: ratio(increaseBy(b, "servq_ces_score_sum", f, w), increaseBy(b, "servq_ces_score_count", f, w), 1)}, nil
	case "servqual_gap":
		g := gapByDimension(b, with(f, "dimension", t.Dimension), w)
		return &KPI{Unit: "score", Value: fmt.Sprintf("sum without (dimension) (\n%s\n)\nand %s %s", g, on(b), enough(increaseBy(b, "servq_survey_responses_total", with(f, "kind", "servqual"), w)))}, nil
	case "servqual_weighted_gap":
		value := weightedGap(cfg, b, f, w) + fmt.Sprintf("\nand %s %s", on(b),
			enough(increaseBy(b, "servq_survey_responses_total", with(f, "kind", "servqual"), w)))
		return &KPI{Unit: "score", Value: value}, nil
	case "open_tickets":
		return &KPI{Unit: "tickets", Value: fmt.Sprintf("%s (%s)", by(b), Dedup(Selector("servq_tickets_open", f)))}, nil
	case "oldest_open_ticket_age":
		return &KPI{Unit: "seconds", Value: fmt.Sprintf("time() - %s (%s)", strings.Replace(by(b), "sum", "min", 1), Selector("servq_tickets_oldest_open_created_timestamp_seconds", f))}, nil
	case "calls_waiting":
		return &KPI{Unit: "calls", Value: fmt.Sprintf("%s (%s)", by(b), Dedup(Selector("servq_queue_calls_waiting", f)))}, nil
	case "longest_wait":
		return &KPI{Unit: "seconds", Value: fmt.Sprintf("%s (%s)", strings.Replace(by(b), "sum", "max", 1), Selector("servq_queue_longest_wait_seconds", f))}, nil
	}
	return nil, fmt.Errorf("target %s: unknown KPI %q", t.Name, t.KPI)
}

// gapByDimension is mean(perception) - mean(expectation) per group and
// dimension over the window.
func gapByDimension(b []string, f map[string]string, w string) string {
	mean := func(scale string) string {
		m := with(f, "scale", scale)
		return fmt.Sprintf("(\n    %s\n  /\n    %s\n  )",
			increaseBy(append(append([]string(nil), b...), "dimension"), "servq_servqual_score_sum", m, w),
			increaseBy(append(append([]string(nil), b...), "dimension"), "servq_servqual_score_count", m, w))
	}
	return fmt.Sprintf("  %s\n-\n  %s", mean("perception"), mean("expectation"))
}

// WeightedServqualGap is the weighted SERVQUAL gap over window as one
// expression, for dashboards.
func WeightedServqualGap(cfg *config.Config, f map[string]string, w string) string {
	return weightedGap(cfg, nil, f, w)
}

// weightedGap is the weighted SERVQUAL index per group of b: the sum over
// dimensions of weight × gap, divided by the weights of the dimensions
// that have a gap. Weights: model.servqual_weights; else the respondents'
// 100-point splits in the window, where any respondent of the group gave
// one; else equal.
func weightedGap(cfg *config.Config, b []string, f map[string]string, w string) string {
	bd := append(append([]string(nil), b...), "dimension")
	g := "(\n" + gapByDimension(b, f, w) + "\n)"
	var weights string
	if ws := cfg.Model.ServqualWeights; len(ws) > 0 {
		var parts []string
		for _, d := range sortedDims(ws) {
			parts = append(parts, fmt.Sprintf("label_replace(vector(%s), \"dimension\", %q, \"\", \"\")", num(ws[d]), d))
		}
		weights = fmt.Sprintf("(%s * 0 + on(dimension) group_left() (%s))", g, strings.Join(parts, " or "))
	} else {
		points := increaseBy(bd, "servq_servqual_weight_points_total", f, w)
		total := increaseBy(b, "servq_servqual_weight_points_total", f, w)
		weights = fmt.Sprintf("((%s * 0 + (%s and %s (%s > 0))) or (%s * 0 + 1))", g, points, on(b), total, g)
	}
	return fmt.Sprintf("%s (%s * %s)\n/\n%s ((%s * 0 + 1) * %s)", by(b), g, weights, by(b), g, weights)
}

func sortedDims(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
