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

// burnWindow is one pair of the multi-window multi-burn-rate alerts as the
// SRE workbook defines it for a 30d window: the pair fires when both
// windows burn the budget faster than a factor. Fraction is the share of
// the SLO window's budget that the pair's burn spends in the long window
// (2 % in 1h, 5 % in 6h, 10 % in 1d and in 3d: 14.4×, 6×, 3× and 1× of a
// 30d budget). Every short window is a 12th of its long window.
type burnWindow struct {
	Long, Short time.Duration
	Fraction    float64
	Severity    string
}

var burnWindows = []burnWindow{
	{time.Hour, 5 * time.Minute, 0.02, config.SeverityPage},
	{6 * time.Hour, 30 * time.Minute, 0.05, config.SeverityPage},
	{24 * time.Hour, 2 * time.Hour, 0.10, config.SeverityTicket},
	{72 * time.Hour, 6 * time.Hour, 0.10, config.SeverityTicket},
}

const (
	day = 24 * time.Hour
	// scaleFrom is the shortest SLO window whose factors keep the budget
	// fractions and so grow with the window: 28d gives Sloth's 28d
	// catalogue (13.44, 5.6, 2.8, 0.933), 30d the classic 14.4, 6, 3, 1,
	// 90d 43.2, 18, 9, 3. Below it the fractions would shrink the factors
	// under 1× (7d: 3.36, 1.4, 0.7, 0.233), so that alerts fire while the
	// objective is met and never clear; there the 30d burn rates are kept.
	scaleFrom = 28 * day
	// burnFloor is the least factor below scaleFrom. It is strictly above
	// 1× so that a steady error ratio at the budget (the objective just
	// met) never opens a ticket, with a margin for the noise of a service
	// that runs at its objective: the 30d slow burn of 1× would flap there.
	burnFloor = 1.2
)

// rate30d is the pair's burn rate on a 30d window: 14.4, 6, 3 or 1.
func (b burnWindow) rate30d() float64 { return b.Fraction * float64(30*day) / float64(b.Long) }

// alertPair is a burn window as alerted on for one SLO window.
type alertPair struct {
	From        burnWindow    // the workbook pair it comes from
	Long, Short time.Duration // From's windows, or shrunk to the SLO window
	Factor      float64
	Severity    string
	Floored     bool // the 30d rate was below burnFloor
	Shrunk      bool // From.Long is longer than the SLO window
	// Replaced are pairs of the same severity over the same windows with a
	// higher factor: they could only fire when this one does, so they are
	// left out.
	Replaced []alertPair
}

// pairsFor are the alert pairs of an SLO window, of both severities:
//
//   - from 28d up, factor = budget fraction × window / long window, so
//     30d keeps 14.4/6/3/1 and 28d Sloth's catalogue 13.44/5.6/2.8/0.933;
//   - below 28d, the 30d burn rates 14.4/6/3/1, at least burnFloor;
//   - a pair whose long window is longer than the SLO window runs over the
//     SLO window and a 12th of it instead (a 1d window's 3d/6h ticket over
//     1d/2h): dropping it would leave a short window without a slow-burn
//     ticket, so that an objective missed every day by a burn under 3×
//     never alerted. Of two pairs of one severity that then share their
//     windows, the lower factor is kept.
func pairsFor(window time.Duration) []alertPair {
	var out []alertPair
	for _, b := range burnWindows {
		p := alertPair{From: b, Long: b.Long, Short: b.Short, Severity: b.Severity}
		if window >= scaleFrom {
			p.Factor = b.Fraction * float64(window) / float64(b.Long)
		} else {
			p.Factor = b.rate30d()
			if p.Factor < burnFloor {
				p.Factor, p.Floored = burnFloor, true
			}
			if b.Long > window {
				// Whole minutes keep the range readable (1h30m -> 7m,
				// not 7m30s); a window is at least 1h, so the short
				// window at least 5m.
				p.Long, p.Short, p.Shrunk = window, (window / 12).Truncate(time.Minute), true
			}
		}
		merged := false
		for i := range out {
			q := &out[i]
			if q.Severity != p.Severity || q.Long != p.Long || q.Short != p.Short {
				continue
			}
			if p.Factor < q.Factor {
				p.Replaced = append(append(p.Replaced, q.Replaced...), q.withoutReplaced())
				*q = p
			} else {
				q.Replaced = append(q.Replaced, p)
			}
			merged = true
			break
		}
		if !merged {
			out = append(out, p)
		}
	}
	return out
}

func (p alertPair) withoutReplaced() alertPair { p.Replaced = nil; return p }

// Threshold is the error ratio above which the pair fires: factor ×
// budget, capped at halfway between the budget and 100 % errors. The cap
// matters for the objectives of customer service: with an 80 % objective
// the budget is 20 % of events and the fastest possible burn is 5×, so a
// 14.4× page could never fire; with a 95 % objective 14.4× is 72 % errors,
// possible but a bar so high that a queue half unstaffed stays under it.
// Capped, the pair fires when the error ratio is more than halfway from
// the budget to 100 % errors, which every full outage crosses and no
// steady ratio at the budget does.
func (p alertPair) Threshold(budget float64) (threshold float64, capped bool) {
	t := p.Factor * budget
	// (The relative margin keeps 3 × 0.2 = 0.6000000000000001 from
	// counting as above the cap of 0.6.)
	if limit := (1 + budget) / 2; t > limit*(1+1e-9) {
		return limit, true
	}
	return t, false
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
	recCoverage    = "servq:slo_window_coverage:ratio"
)

// ID is the sloth_id of an SLO: service and name.
func ID(cfg *config.Config, s *config.SLO) string { return cfg.Global.Service + "-" + s.Name }

func sloLabels(cfg *config.Config, s *config.SLO) map[string]string {
	return merge(s.Labels, map[string]string{"sloth_id": ID(cfg, s), "sloth_service": cfg.Global.Service, "sloth_slo": s.Name})
}

// AlertName is the name of an SLO's burn-rate alerts.
func AlertName(s *config.SLO) string {
	if s.Alerting.Name != "" {
		return s.Alerting.Name
	}
	return camel(s.Name) + "ErrorBudgetBurn"
}

// activePairs are the alert pairs of the SLO whose severity is enabled.
func activePairs(s *config.SLO) []alertPair {
	var out []alertPair
	for _, p := range pairsFor(s.Window.D()) {
		if p.Severity == config.SeverityPage && !s.Alerting.PageEnabled() ||
			p.Severity == config.SeverityTicket && !s.Alerting.TicketEnabled() {
			continue
		}
		out = append(out, p)
	}
	return out
}

// BurnPair is one multi-window burn-rate alert of an SLO as the generated
// rules define it, for views that evaluate the same pairs on their own
// counts (the status page).
type BurnPair struct {
	Long, Short time.Duration
	Factor      float64
	Severity    string
	// Threshold is the error ratio above which both windows must be for
	// the pair to fire (Factor × budget, or the cap).
	Threshold float64
}

// BurnPairs are the enabled alert pairs of an SLO, with the thresholds the
// generated alerts use.
func BurnPairs(s *config.SLO) []BurnPair {
	budget := (100 - s.Objective) / 100
	var out []BurnPair
	for _, p := range activePairs(s) {
		t, _ := p.Threshold(budget)
		out = append(out, BurnPair{Long: p.Long, Short: p.Short, Factor: p.Factor, Severity: p.Severity, Threshold: t})
	}
	return out
}

// slothDashboardWindows are the SLI windows Sloth's dashboards offer.
var slothDashboardWindows = []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour, 72 * time.Hour, 30 * 24 * time.Hour}

// ratioWindows are the windows of an SLO's recorded error ratios, shortest
// first: 5m, the SLO window, the alert windows and the windows Sloth's
// dashboards offer.
func ratioWindows(s *config.SLO) []time.Duration {
	windows := map[time.Duration]bool{s.Window.D(): true, 5 * time.Minute: true}
	// Sloth's SLO dashboards (grafana.com 14348 and 14643) offer these SLI
	// windows and read a missing one as 100 %: a 28d or 7d SLO would show
	// a false perfect SLI at "30d". Recording them all keeps every choice
	// true (the 30d ratio of a 7d SLO is the last 30 days, not its window).
	for _, w := range slothDashboardWindows {
		windows[w] = true
	}
	for _, p := range pairsFor(s.Window.D()) {
		windows[p.Long], windows[p.Short] = true, true
	}
	ordered := make([]time.Duration, 0, len(windows))
	for w := range windows {
		ordered = append(ordered, w)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i] < ordered[j] })
	return ordered
}

// sloGroups are the rule groups of one SLO of its own: the SLI group of a
// custom SLO and the alerts. Its other recordings are written, with
// every other SLO's, by the steps group (built-in indicators) and the
// metadata group.
func sloGroups(cfg *config.Config, s *config.SLO, st *steps, meta *metas) (sliGroups, alerts []Group, err error) {
	ind, err := sli.For(cfg, s)
	if err != nil {
		return nil, nil, err
	}
	labels := sloLabels(cfg, s)
	sel := func(metric string) string { return sli.Selector(metric, map[string]string{"sloth_id": ID(cfg, s)}) }
	window := sli.Window(s.Window.D())
	ordered := ratioWindows(s)

	// The steps read the sums servq keeps per SLO (servq_slo_input_total),
	// a few series instead of every queue's and channel's.
	counts, err := sli.StepCounts(cfg, s)
	if err != nil {
		return nil, nil, err
	}
	var badCount func(w time.Duration) string
	coverage := ""
	if counts != nil {
		// Built-in indicators: the steps the window sums, exactly (an
		// evaluation Prometheus skipped is a step missing), from the
		// step series, not the raw samples; in the steps group, with
		// every other built-in SLO's (see sloRules).
		badCount = st.add(s, counts, ID(cfg, s), sel, ordered)
	} else {
		g := Group{Name: "servq-slo-" + s.Name + "-sli"}
		badCount, err = rawRules(s, ind, labels, sel, ordered, &g)
		if err != nil {
			return nil, nil, err
		}
		sliGroups = append(sliGroups, g)
		// The share of the window Prometheus holds servq samples for,
		// hourly.
		coverage = fmt.Sprintf("clamp_max((time() - min(min_over_time(timestamp(servq_build_info)[%s:1h]))) / %s, 1)",
			window, sli.Num(s.Window.D().Seconds()))
	}
	budget := (100 - s.Objective) / 100
	meta.add(cfg, s, labels, coverage)
	if rs := burnAlerts(cfg, s, labels, sel, budget, badCount); len(rs) > 0 {
		alerts = append(alerts, Group{Name: "servq-slo-" + s.Name + "-alerts", Rules: rs})
	}
	return sliGroups, alerts, nil
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
func burnAlerts(cfg *config.Config, s *config.SLO, labels map[string]string, sel func(string) string, budget float64, badCount func(time.Duration) string) []Rule {
	var out []Rule
	for _, sev := range []string{config.SeverityPage, config.SeverityTicket} {
		var clauses, prose []string
		for _, p := range activePairs(s) {
			if p.Severity != sev {
				continue
			}
			// Ten digits: Sloth's 28d ticket factor is 28/30 (0.9333…),
			// not 0.9333.
			factor := strconv.FormatFloat(p.Factor, 'g', 10, 64)
			cond := fmt.Sprintf("> (%s * %s)", factor, sli.Num(budget))
			threshold, capped := p.Threshold(budget)
			if capped {
				cond = "> " + sli.Num(threshold)
			}
			parts := []string{
				fmt.Sprintf("max without (sloth_window) (%s %s)", sel(recErrorRatio+sli.Window(p.Short)), cond),
				fmt.Sprintf("max without (sloth_window) (%s %s)", sel(recErrorRatio+sli.Window(p.Long)), cond),
			}
			if s.Alerting.MinBadEvents > 1 {
				// The half keeps float noise (and, for custom SLIs,
				// increase()'s extrapolation) from reading N bad events
				// as a little less than N.
				// "and on()": the count of a window summed from the
				// term windows has no labels (each side is one series).
				parts = append(parts, fmt.Sprintf("on() max without (sloth_window) (%s >= %s)",
					badCount(p.Long), sli.Num(float64(s.Alerting.MinBadEvents)-0.5)))
			}
			clauses = append(clauses, "(\n    "+strings.Join(parts, "\n  and\n    ")+"\n)")
			// The share of the SLO window's budget that the burn spends in
			// the long window: the workbook's fraction from 28d up, more
			// below (14.4× for 1h of a 7d window is 8.57 %).
			spent := round(p.Factor * float64(p.Long) / float64(s.Window.D()) * 100)
			pr := fmt.Sprintf("%s× over %s and %s (%s%% of the budget in %s)",
				strconv.FormatFloat(p.Factor, 'g', 4, 64), sli.Window(p.Long), sli.Window(p.Short), sli.Num(spent), sli.Window(p.Long))
			if capped {
				pr = fmt.Sprintf("%s%% errors over %s and %s (the pair %s)",
					sli.Num(threshold*100), sli.Window(p.Long), sli.Window(p.Short), capNote(p, budget))
			}
			prose = append(prose, pr)
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

// capNote says that a threshold is capped and why, truthfully: factor ×
// budget is either beyond 100 % errors, or possible but beyond the cap.
func capNote(p alertPair, budget float64) string {
	t, _ := p.Threshold(budget)
	why := "beyond that halfway mark"
	if p.Factor*budget >= 1 {
		why = "which cannot happen"
	}
	return fmt.Sprintf("is capped at %s%% errors, halfway from the budget to 100%%: %s× of a %s%% budget would be %s%% errors, %s",
		sli.Num(t*100), sli.Num(round(p.Factor)), sli.Num(budget*100), sli.Num(round(p.Factor*budget*100)), why)
}

// Warnings lists what users should know about their burn-rate alerts:
// one note for every enabled pair that is not the workbook's pair at the
// workbook's factor scaled to the window, or that fires while the
// objective is met:
//
//   - floored: below 28d the 30d factor was under burnFloor;
//   - shrunk: its long window is longer than the SLO window;
//   - left out: a pair over the same windows with a lower factor stands
//     for it;
//   - under 1×: the 3d/6h ticket of windows from 28d to under 30d (Sloth's
//     catalogue), which a steady error ratio just under the budget opens;
//   - capped: factor × budget is more than halfway to 100 % errors.
func Warnings(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.SLOs {
		w := s.Window.D()
		budget := (100 - s.Objective) / 100
		name := func(p alertPair) string {
			return fmt.Sprintf("slo %s (window %s): the %s/%s %s alert", s.Name, sli.Window(w), sli.Window(p.From.Long), sli.Window(p.From.Short), p.Severity)
		}
		for _, p := range activePairs(s) {
			var why []string
			if p.Shrunk {
				why = append(why, fmt.Sprintf("runs over %s/%s, as %s is longer than the SLO window", sli.Window(p.Long), sli.Window(p.Short), sli.Window(p.From.Long)))
			}
			if p.Floored {
				why = append(why, fmt.Sprintf("burns at %s×, not the 30d window's %s×: at least %s× below 28d, so that a steady error ratio at the budget never fires it",
					sli.Num(p.Factor), sli.Num(round(p.From.rate30d())), sli.Num(burnFloor)))
			} else if p.Factor < 1 {
				why = append(why, fmt.Sprintf("burns at %s×, the 30d window's budget share scaled to this window as in Sloth's 28d catalogue: a steady error ratio between %s%% and 100%% of the budget fires it although the objective is met",
					sli.Num(round(p.Factor)), sli.Num(round(p.Factor*100))))
			}
			if _, capped := p.Threshold(budget); capped {
				why = append(why, capNote(p, budget))
			}
			if len(why) > 0 {
				out = append(out, name(p)+" "+strings.Join(why, "; "))
			}
			for _, r := range p.Replaced {
				how := fmt.Sprintf("over %s/%s", sli.Window(p.Long), sli.Window(p.Short))
				if p.Shrunk {
					how = "shrunk to " + sli.Window(p.Long) + "/" + sli.Window(p.Short)
				}
				out = append(out, fmt.Sprintf("%s at %s× is left out: the %s/%s alert, %s at %s×, fires whenever it would",
					name(r), sli.Num(round(r.Factor)), sli.Window(p.From.Long), sli.Window(p.From.Short), how, sli.Num(round(p.Factor))))
			}
		}
	}
	if note := seriesDelayNote(cfg); note != "" {
		out = append(out, note)
	}
	if note := retentionNote(cfg); note != "" {
		out = append(out, note)
	}
	return out
}

// seriesDelayNote warns when a new series is not served at 0 long enough
// for a step to see the 0: a step counts a series from its sample one
// interval ago, so its first events would be lost. (0, the delay turned
// off, loses them with any rules, and is the user's explicit choice.)
func seriesDelayNote(cfg *config.Config) string {
	d := cfg.Global.SeriesDelay()
	if d == 0 || d > Step(cfg) {
		return ""
	}
	for _, s := range cfg.SLOs {
		if s.Indicator != "custom" {
			return fmt.Sprintf("global.new_series_delay (%s) is not longer than the rules' interval (%s): the SLO rules count a new series from its sample one interval ago, so its first events can be missed; make it longer than the interval plus the scrape interval",
				sli.Window(d), sli.Window(Step(cfg)))
		}
	}
	return ""
}

// retentionNote says how much history the rules read: an SLO's window
// ratio over 28 days on a Prometheus that keeps 10 days is the ratio of
// those 10 days, silently.
func retentionNote(cfg *config.Config) string {
	var longest time.Duration
	var who string
	for _, s := range cfg.SLOs {
		if d := s.Window.D(); d > longest {
			longest, who = d, "slo "+s.Name
		}
	}
	if longest == 0 {
		return ""
	}
	return fmt.Sprintf("Prometheus must keep at least %s of samples (%s reads %s; the Prometheus Operator keeps 24h by default, kube-prometheus-stack 10d): until it holds that much, %s is below 1 and window ratios cover only what it has",
		sli.Window(longest), who, sli.Window(longest), recCoverage)
}

// round keeps notes readable with the precision of the factors in the
// rules: 0.9333333 -> 0.9333, 13.44 stays 13.44.
func round(v float64) float64 {
	p, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return p
}
