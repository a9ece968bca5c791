//go:build !unix

package webserver

func openFileLimit() (uint64, bool) { return 0, false }
