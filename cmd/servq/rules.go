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
	level                        int // only the recording rules of this level (backfills)
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
	generate := rules.Generate
	if o.level > 0 {
		// Backfills evaluate a rule over a range at once: the form
		// whose rules never read their own earlier values.
		generate = rules.GenerateBackfill
	}
	f, err := generate(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "servq rules: %v\n", err)
		return 1
	}
	for _, w := range rules.Warnings(cfg) {
		fmt.Fprintf(stderr, "note: %s\n", w)
	}
	// The levels are those of the backfill form, which --level writes
	// (the live form's hourly sums read their own earlier values, and
	// so sit one level deeper).
	levels := f
	if o.level == 0 {
		if b, err := rules.GenerateBackfill(cfg); err == nil {
			levels = b
		}
	}
	level, depth, err := ruleLevels(levels)
	if err != nil {
		fmt.Fprintf(stderr, "servq rules: %v\n", err)
		return 1
	}
	what := fmt.Sprintf("%d rule groups for %d SLOs and %d targets, recording rules %d levels deep", len(f.Groups), len(cfg.SLOs), len(cfg.Targets), depth)
	if o.level > 0 {
		if f, err = ruleLevel(f, level, depth, o.level); err != nil {
			fmt.Fprintf(stderr, "servq rules: %v\n", err)
			return 1
		}
		what = fmt.Sprintf("the recording rules of level %d of %d (%d groups)", o.level, depth, len(f.Groups))
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
		fmt.Fprintf(stderr, "%s: %s\n", o.out, what)
	}
	return 0
}
