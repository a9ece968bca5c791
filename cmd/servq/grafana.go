package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/dashboards"
	"github.com/servq/servq/dashboards/grafana"
)

// provisionGrafana creates or updates the folder, dashboards and alert
// rules through Grafana's HTTP API; a second run with the same config
// writes nothing. The token comes from --grafana.token-file or
// $GRAFANA_TOKEN, never from a flag value that would show in ps.
func provisionGrafana(cfg *config.Config, o dashboardsOptions, stdout, stderr io.Writer) int {
	token := config.Secret(os.Getenv("GRAFANA_TOKEN"))
	var err error
	if o.tokenFile != "" { // the file wins over the environment
		token, err = config.ResolveSecret("", o.tokenFile)
	}
	if err != nil {
		fmt.Fprintf(stderr, "servq dashboards: %v\n", err)
		return 1
	}
	if token == "" {
		fmt.Fprintln(stderr, "servq dashboards: no Grafana token: set $GRAFANA_TOKEN or --grafana.token-file (a service-account token; which role it needs depends on the Grafana version, see dashboards/README.md)")
		return 2
	}
	boards, err := dashboards.Render(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "servq dashboards: %v\n", err)
		return 1
	}
	var ds []grafana.Dashboard
	for _, b := range boards {
		ds = append(ds, grafana.Dashboard{UID: b.UID, Title: b.Title, JSON: b.JSON})
	}
	rs, err := dashboards.AlertRules(cfg, o.datasourceUID, o.folderUID)
	if err == nil {
		var api []grafana.AlertRule
		if api, err = dashboards.APIRules(rs); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var res grafana.Result
			res, err = grafana.Provision(ctx, grafana.Options{URL: o.url, Token: token, FolderUID: o.folderUID,
				FolderTitle: o.folderTitle, RuleGroup: o.ruleGroup, Interval: cfg.Rules.GrafanaRuleInterval()}, ds, api)
			if err == nil {
				printResult(stdout, res)
				return 0
			}
		}
	}
	fmt.Fprintf(stderr, "servq dashboards: %v\n", err)
	return 1
}

func printResult(w io.Writer, r grafana.Result) {
	if !r.Changed() {
		fmt.Fprintf(w, "Grafana is up to date: %d dashboards, %d alert rules unchanged\n", len(r.DashboardsUnchanged), len(r.RulesUnchanged))
		return
	}
	line := func(what string, uids []string) {
		if len(uids) > 0 {
			fmt.Fprintf(w, "%s: %s\n", what, strings.Join(uids, ", "))
		}
	}
	if r.FolderCreated {
		fmt.Fprintln(w, "folder created")
	}
	if r.FolderRenamed {
		fmt.Fprintln(w, "folder title restored")
	}
	line("dashboards created", r.DashboardsCreated)
	line("dashboards updated", r.DashboardsUpdated)
	line("dashboards unchanged", r.DashboardsUnchanged)
	line("alert rules created", r.RulesCreated)
	line("alert rules updated", r.RulesUpdated)
	line("alert rules deleted", r.RulesDeleted)
	line("alert rules unchanged", r.RulesUnchanged)
	if r.RuleGroupUpdated {
		fmt.Fprintln(w, "rule group interval set")
	}
}
