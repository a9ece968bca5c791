package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/report"
)

type reportOptions struct {
	period, url, tokenFile, out, tz, name string
	formats                               []string
}

// writeReport builds one report now and writes its files.
func writeReport(configFile string, o reportOptions, stdout, stderr io.Writer) int {
	cfg, err := loadOrDemo(configFile)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	if o.url == "" {
		o.url = "http://localhost:9090"
		if len(cfg.Reports) > 0 {
			o.url = cfg.Reports[0].PrometheusURL
		}
	}
	if o.tz == "" {
		o.tz = cfg.Global.TimeZone
	}
	loc, err := time.LoadLocation(o.tz)
	if err != nil {
		fmt.Fprintf(stderr, "servq report: unknown time zone %q\n", o.tz)
		return 2
	}
	now := time.Now()
	p, err := report.ParsePeriod(o.period, loc, now)
	if err != nil {
		fmt.Fprintf(stderr, "servq report: %v\n", err)
		return 2
	}
	if !p.End.Before(now) {
		fmt.Fprintf(stderr, "servq report: note: %s has not ended yet; its figures are partial\n", p.Name)
	}
	token, err := config.ResolveSecret("", o.tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "servq report: %v\n", err)
		return 1
	}
	formats := o.formats
	if len(formats) == 0 {
		formats = report.Formats
	}
	for _, f := range formats {
		if !slices.Contains(report.Formats, f) {
			fmt.Fprintf(stderr, "servq report: unknown format %q (%s)\n", f, strings.Join(report.Formats, ", "))
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	files, err := report.Produce(ctx, cfg, report.Job{Name: o.name, Period: p, API: &report.API{URL: o.url, BearerToken: token},
		Formats: formats, Directory: o.out}, now)
	if err != nil {
		fmt.Fprintf(stderr, "servq report: %v\n", err)
		return 1
	}
	for _, f := range files {
		fmt.Fprintln(stdout, f)
	}
	return 0
}
