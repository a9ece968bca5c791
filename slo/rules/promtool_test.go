package rules

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/slo/sli"
)

// The SLOs of the promtool tests use a 30d window, so the burn factors are
// the classic 14.4, 6, 3 and 1, and a 99 % objective (budget 1 %), so no
// threshold is capped: page at 14.4 % errors over 1h and 5m, or 6 % over
// 6h and 30m; ticket at 3 % over 1d and 2h, or 1 % over 3d and 6h.
const promtoolConfig = `
global: {service: svc}
collectors:
  - {name: zd, type: demo, schedule: "*/5 * * * *", timeout: 1m}
  - {name: pbx, type: demo, schedule: "@every 1m", timeout: 30s, stale_after: 10m}
slos:
  - {name: reply, indicator: ticket_first_reply, threshold: 1h, objective: 99, window: 30d}
  - {name: quiet, indicator: ticket_first_reply, threshold: 1h, objective: 99, window: 30d}
  - name: sl-bad
    indicator: call_service_level
    threshold: 20s
    objective: 80
    abandon_policy: count_as_bad
  - {name: sl-short, indicator: call_service_level, threshold: 20s, objective: 80, abandon_policy: exclude_short}
  - {name: sl-answered, indicator: call_service_level, threshold: 20s, objective: 80, abandon_policy: exclude_all}
  - {name: abandon, indicator: call_abandonment, objective: 95}
  - {name: fcr, indicator: ticket_fcr, objective: 70, filters: {queue: billing}}
  - {name: csat, indicator: csat, csat_min: 4, objective: 80}
targets:
  - {name: nps, kpi: nps, min: 40, window: 1d, for: 1h, min_responses: 10}
  - {name: waiting, kpi: calls_waiting, max: 10, by: [queue], for: 5m, severity: page}
  - {name: backlog-age, kpi: oldest_open_ticket_age, max: 3600, for: 5m}
  - {name: empathy, kpi: servqual_gap, dimension: empathy, min: -1, window: 1d, min_responses: 2}
  - {name: servqual, kpi: servqual_weighted_gap, min: -1, window: 1d, min_responses: 2}
  - {name: csat-sat, kpi: csat_satisfied, min: 80, window: 1h, by: [queue]}
  - {name: csat-avg, kpi: csat_average, min: 4, window: 1h}
`

// promtoolRules generates the rules of cfgText into dir without
// annotations (promtool compares annotations exactly; their templates are
// checked by promtool check rules and the end-to-end test) and returns
// the file name.
func promtoolRules(t *testing.T, dir, cfgText string) string {
	t.Helper()
	return promtoolRulesWith(t, dir, cfgText, nil)
}

// promtoolRulesWith is promtoolRules with the generated file changed by
// change (when not nil) before it is written.
func promtoolRulesWith(t *testing.T, dir, cfgText string, change func(*File)) string {
	t.Helper()
	name, _ := promtoolRuleFile(t, dir, cfgText, change)
	return name
}

// promtoolRuleFile is promtoolRulesWith, also returning the names of the
// file's groups in file order: promtool evaluates groups in a random order
// unless a test gives group_eval_order, and the test recordings of the
// SLO inputs (inputRecordings) must come before the steps that read them.
func promtoolRuleFile(t *testing.T, dir, cfgText string, change func(*File)) (string, []string) {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgText), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inputRecordings(cfg)(f)
	if change != nil {
		change(f)
	}
	full, err := Marshal(f, "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "full.rules.yml"), full, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool := testenv.Binary(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, "full.rules.yml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	for i := range f.Groups {
		for j := range f.Groups[i].Rules {
			f.Groups[i].Rules[j].Annotations = nil
		}
	}
	b, err := Marshal(f, "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, g := range f.Groups {
		order = append(order, g.Name)
	}
	return "rules.yml", order
}

// runPromtoolTest runs `promtool test rules` on tests (the "tests:" list
// of a promtool unit-test file) against the generated rules.
func runPromtoolTest(t *testing.T, tests string) {
	t.Helper()
	runPromtoolTestWith(t, tests, nil)
}

// runPromtoolTestWith is runPromtoolTest on the generated rules changed
// by change.
func runPromtoolTestWith(t *testing.T, tests string, change func(*File)) {
	t.Helper()
	runPromtoolTestOf(t, promtoolConfig, tests, change)
}

// runPromtoolTestOf is runPromtoolTestWith on the rules of cfgText.
func runPromtoolTestOf(t *testing.T, cfgText, tests string, change func(*File)) {
	t.Helper()
	dir := t.TempDir()
	rules, order := promtoolRuleFile(t, dir, cfgText, change)
	var list any
	if err := yaml.Unmarshal([]byte(tests), &list); err != nil {
		t.Fatalf("test yaml: %v", err)
	}
	doc := map[string]any{"rule_files": []string{rules}, "evaluation_interval": "1m", "group_eval_order": order, "tests": list}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "test.yml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.Binary(t, "promtool"), "test", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules did not report success:\n%s", out)
	}
}

func sloAlert(slo, severity string) string {
	return `{severity: ` + severity + `, sloth_severity: ` + severity + `, sloth_id: svc-` + slo + `, sloth_service: svc, sloth_slo: ` + slo + `}`
}

// A fast burn (a third of the tickets late) pages within the hour and a
// ticket follows; before 14.4 % of the last hour's tickets are late, the
// page stays silent.
func TestFastBurnPages(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
    # 10 good tickets a minute; from minute 421 on, 5 bad ones too.
    - series: 'servq_ticket_slo_events_total{collector="zd",slo="reply",result="good",queue="q",channel="email",priority="normal"}'
      values: '0+10x600'
    - series: 'servq_ticket_slo_events_total{collector="zd",slo="reply",result="bad",queue="q",channel="email",priority="normal"}'
      values: '0x420 0+5x180'
  alert_rule_test:
    # Before the burn: silence.
    - {eval_time: 419m, alertname: ReplyErrorBudgetBurn}
    # At minute 435 the last hour holds 70 bad of 670 (10 %, under
    # 14.4 %) and the last 6h 70 of 3670 (1.9 %, under 6 %): no page.
    # But 6h (1.9 %) and 3d (70 of 4420: 1.6 %) burn faster than 1x: ticket.
    - {eval_time: 435m, alertname: ReplyErrorBudgetBurn, exp_alerts: [{exp_labels: `+sloAlert("reply", "ticket")+`}]}
    # At minute 445: 120 of 720 = 17 % over 1h and 33 % over 5m: page.
    - {eval_time: 445m, alertname: ReplyErrorBudgetBurn, exp_alerts: [{exp_labels: `+sloAlert("reply", "page")+`}, {exp_labels: `+sloAlert("reply", "ticket")+`}]}
  promql_expr_test:
    # 5m window at minute 445: 25 bad of 75 events.
    - expr: slo:sli_error:ratio_rate5m{sloth_slo="reply"}
      eval_time: 445m
      exp_samples: [{labels: 'slo:sli_error:ratio_rate5m{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="5m"}', value: 0.3333333333333333}]
    # Burn rate: 33 % errors against a 1 % budget.
    - expr: slo:current_burn_rate:ratio{sloth_slo="reply"}
      eval_time: 445m
      exp_samples: [{labels: 'slo:current_burn_rate:ratio{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="5m"}', value: 33.33333333333333}]
    # Bad events of the last hour, as the low-volume guard sums them
    # from the steps (exact: no extrapolation).
    - expr: sum_over_time(servq:slo_bad_events:increase1m{sloth_slo="reply"}[59m30s])
      eval_time: 445m
      exp_samples: [{labels: '{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="1m"}', value: 120}]
    # The budget in events: every bad ticket since the start (24 minutes
    # of 5), and every ticket (445 minutes of 10, plus the bad ones).
    - expr: servq:slo_bad_events:increase30d{sloth_slo="reply"}
      eval_time: 445m
      exp_samples: [{labels: 'servq:slo_bad_events:increase30d{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="30d"}', value: 120}]
    - expr: servq:slo_events:increase30d{sloth_slo="reply"}
      eval_time: 445m
      exp_samples: [{labels: 'servq:slo_events:increase30d{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="30d"}', value: 4570}]
`)
}

// A slow burn (2 % late against a 1 % budget) never pages but opens a
// ticket once 6h and 3d both burn faster than 1×.
func TestSlowBurnOpensATicketOnly(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
    - series: 'servq_ticket_slo_events_total{collector="zd",slo="reply",result="good",queue="q",channel="email",priority="normal"}'
      values: '0+49x400'
    - series: 'servq_ticket_slo_events_total{collector="zd",slo="reply",result="bad",queue="q",channel="email",priority="normal"}'
      values: '0+1x400'
  alert_rule_test:
    - {eval_time: 30m, alertname: ReplyErrorBudgetBurn, exp_alerts: [{exp_labels: `+sloAlert("reply", "ticket")+`}]}
    - {eval_time: 6h30m, alertname: ReplyErrorBudgetBurn, exp_alerts: [{exp_labels: `+sloAlert("reply", "ticket")+`}]}
  promql_expr_test:
    - expr: slo:sli_error:ratio_rate6h{sloth_slo="reply"}
      eval_time: 6h30m
      exp_samples: [{labels: 'slo:sli_error:ratio_rate6h{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="6h"}', value: 0.02}]
`)
}

// Low volume: two tickets an hour, and two of them are late within the
// hour (a 100 % error ratio): no page until the third bad event.
func TestLowVolumeDoesNotPageOnOneOrTwoMisses(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
    # Good tickets at minutes 30 and 60, late ones at 90, 110 and 128.
    - series: 'servq_ticket_slo_events_total{collector="zd",slo="quiet",result="good",queue="q",channel="email",priority="normal"}'
      values: '0x29 1x29 2x100'
    - series: 'servq_ticket_slo_events_total{collector="zd",slo="quiet",result="bad",queue="q",channel="email",priority="normal"}'
      values: '0x89 1x19 2x17 3x40'
  alert_rule_test:
    # Minutes 90-125: one, then two bad events: error ratios of 33 % to
    # 100 %, far above every threshold, but fewer than 3 bad events in
    # any window: neither page nor ticket.
    - {eval_time: 95m, alertname: QuietErrorBudgetBurn}
    - {eval_time: 115m, alertname: QuietErrorBudgetBurn}
    # Minute 130: the third bad event within the hour pages (and the
    # 1d/2h pair opens a ticket).
    - {eval_time: 130m, alertname: QuietErrorBudgetBurn, exp_alerts: [{exp_labels: `+sloAlert("quiet", "page")+`}, {exp_labels: `+sloAlert("quiet", "ticket")+`}]}
`)
}

// No traffic reads as a 0 error ratio and a full budget, never NaN or an
// empty result that would leave dashboards and alerts blind.
func TestNoTrafficIsZeroNotNaN(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
    - series: 'servq_ticket_slo_events_total{collector="zd",slo="reply",result="good",queue="q",channel="email",priority="normal"}'
      values: '5x120'
    - series: 'servq_ticket_slo_events_total{collector="zd",slo="reply",result="bad",queue="q",channel="email",priority="normal"}'
      values: '1x120'
  promql_expr_test:
    - expr: slo:sli_error:ratio_rate5m{sloth_slo="reply"}
      eval_time: 60m
      exp_samples: [{labels: 'slo:sli_error:ratio_rate5m{sloth_id="svc-reply",sloth_service="svc",sloth_slo="reply",sloth_window="5m"}', value: 0}]
    # No series at all (the "quiet" SLO has none here): still 0.
    - expr: slo:sli_error:ratio_rate1h{sloth_slo="quiet"}
      eval_time: 60m
      exp_samples: [{labels: 'slo:sli_error:ratio_rate1h{sloth_id="svc-quiet",sloth_service="svc",sloth_slo="quiet",sloth_window="1h"}', value: 0}]
    - expr: slo:period_error_budget_remaining:ratio{sloth_slo="quiet"}
      eval_time: 60m
      exp_samples: [{labels: 'slo:period_error_budget_remaining:ratio{sloth_id="svc-quiet",sloth_service="svc",sloth_slo="quiet",sloth_window="30d"}', value: 1}]
    - expr: servq:slo_events:increase30d{sloth_slo="quiet"}
      eval_time: 60m
      exp_samples: [{labels: 'servq:slo_events:increase30d{sloth_id="svc-quiet",sloth_service="svc",sloth_slo="quiet",sloth_window="30d"}', value: 0}]
`)
}

// The SLI definitions, computed by hand for one hour of constant traffic:
// per minute 10 calls offered, 7 answered within 20s, 1 answered later,
// 2 abandoned of which 1 within the 5s short-abandon threshold.
//
//	sl-bad (count_as_bad):   bad = 10 - 7 = 3 of 10       -> 0.3
//	sl-short (exclude_short): bad = (10 - 1) - 7 = 2 of 9  -> 0.2222
//	sl-answered (exclude_all): bad = 8 - 7 = 1 of 8        -> 0.125
//	abandon: bad = 2 - 1 = 1 of 10 - 1 = 9                 -> 0.1111
//
// Tickets of queue billing: 4 solved a minute, 3 on first contact; queue
// other (outside the fcr filter) 5 solved, none on first contact:
//
//	fcr: 1 of 4 -> 0.25
//
// CSAT: per minute 2 responses of 3, 1 of 4 and 1 of 5 (csat_min 4), and
// ticket ratings (survey="ticket"): one new "bad" (1) and one changed from
// bad to good (5 counted, its 1 retracted):
//
//	csat: bad = 2 + (1 + 1) - 1 = 3 of (4 + 3) - 1 = 6 -> 0.5
//	without the retraction it would read 4 of 7
func TestSLIDefinitions(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
    - {series: 'servq_calls_offered_total{collector="pbx",queue="support",channel="phone"}', values: '0+10x60'}
    - {series: 'servq_calls_answered_total{collector="pbx",queue="support",channel="phone"}', values: '0+8x60'}
    - {series: 'servq_calls_abandoned_total{collector="pbx",queue="support",channel="phone"}', values: '0+2x60'}
    - {series: 'servq_calls_abandoned_short_total{collector="pbx",queue="support",channel="phone"}', values: '0+1x60'}
    # OpenMetrics-style le="20.0" as Prometheus stores it from servq.
    - {series: 'servq_call_wait_seconds_bucket{collector="pbx",queue="support",channel="phone",outcome="answered",le="20.0"}', values: '0+7x60'}
    - {series: 'servq_call_wait_seconds_bucket{collector="pbx",queue="support",channel="phone",outcome="answered",le="+Inf"}', values: '0+8x60'}
    - {series: 'servq_call_wait_seconds_bucket{collector="pbx",queue="support",channel="phone",outcome="abandoned",le="20.0"}', values: '0+2x60'}
    - {series: 'servq_tickets_solved_total{collector="zd",queue="billing",channel="email",priority="normal"}', values: '0+4x60'}
    - {series: 'servq_tickets_solved_first_contact_total{collector="zd",queue="billing",channel="email",priority="normal"}', values: '0+3x60'}
    - {series: 'servq_tickets_solved_total{collector="zd",queue="other",channel="email",priority="normal"}', values: '0+5x60'}
    - {series: 'servq_csat_score_bucket{collector="zd",survey="post",queue="q",channel="email",le="3"}', values: '0+2x60'}
    - {series: 'servq_csat_score_bucket{collector="zd",survey="post",queue="q",channel="email",le="4"}', values: '0+3x60'}
    - {series: 'servq_csat_score_count{collector="zd",survey="post",queue="q",channel="email"}', values: '0+4x60'}
    - {series: 'servq_csat_score_bucket{collector="zd",survey="ticket",queue="q",channel="email",le="3"}', values: '0+2x60'}
    - {series: 'servq_csat_score_count{collector="zd",survey="ticket",queue="q",channel="email"}', values: '0+3x60'}
    - {series: 'servq_csat_retracted_score_bucket{collector="zd",survey="ticket",queue="q",channel="email",le="3"}', values: '0+1x60'}
    - {series: 'servq_csat_retracted_score_count{collector="zd",survey="ticket",queue="q",channel="email"}', values: '0+1x60'}
  promql_expr_test:
    - {expr: 'round(slo:sli_error:ratio_rate1h{sloth_slo="sl-bad"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-sl-bad",sloth_service="svc",sloth_slo="sl-bad",sloth_window="1h"}', value: 0.3}]}
    - {expr: 'round(slo:sli_error:ratio_rate1h{sloth_slo="sl-short"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-sl-short",sloth_service="svc",sloth_slo="sl-short",sloth_window="1h"}', value: 0.222222222}]}
    - {expr: 'round(slo:sli_error:ratio_rate1h{sloth_slo="sl-answered"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-sl-answered",sloth_service="svc",sloth_slo="sl-answered",sloth_window="1h"}', value: 0.125}]}
    - {expr: 'round(slo:sli_error:ratio_rate1h{sloth_slo="abandon"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-abandon",sloth_service="svc",sloth_slo="abandon",sloth_window="1h"}', value: 0.111111111}]}
    - {expr: 'round(slo:sli_error:ratio_rate1h{sloth_slo="fcr"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-fcr",sloth_service="svc",sloth_slo="fcr",sloth_window="1h"}', value: 0.25}]}
    - {expr: 'round(slo:sli_error:ratio_rate1h{sloth_slo="csat"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-csat",sloth_service="svc",sloth_slo="csat",sloth_window="1h"}', value: 0.5}]}
    # Budget of sl-bad: 20 %; 30 % errors burn it 1.5x.
    - {expr: 'round(slo:period_burn_rate:ratio{sloth_slo="sl-bad"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-sl-bad",sloth_service="svc",sloth_slo="sl-bad",sloth_window="4w"}', value: 1.5}]}
    - {expr: 'round(slo:objective:ratio{sloth_slo="sl-bad"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-sl-bad",sloth_service="svc",sloth_slo="sl-bad"}', value: 0.8}]}
    - {expr: 'round(slo:time_period:days{sloth_slo="sl-bad"} * 1e9) / 1e9', eval_time: 60m, exp_samples: [{labels: '{sloth_id="svc-sl-bad",sloth_service="svc",sloth_slo="sl-bad"}', value: 28}]}
`)
}

// KPI targets, by hand:
//
//	NPS over 1d: 30 promoters, 20 passives, 30 detractors of 80
//	  -> 100 * (30 - 30) / 80 = 0, below 40 for an hour: alert.
//	Empathy gap: perception mean 30/10 = 3, expectation 60/10 = 6 -> -3.
//	Reliability gap: perception 50/10 = 5, expectation 60/10 = 6 -> -1.
//	Weighted gap with respondents' points (empathy 20, reliability 80):
//	  (20 * -3 + 80 * -1) / 100 = -1.4 (below -1: alert).
func TestKPITargets(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
    - {series: 'servq_nps_responses_total{collector="zd",survey="rel",category="promoter",queue="q",channel="email"}', values: '0 0+30x200'}
    - {series: 'servq_nps_responses_total{collector="zd",survey="rel",category="passive",queue="q",channel="email"}', values: '0 0+20x200'}
    - {series: 'servq_nps_responses_total{collector="zd",survey="rel",category="detractor",queue="q",channel="email"}', values: '0 0+30x200'}
    - {series: 'servq_survey_responses_total{collector="zd",survey="sq",kind="servqual",queue="",channel=""}', values: '0 10x200'}
    - {series: 'servq_servqual_score_sum{collector="zd",survey="sq",dimension="empathy",scale="perception"}', values: '0 30x200'}
    - {series: 'servq_servqual_score_count{collector="zd",survey="sq",dimension="empathy",scale="perception"}', values: '0 10x200'}
    - {series: 'servq_servqual_score_sum{collector="zd",survey="sq",dimension="empathy",scale="expectation"}', values: '0 60x200'}
    - {series: 'servq_servqual_score_count{collector="zd",survey="sq",dimension="empathy",scale="expectation"}', values: '0 10x200'}
    - {series: 'servq_servqual_score_sum{collector="zd",survey="sq",dimension="reliability",scale="perception"}', values: '0 50x200'}
    - {series: 'servq_servqual_score_count{collector="zd",survey="sq",dimension="reliability",scale="perception"}', values: '0 10x200'}
    - {series: 'servq_servqual_score_sum{collector="zd",survey="sq",dimension="reliability",scale="expectation"}', values: '0 60x200'}
    - {series: 'servq_servqual_score_count{collector="zd",survey="sq",dimension="reliability",scale="expectation"}', values: '0 10x200'}
    - {series: 'servq_servqual_weight_points_total{collector="zd",survey="sq",dimension="empathy"}', values: '0 20x200'}
    - {series: 'servq_servqual_weight_points_total{collector="zd",survey="sq",dimension="reliability"}', values: '0 80x200'}
    - {series: 'servq_queue_calls_waiting{collector="pbx",queue="sales"}', values: '3x10 12x20'}
    - {series: 'servq_queue_calls_waiting{collector="pbx",queue="support"}', values: '4x30'}
    - {series: 'servq_tickets_oldest_open_created_timestamp_seconds{collector="zd",queue="q"}', values: '0x200'}
  promql_expr_test:
    - {expr: 'servq:target:value{target="nps"}', eval_time: 30m, exp_samples: [{labels: 'servq:target:value{target="nps",kpi="nps"}', value: 0}]}
    - {expr: 'servq:target:value{target="empathy"}', eval_time: 30m, exp_samples: [{labels: 'servq:target:value{target="empathy",kpi="servqual_gap"}', value: -3}]}
    - {expr: 'servq:target:value{target="servqual"}', eval_time: 30m, exp_samples: [{labels: 'servq:target:value{target="servqual",kpi="servqual_weighted_gap"}', value: -1.4}]}
    - {expr: 'servq:target:value{target="backlog-age"}', eval_time: 30m, exp_samples: [{labels: 'servq:target:value{target="backlog-age",kpi="oldest_open_ticket_age"}', value: 1800}]}
  alert_rule_test:
    # NPS 0 < 40, for: 1h: not yet at 30m, firing at 70m.
    - {eval_time: 30m, alertname: NpsTargetMissed}
    - {eval_time: 70m, alertname: NpsTargetMissed, exp_alerts: [{exp_labels: {severity: ticket, target: nps, kpi: nps}}]}
    - {eval_time: 70m, alertname: EmpathyTargetMissed, exp_alerts: [{exp_labels: {severity: ticket, target: empathy, kpi: servqual_gap}}]}
    - {eval_time: 70m, alertname: ServqualTargetMissed, exp_alerts: [{exp_labels: {severity: ticket, target: servqual, kpi: servqual_weighted_gap}}]}
    # Sales has 12 calls waiting from minute 11; for: 5m -> firing at 16m,
    # for sales only.
    - {eval_time: 15m, alertname: WaitingTargetMissed}
    - {eval_time: 17m, alertname: WaitingTargetMissed, exp_alerts: [{exp_labels: {severity: page, target: waiting, kpi: calls_waiting, queue: sales}}]}
    # The oldest open ticket (created at 0) passes 1 hour of age at 60m,
    # and the alert fires 5 minutes later.
    - {eval_time: 64m, alertname: BacklogAgeTargetMissed}
    - {eval_time: 66m, alertname: BacklogAgeTargetMissed, exp_alerts: [{exp_labels: {severity: ticket, target: backlog-age, kpi: oldest_open_ticket_age}}]}
`)
}

// Operational alerts: a collector whose last success is older than its
// stale_after (pbx: 10m), one that never succeeded, servq not scraped.
func TestOperationalAlerts(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
    # pbx succeeded at t=60s, then never again.
    - {series: 'servq_collector_last_success_timestamp_seconds{job="servq",instance="a:9817",collector="pbx"}', values: '60x40'}
    - {series: 'servq_collector_up{job="servq",instance="a:9817",collector="pbx"}', values: '1x5 0x35'}
    # zd never succeeded (schedule every 5 minutes, timeout 1m: stale
    # after 2 * 5m + 1m = 11m of servq running).
    - {series: 'servq_collector_up{job="servq",instance="a:9817",collector="zd"}', values: '0x40'}
    - {series: 'process_start_time_seconds{job="servq",instance="a:9817"}', values: '0x40'}
    - {series: 'up{job="servq",instance="a:9817"}', values: '1x10 0x30'}
  alert_rule_test:
    - {eval_time: 10m, alertname: ServqCollectorStale}
    - eval_time: 12m
      alertname: ServqCollectorStale
      exp_alerts:
        - exp_labels: {severity: ticket, collector: pbx, job: servq, instance: "a:9817"}
        - exp_labels: {severity: ticket, collector: zd, job: servq, instance: "a:9817"}
    - {eval_time: 14m, alertname: ServqDown}
    - {eval_time: 16m, alertname: ServqDown, exp_alerts: [{exp_labels: {severity: ticket, job: servq, instance: "a:9817"}}]}
    # pbx failing since minute 6, zd since 0; for: 15m.
    - {eval_time: 20m, alertname: ServqCollectorFailing, exp_alerts: [{exp_labels: {severity: ticket, collector: zd, job: servq, instance: "a:9817"}}]}
    - {eval_time: 22m, alertname: ServqCollectorFailing, exp_alerts: [{exp_labels: {severity: ticket, collector: pbx, job: servq, instance: "a:9817"}}, {exp_labels: {severity: ticket, collector: zd, job: servq, instance: "a:9817"}}]}
- interval: 1m
  input_series:
    - {series: 'servq_collector_up{job="other",instance="b:1"}', values: '1x30'}
  alert_rule_test:
    - {eval_time: 10m, alertname: ServqAbsent}
    - {eval_time: 16m, alertname: ServqAbsent, exp_alerts: [{exp_labels: {severity: ticket, job: servq}}]}
`)
}

// The demo and the documented example generate valid rules; the output is
// deterministic and marked as generated.
func TestShippedConfigsGenerateValidDeterministicRules(t *testing.T) {
	// Not parallel: it sets the example's environment variables.
	demo, err := config.Demo()
	if err != nil {
		t.Fatal(err)
	}
	testenv.SetConfigEnv(t, "../../config/example.yml")
	example, err := config.Load("../../config/example.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*config.Config{"demo": demo, "example": example} {
		var outs [][]byte
		for i := 0; i < 2; i++ {
			f, err := Generate(cfg)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, err := Marshal(f, name+".yml")
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, b)
		}
		if !bytes.Equal(outs[0], outs[1]) {
			t.Errorf("%s: two generations differ", name)
		}
		if !bytes.HasPrefix(outs[0], []byte("# Code generated by `servq rules` from "+name+".yml; DO NOT EDIT.\n")) {
			t.Errorf("%s: no DO NOT EDIT header", name)
		}
		file := filepath.Join(t.TempDir(), name+".rules.yml")
		os.WriteFile(file, outs[0], 0o644)
		out, err := exec.Command(testenv.Binary(t, "promtool"), "check", "rules", file).CombinedOutput()
		if err != nil {
			t.Errorf("%s: promtool check rules: %v\n%s", name, err, out)
		}
		// vmalert parses with MetricsQL: the same file must load there.
		out, err = exec.Command(testenv.Binary(t, "vmalert"), "-dryRun", "-rule="+file).CombinedOutput()
		if err != nil {
			t.Errorf("%s: vmalert -dryRun: %v\n%s", name, err, out)
		}
	}
}

// CSAT KPIs net of retracted ticket ratings. Per minute, queue q (a
// survey): 4 responses scoring 4, 4, 4, 5 (3 satisfied, sum 17); queue t
// (ticket ratings): a new "bad" (1) and a rating changed from bad to good:
// its first 1 and its new 5 counted, the 1 retracted (count 3, sum 7,
// satisfied 1; retracted count 1, sum 1; no satisfied retraction series).
//
//	csat-sat q: 3 of 4 -> 75 %; t: 1 of 3 - 1 = 2 -> 50 % (33.3 without the retraction)
//	csat-avg: (17 + 7 - 1) / (4 + 3 - 1) = 23 / 6 = 3.8333
func TestCSATKPIsCountAChangedTicketRatingOnce(t *testing.T) {
	t.Parallel()
	runPromtoolTest(t, `
- interval: 1m
  input_series:
    - {series: 'servq_csat_score_count{collector="zd",survey="post",queue="q",channel="email"}', values: '0+4x200'}
    - {series: 'servq_csat_score_sum{collector="zd",survey="post",queue="q",channel="email"}', values: '0+17x200'}
    - {series: 'servq_csat_satisfied_total{collector="zd",survey="post",queue="q",channel="email"}', values: '0+3x200'}
    - {series: 'servq_csat_score_count{collector="zd",survey="ticket",queue="t",channel="email"}', values: '0+3x200'}
    - {series: 'servq_csat_score_sum{collector="zd",survey="ticket",queue="t",channel="email"}', values: '0+7x200'}
    - {series: 'servq_csat_satisfied_total{collector="zd",survey="ticket",queue="t",channel="email"}', values: '0+1x200'}
    - {series: 'servq_csat_retracted_score_count{collector="zd",survey="ticket",queue="t",channel="email"}', values: '0+1x200'}
    - {series: 'servq_csat_retracted_score_sum{collector="zd",survey="ticket",queue="t",channel="email"}', values: '0+1x200'}
  promql_expr_test:
    - expr: 'round(servq:target:value{target="csat-sat"} * 1e6) / 1e6'
      eval_time: 90m
      exp_samples:
        - {labels: '{target="csat-sat",kpi="csat_satisfied",queue="q"}', value: 75}
        - {labels: '{target="csat-sat",kpi="csat_satisfied",queue="t"}', value: 50}
    - {expr: 'round(servq:target:value{target="csat-avg"} * 1e6) / 1e6', eval_time: 90m, exp_samples: [{labels: '{target="csat-avg",kpi="csat_average"}', value: 3.833333}]}
`)
}

// ServqSLOInputNotServed: the rules of an SLO whose definition servq does
// not run (here the abandonment SLO's `short` input is missing from
// servq_slo_input_info, as after a changed filter) fire for that input
// after 10 minutes, for it only; not while every input is served, and
// not while servq is down (ServqDown says that).
func TestInputNotServedAlert(t *testing.T) {
	t.Parallel()
	const cfgText = `
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: abandon, indicator: call_abandonment, objective: 95, filters: {queue: sales}}
`
	cfg, err := config.Parse([]byte(cfgText), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	ins, err := sli.Inputs(cfg, cfg.SLOs[0])
	if err != nil || len(ins) != 3 {
		t.Fatalf("inputs %+v, %v; want abandoned, short and offered", ins, err)
	}
	info := func(in sli.Input, values string) string {
		return fmt.Sprintf("    - {series: '%s{job=\"servq\",instance=\"a:9817\",slo=\"%s\",input=\"%s\",definition=\"%s\"}', values: '%s'}\n",
			sli.SLOInputInfo, in.SLO, in.Name, in.Definition, values)
	}
	var missing sli.Input
	var series string
	for _, in := range ins {
		if in.Name == "short" {
			missing = in
			// Served under another definition: a config that changed.
			in.Definition = "0badc0de"
		}
		series += info(in, "1x40")
	}
	var all string
	for _, in := range ins {
		all += info(in, "1x40")
	}
	runPromtoolTestOf(t, cfgText, fmt.Sprintf(`
- interval: 1m
  input_series:
%s    - {series: 'up{job="servq",instance="a:9817"}', values: '1x20 0x20'}
  alert_rule_test:
    - {eval_time: 9m, alertname: ServqSLOInputNotServed}
    - {eval_time: 11m, alertname: ServqSLOInputNotServed, exp_alerts: [{exp_labels: {severity: ticket, slo: abandon, input: short, definition: "%s"}}]}
    - {eval_time: 35m, alertname: ServqSLOInputNotServed}
- interval: 1m
  input_series:
%s    - {series: 'up{job="servq",instance="a:9817"}', values: '1x40'}
  alert_rule_test:
    - {eval_time: 30m, alertname: ServqSLOInputNotServed}
`, series, missing.Definition, all), nil)
}
