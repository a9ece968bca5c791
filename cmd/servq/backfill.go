package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
	// (Ctrl-C, a failed source) leaves it as it was.
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
	defer os.RemoveAll(work)
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var im *replay.Import
	if o.importURL != "" {
		if im, err = importSink(ctx, o.importURL, cfg.Push); err != nil {
			return fail(err)
		}
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
	res, err := replay.Run(ctx, m, cols, sinks, replay.Options{From: from, To: to, Step: o.step, CommitCursors: seam, Labels: o.labels, Observe: observe,
		SpillDir: work,
		Progress: func(p replay.Progress) {
			if d := p.At.Truncate(24 * time.Hour); !d.Equal(day) || !p.At.Add(o.step).Before(to) {
				day = d
				fmt.Fprintf(stderr, "backfill: %s reached, %d/%d events, %d samples%s\n", p.At.UTC().Format(time.RFC3339), p.Events, p.Total, p.Samples,
					rateETA(o.now().Sub(started), p.Samples, p.At.Sub(from), to.Sub(from)))
			}
		}})
	if serr := store.SetNoSync(false); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return fail(err)
	}
	if im != nil {
		if err := im.Flush(); err != nil {
			return fail(err)
		}
	}
	if om != nil {
		if err := writeOpenMetrics(o.output, om); err != nil {
			return fail(err)
		}
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
// half of it).
func writeOpenMetrics(path string, om *replay.OpenMetrics) error {
	if path == "-" {
		_, err := om.WriteTo(os.Stdout)
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".servq-backfill-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := om.WriteTo(f); err != nil {
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
