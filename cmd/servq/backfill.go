package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/replay"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
	"github.com/servq/servq/slo/status"
)

// backfillOptions are the flags of `servq backfill`.
type backfillOptions struct {
	since     string
	from, to  string
	step      time.Duration
	only      []string
	storage   string
	output    string
	importURL string
	force     bool
	labels    map[string]string
	now       func() time.Time // tests
	chunkSize int              // tests: records a source hands over at once
}

func addBackfillFlags(c *kingpin.CmdClause, o *backfillOptions) {
	c.Flag("since", "Replay this far back from now, e.g. 90d, 2w, 36h.").StringVar(&o.since)
	c.Flag("from", "Replay from this time (RFC 3339, or a date: 2026-09-01) instead of --since.").StringVar(&o.from)
	c.Flag("to", "Replay up to this time (default now; then `servq run` continues where the backfill ended).").StringVar(&o.to)
	c.Flag("step", "Sample interval: the scrape interval to imitate.").Default("1m").DurationVar(&o.step)
	c.Flag("collector", "Replay only this collector (repeatable).").StringsVar(&o.only)
	c.Flag("storage.path", "State store to replay into (default as for run). It must not hold state of the replayed collectors (see --force).").StringVar(&o.storage)
	c.Flag("output", "Write the samples as OpenMetrics with timestamps to this file (- for stdout), for `promtool tsdb create-blocks-from openmetrics`.").Short('o').StringVar(&o.output)
	c.Flag("import.url", "Send the samples to this VictoriaMetrics or vmagent base URL (/api/v1/import/prometheus), with the push section's credentials and extra labels.").StringVar(&o.importURL)
	c.Flag("label", "Label added to every sample, name=value (repeatable): the job and instance labels Prometheus adds when it scrapes servq, e.g. --label job=servq --label instance=servq:9817, so live scrapes continue the backfilled series.").StringMapVar(&o.labels)
	c.Flag("force", "Replay collectors that already have committed state (servq already counted them live): their history is counted again at its own times on top of it.").BoolVar(&o.force)
}

// backfill replays the configured sources' history on an event-time clock
// (see package replay) into the store and the sinks.
func backfill(configFile string, o backfillOptions, logger *slog.Logger, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "servq backfill: %v\n", err)
		return 1
	}
	if o.output == "" && o.importURL == "" {
		return fail(fmt.Errorf("nowhere to write the samples: give --output (OpenMetrics for promtool) and/or --import.url (VictoriaMetrics)"))
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.chunkSize == 0 {
		o.chunkSize = testBackfillChunk
	}
	from, to, seam, err := backfillRange(o, o.now())
	if err != nil {
		return fail(err)
	}
	cfg, err := loadOrDemo(configFile)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	// Births are written at 0 by the replay itself, a step before.
	cfg.Global.NewSeriesDelay = new(config.Duration)
	want := map[string]bool{}
	for _, n := range o.only {
		want[n] = true
	}
	// The real store is held open (locked against a servq run) for the
	// whole backfill, which replays into a copy in a work directory inside
	// it; only a complete replay replaces the store, so an interrupted one
	// (Ctrl-C, a failed source) leaves it as it was. What the sources
	// handed over is kept apart (readDir) until the backfill completes.
	real, err := state.Open(storagePath(configFile, o.storage))
	if err != nil {
		return fail(err)
	}
	realOpen := true
	defer func() {
		if realOpen {
			real.Close()
		}
	}()
	// A backfill that could not clean up (killed, or it did not stop in
	// time) left its work directory; the store's lock says no other
	// backfill uses it now.
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(real.Path()), ".backfill-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	// What an interrupted backfill read is kept (replay.Options.ReadDir):
	// the same command resumes it, with its range, and reads only what
	// it had not read. Another command (config, range flags, step,
	// collectors) reads from the start; the replay discards the old one.
	readDir := filepath.Join(filepath.Dir(real.Path()), backfillReadDir)
	key := readKey(configFile, o)
	switch r, err := replay.LoadReading(readDir); {
	case err != nil:
		fmt.Fprintf(stderr, "backfill: discarding the reading of an interrupted backfill (%v): the sources are read from the start\n", err)
	case r == nil:
	case r.Key != key:
		fmt.Fprintf(stderr, "backfill: discarding the reading of an interrupted backfill with another config, range, step or collectors in %s: the sources are read from the start\n", readDir)
	default:
		// The start is the first run's (--since moved with the clock).
		// A range that ends now ends at this run's now: a source still
		// reading reads on up to it, since what its clock (the old end)
		// would hold back, e.g. queue_log lines written since, would
		// be rejected as ahead of it and lost to the seam (servq run
		// continues after them). A range with --to keeps its end.
		from = r.From
		end := "now, " + to.UTC().Format(time.RFC3339)
		if !seam {
			to = r.To
			end = to.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stderr, "backfill: resuming the reading of an interrupted backfill: %s; start %s kept from the first run, end %s; delete %s to start over\n",
			readingState(r), from.UTC().Format(time.RFC3339), end, readDir)
	}
	check, err := quality.New(cfg, real, logger)
	if err != nil {
		return fail(err)
	}
	var cols []replay.Collector
	for _, c := range cfg.Collectors {
		if c.Disabled || (len(want) > 0 && !want[c.Name]) {
			continue
		}
		delete(want, c.Name)
		cur, err := check.Cursor(c.Name)
		if err != nil {
			return fail(err)
		}
		if (cur != nil || !check.Newest(c.Name).IsZero()) && !o.force {
			return fail(fmt.Errorf("collector %s already has committed state in %s (servq run or an earlier backfill counted it): replaying it would overlap what was already exported; use an empty --storage.path, or --force to count its history again on top", c.Name, real.Path()))
		}
		// API and sql sources read back `since` on their first run: the
		// whole range (a step more, for the rounding of the first sample).
		// A source without that key refuses it and is built as it is.
		since := model.Duration(to.Sub(from.Truncate(o.step)) + o.step).String()
		src, err := collectors.Build(c.WithSpec("since", since), collectors.Env{Logger: logger})
		if err != nil {
			src, err = collectors.Build(c, collectors.Env{Logger: logger})
		}
		if err != nil {
			printErr(stderr, err)
			return 1
		}
		if cl, ok := src.(io.Closer); ok {
			defer cl.Close()
		}
		cols = append(cols, replay.Collector{Name: c.Name, Source: src})
	}
	for n := range want {
		return fail(fmt.Errorf("--collector %s: no such collector in the config", n))
	}
	work, err := os.MkdirTemp(filepath.Dir(real.Path()), ".backfill-")
	if err != nil {
		return fail(err)
	}
	keepWork := false
	defer func() {
		if !keepWork {
			os.RemoveAll(work)
		}
	}()
	if b, err := os.ReadFile(real.Path()); err != nil {
		return fail(err)
	} else if err := os.WriteFile(filepath.Join(work, state.FileName), b, 0o600); err != nil {
		return fail(err)
	}
	store, err := state.Open(work)
	if err != nil {
		return fail(err)
	}
	storeOpen := true
	defer func() {
		if storeOpen {
			store.Close()
		}
	}()
	m, err := quality.New(cfg, store, logger)
	if err != nil {
		return fail(err)
	}
	var sinks replay.Multi
	var om *replay.OpenMetrics
	if o.output != "" {
		dir := ""
		if o.output != "-" {
			dir = filepath.Dir(o.output)
		}
		if om, err = replay.NewOpenMetrics(dir); err != nil {
			return fail(err)
		}
		defer om.Close()
		sinks = append(sinks, om)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var im *replay.Import
	checkpoint := ""
	if o.importURL != "" {
		if im, err = importSink(ctx, o.importURL, cfg.Push); err != nil {
			return fail(err)
		}
		if testImportBatch > 0 {
			im.Batch = testImportBatch
		}
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c.Name
		}
		ck := importCheckpoint{path: filepath.Join(filepath.Dir(real.Path()), importCheckpointFile),
			key: importKey(configFile, im.URL, o.labels, o.step, names), start: from.Truncate(o.step)}
		if through, ok := ck.load(); ok {
			im.Skip = through
			fmt.Fprintf(stderr, "backfill: resuming the import: the samples through %s were sent by an interrupted backfill and are not sent again (delete %s to send everything)\n",
				through.UTC().Format(time.RFC3339), ck.path)
		}
		im.Acked = ck.save
		checkpoint = ck.path
		sinks = append(sinks, im)
	}
	if err := store.SetNoSync(true); err != nil {
		return fail(err)
	}
	// /api/v1/slos and the landing page start with the history too: the
	// SLO tracker gets a sample of every step, as servq run takes one a
	// minute.
	tracker, err := status.NewTracker(store)
	if err != nil {
		return fail(err)
	}
	observe := func(at time.Time, fams []*dto.MetricFamily) error {
		return tracker.Observe(cfg, at, status.Measure(cfg, fams))
	}
	day := time.Time{}
	started := o.now()
	var reached time.Time // simulated time of the last step written
	steps := 0
	type outcome struct {
		res replay.Result
		err error
	}
	done := make(chan outcome, 1)
	// The replay and the sinks' last writes run aside, so that a signal
	// is answered at once: ctx is cancelled, and they stop at their next
	// step, request or write.
	go func() {
		res, err := replay.Run(ctx, m, cols, sinks, replay.Options{From: from, To: to, Step: o.step, CommitCursors: seam, Labels: o.labels, Observe: observe,
			SpillDir: work, ReadDir: readDir, ReadKey: key, ChunkSize: o.chunkSize,
			ReadProgress: func(p replay.ReadProgress) {
				if p.Finished {
					fmt.Fprintf(stderr, "backfill: collector %s read: %d records\n", p.Collector, p.Records)
				} else {
					fmt.Fprintf(stderr, "backfill: reading collector %s: %d records, chunk %d kept\n", p.Collector, p.Records, p.Chunks)
				}
				if testAfterChunk != nil {
					testAfterChunk(ctx, p.Collector, p.Chunks)
				}
			},
			Progress: func(p replay.Progress) {
				reached = p.At
				steps++
				if d := p.At.Truncate(24 * time.Hour); !d.Equal(day) || !p.At.Add(o.step).Before(to) {
					day = d
					fmt.Fprintf(stderr, "backfill: %s reached, %d/%d events, %d samples%s\n", p.At.UTC().Format(time.RFC3339), p.Events, p.Total, p.Samples,
						rateETA(o.now().Sub(started), p.Samples, p.At.Sub(from), to.Sub(from)))
				}
				if testAfterStep != nil {
					testAfterStep(ctx, steps)
				}
			}})
		if serr := store.SetNoSync(false); err == nil && serr != nil {
			err = serr
		}
		if err == nil && im != nil {
			err = im.Finish()
		}
		if err == nil && om != nil {
			err = writeOpenMetrics(ctx, o.output, om)
		}
		done <- outcome{res, err}
	}()
	var out outcome
	select {
	case out = <-done:
	case <-ctx.Done():
		stop() // a second Ctrl-C ends the process at once
		fmt.Fprintf(stderr, "backfill: interrupted: stopping (at most %s)\n", backfillStopWait)
		t := time.NewTimer(backfillStopWait)
		select {
		case out = <-done:
			t.Stop()
		case <-t.C:
			// Still writing: the work copy is in use and stays (the
			// next backfill removes it); the store was never touched.
			storeOpen, keepWork = false, true
			fmt.Fprintf(stderr, "servq backfill: did not stop within %s; exiting: %s is as it was (nothing committed)%s; %s\n",
				backfillStopWait, real.Path(), outputNote(o.output), rerunNote(readDir))
			return 1
		}
	}
	res, err := out.res, out.err
	if err != nil && ctx.Err() != nil {
		at := "before the first step"
		if !reached.IsZero() {
			at = "after the step at " + reached.UTC().Format(time.RFC3339)
		}
		sent := ""
		if im != nil {
			sent = "; the samples VictoriaMetrics acknowledged stay there, and a re-run does not send them again"
		}
		return fail(fmt.Errorf("interrupted %s: nothing was committed: %s is as it was%s%s; %s", at, real.Path(), outputNote(o.output), sent, rerunNote(readDir)))
	}
	if err != nil {
		return fail(fmt.Errorf("%w; %s", err, rerunNote(readDir)))
	}
	// The complete replay replaces the store.
	storeOpen, realOpen = false, false
	if err := store.Close(); err != nil {
		return fail(err)
	}
	if err := real.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(store.Path(), real.Path()); err != nil {
		return fail(err)
	}
	if checkpoint != "" {
		os.Remove(checkpoint) // complete: a next backfill sends everything
	}
	os.RemoveAll(readDir) // and reads everything
	for _, c := range cols {
		fmt.Fprintf(stderr, "backfill: collector %s: %d records read, %d rejected\n", c.Name, res.Records[c.Name], res.Rejected[c.Name])
	}
	fmt.Fprintf(stderr, "backfill: %s to %s, %d steps of %s, %d events, %d samples in %s\n",
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), res.Steps, o.step, res.Events, res.Samples, o.now().Sub(started).Round(time.Millisecond))
	if seam {
		fmt.Fprintf(stderr, "backfill: end state committed to %s: `servq run` with this store continues from it\n", real.Path())
	}
	return 0
}

// backfillReadDir, in the storage directory, keeps what the sources of an
// interrupted backfill handed over (replay.Options.ReadDir).
const backfillReadDir = "backfill-read"

// readKey names what shapes what a backfill reads: the config, the range
// flags as given (--since 90d resolves against now, which moves: its
// re-run resumes with the range the manifest kept), the step (the
// sources read a step before the range) and the collectors. Not the
// sinks, labels or store: they shape only what is played. Nor the chunk
// size: a cursor continues exactly after its chunk, whatever its size.
func readKey(configFile string, o backfillOptions) string {
	cfg, _ := os.ReadFile(configFile)
	only := slices.Clone(o.only)
	slices.Sort(only)
	return keyOf(string(cfg), o.since, o.from, o.to, o.step.String(), strings.Join(slices.Compact(only), "\x00"))
}

// readingState says where an interrupted reading stands, by collector.
func readingState(r *replay.Reading) string {
	var parts []string
	for _, c := range r.Collectors {
		switch {
		case c.Finished:
			parts = append(parts, fmt.Sprintf("%s read (%d records)", c.Name, c.Records))
		case c.Chunks > 0:
			parts = append(parts, fmt.Sprintf("%s continues after its chunk %d (%d records)", c.Name, c.Chunks, c.Records))
		default:
			parts = append(parts, c.Name+" from the start")
		}
	}
	return strings.Join(parts, ", ")
}

// rerunNote says what running the same command again does.
func rerunNote(readDir string) string {
	if r, err := replay.LoadReading(readDir); err == nil && r != nil {
		return fmt.Sprintf("run the same command again to resume: what the sources handed over is kept in %s and not read again (delete it to read everything again)", readDir)
	}
	return "run the same command again to start over"
}

// importCheckpointFile, in the storage directory, says through which time
// an interrupted backfill's samples were acknowledged by VictoriaMetrics,
// which would keep a second copy of each sample sent again.
const importCheckpointFile = "backfill-import.json"

type importCheckpoint struct {
	path, key string
	start     time.Time // the first sample of this backfill
}

type importCheckpointJSON struct {
	Key     string    `json:"key"`
	Start   time.Time `json:"start"`
	Through time.Time `json:"sent_through"`
}

// importKey names what makes the samples the same: the config, the
// target (with its extra labels), the added labels, the step and the
// collectors. A hash: the URL may carry credentials.
func importKey(configFile, target string, labels map[string]string, step time.Duration, collectors []string) string {
	cfg, _ := os.ReadFile(configFile)
	ls := make([]string, 0, len(labels))
	for k, v := range labels {
		ls = append(ls, k+"="+v)
	}
	sort.Strings(ls)
	return keyOf(string(cfg), target, strings.Join(ls, "\x00"), step.String(), strings.Join(collectors, "\x00"))
}

// keyOf hashes parts, each with its length (no two lists of parts hash
// alike by moving a boundary).
func keyOf(parts ...string) string {
	h := sha256.New()
	for _, part := range parts {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// load is the time through which samples were sent, when the checkpoint
// is of the same backfill. A backfill reaching further back than the
// interrupted one (a longer --since) sends everything: the earlier part
// was never sent. One starting later (--since 90d run again a day after)
// resumes: a sample's value at its time does not depend on the start.
func (c importCheckpoint) load() (time.Time, bool) {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return time.Time{}, false
	}
	var j importCheckpointJSON
	if json.Unmarshal(b, &j) != nil || j.Key != c.key || j.Through.IsZero() || c.start.Before(j.Start) {
		return time.Time{}, false
	}
	return j.Through, true
}

func (c importCheckpoint) save(through time.Time) error {
	b, err := json.Marshal(importCheckpointJSON{Key: c.key, Start: c.start.UTC(), Through: through.UTC()})
	if err != nil {
		return err
	}
	if err := state.WriteFileAtomic(c.path, b); err != nil {
		return fmt.Errorf("import checkpoint: %w", err)
	}
	return nil
}

// backfillStopWait bounds the wait for the replay to stop after a signal
// (a source or a server that ignores cancellation).
var backfillStopWait = 30 * time.Second

// testAfterStep, testImportBatch and testBackfillChunk are zero except in
// binaries built with the servqtest tag (testhook_backfill_servqtest.go):
// the resume tests interrupt a backfill at a known step, after samples
// were sent, or (testAfterChunk) after a known chunk of a small size.
var (
	testAfterStep     func(ctx context.Context, step int)
	testImportBatch   int
	testBackfillChunk int
)

func outputNote(output string) string {
	if output == "" || output == "-" {
		return ""
	}
	return ", no " + output + " was written"
}

// backfillRange is the replayed range; seam is true when it ends now (the
// store then holds the sources' cursors for servq run).
func backfillRange(o backfillOptions, now time.Time) (from, to time.Time, seam bool, err error) {
	to, seam = now, true
	if o.to != "" {
		if to, err = parseWhen(o.to); err != nil {
			return from, to, false, fmt.Errorf("--to: %w", err)
		}
		seam = false
	}
	switch {
	case o.since != "" && o.from != "":
		return from, to, seam, fmt.Errorf("give --since or --from, not both")
	case o.since != "":
		d, err := model.ParseDuration(o.since)
		if err != nil {
			return from, to, seam, fmt.Errorf("--since: %w", err)
		}
		from = to.Add(-time.Duration(d))
	case o.from != "":
		if from, err = parseWhen(o.from); err != nil {
			return from, to, seam, fmt.Errorf("--from: %w", err)
		}
	default:
		return from, to, seam, fmt.Errorf("give the range: --since 90d, or --from (and --to)")
	}
	if !from.Before(to) {
		return from, to, seam, fmt.Errorf("the range is empty: %s is not before %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if to.After(now) {
		return from, to, seam, fmt.Errorf("--to %s is in the future", to.Format(time.RFC3339))
	}
	return from, to, seam, nil
}

func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither RFC 3339 (2026-09-01T00:00:00Z) nor a date (2026-09-01)", s)
	}
	return t, nil
}

// importSink targets base's /api/v1/import/prometheus with the push
// section's credentials (in headers, never in the URL) and extra labels.
func importSink(ctx context.Context, base string, p *config.Push) (*replay.Import, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--import.url %q is not an http(s) URL", redact.Text(base, 200))
	}
	if !strings.HasSuffix(u.Path, "/api/v1/import/prometheus") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/import/prometheus"
	}
	im := &replay.Import{Ctx: ctx, Headers: http.Header{}}
	if p != nil {
		q := u.Query()
		for k, v := range p.ExtraLabels {
			q.Add("extra_label", k+"="+v)
		}
		u.RawQuery = q.Encode()
		auth, err := p.Authorization()
		if err != nil {
			return nil, err
		}
		if auth != "" {
			im.Headers.Set("Authorization", auth)
		}
	}
	im.URL = u.String()
	return im, nil
}

// writeOpenMetrics writes the file atomically (a promtool run never reads
// half of it); it stops when ctx ends.
func writeOpenMetrics(ctx context.Context, path string, om *replay.OpenMetrics) error {
	if path == "-" {
		_, err := om.WriteTo(ctxWriter{ctx, os.Stdout})
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".servq-backfill-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := om.WriteTo(ctxWriter{ctx, f}); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

// rateETA is ", N samples/s, ETA D" from the elapsed wall time and the
// share of the simulated range done; empty before anything can be told.
func rateETA(elapsed time.Duration, samples int, done, total time.Duration) string {
	if elapsed <= 0 || done <= 0 || total <= 0 {
		return ""
	}
	left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
	return fmt.Sprintf(", %.0f samples/s, ETA %s", float64(samples)/elapsed.Seconds(), left.Round(time.Second))
}

// ctxWriter fails its writes once ctx ends: an interrupted backfill does
// not finish writing a large file first.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
