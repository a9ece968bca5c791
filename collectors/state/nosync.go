package state

// SetNoSync turns the fsync of every commit off (true) or back on (false,
// which also syncs what was committed meanwhile). `servq backfill` replays
// months of history as thousands of small commits on simulated time: a
// crash in the middle loses the whole replay anyway (it starts again on an
// empty store), so syncing each of them buys nothing and costs minutes.
// Only the process that opened the store may call it, with no commit
// running.
func (s *Store) SetNoSync(on bool) error {
	s.db.NoSync = on
	if on {
		return nil
	}
	return s.db.Sync()
}
