package rules

import (
	"fmt"
	"maps"
	"slices"
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
	objectives []constRow
	ids        []string
	byBudget   map[float64][]string
	own        map[string]map[string]string // the SLOs' config labels, by sloth_id
	info       map[string]map[string]string // sloth_slo_info's labels beyond those
	byWindow   map[time.Duration][]string
	coverage   []Rule // of custom SLOs
}

// add adds the metadata of one SLO; coverage, when not empty, is its
// window coverage (custom SLOs; the steps group records the others').
func (m *metas) add(cfg *config.Config, s *config.SLO, labels map[string]string, coverage string) {
	if m.byWindow == nil {
		m.byWindow, m.own, m.info = map[time.Duration][]string{}, map[string]map[string]string{}, map[string]map[string]string{}
		m.byBudget = map[float64][]string{}
	}
	id := ID(cfg, s)
	m.ids = append(m.ids, id)
	m.own[id] = s.Labels
	m.byWindow[s.Window.D()] = append(m.byWindow[s.Window.D()], id)
	m.objectives = append(m.objectives, constRow{value: s.Objective / 100, id: id})
	budget := (100 - s.Objective) / 100
	m.byBudget[budget] = append(m.byBudget[budget], id)
	m.info[id] = merge(s.Labels, map[string]string{
		"sloth_mode": "servq", "sloth_spec": "servq/v1", "sloth_objective": sli.Num(s.Objective),
		"servq_indicator": s.Indicator, "servq_window": sli.Window(s.Window.D()), "servq_threshold": thresholdString(s),
	})
	if coverage != "" {
		m.coverage = append(m.coverage, Rule{Record: recCoverage, Expr: coverage, Labels: labels})
	}
}

// group is the metadata group. Only the objective is built from
// constants (constExpr); the budget, period and info are computed from
// it, a few operations per distinct value instead of one per series. The burn rates keep
// the ratio's sloth_window (5m, the window), as Sloth's do: dashboards
// built for Sloth select by it.
func (m *metas) group(service string) (Group, bool, error) {
	if len(m.ids) == 0 {
		return Group{}, false, nil
	}
	objective, err := constExpr(service, nil, m.objectives, m.own)
	if err != nil {
		return Group{}, false, err
	}
	ids := idMatcher(m.ids)
	of := func(ids map[string]string) string { return sli.Selector(recObjective, ids) }
	perBudget := func(ratio string, ids map[string]string) string {
		return fmt.Sprintf("%s\n/ on(sloth_id, sloth_slo, sloth_service) group_left\n%s",
			sli.Selector(ratio, ids), sli.Selector(recBudget, ids))
	}
	var days, period []string
	for _, w := range sortedDurations(m.byWindow) {
		in := idMatcher(m.byWindow[w])
		days = append(days, fmt.Sprintf("%s * 0 + %s", of(in), sli.Num(w.Hours()/24)))
		period = append(period, perBudget(recErrorRatio+sli.Window(w), in))
	}
	// The budget of each objective as a literal, (100 - 97) / 100 = 0.03,
	// not 1 - 0.97 = 0.030000000000000027.
	var budgets []string
	for _, b := range slices.Sorted(maps.Keys(m.byBudget)) {
		budgets = append(budgets, fmt.Sprintf("%s * 0 + %s", of(idMatcher(m.byBudget[b])), sli.Num(b)))
	}
	rules := []Rule{
		{Record: recObjective, Expr: objective},
		{Record: recBudget, Expr: balancedOr(budgets)},
		{Record: recPeriodDays, Expr: balancedOr(days)},
		{Record: recCurrentBurn, Expr: perBudget(recErrorRatio+"5m", ids)},
		{Record: recPeriodBurn, Expr: balancedOr(period)},
		{Record: recRemaining, Expr: "1 - " + sli.Selector(recPeriodBurn, ids)},
		{Record: recInfo, Expr: withSLOLabels(of(ids)+" * 0 + 1", m.ids, m.info)},
	}
	return Group{Name: "servq-slo-meta", Rules: append(rules, m.coverage...)}, true, nil
}
