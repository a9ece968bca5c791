package state

import "syscall"

// releaseMapped drops the process's mappings of size bytes of the store
// from data (MADV_DONTNEED on a shared file mapping): the pages stay in
// the page cache and fault back in on the next access, without I/O.
func releaseMapped(data uintptr, size int64) error {
	if data == 0 || size <= 0 {
		return nil
	}
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, data, uintptr(size), syscall.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}
