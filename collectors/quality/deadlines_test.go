package quality

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
)

const deadlineConfig = `
business_hours:
  - name: office
    time_zone: UTC
    weekly: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-17:00"]}
slos:
  - {name: reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: reply-4bh, indicator: ticket_first_reply, threshold: 4h, business_hours: office, objective: 90}
  - {name: solve-1d, indicator: ticket_resolution, threshold: 24h, objective: 90}
  - {name: urgent-1h, indicator: ticket_first_reply, threshold: 1h, objective: 90, filters: {priority: urgent}}
`

func sloEvent(slo, result string) string {
	return "servq_ticket_slo_events_total{channel=email,collector=zd,priority=normal,queue=q,result=" + result + ",slo=" + slo + "}"
}

func commitAt(t *testing.T, m *Model, now time.Time, tickets ...record.Ticket) {
	t.Helper()
	if _, err := m.Commit("zd", &collectors.Batch{Now: now, Tickets: tickets}, []byte(now.String())); err != nil {
		t.Fatal(err)
	}
}

// Monday 2026-11-02 10:00 UTC.
func mon(h, m int) time.Time { return time.Date(2026, 11, 2, h, m, 0, 0, time.UTC) }

func TestBreachIsCountedWhenTheDeadlinePasses(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	on := record.Ticket{ID: "on-time", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0)}
	late := on
	late.ID = "late"
	// 13:00: on-time was replied at 12:00 (2h <= 4h): good at once.
	on.FirstReplyAt = mon(12, 0)
	commitAt(t, m, mon(13, 0), on, late)
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "good"): 1})
	if values(t, m)[sloEvent("reply-4h", "bad")] != 0 {
		t.Fatal("bad counted before any deadline passed")
	}
	// 13:59: late's deadline (14:00) has not passed.
	commitAt(t, m, mon(13, 59))
	if values(t, m)[sloEvent("reply-4h", "bad")] != 0 {
		t.Fatal("bad counted before 14:00")
	}
	// 14:00: the deadline passes with no reply: bad now, in an empty run.
	commitAt(t, m, mon(14, 0))
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "bad"): 1})
	// The reply finally comes at 15:00 and the ticket is reported again
	// (twice): no further event for reply-4h.
	late.FirstReplyAt = mon(15, 0)
	commitAt(t, m, mon(15, 5), late, late)
	expect(t, values(t, m), map[string]float64{
		sloEvent("reply-4h", "bad"):  1,
		sloEvent("reply-4h", "good"): 1,
		// In business hours (09-17) the 4h deadline is also 14:00: late is
		// bad there too, on-time good.
		sloEvent("reply-4bh", "bad"):  1,
		sloEvent("reply-4bh", "good"): 1,
	})
}

func TestBusinessHourDeadlineOverTheWeekend(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	fri := time.Date(2026, 11, 6, 16, 0, 0, 0, time.UTC)
	tk := record.Ticket{ID: "w", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: fri}
	commitAt(t, m, fri.Add(time.Minute), tk)
	// Friday 16:00 + 4 business hours = 1h Friday + 3h Monday = Monday 12:00.
	// Calendar deadline (Friday 20:00) passes first.
	commitAt(t, m, time.Date(2026, 11, 9, 11, 59, 0, 0, time.UTC))
	got := values(t, m)
	expect(t, got, map[string]float64{sloEvent("reply-4h", "bad"): 1})
	if got[sloEvent("reply-4bh", "bad")] != 0 {
		t.Fatal("business-hours SLO breached before Monday 12:00")
	}
	// Replied Monday 11:30 but reported only now: within business time.
	tk.FirstReplyAt = time.Date(2026, 11, 9, 11, 30, 0, 0, time.UTC)
	commitAt(t, m, time.Date(2026, 11, 9, 12, 30, 0, 0, time.UTC), tk)
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4bh", "good"): 1, sloEvent("reply-4h", "bad"): 1})
}

func TestDeadlinesSurviveRestartAndCountOnce(t *testing.T) {
	dir := t.TempDir()
	m, st := newModel(t, dir, deadlineConfig)
	tk := record.Ticket{ID: "r", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0)}
	commitAt(t, m, mon(10, 5), tk)
	st.Close()
	m2, st2 := newModel(t, dir, deadlineConfig)
	defer st2.Close()
	// After the restart, the resolution deadline (Tuesday 10:00) passes.
	commitAt(t, m2, time.Date(2026, 11, 3, 10, 0, 1, 0, time.UTC))
	commitAt(t, m2, time.Date(2026, 11, 3, 11, 0, 0, 0, time.UTC))
	tk.SolvedAt, tk.Status = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC), "solved"
	commitAt(t, m2, time.Date(2026, 11, 3, 12, 5, 0, 0, time.UTC), tk)
	expect(t, values(t, m2), map[string]float64{
		sloEvent("solve-1d", "bad"): 1,
		sloEvent("reply-4h", "bad"): 1, // never replied: breached at 14:00 Monday
	})
	if v := values(t, m2)[sloEvent("solve-1d", "good")]; v != 0 {
		t.Errorf("a breached ticket was also counted good (%v)", v)
	}
}

func TestSLOFiltersAndDeletedTickets(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	urgent := record.Ticket{ID: "u", Queue: "q", Channel: "email", Priority: "urgent", Status: "open", CreatedAt: mon(10, 0), FirstReplyAt: mon(10, 30)}
	normal := record.Ticket{ID: "n", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0), FirstReplyAt: mon(10, 30)}
	spam := record.Ticket{ID: "s", Queue: "q", Channel: "email", Priority: "normal", Status: "deleted", Deleted: true, CreatedAt: mon(10, 0)}
	commitAt(t, m, mon(20, 0), urgent, normal, spam)
	got := values(t, m)
	expect(t, got, map[string]float64{
		"servq_ticket_slo_events_total{channel=email,collector=zd,priority=urgent,queue=q,result=good,slo=urgent-1h}": 1,
		sloEvent("reply-4h", "good"): 1, // only "n": the deleted ticket counts nowhere
	})
	if got[sloEvent("urgent-1h", "good")] != 0 {
		t.Error("a normal-priority ticket counted in the urgent SLO")
	}
	if got[sloEvent("reply-4h", "bad")] != 0 {
		t.Error("the deleted ticket was counted as a breach")
	}
}

// Prometheus' rate() cannot see the increment that creates a series, so
// every counter an SLO reads exists at 0 from the first related record on.
func TestSeriesAnSLOReadsExistAtZeroBeforeTheirFirstIncrement(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	open := record.Ticket{ID: "o", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0)}
	b := &collectors.Batch{Now: mon(10, 1), Tickets: []record.Ticket{open},
		Calls: []record.Call{{ID: "c1", Queue: "sales", Outcome: record.OutcomeAnswered, Wait: 3 * time.Second}}}
	if _, err := m.Commit("zd", b, []byte("1")); err != nil {
		t.Fatal(err)
	}
	got := values(t, m)
	for _, k := range []string{
		sloEvent("reply-4h", "bad"), sloEvent("reply-4h", "good"), sloEvent("solve-1d", "bad"),
		"servq_tickets_solved_total{channel=email,collector=zd,priority=normal,queue=q}",
		"servq_tickets_solved_first_contact_total{channel=email,collector=zd,priority=normal,queue=q}",
		"servq_calls_abandoned_total{channel=phone,collector=zd,queue=sales}",
		"servq_calls_abandoned_short_total{channel=phone,collector=zd,queue=sales}",
	} {
		v, ok := got[k]
		if !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want a series at 0", k, v, ok)
		}
	}
	if v := got["servq_calls_answered_total{channel=phone,collector=zd,queue=sales}"]; v != 1 {
		t.Errorf("answered = %v, want 1", v)
	}
}

func TestOldestOpenTicketFollowsTheBacklog(t *testing.T) {
	dir := t.TempDir()
	m, st := newModel(t, dir, deadlineConfig)
	key := "servq_tickets_oldest_open_created_timestamp_seconds{collector=zd,queue=q}"
	a := record.Ticket{ID: "a", Queue: "q", Status: "open", CreatedAt: mon(9, 0)}
	b := record.Ticket{ID: "b", Queue: "q", Status: "pending", CreatedAt: mon(10, 0)}
	c := record.Ticket{ID: "c", Queue: "q", Status: "open", CreatedAt: mon(11, 0)}
	commitAt(t, m, mon(12, 0), a, b, c)
	expect(t, values(t, m), map[string]float64{key: float64(mon(9, 0).Unix())})
	// a is solved: b (10:00) is now the oldest; a status change of b
	// (pending -> open) keeps its creation time.
	a.Status, a.SolvedAt = "solved", mon(12, 30)
	b.Status = "open"
	commitAt(t, m, mon(13, 0), a, b)
	expect(t, values(t, m), map[string]float64{key: float64(mon(10, 0).Unix())})
	st.Close()
	// After a restart, b moves to another queue and c is solved: q has no
	// open ticket left and loses the series; the other queue gets b.
	m, st = newModel(t, dir, deadlineConfig)
	defer st.Close()
	b.Queue = "vip"
	c.Status, c.SolvedAt = "solved", mon(13, 30)
	commitAt(t, m, mon(14, 0), b, c)
	got := values(t, m)
	if _, ok := got[key]; ok {
		t.Errorf("queue q without open tickets still has %s = %v", key, got[key])
	}
	expect(t, got, map[string]float64{"servq_tickets_oldest_open_created_timestamp_seconds{collector=zd,queue=vip}": float64(mon(10, 0).Unix())})
}

func TestSourceReportedSLABreachesCountOnce(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	tk := record.Ticket{ID: "z1", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(9, 0), SLABreaches: []string{"first_reply"}}
	commitAt(t, m, mon(10, 0), tk, tk)
	tk.SLABreaches = []string{"first_reply", "resolution"}
	commitAt(t, m, mon(11, 0), tk)
	commitAt(t, m, mon(12, 0), tk)
	expect(t, values(t, m), map[string]float64{
		"servq_ticket_sla_breaches_total{channel=email,collector=zd,metric=first_reply,priority=normal,queue=q}": 1,
		"servq_ticket_sla_breaches_total{channel=email,collector=zd,metric=resolution,priority=normal,queue=q}":  1,
	})
}

// TestChunksMakeNoPrematureDeadlineVerdicts commits one run in chunks
// (collectors.Batch.Flush): the first chunk brings a ticket whose reply
// deadline passed long ago with no reply, a later chunk its next version
// with a reply in time. Meanwhile a ticket indexed by an earlier run is
// past its deadline too, and its reply comes in the last chunk. A chunk
// that judged deadlines (by the run's watermark or by the clock minus
// watermark_wait) would count both bad first and correct them later; the
// run committed at once counts both good and nothing bad. The chunked run
// must count exactly that. A ticket that really had no reply is judged
// bad by the run's last commit.
func TestChunksMakeNoPrematureDeadlineVerdicts(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	base := record.Ticket{Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0)}
	old, fresh, never := base, base, base
	old.ID, fresh.ID, never.ID = "old", "fresh", "never"
	// An earlier run at 11:00 indexes old's 14:00 deadline.
	commitAt(t, m, mon(11, 0), old)
	now := time.Date(2026, 11, 9, 12, 0, 0, 0, time.UTC) // a week later: every deadline passed
	chunk := func(cursor string, tickets ...record.Ticket) {
		t.Helper()
		if _, err := m.CommitChunk(context.Background(), "zd", &collectors.Batch{Now: now, Tickets: tickets}, []byte(cursor)); err != nil {
			t.Fatal(err)
		}
	}
	chunk("c1", fresh, never)
	chunk("c2")
	if v := values(t, m); v[sloEvent("reply-4h", "bad")] != 0 || v[sloEvent("reply-4h", "good")] != 0 {
		t.Fatalf("intermediate chunks judged deadlines: %v", v)
	}
	replied := func(tk record.Ticket) record.Ticket { tk.FirstReplyAt = mon(11, 0); return tk }
	commitAt(t, m, now, replied(fresh), replied(old))
	expect(t, values(t, m), map[string]float64{
		sloEvent("reply-4h", "good"): 2, // fresh and old, replied at 11:00
		sloEvent("reply-4h", "bad"):  1, // never: judged by the run's last commit
	})
	for k, v := range values(t, m) {
		if strings.HasPrefix(k, "servq_ticket_slo_corrections_total") && v != 0 {
			t.Errorf("%s = %v: a chunk made a verdict that had to be corrected", k, v)
		}
	}
}

// TestDueDeadlinesAreJudgedInBoundedTransactions: after a first sync in
// chunks every ticket's deadline may be due at the last commit; it judges
// them expireBudget per transaction, all of them before it returns.
func TestDueDeadlinesAreJudgedInBoundedTransactions(t *testing.T) {
	m, st := newModel(t, t.TempDir(), `
slos:
  - {name: reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
`)
	defer st.Close()
	n := expireBudget + 7
	tickets := make([]record.Ticket, n)
	for i := range tickets {
		tickets[i] = record.Ticket{ID: fmt.Sprint("t", i), Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0)}
	}
	now := mon(20, 0)
	if _, err := m.CommitChunk(context.Background(), "zd", &collectors.Batch{Now: now, Tickets: tickets}, []byte("c1")); err != nil {
		t.Fatal(err)
	}
	txs := 0
	m.BeforeCommit = func(context.Context, string) { txs++ }
	if _, err := m.Commit("zd", &collectors.Batch{Now: now}, []byte("c2")); err != nil {
		t.Fatal(err)
	}
	if txs != 2 {
		t.Errorf("%d transactions judged %d due deadlines, want 2", txs, n)
	}
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "bad"): float64(n)})
	st.View("zd", func(tx *state.Tx) error {
		if k := tx.Count(state.SpaceDeadlines); k != 0 {
			t.Errorf("%d deadlines left in the index", k)
		}
		if c := tx.Cursor(); string(c) != "c2" {
			t.Errorf("cursor %q", c)
		}
		return nil
	})
}
