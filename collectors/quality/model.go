// Package quality is servq's quality model: it turns normalized records into
// the metric catalog exactly once. A ticket reported ten times is counted
// solved once; a run's counter increments, dedup keys and cursor are
// committed in one transaction, so a restart resumes from the committed
// values with nothing lost and nothing doubled.
package quality

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
	"github.com/servq/servq/slo/calendar"
)

// Model owns the committed metric values of all collectors.
type Model struct {
	store  *state.Store
	log    *slog.Logger
	cat    *catalog
	byName map[string]*family

	csatMin      float64
	csatMax      float64 // top of the CSAT scale: a ticket's "good"
	shortAbandon time.Duration
	retention    time.Duration
	labelLimit   int
	calendar     *calendar.Calendar // for _business_seconds; nil = none
	tslos        []ticketSLO        // ticket SLOs counted on deadline
	seriesDelay  time.Duration      // a new counter or histogram shows 0 this long
	waits        map[string]time.Duration
	// inputs are the SLO inputs counted (sloinputs.go); inputsOf, the
	// inputs that read a family; inputKeys, their series keys without
	// the collector, so that those of a changed SLO are not loaded.
	inputs    []sloInput
	inputsOf  map[*family][]int
	inputKeys map[string]bool

	// Clock is the scrape clock that decides when a new series' value
	// becomes visible (time.Now; tests replace it). It is not the batch
	// clock: a demo or a replay may run on simulated time while Prometheus
	// scrapes in real time.
	Clock func() time.Time

	// BeforeCommit, when set, runs inside every commit's transaction just
	// before it is committed, with the commit's context. Tests use it to
	// hold a commit open (a slow disk, a huge batch) and stop servq then.
	BeforeCommit func(ctx context.Context, collector string)

	mu   sync.RWMutex // guards family series maps and cols
	cols map[string]*colState

	// cacheMu serializes scrapes filling the families' encoded chunks
	// (see Exposition); taken before mu.
	cacheMu sync.Mutex
}

// colState is per-collector bookkeeping kept in memory.
type colState struct {
	commit   sync.Mutex                 // one commit at a time per collector
	admitted map[string]map[string]bool // label -> admitted values (label caps)
	newest   time.Time                  // newest record time seen (collector lag)
	// holdUntil: the collector's commits are served from then on (a new
	// series was born; see run.publish). Guarded by Model.mu.
	holdUntil time.Time
	loaded    bool // committed state read from the store
	// ids: the id index of recently numbered tickets (guarded by commit).
	ids *recentIDs
	// inputMatch: the SLO inputs that sum each series (guarded by
	// commit; see inputsFor).
	inputMatch map[*family]map[string][]int
}

// New builds the model for cfg and loads every committed series from store.
func New(cfg *config.Config, store *state.Store, log *slog.Logger) (*Model, error) {
	if log == nil {
		log = slog.Default()
	}
	m := &Model{
		store: store, log: log, cat: newCatalog(cfg), byName: map[string]*family{},
		csatMin: cfg.Model.CSATSatisfiedMin, csatMax: cfg.Model.CSATScaleMax, shortAbandon: cfg.Model.ShortAbandon.D(),
		retention: cfg.Global.Retention.D(), labelLimit: cfg.Global.LabelLimit,
		seriesDelay: cfg.Global.SeriesDelay(), waits: map[string]time.Duration{},
		Clock: time.Now, cols: map[string]*colState{},
	}
	for _, c := range cfg.Collectors {
		m.waits[c.Name] = c.WatermarkWait.D()
	}
	for _, f := range m.cat.all {
		m.byName[f.name] = f
	}
	if name := cfg.Model.BusinessHours; name != "" {
		for _, b := range cfg.BusinessHours {
			if b.Name == name {
				c, err := calendar.New(b.Name, b.TimeZone, b.Weekly, b.Holidays)
				if err != nil {
					return nil, err
				}
				m.calendar = c
			}
		}
	}
	var err error
	if m.tslos, err = ticketSLOs(cfg); err != nil {
		return nil, err
	}
	if m.inputs, err = newSLOInputs(cfg, m.byName); err != nil {
		return nil, err
	}
	m.inputsOf, m.inputKeys = map[*family][]int{}, map[string]bool{}
	for i, in := range m.inputs {
		m.inputsOf[in.fam] = append(m.inputsOf[in.fam], i)
		m.inputKeys[seriesKey(in.labels[:])] = true
	}
	names, err := store.Collectors()
	if err != nil {
		return nil, err
	}
	// Only the configured collectors are served: a collector removed from
	// the config keeps its state (it counts on where it stopped if it comes
	// back) but its series leave /metrics.
	configured := map[string]bool{}
	for _, c := range cfg.Collectors {
		configured[c.Name] = true
	}
	for _, name := range names {
		if !configured[name] {
			continue
		}
		if err := m.load(name); err != nil {
			return nil, fmt.Errorf("loading state of collector %s: %w", name, err)
		}
	}
	return m, nil
}

var newestKey = []byte("newest")

// load reads a collector's committed state. It runs at start for the
// configured collectors, and at the first commit of any other (scrapes
// may run meanwhile, hence the lock).
func (m *Model) load(collector string) error {
	if err := m.migrateTickets(collector); err != nil {
		return err
	}
	cs := m.col(collector)
	m.mu.Lock()
	defer m.mu.Unlock()
	cs.loaded = true
	return m.store.View(collector, func(tx *state.Tx) error {
		if v := tx.Get(state.SpaceMeta, newestKey); len(v) > 0 {
			cs.newest, _ = time.Parse(time.RFC3339Nano, string(v))
		}
		err := tx.ForEach(state.SpaceLabels, func(k, _ []byte) error {
			label, value, _ := strings.Cut(string(k), sep)
			if cs.admitted[label] == nil {
				cs.admitted[label] = map[string]bool{}
			}
			cs.admitted[label][value] = true
			return nil
		})
		if err != nil {
			return err
		}
		return tx.ForEach(state.SpaceSeries, func(k, v []byte) error {
			name, rest, _ := strings.Cut(string(k), sep)
			f := m.byName[name]
			if f == nil {
				return nil // a metric this version no longer exports
			}
			labels := append([]string{collector}, strings.Split(rest, sep)...)
			if rest == "" {
				labels = []string{collector}
			}
			if len(labels) != len(f.labels) {
				return nil // label set changed between versions: start afresh
			}
			if f == m.cat.sloInput && !m.inputKeys[rest] {
				// An SLO removed or changed (another definition):
				// its sums are no longer served.
				return nil
			}
			s, err := decodeSeries(v, f.kind, f.buckets, labels)
			if err == errBucketsChanged {
				m.log.Warn("histogram buckets changed in the config; series restarts from zero", "metric", name, "collector", collector)
				return nil
			}
			if err != nil {
				return fmt.Errorf("series %s: %w", name, err)
			}
			f.series[seriesKey(labels)] = s
			f.invalidate(collector)
			return nil
		})
	})
}

func (m *Model) col(name string) *colState {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.cols[name]
	if cs == nil {
		cs = &colState{admitted: map[string]map[string]bool{}, ids: &recentIDs{}, inputMatch: map[*family]map[string][]int{}}
		m.cols[name] = cs
	}
	return cs
}

// Cursor returns the committed cursor of a collector.
func (m *Model) Cursor(collector string) ([]byte, error) {
	var c []byte
	err := m.store.View(collector, func(tx *state.Tx) error {
		c = tx.Cursor()
		return nil
	})
	return c, err
}

// Newest returns the time of the newest record the collector delivered.
func (m *Model) Newest(collector string) time.Time {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if cs := m.cols[collector]; cs != nil {
		return cs.newest
	}
	return time.Time{}
}

// Result counts what a commit did with a batch.
type Result struct {
	Accepted  map[string]int // by record kind: ticket, call, survey, snapshot
	Duplicate map[string]int
	moreDue   bool // deadlines were left due (expireBudget)
	// runProbes: lookups of an index run's filter (tests: a new ticket
	// should need none).
	runProbes int
}

// run is one commit in progress: the deltas it accumulates and the
// transaction they will be written in.
type run struct {
	m       *Model
	cs      *colState
	name    string
	tx      *state.Tx
	now     time.Time
	deltas  map[*family]map[string]*delta
	newLbls []string // label+sep+value admitted in this run
	admit   map[string]map[string]bool
	res     Result
	keyBuf  []byte
	// openQueues: queues whose open-ticket index changed in this run.
	openQueues map[string]bool
	moreDue    bool // expireDeadlines left deadlines due for the next transaction
	// writes: this run's writes to ticket states and their indexes, by
	// space and key, applied in key order (flushWrites).
	writes map[string]map[string]write
	// seqs: the state keys of the tickets this run looked up or numbered;
	// seq: the next ticket number (0: not read yet), seqUsed: a ticket
	// was numbered (see tickets.go).
	seqs    map[string][]byte
	seq     uint64
	seqUsed bool
	// fresh: tickets numbered in this run; forgotten: tickets pruned;
	// merge: the recent ids' merge step (see recentIDs).
	fresh     []idSeq
	forgotten []forgotten
	merge     *mergePlan
	// judgeBy: deadlines up to here are judged passed: the collector's
	// watermark, or the run's clock minus the watermark wait when the
	// watermark lags further behind (a stalled source).
	judgeBy, judgeWatermark time.Time
}

// Commit applies a batch of one collector and stores cursor with it, all in
// one transaction. Only after the transaction is durable do the in-memory
// values (what /metrics serves) change. On error nothing changes.
func (m *Model) Commit(collector string, b *collectors.Batch, cursor []byte) (Result, error) {
	return m.CommitContext(context.Background(), collector, b, cursor)
}

// ErrCommitCancelled is wrapped by the error of a commit whose context
// ended before its transaction was committed: the transaction was rolled
// back, the store and the served values are as before the run.
var ErrCommitCancelled = errors.New("commit cancelled before it was written; the store is unchanged and the next run collects this data again")

// commitCheckEvery is how many records a commit applies between two looks
// at its context: often enough to stop within milliseconds, rarely enough
// to cost nothing.
const commitCheckEvery = 256

// CommitContext is Commit bounded by ctx (the run's timeout and servq's
// shutdown): when ctx ends while the batch is being applied, the bbolt
// transaction is rolled back instead of committed and the error wraps
// ErrCommitCancelled and context.Cause(ctx). Only the final write and fsync
// of the transaction, once started, is not interruptible.
//
// Deadlines due by the batch's watermark are judged at most expireBudget
// per transaction: when more are due (the first commit after a large
// first sync), further transactions with the same cursor judge the rest.
// Should ctx end meanwhile, the commit still succeeds (the batch and the
// cursor are committed) and the collector's next commits judge the rest.
func (m *Model) CommitContext(ctx context.Context, collector string, b *collectors.Batch, cursor []byte) (Result, error) {
	res, err := m.commit(ctx, collector, b, cursor, true)
	for err == nil && res.moreDue && ctx.Err() == nil {
		var more Result
		more, err = m.commit(ctx, collector, &collectors.Batch{Now: b.Now, Watermark: b.Watermark}, cursor, true)
		res.moreDue = more.moreDue
	}
	if err != nil && res.Accepted != nil {
		m.log.Warn("judging the deadlines due stopped; the collector's next commits judge the rest", "collector", collector, "err", err)
		err = nil
	}
	return res, err
}

// CommitChunk commits an intermediate chunk of a run (collectors.Batch.Flush)
// like CommitContext, with one difference: it judges no ticket deadline.
//
// The rule: a chunk may only make verdicts that the whole run, committed
// at once, would make too. The run's watermark vouches for what the source
// delivers by the run's end; when a chunk is committed, the rest of the
// run (a ticket's later version with its reply, in a later chunk) is still
// to come. Judging "no reply by the deadline" then, by the run's watermark
// or by the clock minus watermark_wait, would count a breach that the
// whole run, seeing the reply first, would count as met (or only
// provisionally). So a chunk's judgeBy is the zero time: tickets due by
// then are put in the deadline index instead, and expireDeadlines does not
// run; the watermark gauge keeps its value. The run's last commit
// (CommitContext) judges them all with the run's watermark, exactly as a
// single commit would. A run that fails after some chunks leaves the
// verdicts to the next run's last commit. Events with their time known
// (a late reply) are counted in the chunk that brings them: they do not
// depend on the watermark.
func (m *Model) CommitChunk(ctx context.Context, collector string, b *collectors.Batch, cursor []byte) (Result, error) {
	return m.commit(ctx, collector, b, cursor, false)
}

func (m *Model) commit(ctx context.Context, collector string, b *collectors.Batch, cursor []byte, final bool) (Result, error) {
	cancelled := func() error {
		if ctx.Err() == nil {
			return nil
		}
		return fmt.Errorf("%w (%w)", ErrCommitCancelled, context.Cause(ctx))
	}
	if err := cancelled(); err != nil {
		return Result{}, fmt.Errorf("commit of collector %s: %w", collector, err)
	}
	cs := m.col(collector)
	cs.commit.Lock()
	defer cs.commit.Unlock()
	m.mu.RLock()
	loaded := cs.loaded
	m.mu.RUnlock()
	if !loaded {
		if err := m.load(collector); err != nil {
			return Result{}, fmt.Errorf("loading state of collector %s: %w", collector, err)
		}
	}
	r := &run{m: m, cs: cs, name: collector, now: b.Now,
		deltas: map[*family]map[string]*delta{}, admit: map[string]map[string]bool{}, openQueues: map[string]bool{},
		res: Result{Accepted: map[string]int{}, Duplicate: map[string]int{}}}
	if r.now.IsZero() {
		r.now = time.Now()
	}
	// Records out of bounds leave the batch as rejections before anything
	// is counted (the runner counts b.Rejected after the commit).
	screen(b, r.now)
	if final {
		r.judgeWatermark, r.judgeBy = m.judgeBy(collector, r.now, b.Watermark)
	}
	newest := cs.newest
	if record.CheckTime(newest, r.now) != nil {
		// Committed by a version that did not screen times (a garbled
		// far-future record): it would hold the collector's lag at 0
		// for ever. Start again from this batch.
		newest = time.Time{}
	}
	err := m.store.Update(collector, func(tx *state.Tx) error {
		r.tx = tx
		if err := r.syncRecent(); err != nil {
			return err
		}
		for i := range b.Tickets {
			if i%commitCheckEvery == commitCheckEvery-1 {
				if err := cancelled(); err != nil {
					return err
				}
			}
			if err := r.ticket(&b.Tickets[i]); err != nil {
				return err
			}
		}
		if err := cancelled(); err != nil {
			return err
		}
		// The deadline index is read next: the tickets' writes first.
		if err := r.flushWrites(); err != nil {
			return err
		}
		if final {
			if err := r.expireDeadlines(); err != nil {
				return err
			}
		}
		if err := r.calls(b.Calls); err != nil {
			return err
		}
		if err := cancelled(); err != nil {
			return err
		}
		for i := range b.Surveys {
			if i%commitCheckEvery == commitCheckEvery-1 {
				if err := cancelled(); err != nil {
					return err
				}
			}
			if err := r.survey(&b.Surveys[i]); err != nil {
				return err
			}
		}
		for i := range b.Snapshots {
			r.snapshot(&b.Snapshots[i])
		}
		if err := r.flushWrites(); err != nil {
			return err
		}
		if err := r.flushSeq(); err != nil {
			return err
		}
		if err := r.mergeRecent(); err != nil {
			return err
		}
		if err := r.prune(); err != nil {
			return err
		}
		newest = latest(newest, b)
		if !newest.IsZero() {
			if err := tx.Put(state.SpaceMeta, newestKey, []byte(newest.Format(time.RFC3339Nano))); err != nil {
				return err
			}
		}
		r.oldestOpen()
		if final {
			r.set(m.cat.watermark, float64(r.judgeWatermark.UnixMilli())/1e3)
		}
		r.sloInputs()
		if err := r.writeSeries(); err != nil {
			return err
		}
		for _, k := range r.newLbls {
			if err := tx.Put(state.SpaceLabels, []byte(k), nil); err != nil {
				return err
			}
		}
		if err := tx.SetCursor(cursor); err != nil {
			return err
		}
		if m.BeforeCommit != nil {
			m.BeforeCommit(ctx, collector)
		}
		// The last look: returning an error here rolls the whole
		// transaction back, cursor included.
		return cancelled()
	})
	if err != nil {
		return Result{}, fmt.Errorf("commit of collector %s: %w", collector, err)
	}
	// What the commit touched of the store need not stay counted as
	// servq's memory (see state.Store.ReleaseMapped).
	if err := m.store.ReleaseMapped(); err != nil {
		m.log.Debug("releasing the store's mapped pages", "err", err)
	}
	r.publishRecent()
	r.publish()
	m.mu.Lock()
	cs.newest = newest
	for label, vals := range r.admit {
		if cs.admitted[label] == nil {
			cs.admitted[label] = map[string]bool{}
		}
		for v := range vals {
			cs.admitted[label][v] = true
		}
	}
	m.mu.Unlock()
	r.res.moreDue = r.moreDue
	return r.res, nil
}

// judgeBy is up to when a commit of the collector judges ticket deadlines:
// its completeness watermark (the source's own, "complete up to the run's
// clock" when it gives none; never moving backwards), or the clock minus
// the collector's watermark_wait when the watermark lags more than that.
func (m *Model) judgeBy(collector string, now, watermark time.Time) (wm, by time.Time) {
	if watermark.IsZero() || watermark.After(now) {
		// A source never vouches for the future: its clock may be ahead.
		watermark = now
	}
	m.mu.RLock()
	if s := m.cat.watermark.series[collector]; s != nil {
		if prev := time.UnixMilli(int64(math.Round(s.value * 1e3))); prev.After(watermark) {
			watermark = prev
		}
	}
	m.mu.RUnlock()
	wait, ok := m.waits[collector]
	if !ok {
		wait = config.DefaultWatermarkWait.D()
	}
	by = watermark
	if bound := now.Add(-wait); bound.After(by) {
		by = bound
	}
	return watermark, by
}

// latest is the newest event time in the batch, for collector lag.
func latest(t time.Time, b *collectors.Batch) time.Time {
	up := func(x time.Time) {
		if x.After(t) {
			t = x
		}
	}
	for i := range b.Tickets {
		tk := &b.Tickets[i]
		up(tk.CreatedAt)
		up(tk.UpdatedAt)
		up(tk.FirstReplyAt)
		up(tk.SolvedAt)
	}
	for i := range b.Calls {
		up(b.Calls[i].EndedAt)
	}
	for i := range b.Surveys {
		up(b.Surveys[i].SubmittedAt)
	}
	for i := range b.Snapshots {
		up(b.Snapshots[i].At)
	}
	return t
}

// maxLabelLen bounds label values from data; longer values are cut.
const maxLabelLen = 128

// labelText makes text from a source a label value: valid UTF-8, any
// configured secret in it redacted (a vendor that echoes a request's
// credentials into a field servq uses as a queue or group name must not
// put them on /metrics), cut to maxLabelLen. Redaction comes before the
// cut, which could otherwise leave a secret's first part.
func labelText(v string) string {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "?")
	}
	v = redact.String(v)
	if len(v) > maxLabelLen {
		v = v[:maxLabelLen]
		for !utf8.ValidString(v) {
			v = v[:len(v)-1]
		}
	}
	return v
}

// known says whether v is admitted for label name (stored or in this run)
// and how many values the store has admitted.
func (r *run) known(name, v string) (bool, int) {
	r.m.mu.RLock()
	known := r.cs.admitted[name]
	ok := known[v]
	n := len(known)
	r.m.mu.RUnlock()
	return ok || r.admit[name][v], n
}

// Overflow is the label value that replaces values past a label's cap.
const Overflow = "other"

// label returns the value to use for a data-derived label, applying the
// per-collector cap: the first LabelLimit distinct values are admitted (and
// remembered across restarts), later ones become "other" and are counted.
func (r *run) label(name, v string) string {
	if v == "" {
		return "unknown"
	}
	// The common case first: a value already admitted is served as it is.
	if ok, _ := r.known(name, v); ok {
		return v
	}
	v = labelText(v)
	ok, n := r.known(name, v)
	if ok {
		return v
	}
	if n+len(r.admit[name]) >= r.m.labelLimit {
		r.add(r.m.cat.labelOverflow, 1, name)
		return Overflow
	}
	if r.admit[name] == nil {
		r.admit[name] = map[string]bool{}
	}
	r.admit[name][v] = true
	r.newLbls = append(r.newLbls, name+sep+v)
	return v
}

func (r *run) delta(f *family, labels []string) *delta {
	// The lookup key is built in a reused buffer: indexing a map with
	// string(bytes) does not allocate, so only a new series costs memory.
	r.keyBuf = append(r.keyBuf[:0], r.name...)
	for _, l := range labels {
		r.keyBuf = append(r.keyBuf, sep...)
		r.keyBuf = append(r.keyBuf, l...)
	}
	byKey := r.deltas[f]
	if byKey == nil {
		byKey = map[string]*delta{}
		r.deltas[f] = byKey
	}
	if d := byKey[string(r.keyBuf)]; d != nil {
		return d
	}
	d := &delta{fam: f, labels: append([]string{r.name}, labels...)}
	byKey[string(r.keyBuf)] = d
	return d
}

// add increments a counter (or adjusts a gauge) by v.
func (r *run) add(f *family, v float64, labels ...string) { r.delta(f, labels).value += v }

// touch makes a series exist (at 0 when new) without changing its value.
func (r *run) touch(f *family, labels ...string) { r.delta(f, labels) }

// set sets a gauge.
func (r *run) set(f *family, v float64, labels ...string) {
	d := r.delta(f, labels)
	d.value, d.set, d.drop = v, true, false
}

// drop removes a gauge series (a reading that no longer exists).
func (r *run) drop(f *family, labels ...string) {
	d := r.delta(f, labels)
	d.drop = true
}

// observe adds one observation to a histogram.
func (r *run) observe(f *family, v float64, labels ...string) { r.delta(f, labels).observe(v) }

// current is the committed value of a series as of before this run.
func (r *run) current(f *family, key string) *series {
	r.m.mu.RLock()
	defer r.m.mu.RUnlock()
	return f.series[key]
}

// writeSeries stores the new value of every series this run touched.
func (r *run) writeSeries() error {
	fams := make([]*family, 0, len(r.deltas))
	for f := range r.deltas {
		fams = append(fams, f)
	}
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })
	for _, f := range fams {
		for key, d := range r.deltas[f] {
			dbKey := f.name + sep + strings.TrimPrefix(strings.TrimPrefix(key, r.name), sep)
			if d.drop {
				if err := r.tx.Delete(state.SpaceSeries, []byte(dbKey)); err != nil {
					return err
				}
				continue
			}
			s := d.apply(r.current(f, key))
			if err := r.tx.Put(state.SpaceSeries, []byte(dbKey), s.encode(f.kind, f.buckets)); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish makes the committed values visible to /metrics.
//
// rate() and increase() cannot see the increment that creates a series, so
// a counter or histogram series this commit creates is served at zero
// first, and the commit's values are held back for the new-series delay:
// every scraper records the zero, then the whole commit at once. Commits
// of the collector that follow during the hold are held until it ends
// too, so a collector's increments always show in the order they were
// committed (the good tickets of a batch never trail its bad ones).
// Gauges are read as they are and never held.
func (r *run) publish() {
	now := r.m.Clock()
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if r.m.seriesDelay > 0 && r.bornSeries() {
		if until := now.Add(r.m.seriesDelay); until.After(r.cs.holdUntil) {
			r.cs.holdUntil = until
		}
	}
	held := r.cs.holdUntil.After(now)
	for f, byKey := range r.deltas {
		f.invalidate(r.name)
		for key, d := range byKey {
			if d.drop {
				delete(f.series, key)
				continue
			}
			old := f.series[key]
			s := d.apply(old)
			if held && f.kind != kindGauge {
				if old == nil {
					// Born: zero, with the family's buckets.
					s.holds = []hold{{until: r.cs.holdUntil, shown: &series{labels: s.labels}}}
				} else {
					// Until the hold ends, what was committed before
					// this run (holds of earlier runs end no later).
					shown := *old
					shown.holds = nil
					s.holds = old.holdUntil(now, r.cs.holdUntil, &shown)
				}
			}
			f.series[key] = s
		}
	}
}

// bornSeries reports whether the run creates a counter or histogram
// series. Called with m.mu held.
func (r *run) bornSeries() bool {
	for f, byKey := range r.deltas {
		if f.kind == kindGauge {
			continue
		}
		for key, d := range byKey {
			if !d.drop && f.series[key] == nil {
				return true
			}
		}
	}
	return false
}

// Inherit carries the publication holds of a model that this one replaces
// (a reload rebuilds the model from the store): what was being served at
// zero, or held back, stays so until its own time.
func (m *Model) Inherit(old *Model) {
	if old == nil {
		return
	}
	old.mu.RLock()
	defer old.mu.RUnlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.Clock()
	for name, ocs := range old.cols {
		if !ocs.holdUntil.After(now) {
			continue
		}
		if ncs := m.cols[name]; ncs != nil {
			ncs.holdUntil = ocs.holdUntil
		}
	}
	for _, of := range old.cat.all {
		nf := m.byName[of.name]
		if nf == nil || nf.kind != of.kind {
			continue
		}
		for key, os := range of.series {
			if ns := nf.series[key]; ns != nil && len(os.holds) > 0 {
				ns.holds = os.pending(now)
				nf.invalidate(ns.labels[0])
			}
		}
	}
}

// Describe implements prometheus.Collector. The model is an unchecked
// collector: its label values come from data.
func (m *Model) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range m.cat.all {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector, serving the committed values
// as published (see run.publish).
func (m *Model) Collect(ch chan<- prometheus.Metric) {
	now := m.Clock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, f := range m.cat.all {
		for _, s := range f.series {
			ch <- f.metric(s.servedAt(now))
		}
	}
}

// Backoff is when the collector may next ask its vendor (a remembered
// Retry-After), zero when no wait is pending.
func (m *Model) Backoff(collector string) (time.Time, error) {
	var at time.Time
	err := m.store.View(collector, func(tx *state.Tx) error {
		at = tx.BackoffUntil()
		return nil
	})
	return at, err
}

// SetBackoff stores when the collector may next ask its vendor; the zero
// time forgets it. It is written on its own: the run that learned it
// commits nothing else.
func (m *Model) SetBackoff(collector string, until time.Time) error {
	return m.store.Update(collector, func(tx *state.Tx) error { return tx.SetBackoffUntil(until) })
}
