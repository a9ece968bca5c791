package dashboards

import (
	"strings"
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
