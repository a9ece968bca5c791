package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// StaleAfter is how long a collector may go without a successful run
// before its data counts as stale: the configured stale_after, else twice
// the longest gap between two runs of its schedule (a weekday-only
// schedule has a weekend gap) plus its timeout.
func StaleAfter(c *config.Collector) time.Duration {
	if c.StaleAfter > 0 {
		return c.StaleAfter.D()
	}
	sched, err := config.CronParser.Parse(c.Schedule)
	if err != nil {
		return 0
	}
	// Two weeks of activations from a fixed Monday find the longest gap
	// of any weekly pattern; the cap on steps bounds @every 1s.
	t := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	end := t.Add(14 * 24 * time.Hour)
	var gap time.Duration
	for i := 0; i < 20000 && t.Before(end); i++ {
		next := sched.Next(t)
		if next.IsZero() {
			break
		}
		if i > 0 && next.Sub(t) > gap {
			gap = next.Sub(t)
		}
		t = next
	}
	return 2*gap + c.Timeout.D()
}

func operationalGroup(cfg *config.Config) Group {
	job := sli.Selector("up", map[string]string{"job": cfg.Rules.Job})
	runbook := func(name string) map[string]string {
		if cfg.Rules.RunbookURL == "" {
			return nil
		}
		return map[string]string{"runbook_url": cfg.Rules.RunbookURL + name}
	}
	alert := func(name, expr string, forDur time.Duration, summary, desc string) Rule {
		r := Rule{Alert: name, Expr: expr,
			Labels:      merge(cfg.Rules.Labels, map[string]string{"severity": config.SeverityTicket}),
			Annotations: merge(map[string]string{"summary": summary, "description": desc}, runbook(name))}
		if forDur > 0 {
			r.For = sli.Window(forDur)
		}
		return r
	}
	g := Group{Name: "servq-operational", Rules: []Rule{
		alert("ServqDown", job+" == 0", 5*time.Minute,
			"servq {{ $labels.instance }} is down or cannot be scraped.",
			"Prometheus failed to scrape servq for 5 minutes: its metrics, SLO and KPI alerts are blind."),
		alert("ServqAbsent", "absent("+job+")", 15*time.Minute,
			fmt.Sprintf("No servq target (job %q) is being scraped.", cfg.Rules.Job),
			"Prometheus has no scrape target for servq: check the scrape config or service discovery. Every servq alert is blind."),
		alert("ServqCollectorFailing", "servq_collector_up == 0", 15*time.Minute,
			"Collector {{ $labels.collector }} on {{ $labels.instance }} is failing.",
			"The last runs of the collector failed for 15 minutes; see servq's log and /api/v1/collectors for the error."),
		alert("ServqConfigReloadFailed", "servq_config_last_reload_successful == 0", 10*time.Minute,
			"servq {{ $labels.instance }} could not load its new config.",
			"servq keeps running the old config; run `servq check` on the file to see every problem."),
		alert("ServqLabelOverflow", "increase(servq_label_overflow_total[1h]) > 0", 0,
			"Collector {{ $labels.collector }} maps new {{ $labels.label }} values to \"other\".",
			"The label reached global.label_limit distinct values; new values are merged into \"other\". Raise the limit if the values are legitimate."),
	}}
	if r, ok := inputsNotServed(cfg, job, alert); ok {
		g.Rules = append(g.Rules, r)
	}
	for _, c := range cfg.Collectors {
		if c.Disabled {
			continue
		}
		stale := StaleAfter(c)
		if stale <= 0 {
			continue
		}
		m := map[string]string{"collector": c.Name}
		secs := sli.Num(stale.Seconds())
		// Stale: the last success is too old, or there never was one
		// although servq has run for that long.
		expr := fmt.Sprintf("time() - %s > %s\nor\n(%s unless on(instance, job, collector) servq_collector_last_success_timestamp_seconds)\n  and on(instance, job) (time() - process_start_time_seconds > %s)",
			sli.Selector("servq_collector_last_success_timestamp_seconds", m), secs,
			sli.Selector("servq_collector_up", m), secs)
		r := alert("ServqCollectorStale", expr, 0,
			fmt.Sprintf("Collector %s has not delivered for more than %s.", c.Name, sli.Window(stale)),
			fmt.Sprintf("No successful run of collector %s (type %s, schedule %q) for %s: the metrics of its source are stale and its SLOs see no new events.", c.Name, c.Type, c.Schedule, sli.Window(stale)))
		r.Labels = merge(r.Labels, m)
		g.Rules = append(g.Rules, r)
	}
	return g
}

// inputsNotServed is the alert for rules that read SLO inputs the scraped
// servq does not define: its config changed an SLO (another definition)
// or it is older than the rules. Such a step counts nothing, and the SLO
// would look perfect without a word; servq_slo_input_info lists what the
// running config defines, counted or not. Only while servq is scraped up
// (ServqDown and ServqAbsent cover the rest); ten minutes leave time to
// reload servq and Prometheus one after the other.
func inputsNotServed(cfg *config.Config, job string, alert func(name, expr string, forDur time.Duration, summary, desc string) Rule) (Rule, bool) {
	var absent []string
	for _, s := range cfg.SLOs {
		ins, err := sli.Inputs(cfg, s)
		if err != nil {
			continue // servq check refuses such an SLO
		}
		for _, in := range ins {
			absent = append(absent, "absent("+sli.Selector(sli.SLOInputInfo, map[string]string{"slo": in.SLO, "input": in.Name, "definition": in.Definition})+")")
		}
	}
	if len(absent) == 0 {
		return Rule{}, false
	}
	expr := "(\n  " + strings.Join(absent, "\nor\n  ") + "\n)\nand on() (count(" + job + " == 1) > 0)"
	return alert("ServqSLOInputNotServed", expr, 10*time.Minute,
		"The rules read input {{ $labels.input }} of SLO {{ $labels.slo }}, which servq does not serve.",
		"The rules were generated from a config whose SLO {{ $labels.slo }} sums other series (definition {{ $labels.definition }}) than the running servq's, or from a newer servq: the SLO's step counts nothing, its SLI and burn rates read 0. Generate the rules from servq's config (servq rules) and reload Prometheus and servq with the same config."), true
}
