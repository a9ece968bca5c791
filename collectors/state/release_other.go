//go:build !linux

package state

// releaseMapped is a no-op where MADV_DONTNEED is not known to keep the
// pages of a shared file mapping in the page cache.
func releaseMapped(uintptr, int64) error { return nil }
