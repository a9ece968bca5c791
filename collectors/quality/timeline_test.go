package quality

import (
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// fakeClock is a scrape clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// zdConfig configures the collector zd, so a restarted model serves it.
const zdConfig = deadlineConfig + `
collectors:
  - {name: zd, type: demo, schedule: "@every 1m"}
`

// delayedModel is a model with the default 2m new-series delay on a clock
// the test controls.
func delayedModel(t *testing.T, dir string) (*Model, *fakeClock, func()) {
	t.Helper()
	cfg, err := config.Parse([]byte(zdConfig), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	m, st := newModelFrom(t, dir, cfg)
	clock := &fakeClock{now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	m.Clock = clock.Now
	return m, clock, func() { st.Close() }
}

// A batch of tickets first seen already solved creates series with their
// value: Prometheus would never see that increment. The model serves such
// series at zero for the new-series delay, then their value.
func TestNewSeriesAreServedAtZeroForTheDelay(t *testing.T) {
	dir := t.TempDir()
	m, clock, closeStore := delayedModel(t, dir)
	solved := record.Ticket{ID: "s1", Queue: "q", Channel: "email", Priority: "normal", Status: "solved",
		CreatedAt: mon(10, 0), FirstReplyAt: mon(11, 0), SolvedAt: mon(12, 0), AgentReplies: 1}
	solved2 := solved
	solved2.ID, solved2.FirstReplyAt = "s2", mon(15, 0) // reply late: bad for reply-4h
	commitAt(t, m, mon(16, 0), solved, solved2)

	created := "servq_tickets_created_total{channel=email,collector=zd,priority=normal,queue=q}"
	replyCount := "servq_ticket_first_reply_seconds_count{channel=email,collector=zd,priority=normal,queue=q}"
	got := values(t, m)
	for _, k := range []string{created, replyCount, sloEvent("reply-4h", "good"), sloEvent("reply-4h", "bad")} {
		if v, ok := got[k]; !ok || v != 0 {
			t.Errorf("right after the commit %s = %v (present %v), want a series at 0", k, v, ok)
		}
	}
	// Gauges are read as they are, not through rate(): no delay.
	if v := got["servq_collector_watermark_timestamp_seconds{collector=zd}"]; v != float64(mon(16, 0).Unix()) {
		t.Errorf("watermark = %v, want the run's clock", v)
	}

	// More increments during the delay stay hidden with the rest.
	clock.Add(time.Minute)
	s3 := solved
	s3.ID = "s3"
	commitAt(t, m, mon(16, 1), s3)
	if v := values(t, m)[created]; v != 0 {
		t.Errorf("created = %v one minute after birth, want 0", v)
	}

	clock.Add(time.Minute) // 2m after the birth
	want := map[string]float64{created: 3, replyCount: 3, sloEvent("reply-4h", "good"): 2, sloEvent("reply-4h", "bad"): 1}
	expect(t, values(t, m), want)

	// An increment of a visible series shows at once.
	s4 := solved
	s4.ID = "s4"
	commitAt(t, m, mon(16, 2), s4)
	want[created], want[replyCount], want[sloEvent("reply-4h", "good")] = 4, 4, 3
	expect(t, values(t, m), want)

	// A commit that creates a series (queue vip) holds all of its values:
	// the increment of a visible series (q) in the same commit, and in
	// the commits that follow during the hold, shows with the new series,
	// never before it (a batch's bad tickets never show before its good
	// ones).
	vipCreated := "servq_tickets_created_total{channel=email,collector=zd,priority=normal,queue=vip}"
	v1 := solved
	v1.ID, v1.Queue = "v1", "vip"
	q5 := solved
	q5.ID = "q5"
	commitAt(t, m, mon(16, 3), v1, q5)
	clock.Add(time.Minute)
	q6 := solved
	q6.ID = "q6"
	commitAt(t, m, mon(16, 4), q6)
	if got := values(t, m); got[vipCreated] != 0 || got[created] != 4 {
		t.Errorf("during the hold: vip created = %v, q created = %v; want 0 and 4 (as before the hold)", got[vipCreated], got[created])
	}
	clock.Add(time.Minute)
	if got := values(t, m); got[vipCreated] != 1 || got[created] != 6 {
		t.Errorf("after the hold: vip created = %v, q created = %v; want 1 and 6", got[vipCreated], got[created])
	}
	want[created], want[replyCount], want[sloEvent("reply-4h", "good")] = 6, 6, 5
	want[vipCreated] = 1

	// A series born now, then a reload (the model rebuilt from the
	// store) within its delay: it stays at zero until its own time.
	other := solved
	other.ID, other.Queue = "o1", "vip2"
	commitAt(t, m, mon(16, 5), other, solved)
	vip := "servq_tickets_created_total{channel=email,collector=zd,priority=normal,queue=vip2}"
	cfg, _ := config.Parse([]byte(zdConfig), "test.yml")
	reloaded, err := New(cfg, m.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	reloaded.Clock = clock.Now
	reloaded.Inherit(m)
	if v := values(t, reloaded)[vip]; v != 0 {
		t.Errorf("after a reload within the delay vip created = %v, want 0", v)
	}
	if v := values(t, reloaded)[created]; v != 6 {
		t.Errorf("after a reload q created = %v, want 6 (visible before the hold)", v)
	}
	clock.Add(2 * time.Minute)
	if v := values(t, reloaded)[vip]; v != 1 {
		t.Errorf("vip created = %v after its delay, want 1", v)
	}
	closeStore()

	// After a restart the committed values are served at once.
	m2, _, closeStore2 := delayedModel(t, dir)
	defer closeStore2()
	want[vip] = 1
	expect(t, values(t, m2), want)
}

func wmBatch(now, watermark time.Time, tickets ...record.Ticket) *collectors.Batch {
	return &collectors.Batch{Now: now, Watermark: watermark, Tickets: tickets}
}

func commitBatch(t *testing.T, m *Model, b *collectors.Batch) {
	t.Helper()
	if _, err := m.Commit("zd", b, []byte(b.Now.String())); err != nil {
		t.Fatal(err)
	}
}

// A reply made in time but delivered after the deadline (a periodic export)
// counts good and never bad: the deadline waits for the source's watermark.
func TestLateDeliveredInTimeReplyCountsGoodNeverBad(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	tk := record.Ticket{ID: "t", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0)}
	// The 10:05 export shows the ticket open; reply-4h's deadline is 14:00.
	commitBatch(t, m, wmBatch(mon(10, 6), mon(10, 5), tk))
	// The clock passes the deadline, but the source has not delivered
	// anything newer than 10:05 yet (its next export is due): no verdict.
	for _, at := range []time.Time{mon(14, 0), mon(14, 30), mon(14, 59)} {
		commitBatch(t, m, wmBatch(at, mon(10, 5)))
		if v := values(t, m)[sloEvent("reply-4h", "bad")]; v != 0 {
			t.Fatalf("at %s with the watermark at 10:05: bad = %v, want 0", at.Format("15:04"), v)
		}
	}
	// The 14:50 export has the reply made at 13:50: good.
	tk.FirstReplyAt = mon(13, 50)
	commitBatch(t, m, wmBatch(mon(14, 55), mon(14, 50), tk))
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "good"): 1, sloEvent("reply-4h", "bad"): 0})
	if v := values(t, m)["servq_ticket_slo_corrections_total{channel=email,collector=zd,priority=normal,queue=q,slo=reply-4h}"]; v != 0 {
		t.Errorf("corrections = %v, want none", v)
	}
}

// Once the watermark passes a deadline with no reply, the ticket is bad
// then, whatever the clock says.
func TestWatermarkPastTheDeadlineJudgesBad(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	tk := record.Ticket{ID: "t", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0)}
	commitBatch(t, m, wmBatch(mon(10, 6), mon(10, 5), tk))
	commitBatch(t, m, wmBatch(mon(14, 10), mon(13, 59)))
	if v := values(t, m)[sloEvent("reply-4h", "bad")]; v != 0 {
		t.Fatalf("watermark 13:59: bad = %v, want 0", v)
	}
	commitBatch(t, m, wmBatch(mon(14, 11), mon(14, 0)))
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "bad"): 1})
	// A ticket first seen unanswered after the watermark passed its
	// deadline is bad at once.
	old := tk
	old.ID, old.CreatedAt = "old", mon(9, 0)
	commitBatch(t, m, wmBatch(mon(14, 12), mon(14, 0), old))
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "bad"): 2})
	// A watermark going backwards (a source restarted on an older export)
	// does not move the collector's watermark back.
	commitBatch(t, m, wmBatch(mon(14, 13), mon(11, 0)))
	if v := values(t, m)["servq_collector_watermark_timestamp_seconds{collector=zd}"]; v != float64(mon(14, 0).Unix()) {
		t.Errorf("watermark = %v, want 14:00 kept", time.Unix(int64(v), 0).UTC())
	}
}

// A stalled source cannot hold verdicts for ever: after watermark_wait
// (1h by default) the clock decides. If the source then delivers a reply
// made in time, the verdict is corrected on the series it was counted on,
// and the SLI counts net it out.
func TestStalledSourceIsJudgedByTheClockAndCorrected(t *testing.T) {
	m, st := newModel(t, t.TempDir(), deadlineConfig)
	defer st.Close()
	tk := record.Ticket{ID: "t", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(10, 0)}
	commitBatch(t, m, wmBatch(mon(10, 6), mon(10, 5), tk))
	commitBatch(t, m, wmBatch(mon(14, 59), mon(10, 5)))
	if v := values(t, m)[sloEvent("reply-4h", "bad")]; v != 0 {
		t.Fatalf("59 minutes past the deadline: bad = %v, want 0 (waiting for the source)", v)
	}
	commitBatch(t, m, wmBatch(mon(15, 0), mon(10, 5)))
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "bad"): 1})

	// The source comes back: the reply was at 13:30, and the ticket moved
	// to another queue meanwhile. It is reported twice.
	tk.FirstReplyAt, tk.Queue = mon(13, 30), "vip"
	commitBatch(t, m, wmBatch(mon(16, 0), mon(15, 55), tk, tk))
	corr := "servq_ticket_slo_corrections_total{channel=email,collector=zd,priority=normal,queue=q,slo=reply-4h}"
	expect(t, values(t, m), map[string]float64{
		sloEvent("reply-4h", "bad"):  1,
		sloEvent("reply-4h", "good"): 1, // on the series the bad was counted on
		corr:                         1,
	})
	// Net: bad = 1 - 1 = 0, total = 2 - 1 = 1.
	// Again later: nothing more.
	commitBatch(t, m, wmBatch(mon(17, 0), mon(16, 55), tk))
	if v := values(t, m)[corr]; v != 1 {
		t.Errorf("corrections = %v after the ticket was reported again, want 1", v)
	}

	// A provisional verdict confirmed by a late reply stays bad with no
	// correction.
	late := record.Ticket{ID: "late", Queue: "q", Channel: "email", Priority: "normal", Status: "open", CreatedAt: mon(11, 0)}
	commitBatch(t, m, wmBatch(mon(17, 1), mon(16, 55), late))
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "bad"): 2})
	late.FirstReplyAt = mon(15, 30)
	commitBatch(t, m, wmBatch(mon(17, 2), mon(17, 0), late))
	expect(t, values(t, m), map[string]float64{sloEvent("reply-4h", "bad"): 2, corr: 1})
}

// watermark_wait is per collector, default from global.
func TestWatermarkWaitPerCollector(t *testing.T) {
	cfg, err := config.Parse([]byte(deadlineConfig+`
global: {watermark_wait: 30m}
collectors:
  - {name: zd, type: demo, schedule: "@every 1m", watermark_wait: 6h}
  - {name: other, type: demo, schedule: "@every 1m"}
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	m, st := newModelFrom(t, t.TempDir(), cfg)
	defer st.Close()
	if _, by := m.judgeBy("zd", mon(20, 0), mon(10, 0)); !by.Equal(mon(14, 0)) {
		t.Errorf("zd judges up to %s, want 14:00 (20:00 - 6h)", by.Format("15:04"))
	}
	if _, by := m.judgeBy("other", mon(20, 0), mon(10, 0)); !by.Equal(mon(19, 30)) {
		t.Errorf("other judges up to %s, want 19:30 (20:00 - 30m)", by.Format("15:04"))
	}
	if _, by := m.judgeBy("other", mon(20, 0), mon(21, 0)); !by.Equal(mon(20, 0)) {
		t.Errorf("a watermark in the future judges up to %s, want the clock (20:00)", by.Format("15:04"))
	}
}
