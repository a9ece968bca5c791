package report

import (
	"bytes"
	"context"
	"encoding/json"
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
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// Retries are the waits between attempts of a failed report.
	Retries []time.Duration
	now     func() time.Time
}

// NewScheduler prepares the reports of cfg; Start runs them.
func NewScheduler(cfg *config.Config, m *Metrics, log *slog.Logger) (*Scheduler, error) {
	ctx, cancel := context.WithCancel(context.Background())
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

// Run produces one report now, retrying on failure; every attempt is
// logged and counted, so a report is never lost silently.
func (s *Scheduler) Run(rep *config.Report) {
	s.wg.Add(1)
	defer s.wg.Done()
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
		if attempt >= len(s.Retries) || s.ctx.Err() != nil {
			s.metrics.runs.WithLabelValues(rep.Name, "failed").Inc()
			s.log.Error("report failed; giving up until its next schedule", "report", rep.Name, "attempts", attempt+1, "err", err)
			return
		}
		s.metrics.runs.WithLabelValues(rep.Name, "error").Inc()
		s.log.Warn("report failed; retrying", "report", rep.Name, "in", s.Retries[attempt], "err", err)
		select {
		case <-s.ctx.Done():
			s.metrics.runs.WithLabelValues(rep.Name, "failed").Inc()
			return
		case <-time.After(s.Retries[attempt]):
		}
	}
}

// Start begins the schedules.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop ends the schedules and cancels running reports.
func (s *Scheduler) Stop() {
	<-s.cron.Stop().Done()
	s.cancel()
	s.wg.Wait()
}
