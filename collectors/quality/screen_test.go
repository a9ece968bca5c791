package quality

import (
	"math"
	"sort"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
)

// Whatever a source lets through, the model refuses negative, wrapped,
// absurd, NaN or infinite numbers and times out of bounds: the record
// becomes a rejection with its reason and nothing of it is committed (not
// even its dedup key: the same call sent again, sane, counts).
func TestModelRefusesRecordsOutOfBounds(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	now := t0.Add(24 * time.Hour)
	s := time.Second
	calls := []record.Call{
		{ID: "ok", Queue: "sales", Outcome: record.OutcomeAnswered, Wait: 12 * s, Talk: 60 * s, EndedAt: now},
		// 99999999999999999s overflows Duration to about -2.5e9s: a
		// short abandon for ever if it got through.
		{ID: "wrapped", Queue: "sales", Outcome: record.OutcomeAbandoned, Wait: time.Duration(99999999999999999) * s, EndedAt: now},
		{ID: "negative", Queue: "sales", Outcome: record.OutcomeAbandoned, Wait: -3 * s, EndedAt: now},
		{ID: "week", Queue: "sales", Outcome: record.OutcomeAnswered, Wait: 8 * 24 * time.Hour, EndedAt: now},
		{ID: "future", Queue: "sales", Outcome: record.OutcomeTimeout, Wait: 4 * s, EndedAt: now.Add(2 * time.Hour)},
		{ID: "epoch0", Queue: "sales", Outcome: record.OutcomeTimeout, Wait: 4 * s, EnqueuedAt: time.Unix(0, 0)},
		{ID: "skewed", Queue: "sales", Outcome: record.OutcomeAbandoned, Wait: 30 * s, EndedAt: now.Add(59 * time.Minute)},
	}
	b := &collectors.Batch{Now: now, Calls: calls,
		Tickets: []record.Ticket{{ID: "t", Queue: "billing", Status: "open", CreatedAt: now, FirstReplyBusiness: -time.Hour}},
		Surveys: []record.SurveyResponse{{ID: "nan", Survey: "csat", Kind: record.KindCSAT, Score: math.NaN(), HasScore: true, SubmittedAt: now},
			{ID: "inf", Survey: "csat", Kind: record.KindCSAT, Score: 4, HasScore: true, SubmittedAt: now,
				Weights: map[string]float64{record.Empathy: math.Inf(1)}}},
		Snapshots: []record.Snapshot{{Queue: "sales", At: now, HasWait: true, LongestWait: -time.Minute}},
	}
	res := commit(t, m, "pbx", b, "1")
	if res.Accepted["call"] != 2 || res.Accepted["ticket"] != 0 || res.Accepted["survey"] != 0 || res.Accepted["snapshot"] != 0 {
		t.Errorf("accepted = %v, want 2 calls and nothing else", res.Accepted)
	}
	var got []string
	for _, r := range b.Rejected {
		got = append(got, r.Reason+" "+r.Position)
	}
	sort.Strings(got)
	want := []string{
		`bad_number call "negative"`, `bad_number call "week"`, `bad_number call "wrapped"`,
		`bad_number snapshot of queue "sales"`, `bad_number survey response "inf"`, `bad_number survey response "nan"`,
		`bad_number ticket "t"`, `bad_time call "epoch0"`, `bad_time call "future"`,
	}
	if len(got) != len(want) {
		t.Fatalf("rejections = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rejection %d = %q, want %q", i, got[i], want[i])
		}
	}
	q := "channel=phone,collector=pbx,queue=sales"
	qo := func(outcome string) string { return "channel=phone,collector=pbx,outcome=" + outcome + ",queue=sales" }
	expect(t, values(t, m), map[string]float64{
		"servq_calls_offered_total{" + q + "}":                         2, // ok, skewed (59m ahead, within 1h)
		"servq_calls_answered_total{" + q + "}":                        1,
		"servq_calls_abandoned_total{" + q + "}":                       1,
		"servq_calls_abandoned_short_total{" + q + "}":                 0, // 30s > 5s
		"servq_call_wait_seconds_sum{" + qo("answered") + "}":          12,
		"servq_call_wait_seconds_sum{" + qo("abandoned") + "}":         30,
		"servq_call_wait_seconds_bucket{" + qo("abandoned") + ",le=5}": 0,
		"servq_call_wait_seconds_bucket{" + qo("answered") + ",le=20}": 1,
	})
	// Nothing of the refused records was committed: sent again in bounds,
	// the wrapped call counts (once).
	res = commit(t, m, "pbx", &collectors.Batch{Now: now, Calls: []record.Call{
		{ID: "wrapped", Queue: "sales", Outcome: record.OutcomeAbandoned, Wait: 2 * s, EndedAt: now}}}, "2")
	if res.Accepted["call"] != 1 {
		t.Errorf("re-sent call accepted = %v, want 1", res.Accepted["call"])
	}
	expect(t, values(t, m), map[string]float64{
		"servq_calls_abandoned_total{" + q + "}":       2,
		"servq_calls_abandoned_short_total{" + q + "}": 1,
	})
	if m.Newest("pbx").After(now.Add(record.MaxClockSkew)) {
		t.Errorf("newest = %s, beyond the skew bound", m.Newest("pbx"))
	}
}

// A collector lag polluted by an older version (a far-future record time
// committed as the newest) heals at the next commit instead of holding the
// lag at zero for ever.
func TestFarFutureNewestFromOlderVersionIsForgotten(t *testing.T) {
	dir := t.TempDir()
	m, st := newModel(t, dir, testConfig)
	now := t0.Add(24 * time.Hour)
	commit(t, m, "pbx", &collectors.Batch{Now: now, Calls: []record.Call{{ID: "a", Queue: "q", Outcome: record.OutcomeAnswered, EndedAt: now}}}, "1")
	// What an unscreened commit left behind.
	if err := st.Update("pbx", func(tx *state.Tx) error {
		return tx.Put(state.SpaceMeta, newestKey, []byte("2500-01-01T00:00:00Z"))
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	m, st = newModel(t, dir, testConfig)
	defer st.Close()
	later := now.Add(time.Hour)
	commit(t, m, "pbx", &collectors.Batch{Now: later, Calls: []record.Call{{ID: "b", Queue: "q", Outcome: record.OutcomeAnswered, EndedAt: later}}}, "2")
	if got := m.Newest("pbx"); !got.Equal(later) {
		t.Errorf("newest = %s, want %s", got, later)
	}
}
