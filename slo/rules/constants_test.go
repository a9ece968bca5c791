package rules

import (
	"strings"
	"testing"
)

// The constants every SLO's rules join (term weights, objectives, info)
// are built for all SLOs at once (constExpr): each series must still get
// exactly its own SLO's labels, values with "$" (label_replace expands
// it) included, whether a label value is shared by all SLOs, by some or
// by one.
func TestConstantsCarryEachSLOsOwnLabels(t *testing.T) {
	cfg := `
global: {service: svc}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: a, indicator: call_abandonment, objective: 99, window: 30d, labels: {team: "x$1y", tier: "1"}, filters: {queue: "=~q$"}}
  - {name: b, indicator: call_abandonment, objective: 95, window: 7d, labels: {team: "x$1y", tier: "2"}}
  - {name: c, indicator: call_service_level, threshold: 20s, objective: 80, window: 30d, labels: {tier: "2"}}
`
	abandoned := `servq_calls_abandoned_total{queue=~\"q$\"}`
	short := `servq_calls_abandoned_short_total{queue=~\"q$\"}`
	offered := `servq_calls_offered_total{queue=~\"q$\"}`
	weight := func(slo, side, term, labels string, v string) string {
		return `{labels: 'servq:slo_term_weight{servq_side="` + side + `",servq_term="` + term + `",sloth_id="svc-` + slo + `",sloth_service="svc",sloth_slo="` + slo + `"` + labels + `}', value: ` + v + `}`
	}
	aLabels := `,team="x$1y",tier="1"`
	runPromtoolTestOf(t, cfg, `
- interval: 1m
  input_series: []
  promql_expr_test:
    - expr: servq:slo_term_weight{sloth_slo="a"}
      eval_time: 1m
      exp_samples:
        - `+weight("a", "bad", abandoned, aLabels, "1")+`
        - `+weight("a", "bad", short, aLabels, "-1")+`
        - `+weight("a", "total", offered, aLabels, "1")+`
        - `+weight("a", "total", short, aLabels, "-1")+`
    - expr: slo:objective:ratio
      eval_time: 1m
      exp_samples:
        - {labels: 'slo:objective:ratio{sloth_id="svc-a",sloth_service="svc",sloth_slo="a",team="x$1y",tier="1"}', value: 0.99}
        - {labels: 'slo:objective:ratio{sloth_id="svc-b",sloth_service="svc",sloth_slo="b",team="x$1y",tier="2"}', value: 0.95}
        - {labels: 'slo:objective:ratio{sloth_id="svc-c",sloth_service="svc",sloth_slo="c",tier="2"}', value: 0.8}
    - expr: slo:error_budget:ratio{sloth_slo="b"}
      eval_time: 1m
      exp_samples:
        - {labels: 'slo:error_budget:ratio{sloth_id="svc-b",sloth_service="svc",sloth_slo="b",team="x$1y",tier="2"}', value: 0.05}
    - expr: slo:time_period:days
      eval_time: 1m
      exp_samples:
        - {labels: 'slo:time_period:days{sloth_id="svc-a",sloth_service="svc",sloth_slo="a",team="x$1y",tier="1"}', value: 30}
        - {labels: 'slo:time_period:days{sloth_id="svc-b",sloth_service="svc",sloth_slo="b",team="x$1y",tier="2"}', value: 7}
        - {labels: 'slo:time_period:days{sloth_id="svc-c",sloth_service="svc",sloth_slo="c",tier="2"}', value: 30}
    - expr: sloth_slo_info{sloth_slo="c"}
      eval_time: 1m
      exp_samples:
        - {labels: 'sloth_slo_info{servq_indicator="call_service_level",servq_threshold="20s",servq_window="30d",sloth_id="svc-c",sloth_mode="servq",sloth_objective="80",sloth_service="svc",sloth_slo="c",sloth_spec="servq/v1",tier="2"}', value: 1}
`, nil)
}

// The constants pack label values into one label with a separator no
// value may hold: such a value is refused with its text, not mangled.
// (Counter selectors are Go-quoted, so a filter cannot bring one in.)
func TestConstantsRefuseTheSeparator(t *testing.T) {
	_, err := constExpr("svc", []string{"servq_term"}, []constRow{{value: 1, id: "svc-a", packed: []string{"q" + keySep + "r"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "U+001F") {
		t.Fatalf("constExpr: %v, want the separator refused", err)
	}
}
