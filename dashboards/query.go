package dashboards

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/servq/servq/slo/sli"
)

// Label filters of the template variables. Only labels a metric has may be
// filtered: a matcher on a missing label would match nothing but "".
var (
	byCollector = []string{"collector"}
	byQueue     = []string{"collector", "queue"}
	byQueueChan = []string{"collector", "queue", "channel"}
)

// s builds a selector: metric{var filters, extra matchers}.
func s(metric string, vars []string, extra ...string) string {
	var m []string
	for _, l := range vars {
		m = append(m, l+`=~"$`+l+`"`)
	}
	m = append(m, extra...)
	if len(m) == 0 {
		return metric
	}
	return metric + "{" + strings.Join(m, ",") + "}"
}

// rate is sum(rate(sel[$__rate_interval])), optionally by labels.
func rate(sel string, by ...string) string {
	return agg("sum", by) + "(rate(" + sel + "[$__rate_interval]))"
}

// inc is sum(increase(sel[$__range])): totals over the dashboard's range.
func inc(sel string, by ...string) string {
	return agg("sum", by) + "(increase(" + sel + "[$__range]))"
}

func agg(op string, by []string) string {
	if len(by) == 0 {
		return op + " "
	}
	return op + " by (" + strings.Join(by, ", ") + ") "
}

// quantile over a histogram's buckets.
func quantile(q, metric string, vars []string, extra ...string) string {
	return "histogram_quantile(" + q + ", " + rate(s(metric+"_bucket", vars, extra...), "le") + ")"
}

// DedupLabels tell the copies of one series apart (sli.DedupLabels).
var DedupLabels = sli.DedupLabels

// Placeholders stand in for Grafana's range variables while a query goes
// through the PromQL parser, which does not know them. The durations are
// ones no panel uses (they print back as written: 1111d, 2221d).
var rangeVars = []struct{ variable, placeholder string }{
	{"[$__rate_interval]", "[1111d]"},
	{"[$__range]", "[2221d]"},
}

// withPlaceholders replaces Grafana's range variables for the parser.
func withPlaceholders(expr string) string {
	for _, r := range rangeVars {
		expr = strings.ReplaceAll(expr, r.variable, r.placeholder)
	}
	return expr
}

// isRawMetric says whether a series is scraped as is, so it carries the
// job and instance labels Prometheus attaches: servq's own metrics and
// Prometheus' scrape metrics. Recorded series (slo:*, servq:*, the
// sloth_slo_info info series) and ALERTS carry only the labels their rules
// keep, and servq's rules aggregate job and instance away.
func isRawMetric(name string) bool {
	if strings.Contains(name, ":") || name == "sloth_slo_info" || name == "ALERTS" {
		return false
	}
	return strings.HasPrefix(name, "servq_") || strings.HasPrefix(name, "scrape_") || name == "up"
}

// conform brings a panel query to the ecosystem's conventions:
//   - every selector of a raw metric gets job=~"$job" and
//     instance=~"$instance" matchers (the $job and $instance variables);
//   - every series, raw or recorded, passes through
//     max without (DedupLabels) right after it is read (after the range
//     function for counters), so that copies of one series from two servq
//     instances, two scrape jobs or two Prometheus replicas count once
//     before any sum. max, not sum: two identical servq instances reading
//     the same sources count the same events, so their rates are the same
//     figure twice, and the larger one is the one that missed nothing.
//
// Selectors already filtering job or instance keep their matcher.
func conform(expr string) (string, error) {
	for _, r := range rangeVars {
		if strings.Contains(expr, r.placeholder) {
			return "", fmt.Errorf("query uses the placeholder range %s: %s", r.placeholder, expr)
		}
	}
	node, err := parser.ParseExpr(withPlaceholders(expr))
	if err != nil {
		return "", fmt.Errorf("query does not parse: %w\n%s", err, expr)
	}
	out := dedup(node, true).String()
	for _, r := range rangeVars {
		out = strings.ReplaceAll(out, r.placeholder, r.variable)
	}
	return out, nil
}

// dedup rewrites an expression bottom-up, wrapping each series read (a
// selector, or a range function over a selector) in max without
// (DedupLabels). Operands of a binary operation matching on one of those
// labels keep them (only the matchers are added): the operation itself
// needs them, and an aggregation around it must deduplicate.
func dedup(e parser.Expr, wrap bool) parser.Expr {
	collapse := func(e parser.Expr) parser.Expr {
		if !wrap {
			return e
		}
		return &parser.AggregateExpr{Op: parser.MAX, Without: true, Grouping: DedupLabels, Expr: e}
	}
	switch n := e.(type) {
	case *parser.VectorSelector:
		addJobInstance(n)
		return collapse(n)
	case *parser.Call:
		for i, a := range n.Args {
			if ms, ok := a.(*parser.MatrixSelector); ok {
				addJobInstance(ms.VectorSelector.(*parser.VectorSelector))
				// A range function returns one series per series read:
				// the copies are deduplicated on its result.
				return collapse(n)
			}
			n.Args[i] = dedup(a, wrap)
		}
	case *parser.AggregateExpr:
		if isDedup(n) {
			// Already deduplicated (the SLI expressions of slo/sli are):
			// the matchers only.
			n.Expr = dedup(n.Expr, false)
			return n
		}
		n.Expr = dedup(n.Expr, wrap)
		if n.Param != nil {
			n.Param = dedup(n.Param, wrap)
		}
	case *parser.BinaryExpr:
		if vm := n.VectorMatching; vm != nil && vm.On {
			for _, l := range vm.MatchingLabels {
				if slices.Contains(DedupLabels, l) {
					wrap = false
				}
			}
		}
		n.LHS, n.RHS = dedup(n.LHS, wrap), dedup(n.RHS, wrap)
	case *parser.ParenExpr:
		n.Expr = dedup(n.Expr, wrap)
	case *parser.UnaryExpr:
		n.Expr = dedup(n.Expr, wrap)
	case *parser.SubqueryExpr:
		n.Expr = dedup(n.Expr, wrap)
	}
	return e
}

func addJobInstance(vs *parser.VectorSelector) {
	if !isRawMetric(vs.Name) {
		return
	}
	have := map[string]bool{}
	for _, m := range vs.LabelMatchers {
		have[m.Name] = true
	}
	for _, l := range []string{"job", "instance"} {
		if !have[l] {
			vs.LabelMatchers = append(vs.LabelMatchers, labels.MustNewMatcher(labels.MatchRegexp, l, "$"+l))
		}
	}
}

// isDedup says whether an aggregation collapses the copies of a series.
func isDedup(a *parser.AggregateExpr) bool {
	return a.Op == parser.MAX && a.Without && slices.Equal(a.Grouping, DedupLabels)
}
