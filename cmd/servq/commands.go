package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/servq/servq/cmd/servq/app"
	"github.com/servq/servq/cmd/servq/webserver"
	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
	"github.com/servq/servq/slo/rules"
)

// storagePath picks the state directory: the flag, ./data for a real
// config, or a per-user cache directory for the demo (so a newcomer's demo
// never writes into the current directory).
func storagePath(configFile, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if configFile != "" {
		return "data"
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "servq-demo")
}

// mergeProblems joins the located problems of the main config and of the
// plugin sections, each once (a duplicate key in a plugin section is seen
// by both), in line order.
func mergeProblems(main, plugins error) error {
	var all config.Errors
	var other error
	seen := map[string]bool{}
	for _, err := range []error{main, plugins} {
		var es config.Errors
		switch {
		case err == nil:
		case errors.As(err, &es):
			for _, e := range es {
				if !seen[e.Error()] {
					seen[e.Error()] = true
					all = append(all, e)
				}
			}
		case other == nil:
			other = err
		}
	}
	if other != nil && len(all) == 0 {
		return other
	}
	return all.Err()
}

// check validates a config fully: the main file and every plugin section.
func check(file string, stdout, stderr io.Writer) int {
	name := file
	var cfg *config.Config
	var err error
	if file == "" {
		name = config.DemoFile
		cfg, err = config.Demo()
	} else {
		cfg, err = config.LoadForCheck(file)
	}
	if cfg != nil {
		// The plugin sections too, even when the main part has
		// problems: one run shows every problem of the file.
		err = mergeProblems(err, collectors.CheckAll(cfg, collectors.Env{}))
	}
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e)
			}
			fmt.Fprintf(stderr, "%s: %d problem(s) found\n", name, len(errs))
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (%d collectors, %d SLOs)\n", name, len(cfg.Collectors), len(cfg.SLOs))
	// The same notes as servq rules: a valid config whose alert pairs were
	// adjusted to its windows and objectives says so where it is checked.
	for _, w := range rules.Warnings(cfg) {
		fmt.Fprintf(stderr, "note: %s\n", w)
	}
	return 0
}

func serve(configFile, storage, telemetry string, webOpts webserver.Options, logger *slog.Logger, stderr io.Writer) int {
	svc, err := app.New(app.Options{ConfigFile: configFile, StoragePath: storage, Logger: logger})
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	if configFile == "" {
		logger.Info("no --config.file given: running the embedded demo", "storage", storage)
	}
	webOpts.Logger, webOpts.Registerer = logger, svc.Registry()
	srv, err := webserver.New(svc.Handler(telemetry), webOpts)
	if err == nil {
		err = srv.Listen()
	}
	if err != nil {
		printErr(stderr, err)
		svc.Shutdown(context.Background())
		return 1
	}
	svc.Start()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	code := 0
loop:
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				_ = svc.Reload() // logged; the old config keeps running
				continue
			}
			logger.Info("shutting down", "signal", s.String())
			break loop
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				logger.Error("web server failed", "err", err)
				code = 1
			}
			break loop
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	if err := svc.Shutdown(ctx); err != nil {
		logger.Error("shutdown", "err", err)
		code = 1
	}
	return code
}

func printErr(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, redact.String(e.Error()))
		}
		return
	}
	fmt.Fprintln(w, "servq:", redact.Error(err))
}

// collect runs collectors once from their committed cursors and prints the
// batches as JSON lines. Without --commit nothing is written.
func collect(configFile, storage string, only []string, commit bool, logger *slog.Logger, stdout, stderr io.Writer) int {
	var cfg *config.Config
	var err error
	if configFile == "" {
		cfg, err = config.Demo()
	} else {
		cfg, err = config.Load(configFile)
	}
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	var store *state.Store
	if commit {
		store, err = state.Open(storage)
	} else {
		store, err = openReadCopy(storage)
	}
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	defer store.Close()
	return collectOnce(cfg, store, only, commit, logger, stdout, stderr)
}

// openReadCopy opens a throwaway copy of the store for a dry run, so that a
// dry run can read cursors while servq itself holds the store's lock.
func openReadCopy(storage string) (*state.Store, error) {
	dir, err := os.MkdirTemp("", "servq-collect-")
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(storage, state.FileName)); err == nil {
		if err := os.WriteFile(filepath.Join(dir, state.FileName), b, 0o600); err != nil {
			return nil, err
		}
	}
	return state.Open(dir)
}

type collectOutput struct {
	Collector string `json:"collector"`
	*collectors.Batch
	Error string `json:"error,omitempty"`
}

func printBatch(w io.Writer, name string, b *collectors.Batch, err error) {
	out := collectOutput{Collector: name, Batch: b}
	if err != nil {
		out.Error = redact.Text(err.Error(), 0)
	}
	// Records come from remote data too: the whole line is redacted (the
	// JSON-escaped forms of secrets are registered).
	line, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintf(w, "{\"collector\":%q,\"error\":%q}\n", name, redact.Error(err))
		return
	}
	fmt.Fprintln(w, redact.String(string(line)))
}

func collectOnce(cfg *config.Config, store *state.Store, only []string, commit bool, logger *slog.Logger, stdout, stderr io.Writer) int {
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	model, err := quality.New(cfg, store, logger)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	code := 0
	for _, c := range cfg.Collectors {
		if c.Disabled || (len(want) > 0 && !want[c.Name]) {
			continue
		}
		src, err := collectors.Build(c, collectors.Env{Logger: logger})
		if err != nil {
			printErr(stderr, err)
			code = 1
			continue
		}
		cursor, err := model.Cursor(c.Name)
		if err != nil {
			printErr(stderr, err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout.D())
		b := &collectors.Batch{Now: time.Now()}
		next, err := src.Collect(ctx, cursor, b)
		cancel()
		if cl, ok := src.(io.Closer); ok {
			cl.Close()
		}
		printBatch(stdout, c.Name, b, err)
		if err != nil {
			code = 1
			continue
		}
		if commit {
			if _, err := model.Commit(c.Name, b, next); err != nil {
				printErr(stderr, err)
				code = 1
			}
		}
	}
	return code
}
