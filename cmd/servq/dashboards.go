package main

import (
	"fmt"
	"io"

	"github.com/servq/servq/config"
	"github.com/servq/servq/dashboards"
)

type dashboardsOptions struct {
	out, url, tokenFile                   string
	folderUID, folderTitle, datasourceUID string
	ruleGroup                             string
	dashboardsPath                        string
}

func loadOrDemo(configFile string) (*config.Config, error) {
	if configFile == "" {
		return config.Demo()
	}
	return config.Load(configFile)
}

// writeDashboards writes the file-provisioning tree, or provisions
// through Grafana's API when --grafana.url is set.
func writeDashboards(configFile string, o dashboardsOptions, stdout, stderr io.Writer) int {
	cfg, err := loadOrDemo(configFile)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	if o.url != "" {
		return provisionGrafana(cfg, o, stdout, stderr)
	}
	if o.out == "" {
		fmt.Fprintln(stderr, "servq dashboards: set --output DIR (files) or --grafana.url (HTTP API)")
		return 2
	}
	files, err := dashboards.WriteFiles(cfg, o.out, dashboards.FileOptions{DashboardsPath: o.dashboardsPath,
		FolderUID: o.folderUID, FolderTitle: o.folderTitle, DatasourceUID: o.datasourceUID})
	if err != nil {
		fmt.Fprintf(stderr, "servq dashboards: %v\n", err)
		return 1
	}
	for _, f := range files {
		fmt.Fprintln(stdout, f)
	}
	return 0
}
