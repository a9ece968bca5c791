package main

import (
	"context"
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

// testAfterChunk is nil except in binaries built with the servqtest tag
// (testhook_servqtest.go), whose crash tests stop servq between chunks.
var testAfterChunk func(ctx context.Context, collector string, chunk int)

func serve(opt app.Options, telemetry string, webOpts webserver.Options, shutdownTimeout time.Duration, logger *slog.Logger, stderr io.Writer) int {
	opt.Logger = logger
	opt.AfterChunk = testAfterChunk
	configFile, storage := opt.ConfigFile, opt.StoragePath
	svc, err := app.New(opt)
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
			logger.Info("shutting down", "signal", s.String(), "timeout", shutdownTimeout)
			break loop
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				logger.Error("web server failed", "err", err)
				code = 1
			}
			break loop
		}
	}
	if shutdown(srv, svc, shutdownTimeout, logger) != 0 {
		code = 1
	}
	return code
}

// closeGrace is how long servq waits past --shutdown-timeout for the
// store to close before it exits anyway.
const closeGrace = 5 * time.Second

// shutdown stops the web server and the service together. The web server
// stops accepting connections and waits for requests in flight; the
// service cancels collections (their commits included), reports and the
// push loop at once and waits for them; both wait at most timeout. servq
// returns (and exits) closeGrace after timeout even if something still
// hangs: every run is committed in one bbolt transaction, so the store
// holds each run entirely or not at all whenever the process ends.
func shutdown(srv, svc interface{ Shutdown(context.Context) error }, timeout time.Duration, logger *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		web := make(chan error, 1)
		go func() { web <- srv.Shutdown(ctx) }()
		code := 0
		if err := svc.Shutdown(ctx); err != nil {
			logger.Error("shutdown", "err", err)
			code = 1
		}
		if err := <-web; err != nil {
			// Connections still open end with the process.
			logger.Warn("web server: requests still running at the shutdown timeout", "err", err)
		}
		done <- code
	}()
	t := time.NewTimer(timeout + closeGrace)
	defer t.Stop()
	select {
	case code := <-done:
		return code
	case <-t.C:
		logger.Error("shutdown did not finish within --shutdown-timeout; exiting anyway (the store is consistent: each run is committed entirely or not at all)", "timeout", timeout)
		return 1
	}
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
