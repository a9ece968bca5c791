// Command servq turns customer-service operations data into Prometheus
// metrics, SLOs with error budgets, burn-rate alerts, Grafana dashboards and
// SLO reports, all from one config file.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/servq/servq/cmd/servq/app"
	"github.com/servq/servq/cmd/servq/webserver"
	_ "github.com/servq/servq/collectors/sources" // every source plugin registers itself
	"github.com/servq/servq/internal/redact"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// Whatever any command prints as a diagnostic (errors quoting Grafana,
	// a Prometheus API, a config) is redacted of configured secrets.
	// stdout is left alone: it carries generated files.
	stderr = redact.Writer(stderr)
	a := kingpin.New("servq", "Customer-service quality as Prometheus metrics, SLOs and error budgets.")
	a.Version(version.Print("servq"))
	a.HelpFlag.Short('h')
	a.UsageWriter(stdout)
	a.ErrorWriter(stderr)
	// --help, -h, --version and `help CMD` print and then ask kingpin to
	// terminate. run must return instead of exiting (it is called by tests),
	// and must not go on to run the command those flags were given with:
	// terminate records the exit code and run returns it after Parse.
	terminated := -1
	a.Terminate(func(code int) {
		if terminated < 0 {
			terminated = code
		}
	})

	configFile := a.Flag("config.file", "servq configuration file; without it servq runs its embedded demo.").String()
	logCfg := &promslog.Config{Writer: stderr}
	flag.AddFlags(a, logCfg)

	runCmd := a.Command("run", "Schedule collectors and serve /metrics (default).").Default()
	storage := runCmd.Flag("storage.path", "Directory of the state store (default: ./data, or a cache directory for the demo).").String()
	telemetry := runCmd.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
	shutdownTimeout := runCmd.Flag("shutdown-timeout", "On SIGTERM or SIGINT, how long servq waits for the work it cancelled (collections, commits, reports, HTTP requests) before it exits anyway.").Default("30s").Duration()
	webFlags := kingpinflag.AddFlags(runCmd, ":9817")
	webOpts := webserver.Options{}
	runCmd.Flag("web.read-timeout", "Longest time to read a request, body included (a slow body is cut off after it).").Default(webserver.DefaultReadTimeout.String()).DurationVar(&webOpts.ReadTimeout)
	runCmd.Flag("web.write-timeout", "Longest time to write a response, from the end of its request's headers.").Default(webserver.DefaultWriteTimeout.String()).DurationVar(&webOpts.WriteTimeout)
	runCmd.Flag("web.idle-timeout", "How long a keep-alive connection may wait for its next request.").Default(webserver.DefaultIdleTimeout.String()).DurationVar(&webOpts.IdleTimeout)
	runCmd.Flag("web.max-connections", "Most open HTTP connections (0: the open-file limit less a quarter of it, at least 256, kept for collectors and the store).").Default("0").IntVar(&webOpts.MaxConnections)
	maxBody := runCmd.Flag("web.max-request-body", "Largest request body (webhook deliveries included), e.g. 1MiB.").Default("1MiB").Bytes()
	enablePprof := runCmd.Flag("web.enable-pprof", "Serve Go's profiler under /debug/pprof/ (behind the web config's TLS and basic auth), to profile a live servq.").Bool()
	runCmd.Flag("web.webhooks-auth", "What authenticates /webhooks/ when the web config has basic_auth_users: signature (the delivery's signature only; vendors cannot send a password) or basic+signature (the password too).").Default(webserver.WebhooksSignature).EnumVar(&webOpts.WebhooksAuth, webserver.WebhooksSignature, webserver.WebhooksBasicAndSignature)

	checkCmd := a.Command("check", "Validate a config and print every problem as file:line: message.")
	checkFile := checkCmd.Arg("file", "Config file (defaults to --config.file).").String()

	collectCmd := a.Command("collect", "Run each collector once and print its records, rejections and what they change in the metrics, as JSON lines (a dry run unless --commit).")
	once := collectCmd.Flag("once", "Run each collector once (the default and only mode; continuous runs are `servq run`).").Bool()
	collectStorage := collectCmd.Flag("storage.path", "State store to read cursors from (default as for run).").String()
	commit := collectCmd.Flag("commit", "Commit the results to the store instead of a dry run.").Bool()
	only := collectCmd.Flag("collector", "Run only this collector (repeatable).").Strings()

	rulesCmd := a.Command("rules", "Write the Prometheus rule file (SLO recordings, burn-rate, KPI and operational alerts) of the config.")
	rulesOut := rulesCmd.Flag("output", "File to write (- for stdout). It is replaced atomically.").Short('o').Default("-").String()
	rulesFormat := rulesCmd.Flag("format", "prometheus: a rule file for Prometheus, vmalert, Mimir or Thanos; prometheusrule: a Prometheus Operator PrometheusRule object.").Default("prometheus").Enum("prometheus", "prometheusrule")
	rulesName := rulesCmd.Flag("prometheusrule.name", "metadata.name of the PrometheusRule.").Default("servq").String()
	rulesNamespace := rulesCmd.Flag("prometheusrule.namespace", "metadata.namespace of the PrometheusRule (default: none, kubectl's).").String()
	rulesLabels := rulesCmd.Flag("prometheusrule.label", "Label of the PrometheusRule, for the operator's ruleSelector (repeatable, name=value).").StringMap()
	rulesLevel := rulesCmd.Flag("level", "Write only the recording rules of this level (1: they read raw series; n: they read rules of level n-1), for backfilling rules one pass per level (promtool tsdb create-blocks-from rules, vmalert -replay.*); in the backfill form, whose hourly sums of long SLO windows do not read their own earlier values. The summary on stderr tells how many levels there are.").Int()

	dashCmd := a.Command("dashboards", "Write Grafana dashboards, file-provisioning YAML and Grafana-managed alert rules, or provision them through Grafana's HTTP API.")
	dashOpts := dashboardsOptions{}
	dashCmd.Flag("output", "Directory to write dashboards/ and provisioning/ into (file provisioning).").Short('o').StringVar(&dashOpts.out)
	dashCmd.Flag("grafana.url", "Provision through this Grafana's HTTP API (Grafana 10.0 or later) instead of writing files; token from $GRAFANA_TOKEN or --grafana.token-file, of a service account with the Admin role on Grafana 10.x, Editor from 11.0.").StringVar(&dashOpts.url)
	dashCmd.Flag("grafana.token-file", "File holding the Grafana service-account token.").StringVar(&dashOpts.tokenFile)
	dashCmd.Flag("grafana.folder-uid", "Grafana folder uid of the dashboards and alert rules.").Default("servq").StringVar(&dashOpts.folderUID)
	dashCmd.Flag("grafana.folder-title", "Grafana folder title.").Default("servq").StringVar(&dashOpts.folderTitle)
	dashCmd.Flag("grafana.rule-group", "Alert rule group of servq's rules in the folder; it must hold servq's rules only (servq moves its rules into it).").Default("servq").StringVar(&dashOpts.ruleGroup)
	dashCmd.Flag("grafana.datasource-uid", "uid of the Prometheus data source the alert rules query.").Default("prometheus").StringVar(&dashOpts.datasourceUID)
	dashCmd.Flag("grafana.dashboards-path", "Where Grafana reads the dashboard files (the provider's path) in file provisioning.").Default("/var/lib/grafana/dashboards/servq").StringVar(&dashOpts.dashboardsPath)

	reportCmd := a.Command("report", "Build an SLO report for a period from a Prometheus-compatible API: HTML, Markdown, JSON and CSV files.")
	repOpts := reportOptions{}
	reportCmd.Flag("period", "2026-10 (month), 2026-W43 (ISO week), 2026-Q3, 2026-10-01..2026-10-15, or month/week/quarter (the last complete one).").Required().StringVar(&repOpts.period)
	reportCmd.Flag("prometheus.url", "Prometheus-compatible API (default: the first configured report's, else http://localhost:9090).").StringVar(&repOpts.url)
	reportCmd.Flag("prometheus.bearer-token-file", "File holding a bearer token for the API.").StringVar(&repOpts.tokenFile)
	reportCmd.Flag("output", "Directory for the report files.").Short('o').Default(".").StringVar(&repOpts.out)
	reportCmd.Flag("format", "Format to write (html, md, json, csv; repeatable; default all).").StringsVar(&repOpts.formats)
	reportCmd.Flag("time-zone", "Time zone of the period (default global.time_zone).").StringVar(&repOpts.tz)
	reportCmd.Flag("name", "File name prefix: <name>-<period>.<format>.").Default("slo-report").StringVar(&repOpts.name)

	backfillCmd := a.Command("backfill", "Replay the sources' history on an event-time clock into timestamped samples (Prometheus blocks via promtool, VictoriaMetrics import) and the store, for `servq run` to continue from.")
	bfOpts := backfillOptions{labels: map[string]string{}}
	addBackfillFlags(backfillCmd, &bfOpts)

	cmd, err := a.Parse(stdoutDash(args))
	if terminated >= 0 {
		return terminated
	}
	if err != nil {
		fmt.Fprintf(stderr, "servq: %v\n", err)
		return 2
	}
	// Every command logs with configured secrets redacted.
	logger := slog.New(redact.Handler(promslog.New(logCfg).Handler()))
	switch cmd {
	case checkCmd.FullCommand():
		f := *checkFile
		if f == "" {
			f = *configFile
		}
		return check(f, stdout, stderr)
	case rulesCmd.FullCommand():
		return writeRules(*configFile, rulesOptions{out: *rulesOut, format: *rulesFormat, name: *rulesName, namespace: *rulesNamespace, labels: *rulesLabels, level: *rulesLevel}, stdout, stderr)
	case reportCmd.FullCommand():
		return writeReport(*configFile, repOpts, stdout, stderr)
	case dashCmd.FullCommand():
		return writeDashboards(*configFile, dashOpts, stdout, stderr)
	case backfillCmd.FullCommand():
		return backfill(*configFile, bfOpts, logger, stderr)
	case collectCmd.FullCommand():
		_ = once
		return collect(*configFile, storagePath(*configFile, *collectStorage), *only, *commit, logger, stdout, stderr)
	default:
		webOpts.ListenAddresses, webOpts.SystemdSocket, webOpts.ConfigFile = *webFlags.WebListenAddresses, *webFlags.WebSystemdSocket, *webFlags.WebConfigFile
		webOpts.MaxRequestBody = int64(*maxBody)
		return serve(app.Options{ConfigFile: *configFile, StoragePath: storagePath(*configFile, *storage), EnablePprof: *enablePprof}, *telemetry, webOpts, *shutdownTimeout, logger, stderr)
	}
}

// stdoutDash rewrites "-o -" (the documented way to write to stdout) to
// "--output=-": kingpin reads a lone "-" after a short flag as a flag of
// its own, so the output was "" and the atomic write failed.
func stdoutDash(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		if args[i] == "-o" && i+1 < len(args) && args[i+1] == "-" {
			out = append(out, "--output=-")
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}
