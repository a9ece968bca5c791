package rules

import (
	"fmt"
	"strings"
	"testing"
)

// copies repeats an input series for each copy Prometheus may hold of a
// servq's series: the servq scraped as job servq on instance a, a second
// identical servq instance b, and instance a scraped by a second job.
func copies(series, values string) string {
	var out []string
	for _, c := range []string{`job="servq",instance="a:9090"`, `job="servq",instance="b:9090"`, `job="servq-copy",instance="a:9090"`} {
		out = append(out, fmt.Sprintf("    - {series: '%s,%s}', values: '%s'}", strings.TrimSuffix(series, "}"), c, values))
	}
	return strings.Join(out, "\n")
}

// Two identical servq instances reading the same sources, or one servq
// scraped by two jobs, count the same events: the recorded event counts
// and summed KPIs are those of one copy, not three times as many.
func TestCopiesOfAServqCountOnce(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
`+copies(`servq_ticket_slo_events_total{collector="zd",slo="reply",result="good",queue="q",channel="email",priority="normal"}`, "0+10x120")+`
`+copies(`servq_ticket_slo_events_total{collector="zd",slo="reply",result="bad",queue="q",channel="email",priority="normal"}`, "0+2x120")+`
`+copies(`servq_queue_calls_waiting{collector="pbx",queue="sales"}`, "12x120")+`
  promql_expr_test:
    # 2 bad tickets a minute: 180 in 90 minutes, once; 12 tickets a
    # minute in all.
    - expr: servq:slo_bad_events:increase30d{sloth_slo="reply"}
      eval_time: 90m
      exp_samples: [{labels: 'servq:slo_bad_events:increase30d{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="30d"}', value: 180}]
    - expr: servq:slo_events:increase30d{sloth_slo="reply"}
      eval_time: 90m
      exp_samples: [{labels: 'servq:slo_events:increase30d{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="30d"}', value: 1080}]
    - expr: slo:sli_error:ratio_rate5m{sloth_slo="reply"}
      eval_time: 90m
      exp_samples: [{labels: 'slo:sli_error:ratio_rate5m{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="5m"}', value: 0.16666666666666666}]
    # 12 callers waiting, not 36.
    - expr: servq:target:value{target="waiting"}
      eval_time: 90m
      exp_samples: [{labels: 'servq:target:value{target="waiting",kpi="calls_waiting",queue="sales"}', value: 12}]
`)
}
