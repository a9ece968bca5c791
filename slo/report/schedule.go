package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

// Job says what to build and where it goes.
type Job struct {
	Name      string
	Period    Period
	API       *API
	Formats   []string
	Directory string
	Webhook   config.Secret
}

// Produce builds the report, writes one file per format (atomically, named
// <name>-<period>.<format>) and POSTs the summary to the webhook.
func Produce(ctx context.Context, cfg *config.Config, j Job, now time.Time) ([]string, error) {
	r, err := Build(ctx, cfg, j.API, j.Period, now)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.Directory, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, f := range j.Formats {
		b, err := Render(r, f)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(j.Directory, fmt.Sprintf("%s-%s.%s", j.Name, j.Period.Name, f))
		if err := state.WriteFileAtomic(path, b); err != nil {
			return nil, err
		}
		files = append(files, path)
	}
	if j.Webhook != "" {
		if err := postSummary(ctx, j.Webhook, r, j.Name); err != nil {
			return files, err
		}
	}
	return files, nil
}

// Summary text for chat tools: {"text": ...} is what Slack, Mattermost and
// Rocket.Chat incoming webhooks read; the structured fields are for
// everything else.
func postSummary(ctx context.Context, url config.Secret, r *Report, name string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "SLO report %s (%s): %d of %d SLOs met.", r.Period.Name, r.Service, r.Summary.Met, r.Summary.SLOs)
	for _, risk := range r.Summary.Risks {
		b.WriteString("\n• " + risk)
	}
	body, _ := json.Marshal(map[string]any{"text": b.String(), "report": name, "period": r.Period.Name, "summary": r.Summary})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url.Reveal(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report webhook: invalid URL") // the URL is a secret: never quoted
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("report webhook: request failed") // url.Error would quote the URL
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report webhook: HTTP %d", resp.StatusCode)
	}
	return nil
}

// Metrics count scheduled reports; they outlive reloads.
type Metrics struct {
	runs        *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

// NewMetrics registers the report metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "servq_report_runs_total",
			Help: "Scheduled report attempts by result: success, error (retried), failed (given up until the next schedule)."}, []string{"report", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "servq_report_last_success_timestamp_seconds",
			Help: "When the report was last produced."}, []string{"report"}),
	}
	reg.MustRegister(m.runs, m.lastSuccess)
	return m
}

// Scheduler runs the configured reports on their schedules.
type Scheduler struct {
	cfg     *config.Config
	metrics *Metrics
	log     *slog.Logger
	cron    *cron.Cron
	ctx     context.Context
	cancel  context.CancelCauseFunc
	wg      sync.WaitGroup // reports in progress
	stopMu  sync.Mutex
	stopped bool // no report starts once Stop has begun
	// running: reports in progress, by name. A report still retrying
	// when its schedule fires again is not started twice (two retry
	// loops, two webhook posts of one period).
	running map[string]bool
	// Retries are the waits between attempts of a failed report.
	Retries []time.Duration
	now     func() time.Time
}

// NewScheduler prepares the reports of cfg; Start runs them.
func NewScheduler(cfg *config.Config, m *Metrics, log *slog.Logger) (*Scheduler, error) {
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Scheduler{cfg: cfg, metrics: m, log: log, cron: cron.New(cron.WithParser(config.CronParser)),
		ctx: ctx, cancel: cancel, Retries: []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}, now: time.Now}
	for _, rep := range cfg.Reports {
		rep := rep
		spec := rep.Schedule
		if !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") && !strings.HasPrefix(spec, "@every") {
			spec = "CRON_TZ=" + cfg.Global.TimeZone + " " + spec
		}
		if _, err := s.cron.AddFunc(spec, func() { s.Run(rep) }); err != nil {
			return nil, fmt.Errorf("report %s: %w", rep.Name, err)
		}
		m.runs.WithLabelValues(rep.Name, "success")
		m.runs.WithLabelValues(rep.Name, "error")
		m.runs.WithLabelValues(rep.Name, "failed")
	}
	return s, nil
}

// JobFor builds the job of a configured report at now.
func JobFor(rep *config.Report, now time.Time) (Job, error) {
	loc, err := time.LoadLocation(rep.TimeZone)
	if err != nil {
		return Job{}, err
	}
	p, err := ParsePeriod(rep.Period, loc, now)
	if err != nil {
		return Job{}, err
	}
	token, err := config.ResolveSecret(rep.BearerToken, rep.BearerTokenFile)
	if err != nil {
		return Job{}, fmt.Errorf("bearer_token_file: %w", err)
	}
	hook, err := config.ResolveSecret(rep.WebhookURL, rep.WebhookURLFile)
	if err != nil {
		return Job{}, fmt.Errorf("webhook_url_file: %w", err)
	}
	return Job{Name: rep.Name, Period: p, API: &API{URL: rep.PrometheusURL, BearerToken: token},
		Formats: rep.Formats, Directory: rep.Directory, Webhook: hook}, nil
}

// errStopping is the cause of the cancellation of reports by Stop.
var errStopping = errors.New("servq is stopping or reloading")

// Run produces one report now, retrying on failure; every attempt is
// logged and counted, so a report is never lost silently. A report
// interrupted by Stop (a shutdown or a reload) is counted failed and
// logged as cancelled; it is produced again at its next schedule.
func (s *Scheduler) Run(rep *config.Report) {
	s.stopMu.Lock()
	if s.stopped {
		s.stopMu.Unlock()
		return
	}
	if s.running[rep.Name] {
		s.stopMu.Unlock()
		s.log.Warn("report skipped: its previous run is still going (retrying)", "report", rep.Name)
		return
	}
	if s.running == nil {
		s.running = map[string]bool{}
	}
	s.running[rep.Name] = true
	s.wg.Add(1)
	s.stopMu.Unlock()
	defer func() {
		s.stopMu.Lock()
		delete(s.running, rep.Name)
		s.stopMu.Unlock()
		s.wg.Done()
	}()
	now := s.now()
	for attempt := 0; ; attempt++ {
		job, err := JobFor(rep, now)
		var files []string
		if err == nil {
			files, err = Produce(s.ctx, s.cfg, job, s.now())
		}
		if err == nil {
			s.metrics.runs.WithLabelValues(rep.Name, "success").Inc()
			s.metrics.lastSuccess.WithLabelValues(rep.Name).SetToCurrentTime()
			s.log.Info("report written", "report", rep.Name, "period", job.Period.Name, "files", files)
			return
		}
		if s.ctx.Err() != nil {
			s.cancelled(rep, attempt)
			return
		}
		if attempt >= len(s.Retries) {
			s.metrics.runs.WithLabelValues(rep.Name, "failed").Inc()
			s.log.Error("report failed; giving up until its next schedule", "report", rep.Name, "attempts", attempt+1, "err", err)
			return
		}
		s.metrics.runs.WithLabelValues(rep.Name, "error").Inc()
		s.log.Warn("report failed; retrying", "report", rep.Name, "in", s.Retries[attempt], "err", err)
		select {
		case <-s.ctx.Done():
			s.cancelled(rep, attempt+1)
			return
		case <-time.After(s.Retries[attempt]):
		}
	}
}

func (s *Scheduler) cancelled(rep *config.Report, attempts int) {
	s.metrics.runs.WithLabelValues(rep.Name, "failed").Inc()
	s.log.Warn("report cancelled: servq is stopping or reloading; it is produced again at its next schedule",
		"report", rep.Name, "attempts", attempts)
}

// Start begins the schedules.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop ends the schedules, cancels the running reports at once (their
// Prometheus queries, webhook posts and retry waits) and waits for them
// until ctx ends. Waiting before cancelling let a report in its retry
// backoff (1+5+15 minutes) hold a shutdown or a reload that long. Stop
// may be called more than once.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.stopMu.Lock()
	s.stopped = true
	s.stopMu.Unlock()
	s.cancel(errStopping)
	s.cron.Stop() // cron's jobs are Runs, tracked by wg
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reports still running after being cancelled: %w", context.Cause(ctx))
	}
}
