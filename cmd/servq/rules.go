package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/rules"
)

type rulesOptions struct {
	out, format, name, namespace string
	labels                       map[string]string
}

// writeRules generates the rule file of the config. The file is written
// to a temporary name and renamed, so a Prometheus reloading meanwhile
// never reads half a file.
func writeRules(configFile string, o rulesOptions, stdout, stderr io.Writer) int {
	source := config.DemoFile
	if configFile != "" {
		source = filepath.Base(configFile)
	}
	cfg, err := loadOrDemo(configFile)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	f, err := rules.Generate(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "servq rules: %v\n", err)
		return 1
	}
	for _, w := range rules.Warnings(cfg) {
		fmt.Fprintf(stderr, "note: %s\n", w)
	}
	var out []byte
	if o.format == "prometheusrule" {
		out, err = rules.MarshalPrometheusRule(f, source, o.name, o.namespace, o.labels)
	} else {
		out, err = rules.Marshal(f, source)
	}
	if err != nil {
		fmt.Fprintf(stderr, "servq rules: %v\n", err)
		return 1
	}
	if o.out == "-" {
		_, err = stdout.Write(out)
	} else {
		err = state.WriteFileAtomic(o.out, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "servq rules: %v\n", err)
		return 1
	}
	if o.out != "-" {
		fmt.Fprintf(stderr, "%s: %d rule groups for %d SLOs and %d targets\n", o.out, len(f.Groups), len(cfg.SLOs), len(cfg.Targets))
	}
	return 0
}
