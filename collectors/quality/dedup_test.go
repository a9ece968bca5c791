package quality

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
)

// sortKeys orders as a comparison sort by key then index would, on keys
// with a long shared prefix, equal heads with different tails, keys that
// are prefixes of others, and repeats (both the radix and the small path).
func TestSortKeysMatchesComparisonSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{5, 1023, 1024, 5000} {
		var keys []dedupKey
		for i := 0; i < n; i++ {
			var k string
			switch rng.IntN(4) {
			case 0:
				k = fmt.Sprintf("c:17900%05d.%d", rng.IntN(3000), rng.IntN(50)) // realistic ids
			case 1:
				k = fmt.Sprintf("c:17900%05d", rng.IntN(3000)) // a prefix of others
			case 2:
				k = fmt.Sprintf("c:1790012345.%d", rng.IntN(5000)) // same head, differ later
			default:
				k = fmt.Sprintf("c:x%d\x00%d", rng.IntN(30), rng.IntN(3)) // zero bytes, short
			}
			keys = append(keys, dedupKey{k: []byte(k), i: int32(i)})
		}
		common := len(keys[0].k)
		for _, k := range keys {
			for j := 0; j < min(common, len(k.k)); j++ {
				if k.k[j] != keys[0].k[j] {
					common = j
					break
				}
			}
			common = min(common, len(k.k))
		}
		for j := range keys {
			var b [8]byte
			copy(b[:], keys[j].k[common:])
			keys[j].head = uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
		}
		want := slices.Clone(keys)
		slices.SortFunc(want, func(a, b dedupKey) int {
			if c := bytes.Compare(a.k, b.k); c != 0 {
				return c
			}
			return cmp.Compare(a.i, b.i)
		})
		got := sortKeys(keys)
		for j := range want {
			if !bytes.Equal(got[j].k, want[j].k) || got[j].i != want[j].i {
				t.Fatalf("n=%d: position %d is %q#%d, want %q#%d", n, j, got[j].k, got[j].i, want[j].k, want[j].i)
			}
		}
	}
}

// A batch large enough for the radix path, with calls repeated inside it
// and calls an earlier commit counted, counts each call id once.
func TestCallDedupInLargeBatches(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	mk := func(ids ...int) []record.Call {
		var out []record.Call
		for _, id := range ids {
			out = append(out, record.Call{ID: fmt.Sprintf("17900%05d.%d", id/7, id%7), Queue: "q", Outcome: record.OutcomeAbandoned, Wait: time.Second})
		}
		return out
	}
	var first, second []int
	for i := 0; i < 3000; i += 2 {
		first = append(first, i)
	}
	first = append(first, 10, 20, 30) // repeated inside the batch
	for i := 1500; i < 6000; i++ {
		second = append(second, 5999-i+1500) // half counted before, descending order
	}
	second = append(second, 5999)
	res := commit(t, m, "pbx", &collectors.Batch{Calls: append(mk(first...), record.Call{Queue: "q"})}, "1")
	if res.Accepted["call"] != 1500 || res.Duplicate["call"] != 4 {
		t.Fatalf("first commit %+v, want 1500 accepted, 4 duplicates (3 repeats, 1 without id)", res)
	}
	res = commit(t, m, "pbx", &collectors.Batch{Calls: mk(second...)}, "2")
	// 1500..5999: the even ones below 3000 (750) were counted; 5999 twice.
	if res.Accepted["call"] != 4500-750 || res.Duplicate["call"] != 751 {
		t.Fatalf("second commit %+v, want 3750 accepted, 751 duplicates", res)
	}
	expect(t, values(t, m), map[string]float64{
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=q}": 1500 + 3750,
	})
}

// Random commits of calls, new and repeated, in any order and with ids
// before, among and after those stored: each id is counted once, as a
// set would say, and the blocks stay ordered, disjoint and bounded.
func TestCallDedupBlocksMatchASet(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	counted := map[string]bool{}
	for c := 0; c < 40; c++ {
		var calls []record.Call
		want := 0
		batch := map[string]bool{}
		for n := rng.IntN(1500); n > 0; n-- {
			id := fmt.Sprintf("%d.%d", 1_790_000_000+rng.IntN(20_000), rng.IntN(3))
			if c == 20 {
				id = "0" + id // before every stored block
			}
			if !counted[id] && !batch[id] {
				want++
			}
			batch[id] = true
			calls = append(calls, record.Call{ID: id, Queue: "q", Outcome: record.OutcomeAbandoned})
		}
		res := commit(t, m, "pbx", &collectors.Batch{Calls: calls}, fmt.Sprint(c))
		if res.Accepted["call"] != want || res.Duplicate["call"] != len(calls)-want {
			t.Fatalf("commit %d: %+v, want %d accepted of %d", c, res, want, len(calls))
		}
		for id := range batch {
			counted[id] = true
		}
	}
	var prev []byte
	keys := 0
	st.View("pbx", func(tx *state.Tx) error {
		return tx.ForEach(state.SpaceSeen, func(k, v []byte) error {
			if k[0] != 0 {
				t.Fatalf("a per-key entry %q: new keys go to blocks", k)
			}
			ks, err := decodeSeenBlock(v)
			if err != nil || len(ks) == 0 || len(ks) > seenBlockMax || !bytes.Equal(ks[0], k[1:]) {
				t.Fatalf("block %q: %d keys, %v", k, len(ks), err)
			}
			for _, x := range ks {
				if prev != nil && bytes.Compare(prev, x) >= 0 {
					t.Fatalf("key %q after %q: blocks out of order or overlapping", x, prev)
				}
				prev = x
				keys++
			}
			return nil
		})
	})
	if keys != len(counted) {
		t.Fatalf("blocks hold %d keys, %d ids were counted", keys, len(counted))
	}
}

// A store written by a version with one dedup entry per call still
// counts those calls once.
func TestCallDedupReadsPerKeyEntries(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	err := st.Update("pbx", func(tx *state.Tx) error {
		return tx.Put(state.SpaceSeen, []byte("c:old.1"), binary.AppendVarint(nil, t0.Unix()))
	})
	if err != nil {
		t.Fatal(err)
	}
	res := commit(t, m, "pbx", &collectors.Batch{Now: t0, Calls: []record.Call{{ID: "old.1", Queue: "q"}, {ID: "new.1", Queue: "q"}}}, "1")
	if res.Accepted["call"] != 1 || res.Duplicate["call"] != 1 {
		t.Fatalf("%+v, want the old call a duplicate", res)
	}
}
