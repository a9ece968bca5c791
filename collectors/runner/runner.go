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
	"strings"
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

	chunkSize  int
	afterChunk func(ctx context.Context, collector string, chunk int)

	ctx    context.Context // cancelled by Stop: running jobs give up
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // runs in progress

	stopMu    sync.Mutex
	stopped   bool // no run starts once Stop has begun
	closeOnce sync.Once
}

type job struct {
	name, typ string
	schedule  string
	src       collectors.Source
	timeout   time.Duration
	running   atomic.Bool

	mu     sync.Mutex
	status Status
	// backoff is until when the vendor asked this collector to wait (a
	// Retry-After longer than a run waits); kept in the store too.
	backoff time.Time
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
	// TotalRecords and TotalRejected count every committed run since
	// servq started (the last run alone hides a rejection burst).
	TotalRecords  int       `json:"total_records"`
	TotalRejected int       `json:"total_rejected"`
	Next          time.Time `json:"next_run,omitempty"`
	// BackoffUntil: the vendor asked to wait (Retry-After); runs are
	// skipped until then.
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
	// Watermark is the time of the newest record the collector delivered
	// (what the metrics are current to).
	Watermark time.Time `json:"watermark,omitzero"`
}

// Options tune a Runner.
type Options struct {
	Logger  *slog.Logger
	Env     collectors.Env
	Now     func() time.Time // clock for batches; time.Now by default
	Timeout time.Duration    // overrides every collector's timeout (tests)
	// ChunkSize is how many records a source gathers before it commits a
	// chunk (collectors.Batch.Flush); 0: collectors.DefaultChunkSize.
	ChunkSize int
	// AfterChunk, when set, runs after each intermediate chunk of a run is
	// committed, with its number (1, 2, ...). Tests use it to stop at an
	// exact point (kill -9 between chunks, a timeout mid-run).
	AfterChunk func(ctx context.Context, collector string, chunk int)
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
		chunkSize: opt.ChunkSize, afterChunk: opt.AfterChunk,
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
		// A wait the vendor asked for before a reload or restart still
		// holds: the store remembers it.
		if until, err := model.Backoff(c.Name); err != nil {
			log.Warn("reading the collector's remembered Retry-After", "collector", c.Name, "err", err)
		} else if until.After(r.now()) {
			j.backoff = until
			j.status.BackoffUntil = until
		}
		if self != nil {
			self.backoff.WithLabelValues(c.Name).Set(unixSeconds(j.backoff))
		}
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
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	return r, nil
}

// errStopping is the cause of the cancellation of runs by Stop.
var errStopping = errors.New("servq is stopping or reloading")

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
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
		go r.Run(j.name)
	}
	r.cron.Start()
}

// Stop stops scheduling, cancels the running collections at once (a
// cancelled run commits nothing more, its commit in progress included: the
// chunks it committed stay, and the next run collects the rest again from
// the last committed cursor) and waits for
// them to return until ctx ends. Waiting first would let a run that is
// slow or waits on a vendor hold a shutdown or a reload for as long as it
// likes. A run still going when ctx ends (a source that ignores
// cancellation) can no longer commit; Stop returns an error naming it.
// Stop may be called more than once.
func (r *Runner) Stop(ctx context.Context) error {
	r.stopMu.Lock()
	r.stopped = true
	r.stopMu.Unlock()
	r.cancel(errStopping)
	r.cron.Stop() // its jobs are runs, tracked by wg: no need to wait on cron
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("collectors still running after being cancelled: %s (they can no longer commit)", strings.Join(r.running(), ", "))
	}
	r.closeOnce.Do(r.closeSources)
	return err
}

func (r *Runner) running() []string {
	var out []string
	for _, j := range r.jobs {
		if j.running.Load() {
			out = append(out, j.name)
		}
	}
	return out
}

// begin registers a run with Stop; false once Stop has begun.
func (r *Runner) begin() bool {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if r.stopped {
		return false
	}
	r.wg.Add(1)
	return true
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

// ErrStopped is returned by Run once Stop has begun.
var ErrStopped = errors.New("collector runner stopped")

// ErrBackoff is wrapped by Run's error when the run was skipped because
// the vendor asked the collector to wait (Retry-After). A skipped run is
// not a failure of the source: up, last success and the status error keep
// what the last real run left.
var ErrBackoff = errors.New("run skipped: the vendor asked to wait")

// Run runs one collection of the named collector now and waits for it.
func (r *Runner) Run(name string) error {
	j := r.byN[name]
	if j == nil {
		return fmt.Errorf("no collector %q", name)
	}
	if !r.begin() {
		return ErrStopped
	}
	defer r.wg.Done()
	if !j.running.CompareAndSwap(false, true) {
		r.count(j, "skipped")
		r.log.Warn("collector run skipped: previous run still in progress", "collector", name)
		return ErrRunning
	}
	defer j.running.Store(false)
	j.mu.Lock()
	until := j.backoff
	j.mu.Unlock()
	if now := r.now(); now.Before(until) {
		r.log.Debug("collector run skipped: the vendor asked to wait", "collector", name, "until", until)
		return fmt.Errorf("%w until %s", ErrBackoff, until.Format(time.RFC3339))
	}
	start := time.Now()
	err := r.collect(j)
	dur := time.Since(start)
	r.backoff(j, err)

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

// backoff remembers (in memory, in the store and in the gauge) a wait the
// vendor asked for, or forgets a past one after a run that got through.
func (r *Runner) backoff(j *job, err error) {
	var until time.Time
	var be *collectors.BackoffError
	if errors.As(err, &be) {
		until = r.now().Add(be.Wait)
	}
	j.mu.Lock()
	prev := j.backoff
	j.mu.Unlock()
	if until.IsZero() && prev.IsZero() {
		return
	}
	if err := r.model.SetBackoff(j.name, until); err != nil {
		// Memory still holds it: this process honours the wait.
		r.log.Warn("storing the collector's Retry-After", "collector", j.name, "err", err)
	}
	if r.self != nil {
		r.self.backoff.WithLabelValues(j.name).Set(unixSeconds(until))
	}
	// The status goes last: whoever sees the wait in /api/v1/collectors
	// finds it in the store and the gauge too. Runs of one job never
	// overlap, so no run reads j.backoff before this assignment.
	j.mu.Lock()
	j.backoff, j.status.BackoffUntil = until, until
	j.mu.Unlock()
	if !until.IsZero() {
		r.log.Info("the vendor asked to wait: the collector's runs are skipped until then", "collector", j.name, "until", until, "wait", be.Wait)
	}
}

func (r *Runner) count(j *job, result string) {
	if r.self != nil {
		r.self.runs.add(1, j.name, result)
	}
}

// maxLoggedRejections bounds log lines per run; the counters hold the rest.
const maxLoggedRejections = 10

func (r *Runner) collect(j *job) (err error) {
	var run runTally
	defer func() {
		if p := recover(); p != nil {
			r.count(j, "panic")
			r.log.Error("collector panicked; the run commits nothing more", "collector", j.name, "panic", p, "stack", string(debug.Stack()),
				"chunks_committed", run.chunks)
			err = fmt.Errorf("panic: %v", p)
		}
		if err == nil || run.chunks > 0 {
			// What the run committed; a run that committed nothing
			// leaves the last one's figures.
			j.mu.Lock()
			j.status.Records, j.status.Rejected = run.records, run.rejected
			j.mu.Unlock()
		}
	}()
	// The timeout bounds the whole run: fetching, every chunk's commit and
	// the last commit.
	ctx := r.ctx
	if j.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, j.timeout, fmt.Errorf("collector timeout %s reached", j.timeout))
		defer cancel()
	}
	cursor, err := r.model.Cursor(j.name)
	if err != nil {
		r.count(j, "error")
		return err
	}
	b := &collectors.Batch{Now: r.now()}
	b.SetChunks(r.chunkSize, func(sctx context.Context, b *collectors.Batch, cursor []byte) error {
		// The source's context may be narrower than the run's; either
		// ending stops the run.
		if err := sctx.Err(); err != nil {
			return err
		}
		res, err := r.model.CommitChunk(ctx, j.name, b, cursor)
		if err != nil {
			return err
		}
		run.chunks++
		r.report(j, b, res, &run)
		if r.afterChunk != nil {
			r.afterChunk(ctx, j.name, run.chunks)
		}
		return nil
	})
	next, err := j.src.Collect(ctx, cursor, b)
	if err == nil {
		err = ctx.Err() // a source that ignored cancellation still commits nothing
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("run cancelled (%v): %w", context.Cause(ctx), err)
	}
	if err != nil {
		r.count(j, "error")
		if run.chunks > 0 {
			r.log.Error("collection failed; the run's committed chunks stay and the next run continues after them", "collector", j.name,
				"chunks_committed", run.chunks, "err", err)
		} else {
			r.log.Error("collection failed; nothing of this run is committed", "collector", j.name, "err", err)
		}
		return err
	}
	res, err := r.model.CommitContext(ctx, j.name, b, next)
	if err != nil {
		r.count(j, "error")
		r.log.Error("commit failed", "collector", j.name, "chunks_committed", run.chunks, "err", err)
		return err
	}
	r.count(j, "success")
	r.report(j, b, res, &run)
	r.log.Debug("collection committed", "collector", j.name, "records", run.records, "rejected", run.rejected, "chunks", run.chunks+1)
	return nil
}

// runTally adds up the chunks of one run for its status and logs.
type runTally struct {
	chunks            int // intermediate chunks committed
	records, rejected int
	logged            int // rejections logged so far (maxLoggedRejections per run)
}

// report counts one committed chunk (or the run's last commit) in the self
// metrics, the status totals and the log.
func (r *Runner) report(j *job, b *collectors.Batch, res quality.Result, run *runTally) {
	run.records += b.Len()
	run.rejected += len(b.Rejected)
	j.mu.Lock()
	j.status.TotalRecords += b.Len()
	j.status.TotalRejected += len(b.Rejected)
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
	for _, rj := range b.Rejected {
		if run.logged == maxLoggedRejections {
			break
		}
		run.logged++
		r.log.Warn("input rejected", "collector", j.name, "reason", rj.Reason, "position", rj.Position, "err", rj.Err)
	}
	if run.logged == maxLoggedRejections && run.rejected > run.logged {
		// Said once per commit, with the count so far in this run.
		r.log.Warn("more input rejected", "collector", j.name, "count", run.rejected-run.logged)
	}
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
		if r.model != nil {
			s.Watermark = r.model.Newest(j.name)
		}
		if !s.BackoffUntil.After(r.now()) {
			s.BackoffUntil = time.Time{} // over: the next run asks again
		}
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
