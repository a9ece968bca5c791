package state

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// mappedKiB is how much of the store file is resident in this process's
// mappings (smaps Rss of the mappings of path).
func mappedKiB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps")
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") {
			in = strings.HasSuffix(line, path)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			total += n
		}
	}
	return total
}

// After ReleaseMapped the store's pages no longer count in the process's
// resident memory; reading them again works (they fault back in).
func TestReleaseMapped(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 1000)
	err = s.Update("c", func(tx *Tx) error {
		for i := 0; i < 8000; i++ {
			if err := tx.Put(SpaceTickets, []byte(fmt.Sprintf("k%06d", i)), val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		s.View("c", func(tx *Tx) error { return tx.ForEach(SpaceTickets, func(k, v []byte) error { n++; return nil }) })
		return n
	}
	count()
	if got := mappedKiB(t, s.Path()); got < 4000 {
		t.Fatalf("only %d KiB of the store resident after reading it all", got)
	}
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	if got := mappedKiB(t, s.Path()); got > 64 {
		t.Fatalf("%d KiB of the store still resident after ReleaseMapped", got)
	}
	if n := count(); n != 8000 {
		t.Fatalf("read %d keys after ReleaseMapped, want 8000", n)
	}
}
