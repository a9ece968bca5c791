package rules

import (
	"fmt"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// Recorded series of KPI targets.
const (
	recTargetValue = "servq:target:value"
)

// TargetAlertName is the alert of a KPI target.
func TargetAlertName(t *config.Target) string { return camel(t.Name) + "TargetMissed" }

func targetGroup(cfg *config.Config) (Group, error) {
	g := Group{Name: "servq-targets"}
	for _, t := range cfg.Targets {
		k, err := sli.ForTarget(cfg, t)
		if err != nil {
			return g, err
		}
		labels := map[string]string{"target": t.Name, "kpi": t.KPI}
		g.Rules = append(g.Rules, Rule{Record: recTargetValue, Expr: k.Value, Labels: labels})

		op, bound, word := "<", 0.0, "at least"
		if t.Min != nil {
			bound = *t.Min
		} else {
			op, bound, word = ">", *t.Max, "at most"
		}
		value := "{{ $value | printf \"%.2f\" }}"
		switch k.Unit {
		case "seconds":
			value = "{{ $value | humanizeDuration }}"
		case "percent":
			value = "{{ $value | printf \"%.1f\" }}%"
		case "calls", "tickets":
			value = "{{ $value }}"
		}
		where := ""
		for _, l := range t.By {
			where += fmt.Sprintf(" %s={{ $labels.%s }}", l, l)
		}
		desc := t.Description
		if desc != "" {
			desc += " "
		}
		if t.Window > 0 {
			desc += fmt.Sprintf("Computed over the last %s from at least %d responses. ", t.Window, t.MinResponses)
		}
		desc += fmt.Sprintf("Missed for %s or longer.", t.For)
		ann := merge(map[string]string{
			"summary":     fmt.Sprintf("KPI target %s missed%s: %s is %s, target %s %s.", t.Name, where, t.KPI, value, word, sli.Num(bound)),
			"description": desc,
		}, t.Annotations)
		if t.RunbookURL != "" {
			ann["runbook_url"] = t.RunbookURL
		}
		g.Rules = append(g.Rules, Rule{
			Alert:       TargetAlertName(t),
			Expr:        fmt.Sprintf("%s %s %s", sli.Selector(recTargetValue, map[string]string{"target": t.Name}), op, sli.Num(bound)),
			For:         t.For.String(),
			Labels:      merge(cfg.Rules.Labels, t.Labels, labels, map[string]string{"severity": t.Severity}),
			Annotations: ann,
		})
	}
	return g, nil
}
