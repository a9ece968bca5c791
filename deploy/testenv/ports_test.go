package testenv

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestFreeAddrReservesOutsideTheEphemeralRange(t *testing.T) {
	lo, hi := reservablePorts()
	seen := map[string]bool{}
	var held string
	t.Run("reserve", func(t *testing.T) {
		for i := 0; i < 200; i++ {
			addr := FreeAddr(t)
			if seen[addr] {
				t.Fatalf("%s reserved twice", addr)
			}
			seen[addr] = true
			_, p, _ := net.SplitHostPort(addr)
			port, _ := strconv.Atoi(p)
			if port < lo || port > hi {
				t.Fatalf("%s is outside %d-%d", addr, lo, hi)
			}
			// Another claimant (another test process) cannot lock it.
			if lockable(t, port) {
				t.Fatalf("%s is reserved but its lock is free", addr)
			}
			held = p
		}
	})
	port, _ := strconv.Atoi(held)
	if !lockable(t, port) {
		t.Fatalf("port %d is still locked after its test ended", port)
	}
}

func lockable(t *testing.T, port int) bool {
	f, err := os.Open(filepath.Join(os.TempDir(), "servq-test-ports", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
