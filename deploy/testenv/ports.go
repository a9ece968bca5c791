package testenv

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// FreeAddr reserves a 127.0.0.1:port for a server the test starts and keeps
// it reserved until the test ends.
//
// Asking the kernel for port 0 and closing the listener is not enough: the
// port then returns to the ephemeral range, where any outgoing connection
// (test packages run in parallel and make thousands) or another test's
// port-0 listener can take it before the server binds. CI failed that way:
// servq's bind failed with "address already in use" while a Prometheus of
// another test answered on the same port. So ports come from below the
// kernel's ephemeral range, where the kernel never hands out a port by
// itself, and the test processes running in parallel claim each with an
// flock on a file in a shared directory. The lock dies with the process,
// so a killed test run leaves nothing behind.
func FreeAddr(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "servq-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o1777) // shared by every user that runs tests
	lo, hi := reservablePorts()
	n := hi - lo + 1
	first := rand.IntN(n)
	for i := 0; i < n; i++ {
		port := lo + (first+i)%n
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// Something outside the tests may listen there.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			f.Close()
			continue
		}
		l.Close()
		// Cleanups run last-in first-out, so the lock outlives the server
		// started on the port after this call.
		t.Cleanup(func() { f.Close() })
		return addr
	}
	t.Fatalf("no free port in %d-%d", lo, hi)
	return ""
}

// reservablePorts is the range FreeAddr picks from: the 10,000 ports below
// the kernel's ephemeral range, or above it when it starts too low.
func reservablePorts() (lo, hi int) {
	ephLo, ephHi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if a, err := strconv.Atoi(f[0]); err == nil {
				if z, err := strconv.Atoi(f[1]); err == nil {
					ephLo, ephHi = a, z
				}
			}
		}
	}
	if ephLo-1 >= 11024 {
		return ephLo - 10000, ephLo - 1
	}
	return ephHi + 1, 65535
}
