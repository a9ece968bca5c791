//go:build unix

package webserver

import "syscall"

// openFileLimit is the soft RLIMIT_NOFILE. Since Go 1.19 the runtime
// raises the soft limit to (one under) the hard one when the process starts (package
// syscall's init, go.dev/issue/46279), as Prometheus does by hand, so
// servq does not do it again: this is already the raised value.
func openFileLimit() (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true
}
