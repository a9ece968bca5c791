package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana-tools/sdk"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// Stable uids: links, bookmarks and provisioning keep working across
// regenerations.
const (
	UIDOverview  = "servq-overview"
	UIDTickets   = "servq-tickets"
	UIDTelephony = "servq-telephony"
	UIDSurveys   = "servq-surveys"
	UIDSLO       = "servq-slo"
	UIDHealth    = "servq-health"
)

var (
	red, orange, yellow, green = "red", "orange", "yellow", "green"
	perHour                    = " * 3600"
)

// Boards builds every dashboard of cfg, in a fixed order.
func Boards(cfg *config.Config) ([]*Board, error) {
	slos, err := sloBoard(cfg)
	if err != nil {
		return nil, err
	}
	tel, err := telephonyBoard(cfg)
	if err != nil {
		return nil, err
	}
	boards := []*Board{overviewBoard(cfg), ticketsBoard(cfg), tel, surveysBoard(cfg), slos, healthBoard(cfg)}
	for _, b := range boards {
		for i := range b.panels {
			for j, t := range b.panels[i].Targets {
				e, err := conform(t.Expr)
				if err != nil {
					return nil, fmt.Errorf("dashboard %s, panel %q, target %d: %w", b.UID, b.panels[i].Title, j, err)
				}
				b.panels[i].Targets[j].Expr = e
			}
		}
		for _, o := range boards {
			if o != b {
				// The selected job, instance and filters go along.
				b.links = append(b.links, sdk.Link{Title: o.Title, Type: "link", URL: strPtr("/d/" + o.UID), KeepTime: boolPtr(true), IncludeVars: true,
					Icon: strPtr("dashboard"), Tooltip: strPtr(o.Description), AsDropdown: boolPtr(false), TargetBlank: boolPtr(false)})
			}
		}
	}
	return boards, nil
}

func strPtr(s string) *string { return &s }
func boolPtr(b bool) *bool    { return &b }

func service(cfg *config.Config) string { return "sloth_service=" + quote(cfg.Global.Service) }

func overviewBoard(cfg *config.Config) *Board {
	b := newBoard(UIDOverview, "servq / Overview", "Every SLO's attainment, error budget and burn rate, with the customer-facing headline figures.", "overview")
	b.vars = append(jobInstanceVars(), collectorVar())
	svc := service(cfg)
	join := " * on(sloth_id, sloth_slo, sloth_service) group_left() "
	b.row("Service level objectives")
	b.add(
		Panel{Type: "bargauge", Title: "SLO attainment over its window", W: 8, H: 9, Unit: "percentunit", Min: v(0), Max: v(1), Decimals: intPtr(2),
			Description: "Share of good events over each SLO's whole window (1 - period error ratio). Objectives differ per SLO: whether one is met shows in the error budget next to it (below 0: missed).",
			Targets:     []Target{{Expr: "1 - (slo:period_burn_rate:ratio{" + svc + "}" + join + "slo:error_budget:ratio{" + svc + "})", Legend: "{{sloth_slo}}", Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(0.8), orange}, {v(0.9), green}}},
		Panel{Type: "bargauge", Title: "Error budget remaining", W: 8, H: 9, Unit: "percentunit", Max: v(1), Decimals: intPtr(1),
			Description: "Share of each SLO's error budget still unspent over its window. Below 0 the objective is missed; the colour is the SLO's status.",
			Targets:     []Target{{Expr: "slo:period_error_budget_remaining:ratio{" + svc + "}", Legend: "{{sloth_slo}}", Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(0), orange}, {v(0.25), yellow}, {v(0.5), green}}},
		Panel{Type: "bargauge", Title: "Burn rate (last 5 minutes)", W: 8, H: 9, Unit: "none", Min: v(0), Decimals: intPtr(2),
			Description: "How fast each SLO spends its budget now: 1 spends exactly the budget over the window; page alerts start at 14.4 over 1h for a 30d window.",
			Targets:     []Target{{Expr: "slo:current_burn_rate:ratio{" + svc + "}", Legend: "{{sloth_slo}}", Instant: true}},
			Thresholds:  []Threshold{{nil, green}, {v(1), yellow}, {v(6), orange}, {v(14.4), red}}},
	)
	b.row("Customers and contact centre")
	b.add(
		Panel{Type: "stat", Title: "CSAT (satisfied)", W: 6, H: 6, Unit: "percentunit", Decimals: intPtr(1),
			Description: fmt.Sprintf("Share of CSAT responses scoring %g or more in the selected time range.", cfg.Model.CSATSatisfiedMin),
			Targets:     []Target{{Expr: csatNet("servq_csat_satisfied_total", "servq_csat_satisfied_retracted_total", byCollector) + " / " + csatNet("servq_csat_score_count", "servq_csat_retracted_score_count", byCollector), Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(0.7), orange}, {v(0.85), green}}},
		Panel{Type: "stat", Title: "NPS", W: 6, H: 6, Unit: "none", Min: v(-100), Max: v(100), Decimals: intPtr(0),
			Description: "Net Promoter Score in the selected time range: % promoters (9-10) minus % detractors (0-6).",
			Targets:     []Target{{Expr: npsExpr(byCollector, "$__range"), Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(0), orange}, {v(30), green}}},
		Panel{Type: "stat", Title: "Open tickets", W: 6, H: 6, Unit: "short",
			Description: "Tickets open now (not solved, not deleted), all statuses.",
			Targets:     []Target{{Expr: "sum(" + s("servq_tickets_open", byCollector) + ")", Instant: true}},
			Thresholds:  []Threshold{{nil, green}}},
		Panel{Type: "stat", Title: "Calls waiting now", W: 6, H: 6, Unit: "short",
			Description: "Callers waiting in all queues at the last reading of the telephony sources.",
			Targets:     []Target{{Expr: "sum(" + s("servq_queue_calls_waiting", byCollector) + ")", Instant: true}},
			Thresholds:  []Threshold{{nil, green}, {v(5), orange}, {v(10), red}}},
		Panel{Type: "timeseries", Title: "Calls answered vs abandoned (per hour)", W: 24, H: 8, Unit: "short", Stack: true,
			Description: "Calls answered and abandoned per hour, stacked: together they are nearly the calls offered (timeouts and voicemail are the rest).",
			Targets: []Target{
				{Expr: rate(s("servq_calls_answered_total", byCollector)) + perHour, Legend: "answered"},
				{Expr: rate(s("servq_calls_abandoned_total", byCollector)) + perHour, Legend: "abandoned"},
			}},
	)
	return b
}

func intPtr(i int) *int { return &i }

// npsExpr is 100 × (promoters − detractors) / responses over a range.
func npsExpr(vars []string, rng string) string {
	n := func(cat string) string {
		extra := []string{}
		if cat != "" {
			extra = append(extra, `category="`+cat+`"`)
		}
		return "sum(increase(" + s("servq_nps_responses_total", vars, extra...) + "[" + rng + "]))"
	}
	return "100 * (" + n("promoter") + " - " + n("detractor") + ") / " + n("")
}

func ticketsBoard(cfg *config.Config) *Board {
	b := newBoard(UIDTickets, "servq / Tickets", "Ticket volumes, backlog, reply and resolution times, first-contact resolution and SLO breaches.", "tickets")
	b.vars = commonVars()
	f := byQueueChan
	b.row("Volume and backlog")
	b.add(
		Panel{Type: "timeseries", Title: "Created and solved (per hour)", W: 12, Unit: "short",
			Description: "Tickets created (counted once, when first seen) and solved (once, at the first solve) per hour.",
			Targets: []Target{{Expr: rate(s("servq_tickets_created_total", f)) + perHour, Legend: "created"},
				{Expr: rate(s("servq_tickets_solved_total", f)) + perHour, Legend: "solved"}}},
		Panel{Type: "timeseries", Title: "Backlog by status", W: 12, Unit: "short", Stack: true,
			Description: "Open tickets by status, stacked.",
			Targets:     []Target{{Expr: "sum by (status) (" + s("servq_tickets_open", byQueue) + ")", Legend: "{{status}}"}}},
		Panel{Type: "timeseries", Title: "Created by channel (per hour)", W: 12, Unit: "short", Stack: true,
			Description: "Tickets created per hour by channel.",
			Targets:     []Target{{Expr: rate(s("servq_tickets_created_total", f), "channel") + perHour, Legend: "{{channel}}"}}},
		Panel{Type: "timeseries", Title: "Created by priority (per hour)", W: 12, Unit: "short", Stack: true,
			Description: "Tickets created per hour by priority.",
			Targets:     []Target{{Expr: rate(s("servq_tickets_created_total", f), "priority") + perHour, Legend: "{{priority}}"}}},
		Panel{Type: "timeseries", Title: "Oldest open ticket age", W: 12, Unit: "s",
			Description: "Age of the oldest open ticket per queue.",
			Targets:     []Target{{Expr: "time() - min by (queue) (" + s("servq_tickets_oldest_open_created_timestamp_seconds", byQueue) + ")", Legend: "{{queue}}"}},
			Thresholds:  []Threshold{{nil, green}, {v(86400), orange}, {v(259200), red}}},
	)
	b.row("Reply and resolution times")
	pct := func(metric, what string) Panel {
		return Panel{Type: "timeseries", Title: what + " time (p50, p90)", W: 12, Unit: "s",
			Description: what + " time percentiles from the histogram, calendar and business hours (the business-time series exist when a schedule is configured or the source reports them).",
			Targets: []Target{
				{Expr: quantile("0.5", "servq_ticket_"+metric+"_seconds", f), Legend: "p50 calendar"},
				{Expr: quantile("0.9", "servq_ticket_"+metric+"_seconds", f), Legend: "p90 calendar"},
				{Expr: quantile("0.5", "servq_ticket_"+metric+"_business_seconds", f), Legend: "p50 business", MayBeEmpty: "business-time histograms exist only with a business_hours schedule or source-computed business times"},
				{Expr: quantile("0.9", "servq_ticket_"+metric+"_business_seconds", f), Legend: "p90 business", MayBeEmpty: "as p50 business"},
			}}
	}
	b.add(pct("first_reply", "First reply"), pct("resolution", "Resolution"))
	b.row("Quality")
	b.add(
		Panel{Type: "stat", Title: "First-contact resolution", W: 6, H: 6, Unit: "percentunit", Decimals: intPtr(1),
			Description: "Tickets solved with one public agent reply and no reopen, as a share of tickets solved in the range.",
			Targets:     []Target{{Expr: inc(s("servq_tickets_solved_first_contact_total", f)) + " / " + inc(s("servq_tickets_solved_total", f)), Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(0.6), orange}, {v(0.7), green}}},
		Panel{Type: "stat", Title: "Reopen rate", W: 6, H: 6, Unit: "percentunit", Decimals: intPtr(1),
			Description: "Reopen events per ticket solved in the range.",
			Targets:     []Target{{Expr: inc(s("servq_tickets_reopened_total", f)) + " / " + inc(s("servq_tickets_solved_total", f)), Instant: true}},
			Thresholds:  []Threshold{{nil, green}, {v(0.05), orange}, {v(0.1), red}}},
		Panel{Type: "timeseries", Title: "SLO breaches per SLO (per hour)", W: 12, H: 6, Unit: "short",
			Description: "Tickets that missed an SLO deadline per hour, counted when the source's watermark passed the deadline; 'corrected' are breaches later overturned by a reply or solve that turned out to be in time (SLIs subtract them).",
			Targets: []Target{{Expr: rate(s("servq_ticket_slo_events_total", f, `result="bad"`), "slo") + perHour, Legend: "{{slo}}"},
				{Expr: rate(s("servq_ticket_slo_corrections_total", f), "slo") + perHour, Legend: "{{slo}} corrected", MayBeEmpty: "no verdict was corrected (the demo delivers every change as it happens)"}}},
		Panel{Type: "timeseries", Title: "Help desk SLA breaches (per hour)", W: 24, H: 6, Unit: "short",
			Description: "SLA breaches the ticketing system itself reported (Zendesk, Freshdesk, Jira Service Management SLAs), by SLA metric.",
			Targets:     []Target{{Expr: rate(s("servq_ticket_sla_breaches_total", f), "metric") + perHour, Legend: "{{metric}}"}}},
		Panel{Type: "table", Title: "By queue", W: 24, H: 8, Unit: "short",
			Description: "Per queue over the selected range: created, solved, solved on first contact, reopens; open now.",
			Targets: []Target{
				{Expr: inc(s("servq_tickets_created_total", f), "queue"), Legend: "created", Instant: true},
				{Expr: inc(s("servq_tickets_solved_total", f), "queue"), Legend: "solved", Instant: true},
				{Expr: inc(s("servq_tickets_solved_first_contact_total", f), "queue"), Legend: "first contact", Instant: true},
				{Expr: "sum by (queue) (" + s("servq_tickets_open", byQueue) + ")", Legend: "open", Instant: true},
			},
			Options: map[string]any{"sortBy": []any{map[string]any{"displayName": "Value #A", "desc": true}}}},
	)
	return b
}

func telephonyBoard(cfg *config.Config) (*Board, error) {
	b := newBoard(UIDTelephony, "servq / Telephony", "Calls offered, answered and abandoned, service level, speed of answer, handle time, queues and agents now.", "telephony")
	b.vars = commonVars()
	f := byQueueChan
	b.row("Calls")
	b.add(
		Panel{Type: "timeseries", Title: "Offered, answered, abandoned (per hour)", W: 12, Unit: "short",
			Description: "Calls that entered a queue, were answered by an agent, or were abandoned by the caller, per hour.",
			Targets: []Target{{Expr: rate(s("servq_calls_offered_total", f)) + perHour, Legend: "offered"},
				{Expr: rate(s("servq_calls_answered_total", f)) + perHour, Legend: "answered"},
				{Expr: rate(s("servq_calls_abandoned_total", f)) + perHour, Legend: "abandoned"}}},
		Panel{Type: "timeseries", Title: "Abandonment rate", W: 12, Unit: "percentunit", Min: v(0),
			Description: fmt.Sprintf("Abandoned calls minus short abandons (waited %s or less) over calls offered minus short abandons.", cfg.Model.ShortAbandon),
			Targets: []Target{{Expr: "(" + rate(s("servq_calls_abandoned_total", f)) + " - " + rate(s("servq_calls_abandoned_short_total", f)) + ") / (" +
				rate(s("servq_calls_offered_total", f)) + " - " + rate(s("servq_calls_abandoned_short_total", f)) + ")", Legend: "abandonment"}},
			Thresholds: []Threshold{{nil, green}, {v(0.05), orange}, {v(0.1), red}}},
	)
	// One service-level panel per call_service_level SLO, with its own
	// threshold and abandon policy; a 20s view when none is configured.
	var sl []Target
	for _, o := range cfg.SLOs {
		if o.Indicator != "call_service_level" {
			continue
		}
		ind, err := sli.For(cfg, o)
		if err != nil {
			return nil, err
		}
		sl = append(sl, Target{Expr: "1 - (" + ind.ErrorRatio("$__rate_interval") + ")", Legend: fmt.Sprintf("%s (%s, %s)", o.Name, o.Threshold, o.AbandonPolicy)})
	}
	if len(sl) == 0 {
		sl = append(sl, Target{Expr: rate(s("servq_call_wait_seconds_bucket", f, `outcome="answered"`, `le=~"`+leRegex(20)+`"`)) + " / " + rate(s("servq_calls_offered_total", f)), Legend: "answered within 20s / offered"})
	}
	b.add(
		Panel{Type: "timeseries", Title: "Service level", W: 12, Unit: "percentunit", Min: v(0), Max: v(1),
			Description: "Calls answered within the SLO threshold over the calls the SLO's abandon policy counts (the same expression as the SLO rules).",
			Targets:     sl, Thresholds: []Threshold{{nil, red}, {v(0.8), green}}},
		Panel{Type: "timeseries", Title: "Service level by queue", W: 12, Unit: "percentunit", Min: v(0), Max: v(1),
			Description: fmt.Sprintf("Calls answered within %gs over calls offered, per queue (every abandon counts as a miss here).", slThreshold(cfg)),
			Targets: []Target{{Expr: rate(s("servq_call_wait_seconds_bucket", f, `outcome="answered"`, `le=~"`+leRegex(slThreshold(cfg))+`"`), "queue") +
				" / " + rate(s("servq_calls_offered_total", f), "queue"), Legend: "{{queue}}"}},
			Thresholds: []Threshold{{nil, red}, {v(0.8), green}}},
		Panel{Type: "timeseries", Title: "Average speed of answer by queue", W: 12, Unit: "s",
			Description: "ASA: mean time answered calls waited in the queue.",
			Targets: []Target{{Expr: rate(s("servq_call_wait_seconds_sum", f, `outcome="answered"`), "queue") + " / " +
				rate(s("servq_call_wait_seconds_count", f, `outcome="answered"`), "queue"), Legend: "{{queue}}"}},
			Thresholds: []Threshold{{nil, green}, {v(20), orange}, {v(60), red}}},
		Panel{Type: "timeseries", Title: "Average handle time by queue", W: 12, Unit: "s",
			Description: "AHT: mean talk + hold + after-call work of answered calls.",
			Targets: []Target{{Expr: rate(s("servq_call_handle_seconds_sum", f), "queue") + " / " +
				rate(s("servq_call_handle_seconds_count", f), "queue"), Legend: "{{queue}}"}}},
	)
	b.row("Queues now")
	b.add(
		Panel{Type: "bargauge", Title: "Calls waiting", W: 8, Unit: "short", Min: v(0),
			Description: "Callers waiting per queue at the last reading.",
			Targets:     []Target{{Expr: "sum by (queue) (" + s("servq_queue_calls_waiting", byQueue) + ")", Legend: "{{queue}}", Instant: true}},
			Thresholds:  []Threshold{{nil, green}, {v(5), orange}, {v(10), red}}},
		Panel{Type: "gauge", Title: "Longest wait", W: 8, Unit: "s", Min: v(0), Max: v(300),
			Description: "Longest current wait per queue at the last reading.",
			Targets:     []Target{{Expr: "max by (queue) (" + s("servq_queue_longest_wait_seconds", byQueue) + ")", Legend: "{{queue}}", Instant: true}},
			Thresholds:  []Threshold{{nil, green}, {v(30), orange}, {v(120), red}}},
		Panel{Type: "timeseries", Title: "Agents by state", W: 8, Unit: "short", Stack: true,
			Description: "Agents of the selected queues by state (available, busy, paused, ...).",
			Targets:     []Target{{Expr: "sum by (state) (" + s("servq_queue_agents", byQueue) + ")", Legend: "{{state}}"}}},
	)
	return b, nil
}

// slThreshold is the threshold of the first call_service_level SLO, 20s
// (the classic 80/20) without one. It is always a call_wait bucket bound.
func slThreshold(cfg *config.Config) float64 {
	for _, o := range cfg.SLOs {
		if o.Indicator == "call_service_level" {
			return o.Threshold.D().Seconds()
		}
	}
	return 20
}

// leRegex matches a bucket bound in either exposition format (20, 20.0).
func leRegex(v float64) string {
	return strings.ReplaceAll(strings.TrimPrefix(sli.LeMatcher(v), "=~"), `\`, `\\`)
}

// csatNet is a CSAT counter's increase in the range minus its retractions
// (ticket ratings the customer changed, whose new score counted again), so
// each response counts once at its latest score.
func csatNet(metric, retracted string, vars []string) string {
	return "(" + inc(s(metric, vars)) + " - (" + inc(s(retracted, vars)) + " or vector(0)))"
}

func surveysBoard(cfg *config.Config) *Board {
	b := newBoard(UIDSurveys, "servq / Surveys", "CSAT, NPS, customer effort and SERVQUAL gaps (perception minus expectation) per dimension.", "surveys")
	b.vars = commonVars()
	f := byQueueChan
	b.row("Satisfaction")
	b.add(
		Panel{Type: "stat", Title: "CSAT (satisfied)", W: 6, H: 6, Unit: "percentunit", Decimals: intPtr(1),
			Description: fmt.Sprintf("Share of CSAT responses scoring %g or more in the range.", cfg.Model.CSATSatisfiedMin),
			Targets:     []Target{{Expr: csatNet("servq_csat_satisfied_total", "servq_csat_satisfied_retracted_total", f) + " / " + csatNet("servq_csat_score_count", "servq_csat_retracted_score_count", f), Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(0.7), orange}, {v(0.85), green}}},
		Panel{Type: "stat", Title: "CSAT average", W: 6, H: 6, Unit: "none", Decimals: intPtr(2), Min: v(1), Max: v(cfg.Model.CSATScaleMax),
			Description: fmt.Sprintf("Mean CSAT score (1-%g) in the range.", cfg.Model.CSATScaleMax),
			Targets:     []Target{{Expr: csatNet("servq_csat_score_sum", "servq_csat_retracted_score_sum", f) + " / " + csatNet("servq_csat_score_count", "servq_csat_retracted_score_count", f), Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(3.5), orange}, {v(4), green}}},
		Panel{Type: "stat", Title: "NPS", W: 6, H: 6, Unit: "none", Decimals: intPtr(0), Min: v(-100), Max: v(100),
			Description: "Net Promoter Score in the range: % promoters (9-10) minus % detractors (0-6).",
			Targets:     []Target{{Expr: npsExpr(f, "$__range"), Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(0), orange}, {v(30), green}}},
		Panel{Type: "stat", Title: "Customer effort (CES)", W: 6, H: 6, Unit: "none", Decimals: intPtr(2), Min: v(1), Max: v(cfg.Model.CESScaleMax),
			Description: fmt.Sprintf("Mean customer effort score (1-%g; higher means easier on the agree-scale wording) in the range.", cfg.Model.CESScaleMax),
			Targets:     []Target{{Expr: inc(s("servq_ces_score_sum", f)) + " / " + inc(s("servq_ces_score_count", f)), Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(4), orange}, {v(5), green}}},
		Panel{Type: "bargauge", Title: "NPS categories", W: 12, Unit: "short",
			Description: "Responses by NPS category in the range: promoters, passives, detractors.",
			Targets:     []Target{{Expr: inc(s("servq_nps_responses_total", f), "category"), Legend: "{{category}}", Instant: true}},
			Thresholds:  []Threshold{{nil, "blue"}}},
		Panel{Type: "timeseries", Title: "CSAT average over time", W: 12, Unit: "none",
			Description: "Mean CSAT score over a sliding hour.",
			Targets:     []Target{{Expr: "(sum(increase(" + s("servq_csat_score_sum", f) + "[1h])) - (sum(increase(" + s("servq_csat_retracted_score_sum", f) + "[1h])) or vector(0))) / (sum(increase(" + s("servq_csat_score_count", f) + "[1h])) - (sum(increase(" + s("servq_csat_retracted_score_count", f) + "[1h])) or vector(0)))", Legend: "CSAT"}}},
	)
	b.row("SERVQUAL")
	sq := byCollector
	mean := func(scale string) string {
		return inc(s("servq_servqual_score_sum", sq, `scale="`+scale+`"`), "dimension") + " / " + inc(s("servq_servqual_score_count", sq, `scale="`+scale+`"`), "dimension")
	}
	b.add(
		Panel{Type: "bargauge", Title: "Expectation vs perception", W: 12, H: 9, Unit: "none", Min: v(1), Max: v(7), Decimals: intPtr(2),
			Description: "Mean answer (1-7) per SERVQUAL dimension in the range: what customers expect and what they perceived.",
			Targets: []Target{{Expr: mean("expectation"), Legend: "{{dimension}} expectation", Instant: true},
				{Expr: mean("perception"), Legend: "{{dimension}} perception", Instant: true}},
			Thresholds: []Threshold{{nil, "blue"}}},
		Panel{Type: "bargauge", Title: "Gap per dimension", W: 8, H: 9, Unit: "none", Min: v(-6), Max: v(6), Decimals: intPtr(2),
			Description: "SERVQUAL gap per dimension: mean perception minus mean expectation. Negative: service falls short of expectations.",
			Targets:     []Target{{Expr: "(" + mean("perception") + ") - (" + mean("expectation") + ")", Legend: "{{dimension}}", Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(-1), orange}, {v(0), green}}},
		Panel{Type: "stat", Title: "Weighted SERVQUAL gap", W: 4, H: 9, Unit: "none", Decimals: intPtr(2),
			Description: "Gaps weighted by importance: the configured model.servqual_weights, else the respondents' 100-point splits in the range, else equal weights.",
			Targets:     []Target{{Expr: sli.WeightedServqualGap(cfg, map[string]string{"collector": "=~$collector"}, "$__range"), Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(-1), orange}, {v(0), green}}},
	)
	return b
}

func sloBoard(cfg *config.Config) (*Board, error) {
	b := newBoard(UIDSLO, "servq / SLO detail", "One SLO in depth: SLI against the objective, burn rates per alert window, budget burn-down and alert state.", "slo")
	b.time = "now-7d"
	sloVar := queryVar("slo", "SLO", "label_values(sloth_slo_info{"+service(cfg)+"}, sloth_slo)")
	sloVar.Multi, sloVar.IncludeAll, sloVar.AllValue = false, false, ""
	b.vars = append(jobInstanceVars(), sloVar)
	sel := "{" + service(cfg) + `,sloth_slo="$slo"}`
	join := " / on(sloth_id, sloth_slo, sloth_service) group_left() slo:error_budget:ratio" + sel
	b.add(
		Panel{Type: "stat", Title: "Objective", W: 6, H: 5, Unit: "percentunit", Decimals: intPtr(2),
			Description: "The SLO's objective: the share of events that must be good over the window.",
			Targets:     []Target{{Expr: "slo:objective:ratio" + sel, Instant: true}}, Thresholds: []Threshold{{nil, "blue"}}},
		Panel{Type: "stat", Title: "Attained over the window", W: 6, H: 5, Unit: "percentunit", Decimals: intPtr(2),
			Description: "Share of good events over the SLO's whole window.",
			Targets:     []Target{{Expr: "1 - (slo:period_burn_rate:ratio" + sel + " * on(sloth_id, sloth_slo, sloth_service) group_left() slo:error_budget:ratio" + sel + ")", Instant: true}},
			Thresholds:  []Threshold{{nil, "blue"}}},
		Panel{Type: "stat", Title: "Error budget remaining", W: 6, H: 5, Unit: "percentunit", Decimals: intPtr(1),
			Description: "Share of the window's error budget not yet spent; below 0 the objective is missed.",
			Targets:     []Target{{Expr: "slo:period_error_budget_remaining:ratio" + sel, Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(0), orange}, {v(0.25), yellow}, {v(0.5), green}}},
		Panel{Type: "stat", Title: "Alerts firing", W: 6, H: 5, Unit: "short",
			Description: "Burn-rate alerts of this SLO firing now (page and ticket).",
			Targets:     []Target{{Expr: `count(ALERTS{alertstate="firing",sloth_slo="$slo"}) or vector(0)`, Instant: true}},
			Thresholds:  []Threshold{{nil, green}, {v(1), red}}},
		Panel{Type: "timeseries", Title: "SLI vs objective", W: 12, Unit: "percentunit",
			Description: "Share of good events over the last hour, against the objective (dashed).",
			Targets: []Target{{Expr: "1 - slo:sli_error:ratio_rate1h" + sel, Legend: "SLI (1h)"},
				{Expr: "slo:objective:ratio" + sel, Legend: "objective"}}},
		Panel{Type: "timeseries", Title: "Error budget burn-down", W: 12, Unit: "percentunit",
			Description: "Remaining error budget over the window as time passes; a steep fall is a fast burn.",
			Targets:     []Target{{Expr: "slo:period_error_budget_remaining:ratio" + sel, Legend: "remaining"}},
			Thresholds:  []Threshold{{nil, red}, {v(0), green}}},
	)
	var burn []Target
	for _, w := range []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d"} {
		burn = append(burn, Target{Expr: "slo:sli_error:ratio_rate" + w + sel + join, Legend: w})
	}
	b.add(
		Panel{Type: "timeseries", Title: "Burn rate per alert window", W: 12, Unit: "none",
			Description: "Error ratio over each alert window divided by the error budget. The page alert needs 1h and 5m (or 6h and 30m) above their factor; the ticket alert 1d and 2h (or 3d and 6h).",
			Targets:     burn, Thresholds: []Threshold{{nil, green}, {v(1), orange}}},
		Panel{Type: "timeseries", Title: "Alert state", W: 12, Unit: "short",
			Description: "Firing burn-rate alerts of this SLO by severity (1 while firing).",
			Targets:     []Target{{Expr: `max by (severity) (ALERTS{alertstate="firing",sloth_slo="$slo"})`, Legend: "{{severity}}", MayBeEmpty: "no alert of the SLO is firing"}}},
	)
	return b, nil
}

func healthBoard(cfg *config.Config) *Board {
	b := newBoard(UIDHealth, "servq / Health", "Is servq collecting: collectors up, last success, data lag, rejected input, label overflow, scrapes and pushes.", "health")
	b.vars = append(jobInstanceVars(), collectorVar())
	c := byCollector
	b.add(
		Panel{Type: "stat", Title: "Collectors up", W: 8, H: 6, Unit: "bool_yes_no",
			Description: "Whether each collector's last run succeeded.",
			Targets:     []Target{{Expr: s("servq_collector_up", c), Legend: "{{collector}}", Instant: true}},
			Thresholds:  []Threshold{{nil, red}, {v(1), green}}},
		Panel{Type: "bargauge", Title: "Since last success", W: 8, H: 6, Unit: "s",
			Description: "Time since each collector's last successful run.",
			Targets:     []Target{{Expr: "time() - " + s("servq_collector_last_success_timestamp_seconds", c), Legend: "{{collector}}", Instant: true}},
			Thresholds:  []Threshold{{nil, green}, {v(900), orange}, {v(3600), red}}},
		Panel{Type: "bargauge", Title: "Data lag", W: 8, H: 6, Unit: "s",
			Description: "Time since the newest record each collector delivered (sparse sources such as surveys lag naturally).",
			Targets:     []Target{{Expr: s("servq_collector_lag_seconds", c), Legend: "{{collector}}", Instant: true}},
			Thresholds:  []Threshold{{nil, green}, {v(3600), orange}, {v(86400), red}}},
		Panel{Type: "timeseries", Title: "Runs by result (per minute)", W: 12, Unit: "short",
			Description: "Collector runs per minute: success, error, panic, skipped (previous run still going).",
			Targets:     []Target{{Expr: rate(s("servq_collector_runs_total", c), "collector", "result") + " * 60", Legend: "{{collector}} {{result}}"}}},
		Panel{Type: "timeseries", Title: "Records per second", W: 12, Unit: "short",
			Description: "Records read by kind and result (accepted, duplicate) and input rejected by reason.",
			Targets: []Target{{Expr: rate(s("servq_collector_records_total", c), "kind", "result"), Legend: "{{kind}} {{result}}"},
				{Expr: rate(s("servq_collector_rejected_records_total", c), "reason"), Legend: "rejected {{reason}}", MayBeEmpty: "no input was rejected"}}},
		Panel{Type: "timeseries", Title: "Label overflow (per hour)", W: 12, Unit: "short",
			Description: "Records whose label value became \"other\" because the label reached global.label_limit.",
			Targets:     []Target{{Expr: rate(s("servq_label_overflow_total", c), "collector", "label") + perHour, Legend: "{{collector}} {{label}}", MayBeEmpty: "no label reached its cap"}}},
		Panel{Type: "timeseries", Title: "Scrape and push", W: 12, Unit: "s",
			Description: "How long Prometheus takes to scrape servq, and pushes to VictoriaMetrics by result (when push is configured).",
			Targets: []Target{{Expr: "max(scrape_duration_seconds and on(job, instance) servq_build_info)", Legend: "scrape duration"},
				{Expr: "sum by (result) (rate(servq_push_total[$__rate_interval]))", Legend: "push {{result}}", MayBeEmpty: "push is not configured"}}},
	)
	return b
}
