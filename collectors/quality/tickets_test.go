package quality

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

// syncBatches is a first sync and its follow-ups: batch c brings tickets
// 5c..5c+4 opened, the tickets of two batches before replied and those of
// four batches before solved; ids spread over their space as uuid keys.
func syncBatches(n int) []collectors.Batch {
	out := make([]collectors.Batch, n)
	for c := range out {
		b := &out[c]
		b.Now = t0.Add(time.Duration(c) * time.Hour)
		for v, back := range []int{0, 2, 4} {
			if c-back < 0 {
				continue
			}
			for i := 5 * (c - back); i < 5*(c-back+1); i++ {
				b.Tickets = append(b.Tickets, firstSyncTicket(i, v, true))
			}
		}
	}
	return out
}

func testCfg(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.NewSeriesDelay = new(config.Duration)
	return cfg
}

// replay commits the batches and returns how many tickets were new and
// how many were known.
func replay(t *testing.T, m *Model, batches []collectors.Batch) (accepted, duplicate int) {
	t.Helper()
	for i := range batches {
		b := batches[i]
		b.Tickets = append([]record.Ticket(nil), b.Tickets...)
		res, err := m.Commit("export", &b, []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		accepted += res.Accepted["ticket"]
		duplicate += res.Duplicate["ticket"]
	}
	return accepted, duplicate
}

// sameValues fails unless got and want hold the same series and values.
func sameValues(t *testing.T, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d series, want %d", len(got), len(want))
	}
	expect(t, got, want)
}

// control is what the batches count in one model that neither migrates,
// merges nor restarts.
func control(t *testing.T, batches []collectors.Batch) map[string]float64 {
	t.Helper()
	m, st := newModel(t, t.TempDir(), firstSyncConfig)
	defer st.Close()
	replay(t, m, batches)
	return values(t, m)
}

// TestRecentIDsMergeIntoTheIndexAcrossRestarts: new tickets' index
// entries are kept in memory and merged into the index in slices; restarts
// in the middle of a merge, and between, lose or double nothing.
func TestRecentIDsMergeIntoTheIndexAcrossRestarts(t *testing.T) {
	t.Run("hash=fnv", testRecentIDsMerge)
	// Every id with the same hash: lookups by hash find other tickets'
	// states and fall back to exact ids and the index.
	defer func() { collideForTest = false }()
	collideForTest = true
	t.Run("hash=colliding", testRecentIDsMerge)
}

func testRecentIDsMerge(t *testing.T) {
	batches := syncBatches(24)
	want := control(t, batches)

	defer func(a, s int) { mergeAt, mergeSlice = a, s }(mergeAt, mergeSlice)
	mergeAt, mergeSlice = 12, 5
	dir := t.TempDir()
	m, st := newModel(t, dir, firstSyncConfig)
	merging := false
	for i, cut := range []int{3, 7, 8, 13, 17, 24} {
		from := 0
		if i > 0 {
			from = []int{3, 7, 8, 13, 17, 24}[i-1]
		}
		replay(t, m, batches[from:cut])
		st.View("export", func(tx *state.Tx) error {
			merging = merging || tx.Get(state.SpaceMeta, idsEpochKey) != nil
			return nil
		})
		st.Close()
		m, st = newModel(t, dir, firstSyncConfig)
	}
	defer st.Close()
	if !merging {
		t.Error("no restart came in the middle of a merge")
	}
	// Every ticket is found: in the index's runs, or numbered after its
	// mark.
	st.View("export", func(tx *state.Tx) error {
		mark := metaUint(tx, idsMergedKey)
		index := runEntries(t, tx)
		if len(index) == 0 || mark <= 1 || tx.Count(state.SpaceTicketIDs) != 0 {
			t.Errorf("nothing merged into runs: %d run entries, %d in the old index, mark %d", len(index), tx.Count(state.SpaceTicketIDs), mark)
		}
		return tx.ForEach(state.SpaceTickets, func(k, v []byte) error {
			id, _, err := splitStoredTicket(v)
			if err != nil {
				return err
			}
			if seqOf(k) >= mark {
				return nil
			}
			if n := index[id]; n != seqOf(k) {
				t.Errorf("ticket %s numbered %d below the mark %d: index says %d", id, seqOf(k), mark, n)
			}
			return nil
		})
	})
	sameValues(t, values(t, m), want)
	// A ticket seen again is known, wherever its index entry is.
	if acc, dup := replay(t, m, batches[2:24]); acc != 0 || dup == 0 {
		t.Errorf("tickets sent again: %d new, %d known; want 0 new", acc, dup)
	}
}

// runEntries is the index's runs as a map from id to number, a newer
// run's entry replacing an older one's.
func runEntries(t *testing.T, tx *state.Tx) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	err := tx.ForEach(state.SpaceTicketIDRuns, func(k, v []byte) error {
		n, w := binary.Uvarint(v)
		if len(k) < 8 || w <= 0 {
			return fmt.Errorf("run entry %x=%x", k, v)
		}
		out[string(k[8:])] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMergeCostDoesNotGrowWithTheIndex: a merge writes its ids as a run
// at the index's right edge, so the pages it writes depend on the ids it
// merges, not on how many the index holds already. Merged into one index
// of ids, a merge of scattered ids rewrote pages all over it: with 5,000
// ids in the index, a merge of 500 wrote almost 4 times the pages (65)
// it wrote with 500 (17).
func TestMergeCostDoesNotGrowWithTheIndex(t *testing.T) {
	defer func(a, s int) { mergeAt, mergeSlice = a, s }(mergeAt, mergeSlice)
	mergeAt, mergeSlice = 500, 500
	// pages is what the merge of the last 500 tickets writes after n.
	pages := func(n int) int64 {
		m, st := newModel(t, t.TempDir(), firstSyncConfig)
		defer st.Close()
		batch := func(from, to int) {
			b := collectors.Batch{Now: t0.Add(30 * 24 * time.Hour)}
			for i := from; i < to; i++ {
				b.Tickets = append(b.Tickets, firstSyncTicket(i, 0, true))
			}
			if _, err := m.Commit("export", &b, []byte(fmt.Sprint(to))); err != nil {
				t.Fatal(err)
			}
		}
		// Each batch of 500 new tickets is merged by the next commit.
		for i := 0; i < n; i += 500 {
			batch(i, i+500)
		}
		batch(n, n+500)
		before := st.PagesWritten()
		batch(n+500, n+500) // merges the last 500 and nothing else
		var merged uint64
		st.View("export", func(tx *state.Tx) error { merged = metaUint(tx, idsMergedKey); return nil })
		if want := uint64(n + 500 + 1); merged != want {
			t.Fatalf("mark %d after the merge, want %d", merged, want)
		}
		return st.PagesWritten() - before
	}
	small, large := pages(500), pages(5000)
	t.Logf("pages written by a merge of 500: %d into 500, %d into 5,000", small, large)
	if large > 2*small {
		t.Errorf("merging 500 ids wrote %d pages into an index of 500 ids, %d into one of 5,000", small, large)
	}
}

// TestPrunedTicketsLeaveTheIndexRuns: pruning a ticket deletes its entry
// from the run its number belongs to, and a pruned ticket sent again is a
// new ticket, numbered and merged again.
func TestPrunedTicketsLeaveTheIndexRuns(t *testing.T) {
	defer func(a, s int) { mergeAt, mergeSlice = a, s }(mergeAt, mergeSlice)
	mergeAt, mergeSlice = 10, 4
	m, st := newModel(t, t.TempDir(), firstSyncConfig) // retention 3650d
	defer st.Close()
	now := t0.Add(10 * 24 * time.Hour) // after the tickets' solve
	send := func(from, to int) int {
		b := collectors.Batch{Now: now}
		for i := from; i < to; i++ {
			b.Tickets = append(b.Tickets, firstSyncTicket(i, 2, true))
		}
		res, err := m.Commit("export", &b, []byte(now.String()))
		if err != nil {
			t.Fatal(err)
		}
		return res.Accepted["ticket"]
	}
	entries := func() (n int) {
		st.View("export", func(tx *state.Tx) error { n = len(runEntries(t, tx)); return nil })
		return n
	}
	if acc := send(0, 40); acc != 40 {
		t.Fatalf("%d new tickets, want 40", acc)
	}
	for i := 0; i < 10; i++ {
		send(0, 0) // merges, 4 ids per commit
	}
	if n := entries(); n < 30 {
		t.Fatalf("%d ids in the index's runs after the merges, want at least 30", n)
	}
	now = now.Add(3651 * 24 * time.Hour)
	send(0, 0)
	if n := entries(); n != 0 {
		t.Errorf("%d ids left in the index's runs after every ticket was pruned", n)
	}
	if acc := send(0, 40); acc != 40 {
		t.Errorf("pruned tickets sent again: %d new, want 40", acc)
	}
	for i := 0; i < 10; i++ {
		send(0, 0)
	}
	if n := entries(); n < 30 {
		t.Errorf("%d ids in the index's runs after the tickets came back, want at least 30", n)
	}
	if acc := send(0, 40); acc != 0 {
		t.Errorf("tickets sent a third time: %d new, want 0", acc)
	}
}

// TestNewTicketsProbeNoRunFilter: a new ticket's lookup asks the filter
// of all runs' ids and, not in it, none of the runs' own filters, whose
// number grows with the store (one per mergeAt tickets); a ticket in a
// run is still found there.
func TestNewTicketsProbeNoRunFilter(t *testing.T) {
	defer func(a, s int) { mergeAt, mergeSlice = a, s }(mergeAt, mergeSlice)
	mergeAt, mergeSlice = 50, 50
	m, st := newModel(t, t.TempDir(), firstSyncConfig)
	defer st.Close()
	now := t0.Add(100 * 24 * time.Hour)
	send := func(from, to int) Result {
		b := collectors.Batch{Now: now}
		for i := from; i < to; i++ {
			b.Tickets = append(b.Tickets, firstSyncTicket(i, 2, true))
		}
		res, err := m.Commit("export", &b, []byte(fmt.Sprint(to)))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i := 0; i < 500; i += 50 {
		send(i, i+50) // each commit merges the batch before as a run
	}
	res := send(500, 700)
	if runs := len(m.cols["export"].ids.runs); runs < 8 {
		t.Fatalf("%d runs, want at least 8", runs)
	}
	// Without the filter of all runs, each new ticket probes every run
	// (here nine: 1,800 probes); with it, only its false positives do.
	if res.Accepted["ticket"] != 200 || res.runProbes >= 200 {
		t.Errorf("200 new tickets: %d accepted, %d probes of a run's filter; want 200 and fewer than one per ticket", res.Accepted["ticket"], res.runProbes)
	}
	if res := send(0, 10); res.Accepted["ticket"] != 0 || res.runProbes == 0 {
		t.Errorf("10 tickets of the first run: %d new, %d run filters probed; want 0 new, found in the runs", res.Accepted["ticket"], res.runProbes)
	}
}

// TestTwoModelsOnOneStoreShareTheRecentIDs: a reload builds a new model on
// the same store while the old one may still commit; each commit first
// brings its in-memory ids up to date with the store, so neither takes a
// ticket the other numbered for a new one.
func TestTwoModelsOnOneStoreShareTheRecentIDs(t *testing.T) {
	batches := syncBatches(20)
	m0, st0 := newModel(t, t.TempDir(), firstSyncConfig)
	wantAcc, wantDup := replay(t, m0, batches)
	st0.Close()
	defer func(a, s int) { mergeAt, mergeSlice = a, s }(mergeAt, mergeSlice)
	mergeAt, mergeSlice = 12, 5
	m1, st := newModel(t, t.TempDir(), firstSyncConfig)
	defer st.Close()
	m2, err := New(testCfg(t, firstSyncConfig), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	var acc, dup int
	for i := range batches {
		m := m1
		if i%3 == 1 {
			m = m2
		}
		a, d := replay(t, m, batches[i:i+1])
		acc, dup = acc+a, dup+d
	}
	if acc != wantAcc || dup != wantDup {
		t.Errorf("%d new tickets, %d known; want %d and %d", acc, dup, wantAcc, wantDup)
	}
}

// legacyLayout rewrites a store as servq wrote it before ticket numbers:
// each state under its ticket id in the space "tickets", no index, the
// pruning position an id.
func legacyLayout(t *testing.T, dir, collector string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, state.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		ns := tx.Bucket([]byte("collectors")).Bucket([]byte(collector))
		old, err := ns.CreateBucket([]byte(state.SpaceTicketsByID))
		if err != nil {
			return err
		}
		err = ns.Bucket([]byte(state.SpaceTickets)).ForEach(func(_, v []byte) error {
			id, enc, err := splitStoredTicket(v)
			if err != nil {
				return err
			}
			return old.Put([]byte(id), enc)
		})
		if err != nil {
			return err
		}
		for _, sp := range []string{state.SpaceTickets, state.SpaceTicketIDs, state.SpaceTicketIDRuns} {
			if err := ns.DeleteBucket([]byte(sp)); err != nil {
				return err
			}
		}
		meta := ns.Bucket([]byte(state.SpaceMeta))
		for _, k := range [][]byte{ticketSeqKey, idsMergedKey, idsEpochKey} {
			if err := meta.Delete(k); err != nil {
				return err
			}
		}
		return meta.Put(pruneTicketsKey, []byte("2654435761"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTicketStatesMigrateFromIDKeys: a store written before ticket numbers
// is migrated on open, in transactions of migrateBatch tickets; a crash
// in the middle leaves a store the next start finishes, and the tickets'
// later versions count as updates, not new tickets.
func TestTicketStatesMigrateFromIDKeys(t *testing.T) {
	batches := syncBatches(16)
	want := control(t, batches)

	dir := t.TempDir()
	m, st := newModel(t, dir, firstSyncConfig)
	replay(t, m, batches[:8])
	st.Close()
	legacyLayout(t, dir, "export")

	defer func(n int) { migrateBatch = n }(migrateBatch)
	migrateBatch = 7
	crash := errors.New("killed")
	migrateFault = func(moved int) error {
		if moved > 14 {
			return crash
		}
		return nil
	}
	defer func() { migrateFault = nil }()
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(testCfg(t, firstSyncConfig), st, nil); !errors.Is(err, crash) {
		t.Fatalf("migration with a crash after two transactions: %v", err)
	}
	var legacy, migrated int
	st.View("export", func(tx *state.Tx) error {
		legacy, migrated = tx.Count(state.SpaceTicketsByID), tx.Count(state.SpaceTickets)
		return nil
	})
	if legacy == 0 || migrated != 14 {
		t.Fatalf("after the crash: %d tickets in the old layout, %d in the new; want some and 14", legacy, migrated)
	}
	st.Close()

	migrateFault = nil
	m, st = newModel(t, dir, firstSyncConfig)
	defer st.Close()
	st.View("export", func(tx *state.Tx) error {
		if tx.HasSpace(state.SpaceTicketsByID) {
			t.Error("the old layout's space is still there")
		}
		if n := tx.Count(state.SpaceTickets); n != legacy+migrated || tx.Count(state.SpaceTicketIDs) != n {
			t.Errorf("%d states, %d index entries; want %d of each", n, tx.Count(state.SpaceTicketIDs), legacy+migrated)
		}
		if tx.Get(state.SpaceMeta, pruneTicketsKey) != nil {
			t.Error("the pruning position of the old layout was kept")
		}
		return nil
	})
	replay(t, m, batches[8:])
	sameValues(t, values(t, m), want)
}
