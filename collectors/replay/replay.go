// Package replay runs history through the quality model on an event-time
// clock (`servq backfill`): every record is applied at its own time, and
// the model's series are sampled at a fixed step into timestamped samples,
// so that Prometheus or VictoriaMetrics hold the past as if servq had been
// scraped all along.
//
// How a record becomes events. A ticket record is the ticket's state when
// it was exported: it carries its created, first-reply and solved times.
// Applied as one record at its export time, it would count all three at
// once. So each ticket record is split into the states the ticket had at
// each of those times (created: no reply, not solved; replied: the reply,
// not solved; solved) plus the record itself at its updated time, and all
// of them, from all collectors, are applied in time order. Calls count at
// their end, survey responses at their submission, snapshots at their
// reading. The quality model is unchanged: it dedups as it does live
// (several versions of a ticket, a record repeated, out of order in the
// file: each event still counts once, at its own time).
//
// Deadlines are judged at event time: the model commits the events of each
// step with its clock and the collector's watermark at the step's end
// (bounded by the source's own watermark, e.g. an export file's write
// time), so a ticket SLO breach is counted in the step its deadline passed
// unanswered, with the business-hours calendar the model is configured
// with. A step with no record commits only when a deadline falls in it.
//
// Samples are the model's own exposition (quality.Model.GatherAll) at each
// step: same names, labels and values as /metrics at that time. A counter
// or histogram series born after the first step is also written at 0 one
// step before, as the live model serves a new series at 0 first, so that
// increase() sees its first increment.
//
// Memory does not grow with the history: sources hand their records over
// in chunks, the events wait for their time in sorted run files on disk,
// and the steps read them back merged (spill.go); the order is exactly
// that of sorting all events by time in memory.
package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
)

// maxRuns bounds the runs of one source (a source that returns only
// snapshots, readings of now, is run once).
const maxRuns = 100000

// maxBackoffs bounds the Retry-After waits of one source in a replay.
const maxBackoffs = 20

// Collector is one configured collector to replay.
type Collector struct {
	Name   string
	Source collectors.Source
}

// Sink receives the samples of one step: every family as served at at,
// each metric carrying its timestamp.
type Sink interface {
	Samples(at time.Time, fams []*dto.MetricFamily) error
}

// Options bound a replay.
type Options struct {
	// From is the first sample (rounded down to Step); records before it
	// are applied at From, so the first samples hold everything earlier.
	From time.Time
	// To is the last sample time; records after it are left out.
	To time.Time
	// Step is the sample interval (the scrape interval to imitate).
	Step time.Duration
	// CommitCursors: the last commit of each collector stores the cursor
	// its source returned, so `servq run` continues after the replayed
	// records (To is then the source's read time, now).
	CommitCursors bool
	// Labels are added to every sample: the job and instance labels the
	// scrape of servq adds (`job="servq", instance="host:9817"`), so that
	// the backfilled series are the very series live scrapes continue.
	Labels map[string]string
	// Sleep waits out a vendor's Retry-After (nil: a timer; tests
	// replace it).
	Sleep func(ctx context.Context, d time.Duration) error
	// Observe, when set, is called after each step's samples with every
	// family at that step (the SLO status tracker seeds its samples).
	Observe func(at time.Time, fams []*dto.MetricFamily) error
	// Progress, when set, is called after each step.
	Progress func(Progress)
	// SpillDir is where the events wait for their time, in run files
	// of a temporary directory removed at the end ("": the system's
	// temporary directory). See spill.go.
	SpillDir string
	// ChunkSize is the records a source hands over at once (0:
	// collectors.DefaultChunkSize).
	ChunkSize int
	// ReadDir, when set, keeps the events read (the spill's run files
	// and a manifest) in this directory instead, so that a replay
	// interrupted before it ends reads again only what it had not read
	// (resume.go). A reading kept there by a replay with another
	// ReadKey, From, To or collectors is discarded first. Run leaves the
	// directory in place: the caller removes it once it has what it
	// needs from the replay.
	ReadDir string
	// ReadKey identifies what is read: everything besides From, To and
	// the collectors' names that shapes it (the config, the step).
	ReadKey string
	// ReadProgress, when set, is called after each chunk a source
	// handed over is spilled (with ReadDir: durably).
	ReadProgress func(ReadProgress)

	spillEvents, runFanout int          // tests: 0 for the defaults
	beforeManifest         func() error // tests: a crash between a run file and the manifest
}

// ReadProgress is where the reading of one collector stands.
type ReadProgress struct {
	Collector string
	Chunks    int  // chunks spilled, counting those of an interrupted replay
	Records   int  // records read so far, idem
	Finished  bool // the source has nothing more
}

// Progress is where a replay stands.
type Progress struct {
	At      time.Time // simulated time reached
	Events  int       // events applied so far
	Total   int       // events in the replay
	Samples int       // series samples written so far
}

// Result sums up a replay.
type Result struct {
	Records  map[string]int // records read, by collector
	Rejected map[string]int // records a source could not read, by collector
	Events   int
	Steps    int
	Samples  int
}

type source struct {
	name      string
	cursor    []byte
	watermark time.Time
}

// Run replays cols through m and writes the samples to sink. m must be
// built with no new-series delay (its clock is set to the simulated time;
// births are written at 0 by the replay itself).
func Run(ctx context.Context, m *quality.Model, cols []Collector, sink Sink, o Options) (Result, error) {
	return run(ctx, m, cols, sink, o, readSpilled)
}

// reader reads every collector's history into events in time order.
type reader func(ctx context.Context, cols []Collector, o Options, start time.Time, sleep func(context.Context, time.Duration) error) (eventIter, []source, Result, func(), error)

func run(ctx context.Context, m *quality.Model, cols []Collector, sink Sink, o Options, read reader) (Result, error) {
	sleep := o.Sleep
	if sleep == nil {
		sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
	}
	if o.Step <= 0 {
		return Result{}, fmt.Errorf("replay: step must be positive, got %s", o.Step)
	}
	start := o.From.Truncate(o.Step)
	if o.To.Before(start) {
		return Result{}, fmt.Errorf("replay: end %s is before start %s", o.To.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	evs, srcs, res, done, err := read(ctx, cols, o, start, sleep)
	if done != nil {
		defer done()
	}
	if err != nil {
		return res, err
	}
	return play(ctx, m, cols, srcs, evs, sink, o, start, res)
}

// readSpilled reads the sources chunk by chunk into a spill, kept in
// o.ReadDir when it is set (resume.go).
func readSpilled(ctx context.Context, cols []Collector, o Options, start time.Time, sleep func(context.Context, time.Duration) error) (eventIter, []source, Result, func(), error) {
	res := Result{Records: map[string]int{}, Rejected: map[string]int{}}
	var k *kept
	var sp *spill
	if o.ReadDir != "" {
		var err error
		if k, sp, err = openKept(o, cols, o.spillEvents, o.runFanout); err != nil {
			return nil, nil, res, nil, err
		}
	} else {
		sp = newSpill(o.SpillDir, o.spillEvents, o.runFanout)
	}
	done := func() { sp.close() }
	srcs := make([]source, len(cols))
	for i, c := range cols {
		var st CollectorReading // where an interrupted reading stopped
		if k != nil {
			st = k.r.Collectors[i]
		}
		st.Name = c.Name
		res.Records[c.Name], res.Rejected[c.Name] = st.Records, st.Rejected
		if st.Finished {
			srcs[i] = source{name: c.Name, cursor: st.Cursor, watermark: st.Watermark}
			continue
		}
		// spilled makes a chunk durable with the cursor after it (with
		// a kept reading) and reports it.
		spilled := func(cursor []byte, finished bool, watermark time.Time) error {
			st.Chunks++
			st.Cursor, st.Finished, st.Watermark = cursor, finished, watermark
			st.Records, st.Rejected = res.Records[c.Name], res.Rejected[c.Name]
			if k != nil {
				if err := k.checkpoint(sp, i, st); err != nil {
					return err
				}
			}
			if o.ReadProgress != nil {
				o.ReadProgress(ReadProgress{Collector: c.Name, Chunks: st.Chunks, Records: st.Records, Finished: finished})
			}
			return nil
		}
		// A source may stop a run early (max_read_bytes, a request
		// budget): it is run again from its cursor until it reads nothing
		// new. Its records come in chunks (collectors.Batch.Flush) that
		// go to the spill at once, so a run of any size holds one chunk.
		// An interrupted reading continues with a run from its last
		// chunk's cursor, as after a Retry-After.
		cursor := st.Cursor
		waits := 0
		for run := 0; run < maxRuns; run++ {
			if err := ctx.Err(); err != nil {
				return nil, nil, res, done, err
			}
			b := &collectors.Batch{Now: o.To}
			var read, rejected, snaps int
			from := cursor // where a run cut short by Retry-After resumes
			b.SetChunks(o.ChunkSize, func(ctx context.Context, b *collectors.Batch, chunkCursor []byte) error {
				if err := ctx.Err(); err != nil {
					return err // interrupted: the chunk is read again
				}
				read, rejected, snaps = read+b.Len(), rejected+len(b.Rejected), snaps+len(b.Snapshots)
				res.Records[c.Name] += b.Len()
				res.Rejected[c.Name] += len(b.Rejected)
				from = chunkCursor
				if err := sp.add(i, b, start); err != nil {
					return err
				}
				return spilled(chunkCursor, false, time.Time{})
			})
			next, err := c.Source.Collect(ctx, from, b)
			var backoff *collectors.BackoffError
			if errors.As(err, &backoff) && waits < maxBackoffs {
				// The vendor asked for a longer wait than a run sits
				// out (Retry-After): wait it, then read on after the
				// last chunk handed over; the failed run's other
				// records are dropped.
				waits++
				if err := sleep(ctx, backoff.Wait); err != nil {
					return nil, nil, res, done, err
				}
				cursor = from
				run--
				continue
			}
			if err != nil {
				return nil, nil, res, done, fmt.Errorf("collector %s: reading its history: %w", c.Name, err)
			}
			srcs[i] = source{name: c.Name, cursor: next, watermark: b.Watermark}
			read, rejected, snaps = read+b.Len(), rejected+len(b.Rejected), snaps+len(b.Snapshots)
			res.Records[c.Name] += b.Len()
			res.Rejected[c.Name] += len(b.Rejected)
			if err := sp.add(i, b, start); err != nil {
				return nil, nil, res, done, err
			}
			finished := read-snaps+rejected == 0 || bytes.Equal(next, cursor) || run == maxRuns-1
			if err := spilled(next, finished, b.Watermark); err != nil {
				return nil, nil, res, done, err
			}
			if finished {
				break
			}
			cursor = next
		}
	}
	evs, err := sp.iter()
	if err != nil {
		return nil, nil, res, done, err
	}
	res.Events = sp.total()
	return evs, srcs, res, func() { evs.close(); sp.close() }, nil
}

// play applies the events step by step and writes the samples.
func play(ctx context.Context, m *quality.Model, cols []Collector, srcs []source, evs eventIter, sink Sink, o Options, start time.Time, res Result) (Result, error) {
	extra := make([]*dto.LabelPair, 0, len(o.Labels))
	for k, v := range o.Labels {
		extra = append(extra, &dto.LabelPair{Name: proto.String(k), Value: proto.String(v)})
	}
	clock := start
	m.Clock = func() time.Time { return clock }
	seen := map[string]bool{}
	applied := 0
	var pending *event // the first event not applied yet
	if e, ok, err := evs.next(); err != nil {
		return res, err
	} else if ok {
		pending = &e
	}
	for t := start; !t.After(o.To); t = t.Add(o.Step) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		clock = t
		last := t.Add(o.Step).After(o.To)
		// The events of (t-step, t] (everything up to t at the first
		// step, everything up to To at the last).
		until := t
		if last {
			until = o.To
		}
		batches := make([]*collectors.Batch, len(cols))
		for pending != nil && !pending.at.After(until) {
			e := pending
			b := batches[e.col]
			if b == nil {
				b = &collectors.Batch{}
				batches[e.col] = b
			}
			switch {
			case e.tk != nil:
				b.Tickets = append(b.Tickets, *e.tk)
			case e.cl != nil:
				b.Calls = append(b.Calls, *e.cl)
			case e.sv != nil:
				b.Surveys = append(b.Surveys, *e.sv)
			case e.sn != nil:
				b.Snapshots = append(b.Snapshots, *e.sn)
			}
			applied++
			n, ok, err := evs.next()
			if err != nil {
				return res, err
			}
			pending = nil
			if ok {
				pending = &n
			}
		}
		for i := range cols {
			b := batches[i]
			if b == nil && !last {
				due, ok, err := m.NextDeadline(srcs[i].name)
				if err != nil {
					return res, err
				}
				if !ok || due.After(t) {
					continue
				}
			}
			if b == nil {
				b = &collectors.Batch{}
			}
			b.Now, b.Watermark = until, until
			if wm := srcs[i].watermark; !wm.IsZero() && wm.Before(until) {
				b.Watermark = wm
			}
			var cursor []byte
			if last && o.CommitCursors {
				cursor = srcs[i].cursor
			}
			if _, err := m.CommitContext(ctx, srcs[i].name, b, cursor); err != nil {
				return res, err
			}
		}
		fams, n, err := sample(m, sink, t, o.Step, t.Equal(start), seen, extra)
		if err != nil {
			return res, err
		}
		res.Samples += n
		res.Steps++
		if o.Observe != nil {
			if err := o.Observe(t, fams); err != nil {
				return res, err
			}
		}
		if o.Progress != nil {
			o.Progress(Progress{At: t, Events: applied, Total: res.Events, Samples: res.Samples})
		}
	}
	return res, nil
}

// sample writes the model's series at t, preceded at t-step by a zero
// sample of every counter or histogram series born since the last step.
func sample(m *quality.Model, sink Sink, t time.Time, step time.Duration, first bool, seen map[string]bool, extra []*dto.LabelPair) ([]*dto.MetricFamily, int, error) {
	fams := m.GatherAll()
	if len(extra) > 0 {
		for _, f := range fams {
			for _, mt := range f.Metric {
				for _, l := range mt.Label {
					for _, e := range extra {
						if l.GetName() == e.GetName() {
							return nil, 0, fmt.Errorf("replay: label %s is already a label of %s", e.GetName(), f.GetName())
						}
					}
				}
				mt.Label = append(mt.Label, extra...)
				sort.Slice(mt.Label, func(i, j int) bool { return mt.Label[i].GetName() < mt.Label[j].GetName() })
			}
		}
	}
	var births []*dto.MetricFamily
	n := 0
	ts := proto.Int64(t.UnixMilli())
	for _, f := range fams {
		var born *dto.MetricFamily
		for _, mt := range f.Metric {
			mt.TimestampMs = ts
			n++
			k := seriesKey(f.GetName(), mt)
			if seen[k] {
				continue
			}
			seen[k] = true
			if first || f.GetType() == dto.MetricType_GAUGE {
				continue
			}
			if born == nil {
				born = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type}
				births = append(births, born)
			}
			born.Metric = append(born.Metric, zero(mt, t.Add(-step)))
		}
	}
	if len(births) > 0 {
		if err := sink.Samples(t.Add(-step), births); err != nil {
			return nil, 0, err
		}
	}
	return fams, n, sink.Samples(t, fams)
}

func seriesKey(name string, mt *dto.Metric) string {
	var b strings.Builder
	b.WriteString(name)
	for _, l := range mt.Label {
		b.WriteByte(0)
		b.WriteString(l.GetName())
		b.WriteByte(0)
		b.WriteString(l.GetValue())
	}
	return b.String()
}

// zero is mt with every value at 0 (a counter, or a histogram with its
// buckets), at the given time.
func zero(mt *dto.Metric, at time.Time) *dto.Metric {
	z := &dto.Metric{Label: mt.Label, TimestampMs: proto.Int64(at.UnixMilli())}
	switch {
	case mt.Counter != nil:
		z.Counter = &dto.Counter{Value: proto.Float64(0)}
	case mt.Histogram != nil:
		h := &dto.Histogram{SampleCount: proto.Uint64(0), SampleSum: proto.Float64(0)}
		for _, b := range mt.Histogram.Bucket {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: proto.Uint64(0)})
		}
		z.Histogram = h
	case mt.Untyped != nil:
		z.Untyped = &dto.Untyped{Value: proto.Float64(0)}
	}
	return z
}

// TicketStates splits a ticket record into the states the ticket had at
// each of its event times, in time order, each with UpdatedAt set to its
// time; the last is the record itself at its own time (its updated time,
// else its latest event).
//
// What is known only as of the record's time stays there: reopens (except
// on the solved state, which a reopen preceded), satisfaction, complaint,
// source-reported SLA breaches and deletion. A deleted ticket is not split
// (the model counts a ticket first seen deleted nowhere), nor is a record
// with no created time.
func TicketStates(t *record.Ticket) []*record.Ticket {
	at := t.UpdatedAt
	for _, x := range []time.Time{t.CreatedAt, t.FirstReplyAt, t.SolvedAt} {
		if at.IsZero() || x.After(at) {
			at = x
		}
	}
	full := *t
	full.UpdatedAt = at
	if t.Deleted || t.CreatedAt.IsZero() {
		return []*record.Ticket{&full}
	}
	solved := t.InSolvedState()
	var out []*record.Ticket
	prefix := func(when time.Time) {
		if when.IsZero() || !when.Before(at) || when.Before(t.CreatedAt) {
			return
		}
		p := *t
		p.UpdatedAt = when
		p.Satisfaction, p.Complaint, p.SLABreaches = "", false, nil
		if p.FirstReplyAt.After(when) {
			p.FirstReplyAt, p.FirstReplyBusiness = time.Time{}, 0
		}
		if solved && !p.SolvedAt.After(when) {
			out = append(out, &p) // the solved state: reopens came before
			return
		}
		p.Reopens = 0
		if p.SolvedAt.After(when) {
			p.SolvedAt, p.ResolutionBusiness = time.Time{}, 0
			if solved {
				p.Status = "open"
			}
		}
		out = append(out, &p)
	}
	prefix(t.CreatedAt)
	if t.FirstReplyAt.After(t.CreatedAt) {
		prefix(t.FirstReplyAt)
	}
	if solved && t.SolvedAt.After(t.CreatedAt) && (t.FirstReplyAt.IsZero() || !t.SolvedAt.Equal(t.FirstReplyAt)) {
		prefix(t.SolvedAt)
	}
	return append(out, &full)
}
