// Package runner schedules collectors on cron and moves each run's batch
// into the quality model: fetch from the committed cursor, commit records
// and the new cursor together, update the self metrics.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// Runner runs the collectors of one config.
type Runner struct {
	model *quality.Model
	self  *SelfMetrics
	log   *slog.Logger
	cron  *cron.Cron
	jobs  []*job
	byN   map[string]*job
	now   func() time.Time

	ctx    context.Context // cancelled by Stop when running jobs must give up
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type job struct {
	name, typ string
	schedule  string
	src       collectors.Source
	timeout   time.Duration
	running   atomic.Bool

	mu     sync.Mutex
	status Status
}

// Status is what the landing page shows of a collector.
type Status struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Schedule    string    `json:"schedule"`
	Running     bool      `json:"running"`
	LastRun     time.Time `json:"last_run,omitempty"`
	LastSuccess time.Time `json:"last_success,omitempty"`
	Duration    float64   `json:"last_duration_seconds"`
	Error       string    `json:"error,omitempty"`
	Records     int       `json:"last_records"`
	Rejected    int       `json:"last_rejected"`
	Next        time.Time `json:"next_run,omitempty"`
}

// Options tune a Runner.
type Options struct {
	Logger  *slog.Logger
	Env     collectors.Env
	Now     func() time.Time // clock for batches; time.Now by default
	Timeout time.Duration    // overrides every collector's timeout (tests)
}

// New builds the sources of every enabled collector of cfg. Nothing runs
// until Start. An error here (a plugin that refuses its config) leaves the
// caller's current runner untouched, which is what reload relies on.
func New(cfg *config.Config, model *quality.Model, self *SelfMetrics, opt Options) (*Runner, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Env.Logger == nil {
		opt.Env.Logger = log
	}
	loc, err := time.LoadLocation(cfg.Global.TimeZone)
	if err != nil {
		return nil, err
	}
	r := &Runner{model: model, self: self, log: log, byN: map[string]*job{}, now: opt.Now,
		cron: cron.New(cron.WithParser(config.CronParser), cron.WithLocation(loc))}
	if r.now == nil {
		r.now = time.Now
	}
	var errs config.Errors
	for _, c := range cfg.Collectors {
		if c.Disabled {
			continue
		}
		env := opt.Env
		env.Logger = log.With("collector", c.Name)
		src, err := collectors.Build(c, env)
		if err != nil {
			var ce *config.Error
			var ces config.Errors
			switch {
			case errors.As(err, &ces):
				errs = append(errs, ces...)
			case errors.As(err, &ce):
				errs = append(errs, ce)
			default:
				errs = append(errs, &config.Error{File: cfg.File, Msg: err.Error()})
			}
			continue
		}
		j := &job{name: c.Name, typ: c.Type, schedule: c.Schedule, src: src, timeout: c.Timeout.D()}
		if opt.Timeout > 0 {
			j.timeout = opt.Timeout
		}
		j.status = Status{Name: c.Name, Type: c.Type, Schedule: c.Schedule}
		if _, err := r.cron.AddFunc(c.Schedule, func() { r.Run(j.name) }); err != nil {
			errs = append(errs, &config.Error{File: cfg.File, Path: c.Name, Msg: err.Error()})
			continue
		}
		r.jobs = append(r.jobs, j)
		r.byN[c.Name] = j
	}
	if err := errs.Err(); err != nil {
		r.closeSources()
		return nil, err
	}
	if self != nil {
		self.lag.set(r.newest)
		self.setDelay(cfg.Global.SeriesDelay())
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

func (r *Runner) newest() map[string]time.Time {
	out := make(map[string]time.Time, len(r.jobs))
	for _, j := range r.jobs {
		out[j.name] = r.model.Newest(j.name)
	}
	return out
}

// Names lists the runner's collectors.
func (r *Runner) Names() []string {
	out := make([]string, len(r.jobs))
	for i, j := range r.jobs {
		out[i] = j.name
	}
	return out
}

// Start runs every collector once right away (so a new process serves data
// without waiting for the first tick of an hourly schedule) and then on its
// schedule.
func (r *Runner) Start() {
	for _, j := range r.jobs {
		if r.self != nil {
			r.self.up.WithLabelValues(j.name, j.typ).Set(0)
		}
		name := j.name
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.Run(name)
		}()
	}
	r.cron.Start()
}

// Stop stops scheduling and waits for running collections to finish. When
// ctx ends first, the running collections are cancelled (their runs commit
// nothing) and Stop waits for them to return.
func (r *Runner) Stop(ctx context.Context) {
	cronDone := r.cron.Stop()
	done := make(chan struct{})
	go func() {
		<-cronDone.Done()
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel()
		<-done
	}
	r.cancel()
	r.closeSources()
}

// Handler returns the webhook handler of the named collector, or nil when
// it has none (or is disabled).
func (r *Runner) Handler(name string) http.Handler {
	j := r.byN[name]
	if j == nil {
		return nil
	}
	if rc, ok := j.src.(collectors.Receiver); ok {
		return rc.Handler()
	}
	return nil
}

func (r *Runner) closeSources() {
	for _, j := range r.jobs {
		if c, ok := j.src.(io.Closer); ok {
			if err := c.Close(); err != nil {
				r.log.Warn("closing collector", "collector", j.name, "err", err)
			}
		}
	}
}

// Forget removes self metrics of collectors that are not in this runner.
func (r *Runner) Forget(names []string) {
	if r.self == nil {
		return
	}
	for _, n := range names {
		if r.byN[n] == nil {
			r.self.forget(n)
		}
	}
}

// ErrRunning is returned by Run when the collector's previous run has not
// finished: runs of one collector never overlap.
var ErrRunning = errors.New("previous run still in progress")

// Run runs one collection of the named collector now and waits for it.
func (r *Runner) Run(name string) error {
	j := r.byN[name]
	if j == nil {
		return fmt.Errorf("no collector %q", name)
	}
	if !j.running.CompareAndSwap(false, true) {
		r.count(j, "skipped")
		r.log.Warn("collector run skipped: previous run still in progress", "collector", name)
		return ErrRunning
	}
	defer j.running.Store(false)
	start := time.Now()
	err := r.collect(j)
	dur := time.Since(start)

	j.mu.Lock()
	j.status.LastRun = start
	j.status.Duration = dur.Seconds()
	if err != nil {
		// The status is served on the landing page and the API: no
		// configured secret, control character or unbounded vendor text.
		j.status.Error = redact.Text(err.Error(), maxStatusError)
	} else {
		j.status.Error = ""
		j.status.LastSuccess = start
	}
	j.mu.Unlock()
	if r.self != nil {
		r.self.duration.WithLabelValues(name).Set(dur.Seconds())
		if err == nil {
			r.self.up.WithLabelValues(name, j.typ).Set(1)
			r.self.lastSuccess.WithLabelValues(name).Set(float64(start.UnixNano()) / 1e9)
		} else {
			r.self.up.WithLabelValues(name, j.typ).Set(0)
		}
	}
	return err
}

// maxStatusError bounds a collector's error text in its status (an exec
// command's stderr tail is 4 KiB).
const maxStatusError = 4608

func (r *Runner) count(j *job, result string) {
	if r.self != nil {
		r.self.runs.add(1, j.name, result)
	}
}

// maxLoggedRejections bounds log lines per run; the counters hold the rest.
const maxLoggedRejections = 10

func (r *Runner) collect(j *job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.count(j, "panic")
			r.log.Error("collector panicked; the run commits nothing", "collector", j.name, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	ctx := r.ctx
	if j.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, j.timeout)
		defer cancel()
	}
	cursor, err := r.model.Cursor(j.name)
	if err != nil {
		r.count(j, "error")
		return err
	}
	b := &collectors.Batch{Now: r.now()}
	next, err := j.src.Collect(ctx, cursor, b)
	if err == nil {
		err = ctx.Err() // a source that ignored cancellation still commits nothing
	}
	if err != nil {
		r.count(j, "error")
		r.log.Error("collection failed; nothing of this run is committed", "collector", j.name, "err", err)
		return err
	}
	res, err := r.model.Commit(j.name, b, next)
	if err != nil {
		r.count(j, "error")
		r.log.Error("commit failed", "collector", j.name, "err", err)
		return err
	}
	r.count(j, "success")
	r.report(j, b, res)
	return nil
}

func (r *Runner) report(j *job, b *collectors.Batch, res quality.Result) {
	j.mu.Lock()
	j.status.Records = b.Len()
	j.status.Rejected = len(b.Rejected)
	j.mu.Unlock()
	if r.self != nil {
		for k, n := range res.Accepted {
			r.self.records.add(float64(n), j.name, k, "accepted")
		}
		for k, n := range res.Duplicate {
			r.self.records.add(float64(n), j.name, k, "duplicate")
		}
		for _, rj := range b.Rejected {
			r.self.rejected.add(1, j.name, rj.Reason)
		}
	}
	for i, rj := range b.Rejected {
		if i == maxLoggedRejections {
			r.log.Warn("more input rejected", "collector", j.name, "count", len(b.Rejected)-i)
			break
		}
		r.log.Warn("input rejected", "collector", j.name, "reason", rj.Reason, "position", rj.Position, "err", rj.Err)
	}
	r.log.Debug("collection committed", "collector", j.name, "records", b.Len(), "rejected", len(b.Rejected))
}

// Statuses returns the state of every collector, by name.
func (r *Runner) Statuses() []Status {
	entries := r.cron.Entries()
	next := map[int]time.Time{}
	for i, e := range entries {
		next[i] = e.Next
	}
	out := make([]Status, 0, len(r.jobs))
	for i, j := range r.jobs {
		j.mu.Lock()
		s := j.status
		j.mu.Unlock()
		s.Running = j.running.Load()
		if i < len(entries) {
			s.Next = next[i]
		}
		out = append(out, s)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Ready reports whether every collector has completed at least one run
// (successful or not): the process has started all of its work.
func (r *Runner) Ready() bool {
	for _, j := range r.jobs {
		j.mu.Lock()
		ran := !j.status.LastRun.IsZero()
		j.mu.Unlock()
		if !ran {
			return false
		}
	}
	return true
}
