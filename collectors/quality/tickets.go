package quality

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/servq/servq/collectors/state"
)

// Ticket states are stored under a sequence number the model assigns when
// it first sees a ticket (state.SpaceTickets), with an index from the
// ticket's id to that number (state.SpaceTicketIDs).
//
// Why not under the id: a first sync commits chunks of 10,000 records,
// and with ids spread over their space (uuid keys, hashed numbers) every
// chunk's states land on as many random leaf pages, each read, rebuilt and
// rewritten; the cost per ticket grew with the store (a 1M-ticket export
// cost 14× the CPU of a 100k one). Numbered in first-seen order, a chunk's
// new states append at the B+tree's right edge and its updates (the later
// versions of recent tickets) hit recent pages. What stays random is the
// index, whose entries are a third the size of a state and which only a
// ticket's first sighting writes.
//
// The stored value is the id (uvarint length, bytes), then the state's
// encoding: pruning, which walks the states, finds the index entry and
// the open-index key from it.

var ticketSeqKey = []byte("ticket_seq") // meta: the next sequence number (uvarint)

// seqKey encodes n so that keys sort as numbers: its length in bytes, then
// its big-endian bytes without leading zeros (4 bytes up to 16M tickets).
func seqKey(n uint64) []byte {
	var b [9]byte
	binary.BigEndian.PutUint64(b[1:], n)
	i := 1
	for i < 8 && b[i] == 0 {
		i++
	}
	b[i-1] = byte(9 - i)
	return append([]byte(nil), b[i-1:]...)
}

var errTicketRef = errors.New("corrupt ticket index entry")

// getTicket is the encoded state of ticket id as of this run (written
// earlier in the run, else committed), nil when the ticket is new.
func (r *run) getTicket(id string) ([]byte, error) {
	if key, ok := r.seqs[id]; ok {
		return r.stateAt(id, key)
	}
	ids := r.cs.ids
	if n, ok := ids.lookup(id); ok {
		raw, err := r.stateAt(id, seqKey(n))
		if raw != nil || err != nil {
			return raw, err
		}
		// Pruned, or another id's hash: the index decides.
	}
	// The newest entry decides: a ticket pruned and numbered again may
	// have a stale entry in an older run.
	h := idHash(id)
	var v []byte
	if ids.inRuns.mayHave(h) {
		for i := len(ids.runs) - 1; i >= 0 && v == nil; i-- {
			r.res.runProbes++
			if ids.runs[i].filter.mayHave(h) {
				v = r.tx.Get(state.SpaceTicketIDRuns, runKey(ids.runs[i].end, id))
			}
		}
	}
	if v == nil && ids.inIndex.mayHave(h) {
		v = r.tx.Get(state.SpaceTicketIDs, []byte(id))
	}
	if v == nil {
		return nil, nil // a new ticket
	}
	n, w := binary.Uvarint(v)
	if w <= 0 {
		return nil, fmt.Errorf("ticket %q: %w", id, errTicketRef)
	}
	return r.stateAt(id, seqKey(n))
}

// stateAt is the encoded state of id under key as of this run, nil when
// key holds no state of id: pruned (a new ticket to the model, numbered
// afresh) or, for a key found by hash, another ticket's.
func (r *run) stateAt(id string, key []byte) ([]byte, error) {
	v, ok := r.writes[state.SpaceTickets][string(key)]
	raw := v.value
	if !ok {
		raw = r.tx.Get(state.SpaceTickets, key)
	}
	if raw == nil {
		return nil, nil
	}
	sid, st, err := splitStored(raw)
	if err != nil {
		return nil, fmt.Errorf("ticket %q: %w", id, err)
	}
	if string(sid) != id {
		return nil, nil
	}
	r.remember(id, key)
	return st, nil
}

func (r *run) remember(id string, key []byte) {
	if r.seqs == nil {
		r.seqs = map[string][]byte{}
	}
	r.seqs[id] = key
}

// putTicket writes the ticket's state, numbering the ticket when it is new.
// A new ticket's index entry is not written now: see recentIDs.
func (r *run) putTicket(id string, st *ticketState) {
	key, ok := r.seqs[id]
	if !ok {
		n := r.nextSeq()
		key = seqKey(n)
		r.remember(id, key)
		r.fresh = append(r.fresh, idSeq{id, n})
	}
	b := storedID(48+len(st.openQ)+len(st.openS), id)
	r.put(state.SpaceTickets, key, st.appendTo(b))
}

// nextSeq hands out the collector's next ticket number; the counter is
// written with the run's other writes (flushSeq).
func (r *run) nextSeq() uint64 {
	if r.seq == 0 {
		r.seq = readSeq(r.tx)
	}
	r.seqUsed = true
	r.seq++
	return r.seq - 1
}

// readSeq is the next ticket number as committed (1 in a new store).
func readSeq(tx *state.Tx) uint64 {
	if n, w := binary.Uvarint(tx.Get(state.SpaceMeta, ticketSeqKey)); w > 0 && n > 0 {
		return n
	}
	return 1
}

func (r *run) flushSeq() error {
	if !r.seqUsed {
		return nil
	}
	return r.tx.Put(state.SpaceMeta, ticketSeqKey, binary.AppendUvarint(nil, r.seq))
}

// The id index of recently numbered tickets lives in memory.
//
// Written at each ticket's first sighting, the id index took random
// inserts: with ids spread over their space a chunk's 3,000 new tickets
// touched that many index pages of a 1M-ticket store, against a few
// hundred at 100k, and a first sync cost 12.5× the CPU for 10× the
// tickets. Instead, the index entries of tickets numbered at or after
// the committed mark idsMergedKey are not written at all: the states
// themselves, keyed by number, hold the ids, so the newest entries are
// a scan of the states' right edge away. recentIDs is that scan, kept in
// memory and extended by each commit. Once it holds mergeAt ids they are
// frozen, sorted and written mergeSlice per commit as a new run of the
// index (state.SpaceTicketIDRuns, keys runKey(epochEnd, id)), and when
// all are in, the mark moves past them in the same transaction as the
// last slice. An interrupted merge is done again from its start (the
// same puts).
//
// Runs, not one index: inserted into one index of ids, a merge's sorted
// ids still fell all over it, and each slice rewrote most of its pages
// (at 1M tickets ~5,600 of ~10,000 pages for 8,192 ids): a merge cost
// grew with the index, and the 1M first sync paid for seven such
// passes what the 100k one, never merging, did not. A run's prefix is
// larger than any before, so its ids append at the right edge: a merge
// writes about one page per hundred ids whatever the store holds. The
// price is on the lookup side: a ticket not in memory is looked for in
// each run, newest first, but only where the run's Bloom filter (in
// memory, 10 bits an id) says it may be; a filter of all runs' ids in
// front of them spares a new ticket (the most frequent lookup in a first
// sync) the probe per run (one per mergeAt tickets in the store). The
// index of earlier versions (state.SpaceTicketIDs, also what the
// migration writes) is read last, like the oldest run.
type recentIDs struct {
	loaded     bool
	hw         uint64 // next ticket number as of the last commit
	mergedUpto uint64 // committed mark: lower numbers are in the index
	epochEnd   uint64 // 0, or a merge of numbers below this is under way
	// byHash maps a hash of the id to the number, for numbers >=
	// mergedUpto; an id whose hash another id holds is in byID. Integer
	// keys keep the map small and out of the garbage collector's scans.
	byHash map[uint64]uint64
	byID   map[string]uint64
	frozen idList // the merge's ids, sorted
	// inIndex: the ids in the index of earlier versions (SpaceTicketIDs).
	inIndex filters
	// runs: the merged runs of SpaceTicketIDRuns, oldest first;
	// building: the filter of the run under way (epochEnd); inRuns: of
	// all ids in SpaceTicketIDRuns.
	runs     []idRun
	building filters
	inRuns   filters
	pos      int // the first pos frozen ids are in the index (committed)
}

// idRun is a merged run of the index: the ids numbered below end (and at
// or above the run before's end), with a filter of its ids.
type idRun struct {
	end    uint64
	filter filters
}

// runKey is the key of id in the index run of the merge that ended at
// end: end's 8 big-endian bytes, then the id.
func runKey(end uint64, id string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), end), id...)
}

// idList is a sorted list of ids with their numbers, in two allocations
// without pointers.
type idList struct {
	data []byte
	end  []uint32 // id i is data[end[i-1]:end[i]]
	seq  []uint64
}

func (l *idList) len() int { return len(l.end) }

func (l *idList) at(i int) []byte {
	from := uint32(0)
	if i > 0 {
		from = l.end[i-1]
	}
	return l.data[from:l.end[i]]
}

type idSeq struct {
	id  string
	seq uint64
}

func newIDList(ids []idSeq) idList {
	// slices.SortFunc: sort.Slice's reflective swaps were a quarter of a
	// merge's CPU.
	slices.SortFunc(ids, func(a, b idSeq) int { return strings.Compare(a.id, b.id) })
	n := 0
	for _, e := range ids {
		n += len(e.id)
	}
	l := idList{data: make([]byte, 0, n), end: make([]uint32, 0, len(ids)), seq: make([]uint64, 0, len(ids))}
	for _, e := range ids {
		l.data = append(l.data, e.id...)
		l.end = append(l.end, uint32(len(l.data)))
		l.seq = append(l.seq, e.seq)
	}
	return l
}

// idHash is FNV-1a of an id, given as a string or as a stored key (no
// copy to a string).
func idHash[T string | []byte](id T) uint64 {
	if collideForTest {
		return uint64(len(id) % 2)
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// collideForTest gives every id one of two hashes.
var collideForTest bool

// lookup is the number of a recent id; the caller checks the state's id
// (a hash shared with another id).
func (ids *recentIDs) lookup(id string) (uint64, bool) {
	if n, ok := ids.byID[id]; ok {
		return n, true
	}
	n, ok := ids.byHash[idHash(id)]
	return n, ok
}

// add records id's number. A hash another number holds (another id, or
// this id before it was pruned and numbered again) leaves the id to byID,
// which lookups ask first.
func (ids *recentIDs) add(id string, n uint64) {
	h := idHash(id)
	if old, ok := ids.byHash[h]; ok && old != n {
		ids.byID[id] = n
		return
	}
	ids.byHash[h] = n
}

func (ids *recentIDs) forget(id string, n uint64) {
	if ids.byID[id] == n {
		delete(ids.byID, id)
		return
	}
	if h := idHash(id); ids.byHash[h] == n {
		delete(ids.byHash, h)
	}
}

func (ids *recentIDs) size() int { return len(ids.byHash) + len(ids.byID) }

// Variables for the tests, which merge and migrate in small steps.
var (
	// mergeAt: ids held in memory before they are merged into the
	// index (about 8 MB at uuid length), and so the size of a run: a
	// lookup probes one filter per mergeAt tickets in the store.
	mergeAt = 1 << 17
	// mergeSlice: ids a commit merges; it bounds the work and the
	// memory of one transaction (about 80 new index pages).
	mergeSlice = mergeAt / 16
)

var (
	idsMergedKey = []byte("ticket_ids_merged")  // meta: the mark (uvarint)
	idsEpochKey  = []byte("ticket_ids_merging") // meta: epochEnd of a merge under way
)

// forgotten is a ticket pruned by a commit.
type forgotten struct {
	id  string
	seq uint64
}

// mergePlan is what a commit did to the recent ids, applied to memory once
// the commit is durable.
type mergePlan struct {
	epochEnd uint64
	frozen   idList
	filter   filters // of the run under way
	pos      int
	done     bool
}

func metaUint(tx *state.Tx, key []byte) uint64 {
	n, w := binary.Uvarint(tx.Get(state.SpaceMeta, key))
	if w <= 0 {
		return 0
	}
	return n
}

// syncRecent makes the memory match the committed store: read at the
// first commit after a start, and again whenever another writer (a model
// replaced by a reload) committed meanwhile.
func (r *run) syncRecent() error {
	ids := r.cs.ids
	seq := readSeq(r.tx)
	merged := max(metaUint(r.tx, idsMergedKey), 1)
	epoch := metaUint(r.tx, idsEpochKey)
	if ids.loaded && ids.hw == seq && ids.mergedUpto == merged && ids.epochEnd == epoch {
		return nil
	}
	fresh := recentIDs{loaded: true, hw: seq, mergedUpto: merged, epochEnd: epoch,
		byHash: map[uint64]uint64{}, byID: map[string]uint64{}}
	var frozen []idSeq
	err := r.scanStates(merged, seq, func(id string, n uint64) {
		fresh.add(id, n)
		if n < epoch {
			frozen = append(frozen, idSeq{id, n})
		}
	})
	if err != nil {
		return err
	}
	fresh.frozen = newIDList(frozen)
	*ids = fresh
	return r.fillFilters()
}

// scanStates calls fn with the id and number of every state numbered in
// [from, to).
func (r *run) scanStates(from, to uint64, fn func(id string, n uint64)) error {
	if to <= from {
		return nil
	}
	var bad error
	_, err := r.tx.Sweep(state.SpaceTickets, seqKey(from), int(min(to-from, math.MaxInt32)), func(k, v []byte) bool {
		n := seqOf(k)
		if n >= to || bad != nil {
			return false
		}
		id, _, err := splitStoredTicket(v)
		if err != nil {
			bad = fmt.Errorf("ticket state %x: %w", k, err)
			return false
		}
		fn(id, n)
		return false
	})
	if err != nil {
		return err
	}
	return bad
}

// seqOf decodes a state key (seqKey).
func seqOf(k []byte) uint64 {
	var n uint64
	for _, c := range k[1:] {
		n = n<<8 | uint64(c)
	}
	return n
}

// mergeRecent freezes the recent ids once there are mergeAt of them and
// merges the next slice of a frozen set into the index. Ids pruned since
// they were frozen get an entry all the same: a lookup that finds no
// state under it takes the ticket for a new one, as it is.
func (r *run) mergeRecent() error {
	ids := r.cs.ids
	p := &mergePlan{epochEnd: ids.epochEnd, frozen: ids.frozen, filter: ids.building, pos: ids.pos}
	if p.epochEnd == 0 {
		if ids.size() < mergeAt {
			return nil
		}
		// Only committed ids (numbers below hw) are frozen.
		p.epochEnd = ids.hw
		var frozen []idSeq
		if err := r.scanStates(ids.mergedUpto, ids.hw, func(id string, n uint64) {
			frozen = append(frozen, idSeq{id, n})
		}); err != nil {
			return err
		}
		p.frozen, p.pos, p.filter = newIDList(frozen), 0, nil
		if err := r.tx.Put(state.SpaceMeta, idsEpochKey, binary.AppendUvarint(nil, p.epochEnd)); err != nil {
			return err
		}
	}
	if p.filter == nil {
		// Restarted before any of the run was written.
		p.filter = filters{newFilter(p.frozen.len())}
	}
	end := min(p.pos+mergeSlice, p.frozen.len())
	prefix := binary.BigEndian.AppendUint64(nil, p.epochEnd)
	for i := p.pos; i < end; i++ {
		id := p.frozen.at(i)
		// bbolt keeps the key until the commit: one allocation each.
		key := append(append(make([]byte, 0, len(prefix)+len(id)), prefix...), id...)
		if err := r.tx.Put(state.SpaceTicketIDRuns, key, binary.AppendUvarint(nil, p.frozen.seq[i])); err != nil {
			return err
		}
		// Added now: should the commit fail, a bit too many only
		// costs a lookup.
		h := idHash(id)
		p.filter = p.filter.add(h)
		ids.inRuns = ids.inRuns.add(h)
	}
	p.pos = end
	if p.pos == p.frozen.len() {
		p.done = true
		if err := r.tx.Put(state.SpaceMeta, idsMergedKey, binary.AppendUvarint(nil, p.epochEnd)); err != nil {
			return err
		}
		if err := r.tx.Delete(state.SpaceMeta, idsEpochKey); err != nil {
			return err
		}
	}
	r.merge = p
	return nil
}

// publishRecent applies a durable commit's numbering, merge and pruning
// to the memory.
func (r *run) publishRecent() {
	ids := r.cs.ids
	if !ids.loaded {
		return
	}
	for _, f := range r.fresh {
		ids.add(f.id, f.seq)
	}
	if r.seqUsed {
		ids.hw = r.seq
	}
	for _, f := range r.forgotten {
		ids.forget(f.id, f.seq)
	}
	if p := r.merge; p != nil {
		ids.epochEnd, ids.frozen, ids.building, ids.pos = p.epochEnd, p.frozen, p.filter, p.pos
		if p.done {
			ids.runs = append(ids.runs, idRun{end: p.epochEnd, filter: p.filter})
			for h, n := range ids.byHash {
				if n < p.epochEnd {
					delete(ids.byHash, h)
				}
			}
			for id, n := range ids.byID {
				if n < p.epochEnd {
					delete(ids.byID, id)
				}
			}
			ids.mergedUpto, ids.epochEnd, ids.frozen, ids.building, ids.pos = p.epochEnd, 0, idList{}, nil, 0
		}
	}
}

// storedID starts a stored ticket state: the id (uvarint length, bytes),
// with room for an encoding of about n bytes after it.
func storedID(n int, id string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen32+len(id)+n)
	b = binary.AppendUvarint(b, uint64(len(id)))
	return append(b, id...)
}

func storedTicket(id string, enc []byte) []byte {
	return append(storedID(len(enc), id), enc...)
}

func splitStoredTicket(v []byte) (id string, enc []byte, err error) {
	b, enc, err := splitStored(v)
	return string(b), enc, err
}

// splitStored is splitStoredTicket without a copy of the id.
func splitStored(v []byte) (id, enc []byte, err error) {
	l, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < l {
		return nil, nil, errCorrupt
	}
	return v[w : w+int(l)], v[w+int(l):], nil
}

// migrateBatch is how many tickets one migration transaction moves.
var migrateBatch = 10000

// migrateFault, set by tests, fails the migration transaction that has
// moved that many tickets in all (a crash there).
var migrateFault func(moved int) error

// migrateTickets moves the ticket states of a store written before
// sequence numbers (keyed by id in state.SpaceTicketsByID) to the current
// layout, in transactions of migrateBatch tickets: each moves its tickets
// whole (deleted from the old space, numbered, written to the new ones),
// so a crash in between leaves every ticket in exactly one layout and the
// next start goes on. It runs before the collector's first commit.
func (m *Model) migrateTickets(collector string) error {
	var legacy bool
	if err := m.store.View(collector, func(tx *state.Tx) error {
		legacy = tx.HasSpace(state.SpaceTicketsByID)
		return nil
	}); err != nil || !legacy {
		return err
	}
	moved := 0
	for done := false; !done; {
		err := m.store.Update(collector, func(tx *state.Tx) error {
			type entry struct{ id, v []byte }
			var batch []entry
			next, err := tx.Sweep(state.SpaceTicketsByID, nil, migrateBatch, func(k, v []byte) bool {
				batch = append(batch, entry{append([]byte(nil), k...), append([]byte(nil), v...)})
				return true
			})
			if err != nil {
				return err
			}
			r := &run{m: m, tx: tx, seq: readSeq(tx)}
			for _, e := range batch {
				// The legacy key is the id: its state may already be
				// in the new layout only if a migration was cut off
				// between two of its own writes, which one
				// transaction excludes.
				n := r.nextSeq()
				if err := tx.Put(state.SpaceTicketIDs, e.id, binary.AppendUvarint(nil, n)); err != nil {
					return err
				}
				if err := tx.Put(state.SpaceTickets, seqKey(n), storedTicket(string(e.id), e.v)); err != nil {
					return err
				}
			}
			if err := r.flushSeq(); err != nil {
				return err
			}
			// Migrated tickets are in the index.
			if err := tx.Put(state.SpaceMeta, idsMergedKey, binary.AppendUvarint(nil, r.seq)); err != nil {
				return err
			}
			moved += len(batch)
			if migrateFault != nil {
				if err := migrateFault(moved); err != nil {
					return err
				}
			}
			if next != nil {
				return nil
			}
			done = true
			// The pruning position was an id: start the tickets'
			// sweep again from the first number.
			if err := tx.Delete(state.SpaceMeta, pruneTicketsKey); err != nil {
				return err
			}
			return tx.DropSpace(state.SpaceTicketsByID)
		})
		if err != nil {
			return fmt.Errorf("migrating ticket states to numbered keys (%d moved so far): %w", moved, err)
		}
		// Else the whole store, read once, would stay counted as
		// servq's memory (see state.Store.ReleaseMapped).
		if err := m.store.ReleaseMapped(); err != nil {
			m.log.Debug("releasing the store's mapped pages", "err", err)
		}
	}
	m.log.Info("ticket states migrated to numbered keys", "collector", collector, "tickets", moved)
	return nil
}

// fillFilters builds the filters of the index's ids: of the index of
// earlier versions, of each run, and of the run under way.
func (r *run) fillFilters() error {
	ids := r.cs.ids
	f := filters{newFilter(r.tx.Count(state.SpaceTicketIDs))}
	err := r.tx.ForEach(state.SpaceTicketIDs, func(k, _ []byte) error {
		f = f.add(idHash(k))
		return nil
	})
	if err != nil {
		return err
	}
	ids.inIndex = f
	ids.runs, ids.building = nil, nil
	ids.inRuns = filters{newFilter(r.tx.Count(state.SpaceTicketIDRuns) + mergeAt)}
	return r.tx.ForEach(state.SpaceTicketIDRuns, func(k, _ []byte) error {
		if len(k) < 8 {
			return fmt.Errorf("ticket index run key %x: %w", k, errTicketRef)
		}
		end, h := binary.BigEndian.Uint64(k), idHash(k[8:])
		ids.inRuns = ids.inRuns.add(h)
		switch {
		case end == ids.epochEnd:
			if ids.building == nil {
				ids.building = filters{newFilter(ids.frozen.len())}
			}
			ids.building = ids.building.add(h)
		case len(ids.runs) == 0 || ids.runs[len(ids.runs)-1].end != end:
			ids.runs = append(ids.runs, idRun{end: end, filter: filters{newFilter(mergeAt)}.add(h)})
		default:
			last := &ids.runs[len(ids.runs)-1]
			last.filter = last.filter.add(h)
		}
		return nil
	})
}

// unindex deletes the index entry of a pruned ticket: in the index of
// earlier versions, and in the run its number belongs to (a missing key
// costs a lookup).
func (r *run) unindex(f forgotten) error {
	if err := r.tx.Delete(state.SpaceTicketIDs, []byte(f.id)); err != nil {
		return err
	}
	ids := r.cs.ids
	end := uint64(0)
	if i := sort.Search(len(ids.runs), func(i int) bool { return ids.runs[i].end > f.seq }); i < len(ids.runs) {
		end = ids.runs[i].end
	} else if p := r.merge; p != nil && f.seq < p.epochEnd {
		end = p.epochEnd // this commit's merge, done or not
	} else if f.seq < ids.epochEnd {
		end = ids.epochEnd
	}
	if end == 0 {
		return nil // numbered since the last merge: in memory only
	}
	return r.tx.Delete(state.SpaceTicketIDRuns, runKey(end, f.id))
}

// filters is a Bloom filter of the ids in the index: a new ticket's id,
// not in it, mostly needs no index lookup (a random page of a large
// index). It is built at the first commit after a start from the index
// and extended by every merge; a false positive costs one lookup. A full
// filter is followed by one twice its size instead of being rebuilt from
// the index (a scan of every index page in one commit).
type filters []*filter

type filter struct {
	bits []uint64
	n    int // ids added
}

// newFilter sizes a filter for about n ids at 10 bits each (under 1 %
// false positives).
func newFilter(n int) *filter {
	words := 1
	for words*64 < 10*n {
		words *= 2
	}
	return &filter{bits: make([]uint64, words)}
}

func (f *filter) full() bool { return f.n*10 >= len(f.bits)*64 }

// add adds h. Nil filters (not built: every id may be in the index) stay
// nil: a filter of only the ids added would deny the others.
func (fs filters) add(h uint64) filters {
	if fs == nil {
		return nil
	}
	if last := fs[len(fs)-1]; last.full() {
		fs = append(fs, newFilter(2*last.n))
	}
	f := fs[len(fs)-1]
	mask := uint64(len(f.bits)*64 - 1)
	for i, d := uint64(0), h>>33|1; i < 4; i++ {
		b := (h + i*d) & mask
		f.bits[b/64] |= 1 << (b % 64)
	}
	f.n++
	return fs
}

// mayHave is false only for an id never added; nil filters (not built
// yet) may have any id.
func (fs filters) mayHave(h uint64) bool {
	if fs == nil {
		return true
	}
	for _, f := range fs {
		mask := uint64(len(f.bits)*64 - 1)
		in := true
		for i, d := uint64(0), h>>33|1; i < 4 && in; i++ {
			b := (h + i*d) & mask
			in = f.bits[b/64]&(1<<(b%64)) != 0
		}
		if in {
			return true
		}
	}
	return false
}
