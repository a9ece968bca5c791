package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Contains answers what one Get per key would, whatever the interleaving of
// stored and asked keys (runs past the end, before the start, between).
func TestContainsMatchesGet(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	key := func(n int) []byte { return []byte(fmt.Sprintf("c:%06d", n)) }
	err = st.Update("c", func(tx *Tx) error {
		for i := 0; i < 2000; i++ {
			if n := rng.IntN(5000); n%3 != 0 {
				if err := tx.Put(SpaceSeen, key(n), []byte{1}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 50; round++ {
		var keys [][]byte
		for n := rng.IntN(6000); n < 7000 && len(keys) < 300; n += 1 + rng.IntN(40) {
			keys = append(keys, key(n))
		}
		if round == 0 {
			keys = [][]byte{key(9000), key(9001)} // all past the end
		}
		slices.SortFunc(keys, func(a, b []byte) int { return slices.Compare(a, b) })
		found := make([]bool, len(keys))
		st.View("c", func(tx *Tx) error {
			tx.Contains(SpaceSeen, keys, found)
			for i, k := range keys {
				if want := tx.Get(SpaceSeen, k) != nil; found[i] != want {
					t.Fatalf("round %d: Contains(%s) = %v, Get says %v", round, k, found[i], want)
				}
			}
			return nil
		})
	}
}

// Floor finds the greatest key at or before the asked one and the first
// after it, at the ends of the space too.
func TestFloor(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := []string{"b", "d", "f"}
	st.Update("c", func(tx *Tx) error {
		for _, k := range stored {
			if err := tx.Put(SpaceSeen, []byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tc := range []struct{ ask, k, v, next string }{
		{"a", "", "", "b"}, {"b", "b", "vb", "d"}, {"c", "b", "vb", "d"}, {"f", "f", "vf", ""}, {"g", "f", "vf", ""},
	} {
		st.View("c", func(tx *Tx) error {
			k, v, next := tx.Floor(SpaceSeen, []byte(tc.ask))
			if string(k) != tc.k || string(v) != tc.v || string(next) != tc.next {
				t.Errorf("Floor(%s) = %q %q %q, want %q %q %q", tc.ask, k, v, next, tc.k, tc.v, tc.next)
			}
			return nil
		})
	}
}
