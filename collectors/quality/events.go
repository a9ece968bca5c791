package quality

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
)

// ticketState is what the model remembers of a ticket so that each event on
// it is counted once, however often the source reports the ticket.
type ticketState struct {
	flags    uint8
	reopens  uint32
	lastSeen int64  // unix seconds; drives pruning
	openQ    string // labels of the tickets_open series the ticket is counted in
	openS    string
	done     []string // ticket SLOs whose one event was counted
	openAt   int64    // creation time under which the open index holds it
	// csat is the ticket's satisfaction rating as counted: score, then
	// the survey, queue and channel labels it was counted under, joined
	// by sep; empty while none was counted. A changed rating is retracted
	// from, and counted again on, these same series.
	csat string
}

const (
	tsCreated uint8 = 1 << iota
	tsFirstReply
	tsSolved   // counted as solved (once per ticket)
	tsComplain // counted as complaint
	tsOpen     // counted in tickets_open{openQ, openS}
	tsSolvedNow
	// tsDeleted: the source reported the ticket deleted. Without
	// tsCreated it was first seen deleted and counted nowhere; with it,
	// it was counted in tickets_deleted_total (once).
	tsDeleted
)

// Version 2 added the list of ticket SLOs already counted; version 1
// states decode with none. Version 3 added openAt, version 4 the counted
// satisfaction rating.
const ticketStateVersion = 4

func (s *ticketState) encode() []byte {
	return s.appendTo(make([]byte, 0, 32+len(s.openQ)+len(s.openS)))
}

func (s *ticketState) appendTo(b []byte) []byte {
	b = append(b, ticketStateVersion, s.flags)
	b = binary.AppendUvarint(b, uint64(s.reopens))
	b = binary.AppendVarint(b, s.lastSeen)
	b = binary.AppendUvarint(b, uint64(len(s.openQ)))
	b = append(b, s.openQ...)
	b = binary.AppendUvarint(b, uint64(len(s.openS)))
	b = append(b, s.openS...)
	b = binary.AppendUvarint(b, uint64(len(s.done)))
	for _, d := range s.done {
		b = binary.AppendUvarint(b, uint64(len(d)))
		b = append(b, d...)
	}
	b = binary.AppendVarint(b, s.openAt)
	b = binary.AppendUvarint(b, uint64(len(s.csat)))
	return append(b, s.csat...)
}

var errCorrupt = errors.New("corrupt ticket state")

func decodeTicketState(b []byte) (ticketState, error) {
	var s ticketState
	if len(b) == 0 {
		return s, nil
	}
	if len(b) < 2 || b[0] < 1 || b[0] > ticketStateVersion {
		return s, errCorrupt
	}
	version := b[0]
	s.flags = b[1]
	b = b[2:]
	u, n := binary.Uvarint(b)
	if n <= 0 {
		return s, errCorrupt
	}
	s.reopens, b = uint32(u), b[n:]
	v, n := binary.Varint(b)
	if n <= 0 {
		return s, errCorrupt
	}
	s.lastSeen, b = v, b[n:]
	str := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return "", false
		}
		out := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return out, true
	}
	var ok1, ok2 bool
	s.openQ, ok1 = str()
	s.openS, ok2 = str()
	if !ok1 || !ok2 {
		return s, errCorrupt
	}
	if version >= 2 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > 1<<16 {
			return s, errCorrupt
		}
		b = b[w:]
		for i := uint64(0); i < n; i++ {
			d, ok := str()
			if !ok {
				return s, errCorrupt
			}
			s.done = append(s.done, d)
		}
	}
	if version >= 3 {
		v, n := binary.Varint(b)
		if n <= 0 {
			return s, errCorrupt
		}
		s.openAt, b = v, b[n:]
	}
	if version >= 4 {
		var ok bool
		if s.csat, ok = str(); !ok {
			return s, errCorrupt
		}
	}
	return s, nil
}

func (r *run) ticket(t *record.Ticket) error {
	if t.ID == "" {
		return nil
	}
	raw, err := r.getTicket(t.ID)
	if err != nil {
		return err
	}
	st, err := decodeTicketState(raw)
	if err != nil {
		return err
	}
	fresh := st.flags&tsCreated == 0
	if fresh && t.Deleted {
		// First seen deleted (spam, a merged duplicate): like the help
		// desks' own reports, servq counts it nowhere, not even created.
		// The state remembers it so repeats are duplicates; if the ticket
		// is restored, its next report counts it created like a new one.
		if st.flags&tsDeleted != 0 {
			r.res.Duplicate["ticket"]++
		} else {
			r.res.Accepted["ticket"]++
		}
		st.flags |= tsDeleted
		st.lastSeen = r.now.Unix()
		r.putTicket(t.ID, &st)
		return nil
	}
	q, ch, pr := r.label("queue", t.Queue), r.label("channel", t.Channel), r.label("priority", t.Priority)
	cat := r.m.cat
	if fresh {
		r.add(cat.ticketsCreated, 1, q, ch, pr)
		// The counters the ticket may move later exist from now on at 0,
		// so that Prometheus sees their first increment (rate() needs a
		// sample before it).
		r.touch(cat.ticketsSolved, q, ch, pr)
		r.touch(cat.ticketsReopened, q, ch, pr)
		r.touch(cat.ticketsFCR, q, ch, pr)
		r.touch(cat.ticketsDeleted, q, ch, pr)
		st.flags |= tsCreated
		r.res.Accepted["ticket"]++
	} else {
		r.res.Duplicate["ticket"]++
	}

	if !t.FirstReplyAt.IsZero() && st.flags&tsFirstReply == 0 {
		st.flags |= tsFirstReply
		r.observeSpan(cat.firstReply, cat.firstReplyBiz, t.CreatedAt, t.FirstReplyAt, t.FirstReplyBusiness, q, ch, pr)
	}

	solvedNow := t.InSolvedState() && !t.Deleted
	// A reopen: the source counts more reopens than we have, or a ticket we
	// saw solved is open again while the source keeps no count.
	if int64(t.Reopens) > int64(st.reopens) {
		r.add(cat.ticketsReopened, float64(uint32(t.Reopens)-st.reopens), q, ch, pr)
		st.reopens = uint32(t.Reopens)
	} else if st.flags&tsSolvedNow != 0 && !solvedNow && !t.Deleted {
		r.add(cat.ticketsReopened, 1, q, ch, pr)
		st.reopens++
	}

	var solvedAt time.Time
	if solvedNow {
		solvedAt = t.SolvedAt
		if solvedAt.IsZero() {
			solvedAt = t.UpdatedAt
		}
		if solvedAt.IsZero() {
			solvedAt = r.now
		}
	}
	if solvedNow && st.flags&tsSolved == 0 {
		st.flags |= tsSolved
		r.add(cat.ticketsSolved, 1, q, ch, pr)
		at := solvedAt
		r.observeSpan(cat.resolution, cat.resolutionBiz, t.CreatedAt, at, t.ResolutionBusiness, q, ch, pr)
		// First-contact resolution: solved with exactly one public agent
		// reply and never reopened.
		if t.AgentReplies == 1 && st.reopens == 0 && t.Reopens == 0 {
			r.add(cat.ticketsFCR, 1, q, ch, pr)
		}
	}
	if solvedNow {
		st.flags |= tsSolvedNow
	} else {
		st.flags &^= tsSolvedNow
	}

	// Source-reported SLA breaches: once per ticket and metric, kept in the
	// same list as the ticket SLOs already counted, with a prefix.
	for _, b := range t.SLABreaches {
		if b == "" || t.Deleted || st.sloDone("sla:"+b) {
			continue
		}
		st.done = append(st.done, "sla:"+b)
		r.add(cat.slaBreaches, 1, r.label("sla_metric", b), q, ch, pr)
	}

	// Counted, then deleted: the counters it moved cannot go down, so
	// the deletion is counted once on its own (created − deleted is the
	// help desk's view); the ticket leaves tickets_open and its pending
	// SLO deadlines below.
	if t.Deleted && st.flags&tsDeleted == 0 {
		st.flags |= tsDeleted
		r.add(cat.ticketsDeleted, 1, q, ch, pr)
	}
	if score, ok := r.m.ticketRating(t.Satisfaction); ok && !t.Deleted {
		r.ticketCSAT(&st, score, q, ch)
	}

	if t.Complaint && st.flags&tsComplain == 0 {
		st.flags |= tsComplain
		r.add(cat.complaints, 1, q, ch)
	}

	// tickets_open follows the ticket: leave the old (queue, status) series
	// and join the new one when the ticket is still open.
	open := !solvedNow && !t.Deleted
	status := t.Status
	if status == "" {
		status = "open"
	}
	s := r.label("status", strings.ToLower(status))
	if st.flags&tsOpen != 0 && (!open || st.openQ != q || st.openS != s) {
		r.add(cat.ticketsOpen, -1, st.openQ, st.openS)
		st.flags &^= tsOpen
		if err := r.unindexOpen(&st, t.ID); err != nil {
			return err
		}
	}
	if open && st.flags&tsOpen == 0 {
		r.add(cat.ticketsOpen, 1, q, s)
		st.flags |= tsOpen
		st.openQ, st.openS = q, s
	}
	if st.flags&tsOpen != 0 && st.openAt == 0 {
		// Newly open, or open since before the index existed.
		if err := r.indexOpen(&st, t.ID, t.CreatedAt); err != nil {
			return err
		}
	}

	if err := r.sloEvents(t, &st, solvedAt, q, ch, pr); err != nil {
		return err
	}
	st.lastSeen = r.now.Unix()
	r.putTicket(t.ID, &st)
	return nil
}

// Writes to ticket states and their indexes are made in key order. A
// run's writes to these spaces are kept in memory (r.writes) and applied
// sorted: bbolt inserts each key into its page's in-memory node, and keys
// put in arrival order land in the middle of an ever larger node, moving
// the rest of it every time (82 % of a 100k-ticket first sync's CPU went
// to that memmove; time per ticket grew with the transaction). Sorted,
// each insert appends. Ticket reads go through the buffer, so a ticket
// reported twice in a run sees its first report's state; the indexes are
// read only after flushWrites.
type write struct {
	value []byte
	del   bool
}

func (r *run) put(space string, key, value []byte) {
	if r.writes == nil {
		r.writes = map[string]map[string]write{}
	}
	w := r.writes[space]
	if w == nil {
		w = map[string]write{}
		r.writes[space] = w
	}
	w[string(key)] = write{value: value}
}

func (r *run) del(space string, key []byte) {
	r.put(space, key, nil)
	r.writes[space][string(key)] = write{del: true}
}

// flushWrites applies the buffered writes, space by space in key order.
func (r *run) flushWrites() error {
	for _, space := range sortedKeys(r.writes) {
		w := r.writes[space]
		for _, k := range sortedKeys(w) {
			var err error
			if w[k].del {
				err = r.tx.Delete(space, []byte(k))
			} else {
				err = r.tx.Put(space, []byte(k), w[k].value)
			}
			if err != nil {
				return err
			}
		}
	}
	r.writes = nil
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// observeSpan observes a calendar duration and its business-time twin. A
// business duration the source computed itself wins over ours.
func (r *run) observeSpan(cal, biz *family, from, to time.Time, sourceBiz time.Duration, labels ...string) {
	if from.IsZero() || to.Before(from) {
		return // nothing trustworthy to observe
	}
	r.observe(cal, to.Sub(from).Seconds(), labels...)
	switch {
	case sourceBiz > 0:
		r.observe(biz, sourceBiz.Seconds(), labels...)
	case r.m.calendar != nil:
		r.observe(biz, r.m.calendar.Between(from, to).Seconds(), labels...)
	}
}

// seen checks and records a dedup key. Keys added in this run are written
// in sorted order at the end (B+tree inserts in order are much cheaper).
func (r *run) seen(key string, pending map[string]bool) bool {
	if pending[key] {
		return true
	}
	if r.tx.Get(state.SpaceSeen, []byte(key)) != nil {
		return true
	}
	pending[key] = true
	return false
}

func (r *run) putSeen(pending map[string]bool) error {
	keys := make([]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	v := binary.AppendVarint(nil, r.now.Unix())
	for _, k := range keys {
		if err := r.tx.Put(state.SpaceSeen, []byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) calls(calls []record.Call) error {
	dup, err := r.seenCalls(calls)
	if err != nil {
		return err
	}
	cat := r.m.cat
	short := r.m.shortAbandon
	// The series of a (queue, channel) are looked up once per run, not
	// once per call and family: a large backfill has millions of calls
	// over a handful of queues.
	type callSeries struct {
		q, ch                                         string
		offered, answered, abandoned, abShort, transf *delta
		waitAnswered, waitAbandoned, handle           *delta
	}
	type qc struct{ q, ch string }
	memo := map[qc]*callSeries{}
	for i := range calls {
		c := &calls[i]
		if dup[i] {
			r.res.Duplicate["call"]++
			continue
		}
		r.res.Accepted["call"]++
		chv := c.Channel
		if chv == "" {
			chv = "phone"
		}
		cs := memo[qc{c.Queue, chv}]
		if cs == nil {
			q, ch := r.label("queue", c.Queue), r.label("channel", chv)
			cs = &callSeries{q: q, ch: ch,
				offered: r.delta(cat.callsOffered, []string{q, ch}), answered: r.delta(cat.callsAnswered, []string{q, ch}),
				abandoned: r.delta(cat.callsAbandoned, []string{q, ch}), abShort: r.delta(cat.callsAbandonedShort, []string{q, ch}),
				transf:        r.delta(cat.callsTransferred, []string{q, ch}),
				waitAnswered:  r.delta(cat.callWait, []string{q, ch, string(record.OutcomeAnswered)}),
				waitAbandoned: r.delta(cat.callWait, []string{q, ch, string(record.OutcomeAbandoned)})}
			// Creating the deltas makes the call series of the queue
			// exist at 0 once it was offered a call: an abandonment or
			// service-level SLO then sees the first abandoned or late
			// call as an increase instead of a series that appeared
			// already at 1, which rate() cannot tell from a long-running
			// one.
			// The handle histogram is not touched: it appears with the
			// first answered call, as before.
			if q != Overflow && ch != Overflow {
				// A label over the cap counts its overflow once per
				// call: such a pair is looked up again each time.
				memo[qc{c.Queue, chv}] = cs
			}
		}
		cs.offered.value++
		wait := c.Wait.Seconds()
		switch {
		case c.Outcome.Answered():
			cs.answered.value++
			cs.waitAnswered.observe(wait)
			if !c.HandleUnknown {
				if cs.handle == nil {
					cs.handle = r.delta(cat.callHandle, []string{cs.q, cs.ch})
				}
				cs.handle.observe(c.Handle().Seconds())
			}
			if c.Outcome == record.OutcomeTransferred {
				cs.transf.value++
			}
		case c.Outcome == record.OutcomeAbandoned:
			cs.abandoned.value++
			// Short abandons use the histogram's le semantics (wait <=
			// threshold) so that this counter equals the call_wait bucket
			// the SLO rules read.
			if c.Wait <= short {
				cs.abShort.value++
			}
			cs.waitAbandoned.observe(wait)
		default:
			out := string(c.Outcome)
			if out == "" {
				out = string(record.OutcomeTimeout)
			}
			r.observe(cat.callWait, wait, cs.q, cs.ch, out)
		}
	}
	return nil
}

// dedupKey is a dedup key with the index of its record.
type dedupKey struct {
	head uint64 // the 8 bytes after the prefix all keys share, big-endian
	k    []byte
	i    int32
}

// sortKeys sorts keys by k, equal keys by i. A radix sort on head does most
// of the work in four linear passes (a comparison sort of a backfill's
// million keys was a tenth of its commit); keys with the same head are
// then sorted by the rest.
func sortKeys(keys []dedupKey) []dedupKey {
	byKey := func(a, b dedupKey) int {
		if c := bytes.Compare(a.k, b.k); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	}
	if len(keys) < 1024 {
		slices.SortFunc(keys, byKey)
		return keys
	}
	// LSD radix on 16-bit digits: stable, so equal heads keep index order.
	tmp := make([]dedupKey, len(keys))
	var count [1 << 16]int
	for shift := 0; shift < 64; shift += 16 {
		clear(count[:])
		for _, k := range keys {
			count[uint16(k.head>>shift)]++
		}
		if count[uint16(keys[0].head>>shift)] == len(keys) {
			continue // every key has this digit: the pass would change nothing
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, k := range keys {
			d := uint16(k.head >> shift)
			tmp[count[d]] = k
			count[d]++
		}
		keys, tmp = tmp, keys
	}
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j].head == keys[i].head {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(keys[i:j], byKey)
		}
		i = j
	}
	return keys
}

// seenCalls is the dedup of calls by their c:<id> key: dup[i] when call i
// was counted by an earlier commit or comes again later than its first
// occurrence in this batch. Keys are sorted once, checked against the
// store in one ordered walk and the new ones written in key order: one
// bbolt lookup per call and a sort of a map's keys took 40% of a large
// queue_log backfill.
func (r *run) seenCalls(calls []record.Call) ([]bool, error) {
	dup := make([]bool, len(calls))
	n, size := 0, 0
	for i := range calls {
		if calls[i].ID == "" {
			dup[i] = true // no id, no dedup: counted as a duplicate, as before
			continue
		}
		n++
		size += 2 + len(calls[i].ID)
	}
	if n == 0 {
		return dup, nil
	}
	arena := make([]byte, 0, size)
	keys := make([]dedupKey, 0, n)
	for i := range calls {
		if calls[i].ID == "" {
			continue
		}
		at := len(arena)
		arena = append(append(arena, "c:"...), calls[i].ID...)
		keys = append(keys, dedupKey{k: arena[at:len(arena):len(arena)], i: int32(i)})
	}
	common := len(keys[0].k)
	for _, k := range keys[1:] {
		common = min(common, len(k.k))
		for j := 0; j < common; j++ {
			if k.k[j] != keys[0].k[j] {
				common = j
				break
			}
		}
	}
	for j := range keys {
		var b [8]byte
		copy(b[:], keys[j].k[common:])
		keys[j].head = binary.BigEndian.Uint64(b[:])
	}
	keys = sortKeys(keys)
	uniq := make([][]byte, 0, len(keys))
	for j, k := range keys {
		if j > 0 && bytes.Equal(k.k, keys[j-1].k) {
			dup[k.i] = true
			continue
		}
		uniq = append(uniq, k.k)
	}
	found := make([]bool, len(uniq))
	// Keys of older versions, one per call.
	r.tx.Contains(state.SpaceSeen, uniq, found)
	if err := r.seenBlocks(uniq, found); err != nil {
		return nil, err
	}
	u := 0
	for j, k := range keys {
		if j > 0 && bytes.Equal(k.k, keys[j-1].k) {
			continue
		}
		if found[u] {
			dup[k.i] = true
		}
		u++
	}
	return dup, nil
}

// Call dedup keys are kept in blocks: one bbolt entry holds up to
// seenBlockMax keys in key order, under its first key with a 0 byte in
// front (which sorts before every per-key entry of the seen space), and
// blocks never overlap: each owns the keys from its first up to the next
// block's first. One bbolt put per key was most of a log backfill's commit
// and most of its store (90 bytes a call). The value starts with the
// block's last write time, as a per-key entry does, so pruning forgets a
// block, and all its keys, once it was not written for the retention: a
// key is kept at least that long.
const seenBlockMax = 256

// seenBlocks sets found[i] for the keys (ascending, unique) in a block and
// adds the others to the blocks.
func (r *run) seenBlocks(keys [][]byte, found []bool) error {
	type block struct {
		key  []byte   // bbolt key; nil: keys before the first block
		keys [][]byte // stored keys, ascending
		add  [][]byte // keys to add, ascending
	}
	var blocks []*block
	var cur *block
	var curEnd []byte // the next block's bbolt key: where cur's keys end; nil: no end
	bk := []byte{0}
	for i, k := range keys {
		if found[i] {
			continue
		}
		bk = append(bk[:1], k...)
		if cur == nil || (curEnd != nil && bytes.Compare(bk, curEnd) >= 0) {
			fk, v, next := r.tx.Floor(state.SpaceSeen, bk)
			cur = &block{}
			if fk != nil {
				stored, err := decodeSeenBlock(v)
				if err != nil {
					return fmt.Errorf("dedup block %q: %w", fk[1:], err)
				}
				cur.key, cur.keys = bytes.Clone(fk), stored
			}
			curEnd = nil
			if len(next) > 0 && next[0] == 0 {
				curEnd = bytes.Clone(next)
			}
			blocks = append(blocks, cur)
		}
		if _, in := slices.BinarySearchFunc(cur.keys, k, bytes.Compare); in {
			found[i] = true
			continue
		}
		cur.add = append(cur.add, k)
	}
	now := r.now.Unix()
	for _, b := range blocks {
		if len(b.add) == 0 {
			continue
		}
		// Both lists are ascending and disjoint, and every added key is
		// at or after the block's first: the merged block keeps its
		// first key, so its pieces overwrite it and add blocks after it.
		merged := make([][]byte, 0, len(b.keys)+len(b.add))
		i, j := 0, 0
		for i < len(b.keys) || j < len(b.add) {
			if j == len(b.add) || (i < len(b.keys) && bytes.Compare(b.keys[i], b.add[j]) < 0) {
				merged = append(merged, b.keys[i])
				i++
			} else {
				merged = append(merged, b.add[j])
				j++
			}
		}
		pieces := (len(merged) + seenBlockMax - 1) / seenBlockMax
		for p := 0; p < pieces; p++ {
			piece := merged[p*len(merged)/pieces : (p+1)*len(merged)/pieces]
			if err := r.tx.Put(state.SpaceSeen, append([]byte{0}, piece[0]...), encodeSeenBlock(now, piece)); err != nil {
				return err
			}
		}
	}
	return nil
}

// encodeSeenBlock writes a block: the write time (varint, as every value of
// the seen space starts), the number of keys, then each key as the length
// it shares with the one before, the length of the rest, and the rest.
func encodeSeenBlock(now int64, keys [][]byte) []byte {
	v := binary.AppendVarint(make([]byte, 0, 16+len(keys)*12), now)
	v = binary.AppendUvarint(v, uint64(len(keys)))
	var prev []byte
	for _, k := range keys {
		n := 0
		for n < len(prev) && n < len(k) && prev[n] == k[n] {
			n++
		}
		v = binary.AppendUvarint(v, uint64(n))
		v = binary.AppendUvarint(v, uint64(len(k)-n))
		v = append(v, k[n:]...)
		prev = k
	}
	return v
}

var errSeenBlock = errors.New("corrupt dedup block")

// decodeSeenBlock reads a block into keys of their own (the value is only
// valid in the transaction, which the block then changes).
func decodeSeenBlock(v []byte) ([][]byte, error) {
	_, n := binary.Varint(v)
	if n <= 0 {
		return nil, errSeenBlock
	}
	v = v[n:]
	count, n := binary.Uvarint(v)
	if n <= 0 || count > uint64(len(v)) {
		return nil, errSeenBlock
	}
	v = v[n:]
	keys := make([][]byte, 0, count)
	arena := make([]byte, 0, len(v)+int(count)*8)
	var prev []byte
	for range count {
		shared, n := binary.Uvarint(v)
		if n <= 0 || shared > uint64(len(prev)) {
			return nil, errSeenBlock
		}
		v = v[n:]
		rest, n := binary.Uvarint(v)
		if n <= 0 || rest > uint64(len(v)-n) {
			return nil, errSeenBlock
		}
		v = v[n:]
		at := len(arena)
		arena = append(append(arena, prev[:shared]...), v[:rest]...)
		v = v[rest:]
		prev = arena[at:len(arena):len(arena)]
		keys = append(keys, prev)
	}
	return keys, nil
}

// TicketSurvey is the survey label of ratings read from tickets (Zendesk's
// satisfaction_rating, a tickets_file satisfaction column), beside the
// surveys that survey sources name.
const TicketSurvey = "ticket"

// ticketRating maps a ticket's satisfaction to a CSAT score. good and bad
// (Zendesk's binary rating) are the ends of the scale: top box and bottom
// box, so that they are satisfied and unsatisfied for every csat_min; a
// number on the scale (1 to csat_scale_max) is its own score. offered,
// unoffered (asked, not answered), blank or anything else is no response.
func (m *Model) ticketRating(s string) (float64, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "good":
		return m.csatMax, true
	case "bad":
		return 1, true
	case "", "offered", "unoffered":
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 1 && v <= m.csatMax) {
		return 0, false
	}
	return v, true
}

// ticketCSAT counts a ticket's rating as one CSAT response, exactly once
// however often the ticket is reported. Customers may change their rating
// (Zendesk allows it until the ticket closes) and the latest one is the
// one that counts: the response stays counted once in
// survey_responses_total, its old score is retracted (csat_retracted_score,
// csat_satisfied_retracted_total) and the new one observed, both on the
// series the rating was first counted on. A rating that disappears
// (blank, offered) leaves the last one in place: exports omit columns,
// and help desks do not let customers withdraw a rating.
func (r *run) ticketCSAT(st *ticketState, score float64, q, ch string) {
	cat := r.m.cat
	sv := TicketSurvey
	if st.csat == "" {
		r.add(cat.surveyResponses, 1, sv, string(record.KindCSAT), q, ch)
		r.touch(cat.csatSatisfied, sv, q, ch)
	} else {
		p := strings.SplitN(st.csat, sep, 4)
		old, err := strconv.ParseFloat(p[0], 64)
		if err != nil || len(p) != 4 || old == score {
			return
		}
		sv, q, ch = p[1], p[2], p[3]
		r.observe(cat.csatRetracted, old, sv, q, ch)
		if old >= r.m.csatMin {
			r.add(cat.csatSatisfiedRetracted, 1, sv, q, ch)
		}
	}
	r.observe(cat.csatScore, score, sv, q, ch)
	if score >= r.m.csatMin {
		r.add(cat.csatSatisfied, 1, sv, q, ch)
	}
	st.csat = strings.Join([]string{strconv.FormatFloat(score, 'g', -1, 64), sv, q, ch}, sep)
}

// NPS categories by the standard definition: promoters 9-10, passives 7-8,
// detractors 0-6.
func npsCategory(score float64) string {
	switch {
	case score >= 9:
		return "promoter"
	case score >= 7:
		return "passive"
	}
	return "detractor"
}

func (r *run) survey(s *record.SurveyResponse) error {
	if s.ID == "" {
		return nil
	}
	pending := map[string]bool{}
	if r.seen("s:"+s.ID, pending) {
		// Webhooks may deliver a response again (created, then updated):
		// the first version is the one counted.
		r.res.Duplicate["survey"]++
		return nil
	}
	r.res.Accepted["survey"]++
	cat := r.m.cat
	sv := r.label("survey", s.Survey)
	q, ch := r.label("queue", s.Queue), r.label("channel", s.Channel)
	r.add(cat.surveyResponses, 1, sv, string(s.Kind), q, ch)
	hasScore := s.HasScore && !math.IsNaN(s.Score) && !math.IsInf(s.Score, 0)
	switch s.Kind {
	case record.KindCSAT:
		r.touch(cat.csatSatisfied, sv, q, ch)
		if hasScore {
			r.observe(cat.csatScore, s.Score, sv, q, ch)
			if s.Score >= r.m.csatMin {
				r.add(cat.csatSatisfied, 1, sv, q, ch)
			}
		}
	case record.KindNPS:
		for _, c := range []string{"promoter", "passive", "detractor"} {
			r.touch(cat.npsResponses, sv, c, q, ch)
		}
		if hasScore {
			r.add(cat.npsResponses, 1, sv, npsCategory(s.Score), q, ch)
		}
	case record.KindCES:
		if hasScore {
			r.observe(cat.cesScore, s.Score, sv, q, ch)
		}
	case record.KindSERVQUAL:
		for _, it := range s.Servqual {
			if it.HasE {
				r.observe(cat.servqualScore, it.Expectation, sv, it.Dimension, "expectation")
			}
			if it.HasP {
				r.observe(cat.servqualScore, it.Perception, sv, it.Dimension, "perception")
			}
		}
		if len(s.Weights) > 0 {
			r.add(cat.servqualWeighted, 1, sv)
			for dim, w := range s.Weights {
				r.add(cat.servqualWeightPoints, w, sv, dim)
			}
		}
	}
	return r.putSeen(pending)
}

// snapshot sets the queue gauges. A state or status missing from the
// reading is set to 0 rather than left at its old value.
func (r *run) snapshot(s *record.Snapshot) {
	r.res.Accepted["snapshot"]++
	cat := r.m.cat
	q := r.label("queue", s.Queue)
	if s.HasWait {
		r.set(cat.queueWaiting, float64(s.CallsWaiting), q)
		r.set(cat.queueLongestWait, s.LongestWait.Seconds(), q)
	}
	if s.Agents != nil {
		r.zeroOthers(cat.queueAgents, q)
		for st, n := range s.Agents {
			r.set(cat.queueAgents, float64(n), q, r.label("state", st))
		}
	}
	if s.OpenTickets != nil {
		r.zeroOthers(cat.ticketsOpen, q)
		for st, n := range s.OpenTickets {
			r.set(cat.ticketsOpen, float64(n), q, r.label("status", st))
		}
	}
}

// zeroOthers sets to 0 every series of f for this collector and queue, so a
// following set of the reported values leaves the unreported ones at 0.
func (r *run) zeroOthers(f *family, queue string) {
	r.m.mu.RLock()
	var stale [][]string
	for _, s := range f.series {
		if s.labels[0] == r.name && s.labels[1] == queue {
			stale = append(stale, s.labels[1:])
		}
	}
	r.m.mu.RUnlock()
	for _, ls := range stale {
		r.set(f, 0, ls...)
	}
}

// prune deletes dedup keys and ticket states not seen within the retention,
// keeping the store bounded. A pruned open ticket leaves tickets_open.
func (r *run) prune() error {
	cutoff := r.now.Add(-r.m.retention).Unix()
	pass, err := r.prunePass()
	if err != nil || !pass {
		return err
	}
	var unindex [][]byte
	seenAt := r.tx.Get(state.SpaceMeta, pruneSeenKey)
	seenNext, err := r.tx.Sweep(state.SpaceSeen, seenAt, pruneBudget, func(_, v []byte) bool {
		t, n := binary.Varint(v)
		return n > 0 && t < cutoff
	})
	if err != nil {
		return err
	}
	ticketsAt := r.tx.Get(state.SpaceMeta, pruneTicketsKey)
	pruned := len(r.forgotten) // r.forgotten[pruned:] are this sweep's
	ticketsNext, err := r.tx.Sweep(state.SpaceTickets, ticketsAt, pruneBudget, func(k, v []byte) bool {
		idb, enc, err := splitStored(v)
		if err != nil {
			return false
		}
		st, err := decodeTicketState(enc)
		if err != nil || st.lastSeen >= cutoff {
			return false
		}
		id := string(idb) // copied only for a pruned ticket
		r.forgotten = append(r.forgotten, forgotten{id, seqOf(k)})
		if st.flags&tsOpen != 0 {
			r.add(r.m.cat.ticketsOpen, -1, st.openQ, st.openS)
			if st.openAt != 0 {
				unindex = append(unindex, openKey(st.openQ, st.openAt, id))
				r.openQueues[st.openQ] = true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, f := range r.forgotten[pruned:] {
		if err := r.unindex(f); err != nil {
			return err
		}
	}
	for _, k := range unindex {
		if err := r.tx.Delete(state.SpaceOpen, k); err != nil {
			return err
		}
	}
	for _, pos := range []struct {
		key, next []byte
	}{{pruneSeenKey, seenNext}, {pruneTicketsKey, ticketsNext}} {
		if err := putOrDelete(r.tx, pos.key, pos.next); err != nil {
			return err
		}
	}
	if seenNext == nil && ticketsNext == nil {
		// The pass is complete: the next starts an hour from now.
		return r.tx.Put(state.SpaceMeta, pruneDoneKey, binary.AppendVarint(nil, r.now.Unix()))
	}
	return nil
}

// Pruning forgets ticket states and dedup keys not seen for the retention.
// It walks the store incrementally: each commit visits at most pruneBudget
// keys of each space, continuing where the last one stopped (the position
// is kept in the store), and a new pass begins an hour after the last one
// ended. A commit, and above all the first one after a start, thus never
// reads the whole file: a store of a million tickets is swept in about 250
// commits. Retention counts in days, so the delay is immaterial.
const pruneBudget = 4096

var (
	pruneSeenKey    = []byte("prune_seen_at")
	pruneTicketsKey = []byte("prune_tickets_at")
	pruneDoneKey    = []byte("prune_done")
)

// prunePass reports whether this commit sweeps: a pass is under way, or
// the last one ended more than an hour ago.
func (r *run) prunePass() (bool, error) {
	if r.tx.Get(state.SpaceMeta, pruneSeenKey) != nil || r.tx.Get(state.SpaceMeta, pruneTicketsKey) != nil {
		return true, nil
	}
	done, n := binary.Varint(r.tx.Get(state.SpaceMeta, pruneDoneKey))
	return n <= 0 || r.now.Sub(time.Unix(done, 0)) > time.Hour, nil
}

func putOrDelete(tx *state.Tx, key, value []byte) error {
	if value == nil {
		return tx.Delete(state.SpaceMeta, key)
	}
	return tx.Put(state.SpaceMeta, key, value)
}

// openKey orders open tickets by queue, then creation time.
func openKey(queue string, created int64, id string) []byte {
	k := make([]byte, 0, len(queue)+1+8+len(id))
	k = append(k, queue...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(created))
	return append(k, id...)
}

func (r *run) indexOpen(st *ticketState, id string, created time.Time) error {
	if created.IsZero() {
		created = r.now
	}
	st.openAt = max(created.Unix(), 1)
	r.openQueues[st.openQ] = true
	r.put(state.SpaceOpen, openKey(st.openQ, st.openAt, id), nil)
	return nil
}

func (r *run) unindexOpen(st *ticketState, id string) error {
	if st.openAt == 0 {
		return nil
	}
	r.openQueues[st.openQ] = true
	r.del(state.SpaceOpen, openKey(st.openQ, st.openAt, id))
	var err error
	st.openAt = 0
	return err
}

// oldestOpen sets the creation time of the oldest open ticket of every
// queue whose open tickets changed; a queue with none loses the series.
func (r *run) oldestOpen() {
	for q := range r.openQueues {
		k := r.tx.First(state.SpaceOpen, append([]byte(q), 0))
		if k == nil {
			r.drop(r.m.cat.oldestOpen, q)
			continue
		}
		at := binary.BigEndian.Uint64(k[len(q)+1 : len(q)+9])
		r.set(r.m.cat.oldestOpen, float64(at), q)
	}
}
