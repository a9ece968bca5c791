// Package state is servq's embedded, crash-safe store. Each collector owns a
// namespace holding its cursor, its dedup keys, its open-ticket state and the
// committed values of its counters; one collection run is committed in one
// transaction, so after any crash (even kill -9 between fetch and commit)
// the store holds either all of a run or none of it.
package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Spaces inside a collector's namespace.
const (
	SpaceMeta   = "meta"   // cursor and bookkeeping
	SpaceSeries = "series" // committed metric values
	// SpaceTickets holds per-ticket event state under an internal
	// sequence number assigned in first-seen order (see
	// SpaceTicketIDs), so that a chunk's writes land on the B+tree's
	// recent pages whatever the ticket ids look like.
	SpaceTickets = "ticket_states"
	// SpaceTicketIDs maps a ticket's id to its sequence number: small
	// entries, so random ids (uuid keys) touch few pages. Written by
	// earlier versions' merges and by the migration; merges now write
	// SpaceTicketIDRuns.
	SpaceTicketIDs = "ticket_ids"
	// SpaceTicketIDRuns maps a ticket's id to its sequence number too,
	// in runs: each merge of recently numbered tickets writes its ids,
	// sorted, under a prefix larger than any before, so a merge appends
	// at the B+tree's right edge instead of rewriting pages all over one
	// index (see quality's recentIDs).
	SpaceTicketIDRuns = "ticket_id_runs"
	// SpaceTicketsByID is the layout before sequence numbers: state
	// keyed by ticket id. Only the migration reads it (quality.Model).
	SpaceTicketsByID = "tickets"
	SpaceSeen        = "seen"   // dedup keys of calls and survey responses
	SpaceLabels      = "labels" // admitted label values (label caps)
	// SpaceDeadlines indexes open tickets' SLO deadlines by time, so that a
	// breach is counted when the deadline passes, not when the late reply
	// finally comes.
	SpaceDeadlines = "deadlines"
	// SpaceOpen indexes open tickets by queue and creation time, so that
	// the oldest open ticket of a queue is one seek away.
	SpaceOpen = "open"
)

var spaces = []string{SpaceMeta, SpaceSeries, SpaceTickets, SpaceTicketIDs, SpaceTicketIDRuns, SpaceSeen, SpaceLabels, SpaceDeadlines, SpaceOpen}

var rootBucket = []byte("collectors")

// ticketsFill is the fill of SpaceTickets' and SpaceTicketIDRuns' pages
// when they split.
const ticketsFill = 0.9

// FileName is the database file inside the storage directory.
const FileName = "servq.db"

// Store is the state database of one servq process.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens (creating if needed) the store in dir. A second servq on the
// same directory gets a clear error instead of waiting forever for the lock.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state: creating storage directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 2 * time.Second,
		// Map generously up front: growing the mapping while a large
		// first backfill commits remaps the file again and again.
		InitialMmapSize: 256 << 20,
		// The hash-map freelist keeps allocation O(1) as the file grows.
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("state: %s is locked by another process (is another servq running with the same --storage.path?)", path)
		}
		return nil, fmt.Errorf("state: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(rootBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state: initialising %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// ReleaseMapped tells the kernel that the process no longer needs the
// store's pages mapped. bbolt reads the file through a shared mmap, and
// every page a commit or a read touched stays counted in the process's
// resident memory (RssFile) although it is only page cache: a first sync
// that rewrites pages all over a large store would show the whole file as
// servq's memory. Dropped mappings cost nothing to restore (a minor fault
// on the next access, no I/O while the page is cached). The mapping does
// not move meanwhile: bbolt remaps only under its mmap lock, which a read
// transaction holds shared.
func (s *Store) ReleaseMapped() error {
	return s.db.View(func(tx *bolt.Tx) error {
		return releaseMapped(s.db.Info().Data, tx.Size())
	})
}

// PagesWritten is the number of page writes of the transactions
// committed since the store was opened (bbolt's statistics): what a
// commit rewrote, for tests and benchmarks of write amplification.
func (s *Store) PagesWritten() int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}

// Tx is a transaction on one collector's namespace.
type Tx struct {
	ns *bolt.Bucket
}

// Update runs fn in a read-write transaction on the collector's namespace
// and commits (fsync'd) when fn returns nil; on error nothing is written.
func (s *Store) Update(collector string, fn func(*Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		ns, err := tx.Bucket(rootBucket).CreateBucketIfNotExists([]byte(collector))
		if err != nil {
			return err
		}
		for _, sp := range spaces {
			b, err := ns.CreateBucketIfNotExists([]byte(sp))
			if err != nil {
				return err
			}
			if sp == SpaceTickets || sp == SpaceTicketIDRuns {
				// Numbered states and index runs are appended at the
				// right edge: a split there leaves the left page as
				// full as this, not half empty (bbolt's default suits
				// random keys).
				b.FillPercent = ticketsFill
			}
		}
		return fn(&Tx{ns: ns})
	})
}

// View runs fn in a read-only transaction. A collector that never committed
// has an empty namespace: every Get returns nil.
func (s *Store) View(collector string, fn func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return fn(&Tx{ns: tx.Bucket(rootBucket).Bucket([]byte(collector))})
	})
}

// Collectors lists the namespaces in the store.
func (s *Store) Collectors() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(rootBucket).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// Drop removes a collector's namespace entirely.
func (s *Store) Drop(collector string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(rootBucket).DeleteBucket([]byte(collector))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

func (t *Tx) space(name string) *bolt.Bucket {
	if t.ns == nil {
		return nil
	}
	return t.ns.Bucket([]byte(name))
}

// HasSpace reports whether space exists in the namespace. Update creates
// the current spaces; a retired one (SpaceTicketsByID) exists only in a
// store written by an older version until it is dropped.
func (t *Tx) HasSpace(name string) bool { return t.space(name) != nil }

// DropSpace deletes space and everything in it (a retired layout, once
// migrated). Dropping a space that does not exist is no error.
func (t *Tx) DropSpace(name string) error {
	err := t.ns.DeleteBucket([]byte(name))
	if errors.Is(err, bolt.ErrBucketNotFound) {
		return nil
	}
	return err
}

// Get returns the value of key in space, or nil. The slice is valid only
// inside the transaction.
func (t *Tx) Get(space string, key []byte) []byte {
	b := t.space(space)
	if b == nil {
		return nil
	}
	return b.Get(key)
}

// Put stores key=value in space.
func (t *Tx) Put(space string, key, value []byte) error {
	return t.space(space).Put(key, value)
}

// Delete removes key from space.
func (t *Tx) Delete(space string, key []byte) error {
	return t.space(space).Delete(key)
}

// ForEach calls fn for every key in space, in key order. fn must not modify
// the space; collect keys and delete them afterwards.
func (t *Tx) ForEach(space string, fn func(k, v []byte) error) error {
	b := t.space(space)
	if b == nil {
		return nil
	}
	return b.ForEach(fn)
}

// Scan calls fn for the keys of space from the first one up to (not
// including) the first key >= end, in order. fn may not modify the space.
func (t *Tx) Scan(space string, end []byte, fn func(k, v []byte) error) error {
	b := t.space(space)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil && string(k) < string(end); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// First returns the first key of space that starts with prefix, or nil.
func (t *Tx) First(space string, prefix []byte) []byte {
	b := t.space(space)
	if b == nil {
		return nil
	}
	k, _ := b.Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil
	}
	return append([]byte(nil), k...)
}

// Contains sets found[i] for each of keys (ascending, no duplicates) that
// is in space. It walks the space once in key order and seeks only when a
// stored key may lie between two asked ones: asking for a run of new keys
// past the end of the space (a log's next calls) costs one seek, not one
// lookup each.
func (t *Tx) Contains(space string, keys [][]byte, found []bool) {
	b := t.space(space)
	if b == nil || len(keys) == 0 {
		return
	}
	c := b.Cursor()
	// next is the smallest stored key >= the key last sought; nil when
	// there is none.
	next, _ := c.Seek(keys[0])
	for i, k := range keys {
		if i > 0 && (next == nil || bytes.Compare(next, k) > 0) {
			continue // keys[i-1] < k < next: k is not stored
		}
		if i > 0 && bytes.Compare(next, k) < 0 {
			next, _ = c.Seek(k)
		}
		found[i] = next != nil && bytes.Equal(next, k)
	}
}

// Floor returns the greatest key of space at or before key with its value
// (nil when there is none), and the first key after key (nil when there is
// none). The slices are valid only inside the transaction.
func (t *Tx) Floor(space string, key []byte) (k, v, next []byte) {
	b := t.space(space)
	if b == nil {
		return nil, nil, nil
	}
	c := b.Cursor()
	nk, nv := c.Seek(key)
	if nk != nil && bytes.Equal(nk, key) {
		next, _ = c.Next()
		return nk, nv, next
	}
	if nk == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	return k, v, nk
}

// DeleteIf deletes every key of space for which drop returns true. bbolt
// forbids deleting while iterating, so keys are collected first.
func (t *Tx) DeleteIf(space string, drop func(k, v []byte) bool) error {
	var doomed [][]byte
	err := t.ForEach(space, func(k, v []byte) error {
		if drop(k, v) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range doomed {
		if err := t.Delete(space, k); err != nil {
			return err
		}
	}
	return nil
}

// Sweep visits at most budget keys of space in order, starting at the
// first key >= from (nil: the first key), deletes those for which drop
// returns true, and returns the key to continue at, or nil once the end of
// the space was reached. A long walk is thus spread over many
// transactions, each touching a bounded part of the file.
func (t *Tx) Sweep(space string, from []byte, budget int, drop func(k, v []byte) bool) (next []byte, err error) {
	b := t.space(space)
	if b == nil {
		return nil, nil
	}
	var doomed [][]byte
	c := b.Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	for n := 0; k != nil && n < budget; n++ {
		if drop(k, v) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		k, v = c.Next()
	}
	if k != nil {
		next = append([]byte(nil), k...)
	}
	for _, d := range doomed {
		if err := b.Delete(d); err != nil {
			return nil, err
		}
	}
	return next, nil
}

// Count is the number of keys in space.
func (t *Tx) Count(space string) int {
	b := t.space(space)
	if b == nil {
		return 0
	}
	return b.Stats().KeyN
}

var cursorKey = []byte("cursor")

// Cursor returns the collector's committed cursor (nil before the first
// commit), copied so it outlives the transaction.
func (t *Tx) Cursor() []byte {
	v := t.Get(SpaceMeta, cursorKey)
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}

// SetCursor stores the cursor to commit with this transaction.
func (t *Tx) SetCursor(c []byte) error {
	if c == nil {
		return t.Delete(SpaceMeta, cursorKey)
	}
	return t.Put(SpaceMeta, cursorKey, c)
}

var backoffKey = []byte("backoff_until")

// BackoffUntil is when the vendor allows the collector's next request
// (a remembered Retry-After); zero when it set none.
func (t *Tx) BackoffUntil() time.Time {
	v := t.Get(SpaceMeta, backoffKey)
	if v == nil {
		return time.Time{}
	}
	at, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return time.Time{} // unreadable: better one early request than none ever
	}
	return at
}

// SetBackoffUntil remembers (or, with the zero time, forgets) when the
// collector may ask its vendor again. It lives next to the cursor so that
// a restart honours it too.
func (t *Tx) SetBackoffUntil(at time.Time) error {
	if at.IsZero() {
		return t.Delete(SpaceMeta, backoffKey)
	}
	return t.Put(SpaceMeta, backoffKey, []byte(at.UTC().Format(time.RFC3339Nano)))
}
