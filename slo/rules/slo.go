package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// burnWindow is one pair of the multi-window multi-burn-rate alerts: the
// alert fires when both windows burn faster than Factor × budget. The
// fractions are the share of the whole window's budget that such a burn
// spends in the long window (the SRE workbook's 2 % in 1h, 5 % in 6h,
// 10 % in 1d and in 3d), so the factors scale with the SLO window: a 30d
// window gives the classic 14.4, 6, 3 and 1; 28d gives 13.44, 5.6, 2.8
// and 0.93.
type burnWindow struct {
	Long, Short time.Duration
	Fraction    float64
	Severity    string
}

// Threshold is the error ratio above which the pair fires: factor ×
// budget, capped at halfway between the budget and 100 % errors. The cap
// matters for the objectives of customer service: with an 80 % objective
// the budget is 20 % of events and the fastest possible burn is 5×, so a
// 14.4× page could never fire; capped, it pages when well over half of the
// calls miss the target for an hour, which is the outage it is meant to
// catch.
func (b burnWindow) Threshold(window time.Duration, budget float64) (threshold float64, capped bool) {
	t := b.Factor(window) * budget
	if limit := (1 + budget) / 2; t > limit {
		return limit, true
	}
	return t, false
}

var burnWindows = []burnWindow{
	{time.Hour, 5 * time.Minute, 0.02, config.SeverityPage},
	{6 * time.Hour, 30 * time.Minute, 0.05, config.SeverityPage},
	{24 * time.Hour, 2 * time.Hour, 0.10, config.SeverityTicket},
	{72 * time.Hour, 6 * time.Hour, 0.10, config.SeverityTicket},
}

// Factor is the burn rate that spends Fraction of the budget of window in
// the long window.
func (b burnWindow) Factor(window time.Duration) float64 {
	return b.Fraction * float64(window) / float64(b.Long)
}

// Names of the recorded series. The slo:* names and sloth_* labels are the
// conventions of the common SLO generators; servq:* are servq's own
// additions (event counts, which the ratio conventions lack).
const (
	recErrorRatio  = "slo:sli_error:ratio_rate"
	recObjective   = "slo:objective:ratio"
	recBudget      = "slo:error_budget:ratio"
	recPeriodDays  = "slo:time_period:days"
	recCurrentBurn = "slo:current_burn_rate:ratio"
	recPeriodBurn  = "slo:period_burn_rate:ratio"
	recRemaining   = "slo:period_error_budget_remaining:ratio"
	recInfo        = "sloth_slo_info"
	recBadEvents   = "servq:slo_bad_events:increase"
	recEvents      = "servq:slo_events:increase"
)

// ID is the sloth_id of an SLO: service and name.
func ID(cfg *config.Config, s *config.SLO) string { return cfg.Global.Service + "-" + s.Name }

func sloLabels(cfg *config.Config, s *config.SLO) map[string]string {
	return map[string]string{"sloth_id": ID(cfg, s), "sloth_service": cfg.Global.Service, "sloth_slo": s.Name}
}

// AlertName is the name of an SLO's burn-rate alerts.
func AlertName(s *config.SLO) string {
	if s.Alerting.Name != "" {
		return s.Alerting.Name
	}
	return camel(s.Name) + "ErrorBudgetBurn"
}

// activeWindows are the burn windows that fit the SLO window and whose
// severity is enabled.
func activeWindows(s *config.SLO) []burnWindow {
	var out []burnWindow
	for _, b := range burnWindows {
		if b.Long > s.Window.D() {
			continue // a 3d window says nothing about a 1d objective
		}
		if b.Severity == config.SeverityPage && !s.Alerting.PageEnabled() ||
			b.Severity == config.SeverityTicket && !s.Alerting.TicketEnabled() {
			continue
		}
		out = append(out, b)
	}
	return out
}

func sloGroups(cfg *config.Config, s *config.SLO) ([]Group, error) {
	ind, err := sli.For(cfg, s)
	if err != nil {
		return nil, err
	}
	labels := sloLabels(cfg, s)
	sel := func(metric string) string { return sli.Selector(metric, map[string]string{"sloth_id": ID(cfg, s)}) }
	window := sli.Window(s.Window.D())
	windows := map[time.Duration]bool{s.Window.D(): true, 5 * time.Minute: true}
	for _, b := range burnWindows {
		if b.Long <= s.Window.D() {
			windows[b.Long], windows[b.Short] = true, true
		}
	}
	ordered := make([]time.Duration, 0, len(windows))
	for w := range windows {
		ordered = append(ordered, w)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i] < ordered[j] })

	// SLI recordings: the error ratio over every window, and bad-event
	// counts over the long alert windows (for the low-volume guard) and
	// the SLO window (budget in events).
	sliGroup := Group{Name: "servq-slo-" + s.Name + "-sli"}
	for _, w := range ordered {
		ws := sli.Window(w)
		sliGroup.Rules = append(sliGroup.Rules, Rule{Record: recErrorRatio + ws, Expr: ind.ErrorRatio(ws),
			Labels: merge(labels, map[string]string{"sloth_window": ws})})
	}
	counted := map[time.Duration]bool{s.Window.D(): true}
	for _, b := range activeWindows(s) {
		counted[b.Long] = true
	}
	for _, w := range ordered {
		if !counted[w] {
			continue
		}
		ws := sli.Window(w)
		bad, err := ind.BadCount(ws)
		if err != nil {
			return nil, err
		}
		sliGroup.Rules = append(sliGroup.Rules, Rule{Record: recBadEvents + ws, Expr: bad,
			Labels: merge(labels, map[string]string{"sloth_window": ws})})
	}
	total, err := ind.TotalCount(window)
	if err != nil {
		return nil, err
	}
	sliGroup.Rules = append(sliGroup.Rules, Rule{Record: recEvents + window, Expr: total,
		Labels: merge(labels, map[string]string{"sloth_window": window})})

	objective := s.Objective / 100
	budget := (100 - s.Objective) / 100
	join := "on(sloth_id, sloth_slo, sloth_service) group_left"
	meta := Group{Name: "servq-slo-" + s.Name + "-meta", Rules: []Rule{
		{Record: recObjective, Expr: "vector(" + sli.Num(objective) + ")", Labels: labels},
		{Record: recBudget, Expr: "vector(" + sli.Num(budget) + ")", Labels: labels},
		{Record: recPeriodDays, Expr: "vector(" + sli.Num(s.Window.D().Hours()/24) + ")", Labels: labels},
		{Record: recCurrentBurn, Expr: fmt.Sprintf("sum without (sloth_window) (%s)\n/ %s\n%s", sel(recErrorRatio+"5m"), join, sel(recBudget)), Labels: labels},
		{Record: recPeriodBurn, Expr: fmt.Sprintf("sum without (sloth_window) (%s)\n/ %s\n%s", sel(recErrorRatio+window), join, sel(recBudget)), Labels: labels},
		{Record: recRemaining, Expr: "1 - " + sel(recPeriodBurn), Labels: labels},
		{Record: recInfo, Expr: "vector(1)", Labels: merge(labels, map[string]string{
			"sloth_mode": "servq", "sloth_spec": "servq/v1", "sloth_objective": sli.Num(s.Objective),
			"servq_indicator": s.Indicator, "servq_window": window, "servq_threshold": thresholdString(s),
		})},
	}}

	groups := []Group{sliGroup, meta}
	if alerts := burnAlerts(cfg, s, labels, sel, budget); len(alerts) > 0 {
		groups = append(groups, Group{Name: "servq-slo-" + s.Name + "-alerts", Rules: alerts})
	}
	return groups, nil
}

func thresholdString(s *config.SLO) string {
	if s.Threshold == 0 {
		return ""
	}
	return s.Threshold.String()
}

// burnAlerts builds the page and ticket alerts. Each window pair is
//
//	error ratio over the short window > factor × budget
//	and error ratio over the long window > factor × budget
//	and bad events in the long window >= min_bad_events
//
// and the alert is the "or" of its pairs. The last clause is the
// low-volume guard: with two tickets an hour one late reply is a 50 %
// error ratio, a burn no one should be woken for.
func burnAlerts(cfg *config.Config, s *config.SLO, labels map[string]string, sel func(string) string, budget float64) []Rule {
	var out []Rule
	for _, sev := range []string{config.SeverityPage, config.SeverityTicket} {
		var clauses, prose []string
		for _, b := range activeWindows(s) {
			if b.Severity != sev {
				continue
			}
			factor := strconv.FormatFloat(b.Factor(s.Window.D()), 'g', 4, 64)
			cond := fmt.Sprintf("> (%s * %s)", factor, sli.Num(budget))
			threshold, capped := b.Threshold(s.Window.D(), budget)
			if capped {
				cond = "> " + sli.Num(threshold)
			}
			parts := []string{
				fmt.Sprintf("max without (sloth_window) (%s %s)", sel(recErrorRatio+sli.Window(b.Short)), cond),
				fmt.Sprintf("max without (sloth_window) (%s %s)", sel(recErrorRatio+sli.Window(b.Long)), cond),
			}
			if s.Alerting.MinBadEvents > 1 {
				// increase() extrapolates to the window's edges, so N bad
				// events can read as a little less than N.
				parts = append(parts, fmt.Sprintf("max without (sloth_window) (%s >= %s)",
					sel(recBadEvents+sli.Window(b.Long)), sli.Num(float64(s.Alerting.MinBadEvents)-0.5)))
			}
			clauses = append(clauses, "(\n    "+strings.Join(parts, "\n  and\n    ")+"\n)")
			p := fmt.Sprintf("%s× over %s and %s (%g%% of the budget in %s)",
				factor, sli.Window(b.Long), sli.Window(b.Short), b.Fraction*100, sli.Window(b.Long))
			if capped {
				p = fmt.Sprintf("%s%% errors over %s and %s (%s× is beyond 100%% errors)", sli.Num(threshold*100), sli.Window(b.Long), sli.Window(b.Short), factor)
			}
			prose = append(prose, p)
		}
		if len(clauses) == 0 {
			continue
		}
		desc := fmt.Sprintf("Objective %s%% of %s over %s; error budget %s%%.", sli.Num(s.Objective), s.Indicator, sli.Window(s.Window.D()), sli.Num(budget*100))
		if s.Description != "" {
			desc = s.Description + " " + desc
		}
		desc += fmt.Sprintf(" The error ratio burns the budget faster than %s.", strings.Join(prose, ", or "))
		if s.Alerting.MinBadEvents > 1 {
			desc += fmt.Sprintf(" (At least %d bad events in the long window.)", s.Alerting.MinBadEvents)
		}
		desc += " Short-window error ratio now: {{ $value | humanizePercentage }}."
		ann := merge(map[string]string{
			"summary":     fmt.Sprintf("SLO %s of %s is burning its error budget too fast (%s).", s.Name, cfg.Global.Service, sev),
			"description": desc,
		}, s.Alerting.Annotations)
		if s.Alerting.RunbookURL != "" {
			ann["runbook_url"] = s.Alerting.RunbookURL
		}
		out = append(out, Rule{
			Alert:       AlertName(s),
			Expr:        strings.Join(clauses, "\nor\n"),
			Labels:      merge(cfg.Rules.Labels, s.Alerting.Labels, labels, map[string]string{"severity": sev, "sloth_severity": sev}),
			Annotations: ann,
		})
	}
	return out
}

// Warnings lists what users should know about their alerts: thresholds
// capped because factor × budget is beyond what can happen, SLO windows
// too short for any alert window.
func Warnings(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.SLOs {
		budget := (100 - s.Objective) / 100
		for _, b := range activeWindows(s) {
			if t, capped := b.Threshold(s.Window.D(), budget); capped {
				out = append(out, fmt.Sprintf("slo %s: %s× burn over %s/%s would need %s%% errors; the %s alert fires at %s%% errors instead",
					s.Name, sli.Num(b.Factor(s.Window.D())), sli.Window(b.Long), sli.Window(b.Short), sli.Num(b.Factor(s.Window.D())*budget*100), b.Severity, sli.Num(t*100)))
			}
		}
		if len(activeWindows(s)) == 0 && (s.Alerting.PageEnabled() || s.Alerting.TicketEnabled()) {
			out = append(out, fmt.Sprintf("slo %s: the window %s is shorter than every alert window: no burn-rate alert", s.Name, sli.Window(s.Window.D())))
		}
	}
	return out
}
