package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// readInMemory is the replay's reading as it was before the spill: every
// run's records held in one batch (no chunks), every event in one slice,
// sorted stably by time. It is the reference the spilled reading must
// equal.
func readInMemory(ctx context.Context, cols []Collector, o Options, start time.Time, sleep func(context.Context, time.Duration) error) (eventIter, []source, Result, func(), error) {
	res := Result{Records: map[string]int{}, Rejected: map[string]int{}}
	var evs []event
	srcs := make([]source, len(cols))
	for i, c := range cols {
		var cursor []byte
		waits := 0
		for run := 0; run < maxRuns; run++ {
			b := &collectors.Batch{Now: o.To}
			next, err := c.Source.Collect(ctx, cursor, b)
			var backoff *collectors.BackoffError
			if errors.As(err, &backoff) && waits < maxBackoffs {
				waits++
				if err := sleep(ctx, backoff.Wait); err != nil {
					return nil, nil, res, nil, err
				}
				run--
				continue
			}
			if err != nil {
				return nil, nil, res, nil, err
			}
			srcs[i] = source{name: c.Name, cursor: next, watermark: b.Watermark}
			res.Records[c.Name] += b.Len()
			res.Rejected[c.Name] += len(b.Rejected)
			add := func(at time.Time, e event) {
				if at.IsZero() || at.Before(start) {
					at = start
				}
				e.at, e.col = at, i
				evs = append(evs, e)
			}
			for k := range b.Tickets {
				for _, st := range TicketStates(&b.Tickets[k]) {
					add(st.UpdatedAt, event{tk: st})
				}
			}
			for k := range b.Calls {
				c := &b.Calls[k]
				at := c.EndedAt
				if at.IsZero() {
					at = c.EnqueuedAt
				}
				add(at, event{cl: c})
			}
			for k := range b.Surveys {
				add(b.Surveys[k].SubmittedAt, event{sv: &b.Surveys[k]})
			}
			for k := range b.Snapshots {
				add(b.Snapshots[k].At, event{sn: &b.Snapshots[k]})
			}
			if b.Len()-len(b.Snapshots)+len(b.Rejected) == 0 || bytes.Equal(next, cursor) {
				break
			}
			cursor = next
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	res.Events = len(evs)
	return &sliceIter{evs: evs}, srcs, res, nil, nil
}

// paged hands its records over a few per run (as max_read_bytes does)
// and in chunks within a run when the batch takes chunks, with the
// cursor after each: the position in its list.
type paged struct {
	tickets []record.Ticket
	calls   []record.Call
	surveys []record.SurveyResponse
	snaps   []record.Snapshot
	perRun  int
}

func (p *paged) len() int { return len(p.tickets) + len(p.calls) + len(p.surveys) + len(p.snaps) }

func (p *paged) Collect(ctx context.Context, cursor []byte, b *collectors.Batch) ([]byte, error) {
	pos := 0
	if cursor != nil {
		pos, _ = strconv.Atoi(string(cursor))
	}
	for n := 0; n < p.perRun && pos < p.len(); n++ {
		switch i := pos; {
		case i < len(p.tickets):
			b.Tickets = append(b.Tickets, p.tickets[i])
		case i < len(p.tickets)+len(p.calls):
			b.Calls = append(b.Calls, p.calls[i-len(p.tickets)])
		case i < len(p.tickets)+len(p.calls)+len(p.surveys):
			b.Surveys = append(b.Surveys, p.surveys[i-len(p.tickets)-len(p.calls)])
		default:
			b.Snapshots = append(b.Snapshots, p.snaps[i-len(p.tickets)-len(p.calls)-len(p.surveys)])
		}
		pos++
		if b.Full() {
			if err := b.Flush(ctx, []byte(strconv.Itoa(pos))); err != nil {
				return nil, err
			}
		}
	}
	if pos < p.len() {
		b.Reject("bad_time", "line "+strconv.Itoa(pos), errors.New("test"))
	}
	b.Watermark = tue(12, 0)
	return []byte(strconv.Itoa(pos)), nil
}

// history is a few days of tickets (several versions each, out of order,
// repeated, records with no time, before the range and after it, many
// sharing one instant), calls, surveys and snapshots.
func pagedHistory(perRun int) *paged {
	p := &paged{perRun: perRun}
	cet := time.FixedZone("CET", 3600)
	queues := []string{"q", "r", "s"}
	for i := 0; i < 300; i++ {
		created := mon(8, 0).Add(time.Duration(i%40) * 17 * time.Minute)
		if i%7 == 0 {
			created = created.In(cet)
		}
		reply := created.Add(time.Duration(i%9) * 40 * time.Minute)
		solved := reply.Add(time.Duration(i%5) * 3 * time.Hour)
		tk := record.Ticket{ID: fmt.Sprintf("t%d", i%120), Queue: queues[i%3], Channel: "email", Priority: "normal",
			CreatedAt: created, UpdatedAt: created, Status: "open", AgentReplies: i % 3}
		if i%11 == 0 {
			tk.Tags = []string{}
		}
		later := tk
		later.FirstReplyAt, later.UpdatedAt, later.Status = reply, reply, "pending"
		last := later
		if i%4 != 0 {
			last.SolvedAt, last.UpdatedAt, last.Status = solved, solved, "solved"
		}
		if i%13 == 0 {
			last.Satisfaction, last.SLABreaches = "bad", []string{"first_reply"}
		}
		switch i % 3 {
		case 0: // newest version first
			p.tickets = append(p.tickets, last, tk, later)
		case 1:
			p.tickets = append(p.tickets, tk, last, last) // repeated
		default:
			p.tickets = append(p.tickets, later, tk)
		}
	}
	p.tickets = append(p.tickets,
		record.Ticket{ID: "old", Queue: "q", CreatedAt: mon(1, 0), UpdatedAt: mon(2, 0)},    // before the range
		record.Ticket{ID: "late", Queue: "q", CreatedAt: tue(20, 0), UpdatedAt: tue(20, 0)}, // after it
		record.Ticket{ID: "notime", Queue: "q"},
		record.Ticket{ID: "gone", Queue: "q", CreatedAt: mon(9, 0), Deleted: true, UpdatedAt: mon(12, 0)})
	for i := 0; i < 200; i++ {
		end := mon(9, 0).Add(time.Duration(i%50) * 13 * time.Minute)
		c := record.Call{ID: fmt.Sprintf("c%d", i%150), Queue: queues[i%2], EnqueuedAt: end.Add(-5 * time.Minute), EndedAt: end,
			Wait: time.Duration(i%7) * 10 * time.Second, Outcome: record.OutcomeAbandoned}
		if i%3 != 0 {
			c.AnsweredAt, c.Talk, c.Outcome = end.Add(-4*time.Minute), 4*time.Minute, record.OutcomeAnswered
		}
		if i%17 == 0 {
			c.EndedAt = time.Time{} // counted at its enqueue time
		}
		p.calls = append(p.calls, c)
	}
	for i := 0; i < 60; i++ {
		p.surveys = append(p.surveys, record.SurveyResponse{ID: fmt.Sprintf("s%d", i%45), Survey: "csat", Kind: "csat",
			Score: float64(1 + i%5), HasScore: true, Queue: "q", SubmittedAt: mon(10, 0).Add(time.Duration(i%20) * time.Hour)})
	}
	for i := 0; i < 40; i++ {
		sn := record.Snapshot{Queue: queues[i%3], At: mon(9, 0).Add(time.Duration(i) * 37 * time.Minute), CallsWaiting: i % 4,
			HasWait: true, LongestWait: time.Duration(i) * time.Second, Agents: map[string]int{"available": i % 3}}
		if i%5 == 0 {
			sn.Agents, sn.OpenTickets = map[string]int{}, map[string]int{}
		}
		p.snaps = append(p.snaps, sn)
	}
	return p
}

// replayTo runs a replay of two paged collectors into an OpenMetrics file
// and returns its bytes.
func replayTo(t *testing.T, read reader, o Options) ([]byte, Result) {
	t.Helper()
	m, st := newModel(t, t.TempDir())
	if err := st.SetNoSync(true); err != nil { // as servq backfill does
		t.Fatal(err)
	}
	om, err := NewOpenMetrics(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o.From, o.To, o.Step, o.CommitCursors = mon(9, 0), tue(13, 0), 15*time.Minute, true
	o.Labels = map[string]string{"job": "servq"}
	cols := []Collector{{"zd", pagedHistory(23)}, {"pbx", pagedHistory(1000)}}
	res, err := run(context.Background(), m, cols, om, o, read)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := om.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), res
}

// TestSpilledReplayEqualsInMemory: the chunked, spilled and merged
// replay writes byte for byte the file the in-memory replay writes, with
// tiny buffers (many run files, merged several times over).
func TestSpilledReplayEqualsInMemory(t *testing.T) {
	want, wantRes := replayTo(t, readInMemory, Options{})
	spillDir := t.TempDir()
	runs := 0
	got, res := replayTo(t, readSpilled, Options{SpillDir: spillDir, ChunkSize: 5, spillEvents: 7, runFanout: 3,
		Progress: func(Progress) {
			if runs == 0 {
				m, _ := filepath.Glob(filepath.Join(spillDir, "servq-replay-*", "run-*"))
				runs = len(m)
			}
		}})
	if runs == 0 {
		t.Fatal("no run file while the steps were played: nothing was spilled")
	}
	if left, _ := os.ReadDir(spillDir); len(left) != 0 {
		t.Errorf("spill left behind: %v", left)
	}
	if !reflect.DeepEqual(res, wantRes) {
		t.Errorf("result %+v, want %+v", res, wantRes)
	}
	if len(want) < 10000 {
		t.Fatalf("reference output is only %d bytes", len(want))
	}
	if !bytes.Equal(got, want) {
		a, b := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := 0; i < len(a) && i < len(b); i++ {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("output differs at line %d:\n got %s\nwant %s", i+1, a[i], b[i])
			}
		}
		t.Fatalf("output has %d lines, want %d", len(a), len(b))
	}
	// The defaults (one buffer, no run file) give the same too.
	if got, _ := replayTo(t, readSpilled, Options{}); !bytes.Equal(got, want) {
		t.Error("unspilled output differs")
	}
}

// TestSpillKeepsEveryField: an event written to a run and read back is
// the same record, every field set (by reflection, so a field added to a
// record later is covered), and empty slices and maps stay empty, not
// nil.
func TestSpillKeepsEveryField(t *testing.T) {
	loc := time.FixedZone("X", 5400)
	var fill func(v reflect.Value, emptyContainers bool)
	n := 0
	fill = func(v reflect.Value, emptyContainers bool) {
		n++
		switch v.Kind() {
		case reflect.String:
			v.SetString("s" + strconv.Itoa(n))
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int, reflect.Int64:
			v.SetInt(int64(n))
		case reflect.Float64:
			v.SetFloat(float64(n) + 0.5)
		case reflect.Slice:
			if emptyContainers {
				v.Set(reflect.MakeSlice(v.Type(), 0, 0))
				return
			}
			s := reflect.MakeSlice(v.Type(), 2, 2)
			fill(s.Index(0), false)
			fill(s.Index(1), false)
			v.Set(s)
		case reflect.Map:
			mp := reflect.MakeMap(v.Type())
			if !emptyContainers {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				fill(k, false)
				fill(e, false)
				mp.SetMapIndex(k, e)
			}
			v.Set(mp)
		case reflect.Struct:
			if v.Type() == reflect.TypeOf(time.Time{}) {
				v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, n, loc)))
				return
			}
			for i := 0; i < v.NumField(); i++ {
				fill(v.Field(i), emptyContainers)
			}
		default:
			t.Fatalf("fill: %s (%s) not handled: teach the test and check diskEvent", v.Type(), v.Kind())
		}
	}
	for _, emptyContainers := range []bool{false, true} {
		var tk record.Ticket
		var cl record.Call
		var sv record.SurveyResponse
		var sn record.Snapshot
		for _, p := range []any{&tk, &cl, &sv, &sn} {
			fill(reflect.ValueOf(p).Elem(), emptyContainers)
		}
		evs := []event{{tk: &tk}, {cl: &cl}, {sv: &sv}, {sn: &sn},
			{tk: &record.Ticket{}}, {cl: &record.Call{}}, {sv: &record.SurveyResponse{}}, {sn: &record.Snapshot{}}}
		sp := newSpill(t.TempDir(), 1, 100)
		for i := range evs {
			evs[i].at, evs[i].seq, evs[i].col = time.Date(2026, 1, 1, 0, 0, 0, 0, loc), uint64(i), i%2
		}
		sp.buf = append(sp.buf, evs...)
		sp.seq = uint64(len(evs))
		if err := sp.writeRun(); err != nil {
			t.Fatal(err)
		}
		it, err := sp.iter()
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			e, ok, err := it.next()
			if err != nil || !ok {
				t.Fatalf("event %d: %v, %v", i, ok, err)
			}
			if !sameEvent(e, evs[i]) {
				t.Errorf("event %d (empty containers %v) read back as\n%#v\nwant\n%#v", i, emptyContainers, e, evs[i])
			}
		}
		it.close()
		sp.close()
	}
}

// sameEvent compares two events field by field, times by instant and
// offset (a time read back has a zone of the same offset, not the same
// *Location), slices and maps telling nil from empty.
func sameEvent(a, b event) bool {
	return a.at.Equal(b.at) && a.seq == b.seq && a.col == b.col &&
		same(reflect.ValueOf(a.tk), reflect.ValueOf(b.tk)) && same(reflect.ValueOf(a.cl), reflect.ValueOf(b.cl)) &&
		same(reflect.ValueOf(a.sv), reflect.ValueOf(b.sv)) && same(reflect.ValueOf(a.sn), reflect.ValueOf(b.sn))
}

func same(a, b reflect.Value) bool {
	if a.Type() == reflect.TypeOf(time.Time{}) {
		x, y := a.Interface().(time.Time), b.Interface().(time.Time)
		_, xo := x.Zone()
		_, yo := y.Zone()
		return x.Equal(y) && xo == yo
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return same(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !same(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !same(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if !b.MapIndex(k).IsValid() || !same(a.MapIndex(k), b.MapIndex(k)) {
				return false
			}
		}
		return true
	}
	return a.Interface() == b.Interface()
}

// throttled hands over one chunk, then answers Retry-After once.
type throttled struct {
	paged
	asked []string
}

func (s *throttled) Collect(ctx context.Context, cursor []byte, b *collectors.Batch) ([]byte, error) {
	s.asked = append(s.asked, string(cursor))
	if len(s.asked) == 1 {
		pos := 0
		for ; !b.Full(); pos++ {
			b.Tickets = append(b.Tickets, s.tickets[pos])
		}
		if err := b.Flush(ctx, []byte(strconv.Itoa(pos))); err != nil {
			return nil, err
		}
		b.Tickets = append(b.Tickets, s.tickets[pos]) // not handed over: dropped
		return nil, &collectors.BackoffError{Wait: time.Minute, Err: errors.New("429")}
	}
	return s.paged.Collect(ctx, cursor, b)
}

// TestReplayRetryAfterKeepsHandedOverChunks: after a Retry-After the
// source reads on from its last chunk's cursor, as the live runner does;
// the result equals a replay that was never throttled.
func TestReplayRetryAfterKeepsHandedOverChunks(t *testing.T) {
	want, wantRes := replayTo(t, readInMemory, Options{})
	src := &throttled{paged: *pagedHistory(23)}
	m, _ := newModel(t, t.TempDir())
	om, err := NewOpenMetrics(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := Options{From: mon(9, 0), To: tue(13, 0), Step: 15 * time.Minute, CommitCursors: true, ChunkSize: 4,
		Labels: map[string]string{"job": "servq"}, Sleep: func(context.Context, time.Duration) error { return nil }}
	res, err := Run(context.Background(), m, []Collector{{"zd", src}, {"pbx", pagedHistory(1000)}}, om, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(src.asked) < 3 || src.asked[0] != "" || src.asked[1] != "4" {
		t.Fatalf("cursors asked %q, want \"\", then \"4\" (after the chunk handed over)", src.asked)
	}
	var got bytes.Buffer
	if _, err := om.WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) || !reflect.DeepEqual(res, wantRes) {
		t.Errorf("throttled replay differs (result %+v, want %+v)", res, wantRes)
	}
}

// TestSpillRunsStayFewAndOrdered: 20,000 events in buffers of 10 (2,000
// runs) with a fanout of 4 leave at most 3 runs per level (levels: log4
// of 2,000, 6), and read back in (time, arrival) order, every one once.
func TestSpillRunsStayFewAndOrdered(t *testing.T) {
	sp := newSpill(t.TempDir(), 10, 4)
	defer sp.close()
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	most := 0
	for i := 0; i < 20000; i++ {
		// Out of order, and many events at one instant.
		at := t0.Add(time.Duration((i*7919)%1000) * time.Second)
		b := &collectors.Batch{Calls: []record.Call{{ID: strconv.Itoa(i), EndedAt: at}}}
		if err := sp.add(0, b, t0); err != nil {
			t.Fatal(err)
		}
		most = max(most, len(sp.runs))
	}
	if most > 3*7 {
		t.Errorf("%d run files at once", most)
	}
	it, err := sp.iter()
	if err != nil {
		t.Fatal(err)
	}
	defer it.close()
	var prev *event
	n := 0
	for {
		e, ok, err := it.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if id, _ := strconv.Atoi(e.cl.ID); uint64(id) != e.seq {
			t.Fatalf("event %d carries call %s", e.seq, e.cl.ID)
		}
		if prev != nil && !prev.before(&e) {
			t.Fatalf("event %d (%s) after %d (%s)", e.seq, e.at, prev.seq, prev.at)
		}
		prev = &e
		n++
	}
	if n != 20000 {
		t.Errorf("%d events read back, want 20000", n)
	}
}
