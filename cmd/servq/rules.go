package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

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
	var cfg *config.Config
	var err error
	source := configFile
	if configFile == "" {
		cfg, err = config.Demo()
		source = config.DemoFile
	} else {
		cfg, err = config.Load(configFile)
		source = filepath.Base(configFile)
	}
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
		err = writeAtomic(o.out, out)
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

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
