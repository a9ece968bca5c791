package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// metas collects the metadata recordings of every SLO (objective, budget,
// period, burn rates, remaining budget, info), which the group
// "servq-slo-meta" records with one rule per series name for all SLOs
// instead of one per SLO (see sloRules for why): the same series, label
// for label.
type metas struct {
	objective, budget, days, info []string
	ids                           []string
	byWindow                      map[time.Duration][]string
	coverage                      []Rule // of custom SLOs
}

// add adds the metadata of one SLO; coverage, when not empty, is its
// window coverage (custom SLOs; the steps group records the others').
func (m *metas) add(cfg *config.Config, s *config.SLO, labels map[string]string, coverage string) {
	if m.byWindow == nil {
		m.byWindow = map[time.Duration][]string{}
	}
	id := ID(cfg, s)
	m.ids = append(m.ids, id)
	m.byWindow[s.Window.D()] = append(m.byWindow[s.Window.D()], id)
	m.objective = append(m.objective, constVector(s.Objective/100, labels))
	m.budget = append(m.budget, constVector((100-s.Objective)/100, labels))
	m.days = append(m.days, constVector(s.Window.D().Hours()/24, labels))
	m.info = append(m.info, constVector(1, merge(labels, map[string]string{
		"sloth_mode": "servq", "sloth_spec": "servq/v1", "sloth_objective": sli.Num(s.Objective),
		"servq_indicator": s.Indicator, "servq_window": sli.Window(s.Window.D()), "servq_threshold": thresholdString(s),
	})))
	if coverage != "" {
		m.coverage = append(m.coverage, Rule{Record: recCoverage, Expr: coverage, Labels: labels})
	}
}

// group is the metadata group; the burn rates keep the ratio's
// sloth_window (5m, the window), as Sloth's do: dashboards built for
// Sloth select by it.
func (m *metas) group() (Group, bool) {
	if len(m.ids) == 0 {
		return Group{}, false
	}
	or := func(parts []string) string { return strings.Join(parts, "\nor\n") }
	ids := idMatcher(m.ids)
	perBudget := func(ratio string, ids map[string]string) string {
		return fmt.Sprintf("%s\n/ on(sloth_id, sloth_slo, sloth_service) group_left\n%s",
			sli.Selector(ratio, ids), sli.Selector(recBudget, ids))
	}
	var period []string
	for _, w := range sortedDurations(m.byWindow) {
		period = append(period, perBudget(recErrorRatio+sli.Window(w), idMatcher(m.byWindow[w])))
	}
	rules := []Rule{
		{Record: recObjective, Expr: or(m.objective)},
		{Record: recBudget, Expr: or(m.budget)},
		{Record: recPeriodDays, Expr: or(m.days)},
		{Record: recCurrentBurn, Expr: perBudget(recErrorRatio+"5m", ids)},
		{Record: recPeriodBurn, Expr: or(period)},
		{Record: recRemaining, Expr: "1 - " + sli.Selector(recPeriodBurn, ids)},
		{Record: recInfo, Expr: or(m.info)},
	}
	return Group{Name: "servq-slo-meta", Rules: append(rules, m.coverage...)}, true
}
