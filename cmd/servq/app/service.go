// Package app is the servq process: it loads the config, opens the state
// store, builds the quality model and the collector runner, serves the
// exporter endpoints and reloads all of it on SIGHUP or POST /-/reload.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"

	srccollectors "github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/runner"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
	"github.com/servq/servq/slo/report"
	"github.com/servq/servq/slo/sli"
	"github.com/servq/servq/slo/status"
)

// Options configure a Service.
type Options struct {
	ConfigFile  string // "" runs the embedded demo
	StoragePath string
	Logger      *slog.Logger
	// Now is the clock handed to collectors (tests); time.Now by default.
	Now func() time.Time
	// StopTimeout bounds how long a reload waits for the collections and
	// reports it cancelled to return (30s by default). Shutdown is bounded
	// by its context instead (--shutdown-timeout).
	StopTimeout time.Duration
	// EnablePprof serves net/http/pprof under /debug/pprof/ (off by
	// default: profiles show code paths and can cost CPU on demand).
	EnablePprof bool
	// AfterChunk is handed to the runner (runner.Options.AfterChunk):
	// crash tests hold servq after a chunk's commit.
	AfterChunk func(ctx context.Context, collector string, chunk int)
}

// Service is one running servq.
type Service struct {
	opt   Options
	log   *slog.Logger
	store *state.Store
	// reg holds servq's live metrics (Go, process, runner, reports, web
	// server); the quality model is served from its own cache beside it
	// (see metricsHandler) and gathered through modelReg.
	reg  *prometheus.Registry
	self *runner.SelfMetrics

	reloadOK, reloadTime prometheus.Gauge
	// sloInputs says which SLO inputs (servq_slo_input_total) the running
	// config defines, so that rules generated for another config are told
	// (ServqSLOInputNotServed) instead of silently counting nothing.
	sloInputs *prometheus.GaugeVec
	reloading sync.Mutex // one reload at a time (SIGHUP and HTTP may race)

	mu       sync.RWMutex // guards cfg, model, runner, lastErr, push
	cfg      *config.Config
	model    *quality.Model
	modelReg *prometheus.Registry // the model alone
	runner   *runner.Runner
	lastErr  error
	started  bool
	push     *pusher

	slos     *status.Tracker
	stopSLOs chan struct{}
	slosDone chan struct{}

	reportMetrics *report.Metrics
	reports       *report.Scheduler // guarded by mu
}

// New loads the config and opens the store; Start begins collecting.
func New(opt Options) (*Service, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	// Whatever logs through the service (collectors quoting vendors,
	// reloads, pushes) is redacted of configured secrets.
	opt.Logger = slog.New(redact.Handler(opt.Logger.Handler()))
	if opt.StopTimeout == 0 {
		opt.StopTimeout = 30 * time.Second
	}
	cfg, err := loadConfig(opt.ConfigFile)
	if err != nil {
		return nil, err
	}
	store, err := state.Open(opt.StoragePath)
	if err != nil {
		return nil, err
	}
	s := &Service{opt: opt, log: opt.Logger, store: store, reg: prometheus.NewRegistry()}
	if s.slos, err = status.NewTracker(store); err != nil {
		store.Close()
		return nil, fmt.Errorf("loading SLO status samples: %w", err)
	}
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("servq"),
	)
	s.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "servq_config_last_reload_successful", Help: "Whether the last configuration reload attempt was successful."})
	s.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "servq_config_last_reload_success_timestamp_seconds", Help: "Timestamp of the last successful configuration reload."})
	s.sloInputs = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: sli.SLOInputInfo,
		Help: "1 for every SLO input (servq_slo_input_total) of the running config, whether or not a record has counted in it yet: the rules check that what they read is served."},
		[]string{"slo", "input", "definition"})
	s.reg.MustRegister(s.reloadOK, s.reloadTime, s.sloInputs)
	s.self = runner.NewSelfMetrics(s.reg)
	s.self.SetClock(s.now)
	s.reportMetrics = report.NewMetrics(s.reg)
	if err := s.install(cfg); err != nil {
		store.Close()
		return nil, err
	}
	s.reloadOK.Set(1)
	s.reloadTime.SetToCurrentTime()
	return s, nil
}

func loadConfig(file string) (*config.Config, error) {
	if file == "" {
		return config.Demo()
	}
	return config.Load(file)
}

// install builds model and runner for cfg and makes them current. The
// caller has stopped the previous runner: no commit may be in flight while
// a model loads its values from the store.
func (s *Service) install(cfg *config.Config) error {
	model, err := quality.New(cfg, s.store, s.log)
	if err != nil {
		return err
	}
	model.Clock = s.now
	s.mu.RLock()
	model.Inherit(s.model)
	s.mu.RUnlock()
	r, err := runner.New(cfg, model, s.self, runner.Options{Logger: s.log, Now: s.opt.Now, AfterChunk: s.opt.AfterChunk,
		Env: srccollectors.Env{Logger: s.log, DataDir: s.opt.StoragePath}})
	if err != nil {
		return err
	}
	reports, err := report.NewScheduler(cfg, s.reportMetrics, s.log)
	if err != nil {
		return err
	}
	mreg := prometheus.NewRegistry()
	if err := mreg.Register(model); err != nil {
		return err
	}
	s.mu.Lock()
	s.cfg, s.model, s.modelReg, s.runner, s.reports = cfg, model, mreg, r, reports
	s.sloInputs.Reset()
	for _, in := range model.SLOInputs() {
		s.sloInputs.WithLabelValues(in[:]...).Set(1)
	}
	s.mu.Unlock()
	return nil
}

// Start begins scheduling collectors and pushing metrics.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runner.Start()
	s.reports.Start()
	s.started = true
	s.startPush(s.cfg.Push)
	if s.stopSLOs == nil { // a restore after a failed reload calls Start again
		s.stopSLOs, s.slosDone = make(chan struct{}), make(chan struct{})
		go s.sampleSLOs(s.stopSLOs, s.slosDone)
	}
}

// sampleSLOs records the SLOs' counts for the status page: right away,
// then every 15s (the tracker keeps one sample per minute).
func (s *Service) sampleSLOs(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		s.ObserveSLOs(s.now())
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (s *Service) now() time.Time {
	if s.opt.Now != nil {
		return s.opt.Now()
	}
	return time.Now()
}

// ObserveSLOs samples the SLOs' cumulative counts now.
func (s *Service) ObserveSLOs(now time.Time) {
	cfg := s.Config()
	fams := s.gatherFor(cfg)
	if err := s.slos.Observe(cfg, now, status.Measure(cfg, fams)); err != nil {
		s.log.Warn("storing SLO status sample", "err", err)
	}
}

// SLOStatus is every SLO's state from servq's own view, up to now.
func (s *Service) SLOStatus(now time.Time) []status.SLO {
	cfg := s.Config()
	return s.slos.Status(cfg, now, status.Measure(cfg, s.gatherFor(cfg)))
}

// Reload reads the config file again. An invalid config, or one whose
// collectors refuse their sections, keeps the running one and returns why.
func (s *Service) Reload() error {
	s.reloading.Lock()
	defer s.reloading.Unlock()
	err := s.reload()
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		s.reloadOK.Set(0)
		s.log.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	s.reloadOK.Set(1)
	s.reloadTime.SetToCurrentTime()
	s.log.Info("configuration reloaded", "file", s.configName())
	return nil
}

func (s *Service) reload() error {
	cfg, err := loadConfig(s.opt.ConfigFile)
	if err != nil {
		return err
	}
	if err := srccollectors.CheckAll(cfg, srccollectors.Env{Logger: s.log, DataDir: s.opt.StoragePath}); err != nil {
		return err
	}
	s.mu.RLock()
	oldRunner, oldCfg, started, oldReports := s.runner, s.cfg, s.started, s.reports
	s.mu.RUnlock()
	// Cancel first, then wait with a bound: a collection waiting on its
	// vendor or a report in its retry backoff must not hold the reload.
	// What is cancelled commits nothing and runs again under the new
	// config.
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.StopTimeout)
	rerr := oldRunner.Stop(ctx)
	if err := oldReports.Stop(ctx); err != nil {
		rerr = errors.Join(rerr, err)
	}
	cancel()
	if rerr != nil {
		s.log.Warn("reload: work still running after being cancelled; going on without it", "err", rerr)
	}
	if err := s.install(cfg); err != nil {
		// The new config validated but could not be installed (e.g. the
		// store failed): bring the old one back rather than run nothing.
		if err2 := s.install(oldCfg); err2 != nil {
			return errors.Join(err, fmt.Errorf("restoring previous config: %w", err2))
		}
		if started {
			s.Start()
		}
		return err
	}
	s.mu.Lock()
	s.runner.Forget(oldRunner.Names())
	s.mu.Unlock()
	if started {
		s.mu.Lock()
		s.runner.Start()
		s.reports.Start()
		s.stopPush()
		s.startPush(cfg.Push)
		s.mu.Unlock()
	}
	return nil
}

// Shutdown cancels everything at once (collections, their commits,
// reports, the push loop, the SLO sampler), waits for them until ctx ends
// and closes the store. A collection or commit cancelled here commits
// nothing (one bbolt transaction per run: the store holds each run
// entirely or not at all); the next start collects it again. A report
// cancelled here is counted failed and produced at its next schedule.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	r, reports, push := s.runner, s.reports, s.push
	s.push = nil
	stop, done := s.stopSLOs, s.slosDone
	s.stopSLOs = nil
	s.mu.Unlock()
	if push != nil {
		push.cancel()
	}
	if stop != nil {
		close(stop)
	}
	// Both stop in parallel: each cancels first, the bound is shared.
	var runErr, repErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); runErr = r.Stop(ctx) }()
	go func() { defer wg.Done(); repErr = reports.Stop(ctx) }()
	wg.Wait()
	errs := []error{runErr, repErr}
	for _, ch := range []<-chan struct{}{waitGroupDone(push), done} {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("push or SLO sampling still running: %w", context.Cause(ctx)))
		}
	}
	errs = append(errs, s.store.Close())
	return errors.Join(errs...)
}

// waitGroupDone is closed once the pusher's loop has returned (nil when
// there is no pusher).
func waitGroupDone(p *pusher) <-chan struct{} {
	if p == nil {
		return nil
	}
	ch := make(chan struct{})
	go func() { p.wg.Wait(); close(ch) }()
	return ch
}

// Registry is the registry of servq's live metrics, which /metrics serves
// beside the quality model's (see metricsHandler).
func (s *Service) Registry() *prometheus.Registry { return s.reg }

// Config returns the config in force.
func (s *Service) Config() *config.Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg
}

// Runner returns the runner in force.
func (s *Service) Runner() *runner.Runner {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.runner
}

func (s *Service) configName() string {
	if s.opt.ConfigFile == "" {
		return config.DemoFile
	}
	return s.opt.ConfigFile
}

// Ready reports whether the config is loaded and collectors are started.
func (s *Service) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.started
}

// LastReloadError is the error of the last reload attempt, or nil.
func (s *Service) LastReloadError() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastErr
}
