package replay

import (
	"bufio"
	"container/heap"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// Bounded memory. A replay must apply every event in time order, but a
// source hands over its records in its own order (an export appends
// versions of old tickets, a ticket's reply comes long after its
// creation). Instead of holding every event to sort them, the events are
// gathered in a buffer of spillEvents; a full buffer is sorted by time and
// written to a run file in a temporary directory, and the step loop reads
// the runs back merged by time. Memory is one buffer and one decoded event
// per run, whatever the number of records.
//
// The order is exactly that of a stable sort of all events by time: every
// event gets a sequence number as it arrives, a run is sorted stably, and
// the merge takes the smallest (time, sequence) of the runs.
const (
	// spillEvents is the buffer: a chunk of 10,000 ticket records makes
	// up to 40,000 events.
	spillEvents = 50000
	// runFanout bounds the run files: when as many runs of one level are
	// written, they are merged into one run of the next level (a history
	// of millions of records writes hundreds of runs). Each event is thus
	// rewritten once per level (log16 of the runs), and at most
	// runFanout-1 runs per level are open when the steps read them.
	runFanout = 16
)

// event is one record applied at one time; seq is its arrival order.
type event struct {
	at  time.Time
	seq uint64
	col int
	tk  *record.Ticket
	cl  *record.Call
	sv  *record.SurveyResponse
	sn  *record.Snapshot
}

func (e *event) before(o *event) bool {
	if !e.at.Equal(o.at) {
		return e.at.Before(o.at)
	}
	return e.seq < o.seq
}

// spill gathers events and hands them back in order.
type spill struct {
	dir    string // "" until the first run is written
	parent string
	limit  int // events in memory before a run is written
	fanout int
	buf    []event
	runs   []runFile
	seq    uint64
	n      int // files named so far
	// kept: the runs outlive the replay (resume.go). They are fsynced,
	// the directory is not removed, and a compaction's inputs wait in
	// obsolete until a manifest no longer names them.
	kept     bool
	obsolete []string
}

// runFile is a run file; level 0 is one buffer, level k+1 merges fanout runs
// of level k.
type runFile struct {
	path  string
	level int
}

func newSpill(parent string, limit, fanout int) *spill {
	if limit <= 0 {
		limit = spillEvents
	}
	if fanout < 2 {
		fanout = runFanout
	}
	return &spill{parent: parent, limit: limit, fanout: fanout}
}

// add turns a collector's records into events. Records with no time at
// all are applied at start. The records are copied: the batch is reused.
func (s *spill) add(col int, b *collectors.Batch, start time.Time) error {
	add := func(at time.Time, e event) error {
		if at.IsZero() || at.Before(start) {
			at = start
		}
		e.at, e.col, e.seq = at, col, s.seq
		s.seq++
		s.buf = append(s.buf, e)
		if len(s.buf) >= s.limit {
			return s.writeRun()
		}
		return nil
	}
	for i := range b.Tickets {
		for _, st := range TicketStates(&b.Tickets[i]) {
			if err := add(st.UpdatedAt, event{tk: st}); err != nil {
				return err
			}
		}
	}
	for i := range b.Calls {
		c := b.Calls[i]
		at := c.EndedAt
		if at.IsZero() {
			at = c.EnqueuedAt
		}
		if err := add(at, event{cl: &c}); err != nil {
			return err
		}
	}
	for i := range b.Surveys {
		sv := b.Surveys[i]
		if err := add(sv.SubmittedAt, event{sv: &sv}); err != nil {
			return err
		}
	}
	for i := range b.Snapshots {
		sn := b.Snapshots[i]
		if err := add(sn.At, event{sn: &sn}); err != nil {
			return err
		}
	}
	return nil
}

// total is the number of events added.
func (s *spill) total() int { return int(s.seq) }

func (s *spill) sortBuf() {
	slices.SortStableFunc(s.buf, func(a, b event) int {
		return a.at.Compare(b.at)
	})
}

// writeRun writes the buffer, sorted, to a new run file.
func (s *spill) writeRun() error {
	if len(s.buf) == 0 {
		return nil
	}
	s.sortBuf()
	w, err := s.create()
	if err != nil {
		return err
	}
	for i := range s.buf {
		if err := w.write(&s.buf[i]); err != nil {
			w.abort()
			return err
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	clear(s.buf)
	s.buf = s.buf[:0]
	s.runs = append(s.runs, runFile{path: w.path})
	// Runs are appended level by level, highest first: the newest
	// fanout runs of one level are the last ones.
	for n := len(s.runs); n >= s.fanout && s.runs[n-s.fanout].level == s.runs[n-1].level; n = len(s.runs) {
		if err := s.compact(n - s.fanout); err != nil {
			return err
		}
	}
	return nil
}

// compact merges the runs from i on into one of the next level.
func (s *spill) compact(i int) error {
	paths := make([]string, 0, len(s.runs)-i)
	for _, r := range s.runs[i:] {
		paths = append(paths, r.path)
	}
	m, err := openMerge(paths)
	if err != nil {
		return err
	}
	defer m.close()
	w, err := s.create()
	if err != nil {
		return err
	}
	for {
		e, ok, err := m.next()
		if err != nil {
			w.abort()
			return err
		}
		if !ok {
			break
		}
		if err := w.write(&e); err != nil {
			w.abort()
			return err
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	if s.kept {
		s.obsolete = append(s.obsolete, paths...)
	} else {
		for _, p := range paths {
			os.Remove(p)
		}
	}
	s.runs = append(s.runs[:i], runFile{path: w.path, level: s.runs[i].level + 1})
	return nil
}

// iter hands the events back in (time, arrival) order. No event may be
// added afterwards.
func (s *spill) iter() (eventIter, error) {
	if len(s.runs) == 0 {
		s.sortBuf()
		return &sliceIter{evs: s.buf}, nil
	}
	if err := s.writeRun(); err != nil {
		return nil, err
	}
	paths := make([]string, len(s.runs))
	for i, r := range s.runs {
		paths[i] = r.path
	}
	return openMerge(paths)
}

// close removes the run files, unless they are kept.
func (s *spill) close() error {
	if s.dir == "" || s.kept {
		return nil
	}
	return os.RemoveAll(s.dir)
}

type eventIter interface {
	next() (event, bool, error)
	close()
}

type sliceIter struct {
	evs []event
	i   int
}

func (it *sliceIter) next() (event, bool, error) {
	if it.i >= len(it.evs) {
		return event{}, false, nil
	}
	e := it.evs[it.i]
	it.evs[it.i] = event{} // the records can go once applied
	it.i++
	return e, true, nil
}

func (it *sliceIter) close() {}

// diskEvent is an event as written to a run (gob). Gob writes neither nil
// nor empty slices and maps and reads both back as nil, while a record
// may tell them apart (a snapshot's empty Agents map: reported, nobody
// logged in; nil: not reported): Empty marks the empty ones. Kind keeps a
// record whose fields are all zero.
type diskEvent struct {
	At    time.Time
	Seq   uint64
	Col   int
	Kind  uint8 // 1 ticket, 2 call, 3 survey, 4 snapshot
	Empty uint8 // emptyA: Tags, Servqual or Agents; emptyB: SLABreaches, Weights or OpenTickets
	Tk    *record.Ticket
	Cl    *record.Call
	Sv    *record.SurveyResponse
	Sn    *record.Snapshot
}

const (
	emptyA = 1 << iota
	emptyB
)

func empty[T any](s []T) bool             { return s != nil && len(s) == 0 }
func emptyMap[V any](m map[string]V) bool { return m != nil && len(m) == 0 }

func toDisk(e *event) diskEvent {
	d := diskEvent{At: e.at, Seq: e.seq, Col: e.col, Tk: e.tk, Cl: e.cl, Sv: e.sv, Sn: e.sn}
	flag := func(a, b bool) {
		if a {
			d.Empty |= emptyA
		}
		if b {
			d.Empty |= emptyB
		}
	}
	switch {
	case e.tk != nil:
		d.Kind = 1
		flag(empty(e.tk.Tags), empty(e.tk.SLABreaches))
	case e.cl != nil:
		d.Kind = 2
	case e.sv != nil:
		d.Kind = 3
		flag(empty(e.sv.Servqual), emptyMap(e.sv.Weights))
	case e.sn != nil:
		d.Kind = 4
		flag(emptyMap(e.sn.Agents), emptyMap(e.sn.OpenTickets))
	}
	return d
}

func fromDisk(d *diskEvent) (event, error) {
	e := event{at: d.At, seq: d.Seq, col: d.Col}
	a, b := d.Empty&emptyA != 0, d.Empty&emptyB != 0
	switch d.Kind {
	case 1:
		e.tk = d.Tk
		if e.tk == nil {
			e.tk = &record.Ticket{}
		}
		if a {
			e.tk.Tags = []string{}
		}
		if b {
			e.tk.SLABreaches = []string{}
		}
	case 2:
		e.cl = d.Cl
		if e.cl == nil {
			e.cl = &record.Call{}
		}
	case 3:
		e.sv = d.Sv
		if e.sv == nil {
			e.sv = &record.SurveyResponse{}
		}
		if a {
			e.sv.Servqual = []record.ServqualItem{}
		}
		if b {
			e.sv.Weights = map[string]float64{}
		}
	case 4:
		e.sn = d.Sn
		if e.sn == nil {
			e.sn = &record.Snapshot{}
		}
		if a {
			e.sn.Agents = map[string]int{}
		}
		if b {
			e.sn.OpenTickets = map[string]int{}
		}
	default:
		return e, fmt.Errorf("replay: spill: event %d has no record (kind %d)", d.Seq, d.Kind)
	}
	return e, nil
}

type runWriter struct {
	path string
	sync bool // fsync on close (kept runs)
	f    *os.File
	w    *bufio.Writer
	enc  *gob.Encoder
}

func (s *spill) create() (*runWriter, error) {
	if s.dir == "" {
		d, err := os.MkdirTemp(s.parent, "servq-replay-")
		if err != nil {
			return nil, fmt.Errorf("replay: spill directory: %w", err)
		}
		s.dir = d
	}
	s.n++
	p := filepath.Join(s.dir, fmt.Sprintf("run-%06d", s.n))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("replay: spill: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	return &runWriter{path: p, sync: s.kept, f: f, w: w, enc: gob.NewEncoder(w)}, nil
}

func (w *runWriter) write(e *event) error {
	d := toDisk(e)
	if err := w.enc.Encode(&d); err != nil {
		return fmt.Errorf("replay: spill %s: %w", w.path, err)
	}
	return nil
}

func (w *runWriter) close() error {
	err := w.w.Flush()
	if err == nil && w.sync {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(w.path)
		return fmt.Errorf("replay: spill %s: %w", w.path, err)
	}
	return nil
}

func (w *runWriter) abort() {
	w.f.Close()
	os.Remove(w.path)
}

// merge reads runs in (time, arrival) order.
type merge struct {
	h runHeap
}

type runReader struct {
	path string
	f    *os.File
	dec  *gob.Decoder
	head event
}

func (r *runReader) advance() (bool, error) {
	var d diskEvent
	if err := r.dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("replay: spill %s: %w", r.path, err)
	}
	e, err := fromDisk(&d)
	if err != nil {
		return false, fmt.Errorf("%s: %w", r.path, err)
	}
	r.head = e
	return true, nil
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].head.before(&h[j].head) }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

func openMerge(paths []string) (*merge, error) {
	m := &merge{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("replay: spill: %w", err)
		}
		r := &runReader{path: p, f: f, dec: gob.NewDecoder(bufio.NewReaderSize(f, 64<<10))}
		ok, err := r.advance()
		if err != nil {
			f.Close()
			m.close()
			return nil, err
		}
		if !ok {
			f.Close()
			continue
		}
		m.h = append(m.h, r)
	}
	heap.Init(&m.h)
	return m, nil
}

func (m *merge) next() (event, bool, error) {
	if len(m.h) == 0 {
		return event{}, false, nil
	}
	r := m.h[0]
	e := r.head
	ok, err := r.advance()
	if err != nil {
		return event{}, false, err
	}
	if ok {
		heap.Fix(&m.h, 0)
	} else {
		r.f.Close()
		heap.Pop(&m.h)
	}
	return e, true, nil
}

func (m *merge) close() {
	for _, r := range m.h {
		r.f.Close()
	}
	m.h = nil
}
