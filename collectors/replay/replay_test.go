package replay

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

const testConfig = `
business_hours:
  - name: office
    time_zone: UTC
    weekly: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-17:00"]}
slos:
  - {name: reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: reply-4bh, indicator: ticket_first_reply, threshold: 4h, business_hours: office, objective: 90}
`

// fixed is a source that returns the same records every run.
type fixed struct {
	b      collectors.Batch
	cursor string
}

func (f *fixed) Collect(_ context.Context, cursor []byte, b *collectors.Batch) ([]byte, error) {
	if cursor != nil {
		return cursor, nil // read to the end
	}
	b.Tickets = append(b.Tickets, f.b.Tickets...)
	b.Calls = append(b.Calls, f.b.Calls...)
	b.Watermark = f.b.Watermark
	return []byte(f.cursor), nil
}

// memory keeps every sample as "series" -> time -> value (histograms by
// their _count).
type memory map[string]map[time.Time]float64

func (m memory) Samples(at time.Time, fams []*dto.MetricFamily) error {
	for _, f := range fams {
		for _, mt := range f.Metric {
			if mt.GetTimestampMs() != at.UnixMilli() {
				return fmt.Errorf("%s sampled at %d, step %s", f.GetName(), mt.GetTimestampMs(), at)
			}
			var ls []string
			for _, l := range mt.Label {
				if l.GetName() != "collector" && l.GetName() != "channel" && l.GetName() != "priority" {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
			}
			sort.Strings(ls)
			k, v := f.GetName()+"{"+strings.Join(ls, ",")+"}", 0.0
			switch {
			case mt.Counter != nil:
				v = mt.Counter.GetValue()
			case mt.Gauge != nil:
				v = mt.Gauge.GetValue()
			case mt.Histogram != nil:
				k, v = f.GetName()+"_count{"+strings.Join(ls, ",")+"}", float64(mt.Histogram.GetSampleCount())
			}
			if m[k] == nil {
				m[k] = map[time.Time]float64{}
			}
			if _, dup := m[k][at]; dup {
				return fmt.Errorf("%s sampled twice at %s", k, at)
			}
			m[k][at] = v
		}
	}
	return nil
}

func newModel(t *testing.T, dir string) (*quality.Model, *state.Store) {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.NewSeriesDelay = new(config.Duration)
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := quality.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, st
}

// Monday 2026-11-02 and Tuesday.
func mon(h, m int) time.Time { return time.Date(2026, 11, 2, h, m, 0, 0, time.UTC) }
func tue(h, m int) time.Time { return time.Date(2026, 11, 3, h, m, 0, 0, time.UTC) }

func TestReplayCountsEachEventAtItsOwnTime(t *testing.T) {
	m, _ := newModel(t, t.TempDir())
	tk := func(id string, created, reply, solved, updated time.Time, status string) record.Ticket {
		return record.Ticket{ID: id, Queue: "q", Channel: "email", Priority: "normal", Status: status,
			CreatedAt: created, FirstReplyAt: reply, SolvedAt: solved, UpdatedAt: updated, AgentReplies: 1}
	}
	var none time.Time
	src := &fixed{cursor: "end", b: collectors.Batch{Tickets: []record.Ticket{
		// a: replied in 20 minutes, solved the next morning (one record).
		tk("a", mon(10, 0), mon(10, 20), tue(9, 0), tue(9, 5), "solved"),
		// b: its later version first (out of order), then the earlier
		// one; replied at 15:00, an hour after its 4h deadline.
		tk("b", mon(10, 0), mon(15, 0), none, mon(15, 0), "open"),
		tk("b", mon(10, 0), none, none, mon(10, 5), "open"),
		// c: created at 16:30, never replied: its 4 business hours end
		// on Tuesday at 12:30, its 4 calendar hours on Monday at 20:30.
		tk("c", mon(16, 30), none, none, mon(16, 30), "open"),
		// a repeated: counted once.
		tk("a", mon(10, 0), mon(10, 20), tue(9, 0), tue(9, 5), "solved"),
	}, Calls: []record.Call{
		{ID: "1", Queue: "sales", EnqueuedAt: mon(11, 0), AnsweredAt: mon(11, 1), EndedAt: mon(11, 7), Wait: time.Minute, Talk: 6 * time.Minute, Outcome: record.OutcomeAnswered},
	}}}
	sink := memory{}
	res, err := Run(context.Background(), m, []Collector{{"zd", src}}, sink,
		Options{From: mon(9, 0), To: tue(13, 0), Step: time.Minute, CommitCursors: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records["zd"] != 6 || res.Steps != 28*60+1 {
		t.Fatalf("result %+v", res)
	}
	at := func(series string, when time.Time, want float64) {
		t.Helper()
		got, ok := sink[series][when]
		if !ok && want == 0 {
			return
		}
		if !ok || got != want {
			t.Errorf("%s at %s = %v (sampled %v), want %v", series, when.Format("Mon 15:04"), got, ok, want)
		}
	}
	created := "servq_tickets_created_total{queue=q}"
	at(created, mon(9, 59), 0)
	at(created, mon(10, 0), 2)
	at(created, mon(16, 29), 2)
	at(created, mon(16, 30), 3)
	at(created, tue(13, 0), 3)
	// Born at 10:00: written at 0 at 09:59 for increase() to see.
	if _, ok := sink[created][mon(9, 59)]; !ok {
		t.Error("no zero sample before the first increment")
	}
	if _, ok := sink[created][mon(9, 58)]; ok {
		t.Error("sample before the series was born")
	}
	good := func(slo string) string { return "servq_ticket_slo_events_total{queue=q,result=good,slo=" + slo + "}" }
	bad := func(slo string) string { return "servq_ticket_slo_events_total{queue=q,result=bad,slo=" + slo + "}" }
	at(good("reply-4h"), mon(10, 19), 0)
	at(good("reply-4h"), mon(10, 20), 1)
	// b's breach counts when its deadline passes, although its late
	// reply is in the data: the verdict is made at event time.
	at(bad("reply-4h"), mon(13, 59), 0)
	at(bad("reply-4h"), mon(14, 0), 1)
	at(bad("reply-4h"), mon(20, 29), 1)
	at(bad("reply-4h"), mon(20, 30), 2)
	at(bad("reply-4bh"), mon(14, 0), 1)
	at(bad("reply-4bh"), tue(12, 29), 1)
	at(bad("reply-4bh"), tue(12, 30), 2)
	at("servq_ticket_slo_corrections_total{queue=q,slo=reply-4h}", tue(13, 0), 0)
	at("servq_ticket_first_reply_seconds_count{queue=q}", mon(10, 20), 1)
	at("servq_ticket_first_reply_seconds_count{queue=q}", mon(14, 59), 1)
	at("servq_ticket_first_reply_seconds_count{queue=q}", mon(15, 0), 2)
	at("servq_tickets_solved_total{queue=q}", tue(8, 59), 0)
	at("servq_tickets_solved_total{queue=q}", tue(9, 0), 1)
	at("servq_tickets_solved_first_contact_total{queue=q}", tue(9, 0), 1)
	at("servq_tickets_open{queue=q,status=open}", mon(10, 0), 2)
	at("servq_tickets_open{queue=q,status=open}", tue(9, 0), 2)
	at("servq_tickets_reopened_total{queue=q}", tue(13, 0), 0)
	at("servq_calls_offered_total{queue=sales}", mon(11, 6), 0)
	at("servq_calls_offered_total{queue=sales}", mon(11, 7), 1)
	at("servq_calls_answered_total{queue=sales}", mon(11, 7), 1)

	// The seam: the end state is committed with the source's cursor.
	if c, err := m.Cursor("zd"); err != nil || string(c) != "end" {
		t.Fatalf("cursor %q, %v", c, err)
	}
}

func TestTicketStates(t *testing.T) {
	created, reply, solved := mon(10, 0), mon(11, 0), mon(12, 0)
	full := record.Ticket{ID: "x", Status: "closed", CreatedAt: created, FirstReplyAt: reply, SolvedAt: solved,
		UpdatedAt: mon(13, 0), Reopens: 1, Satisfaction: "good", Complaint: true}
	sts := TicketStates(&full)
	if len(sts) != 4 {
		t.Fatalf("%d states", len(sts))
	}
	want := []struct {
		at            time.Time
		reply, solved bool
		status        string
		reopens       int
		satisfaction  string
	}{{created, false, false, "open", 0, ""}, {reply, true, false, "open", 0, ""}, {solved, true, true, "closed", 1, ""}, {mon(13, 0), true, true, "closed", 1, "good"}}
	for i, w := range want {
		s := sts[i]
		if !s.UpdatedAt.Equal(w.at) || s.FirstReplyAt.IsZero() == w.reply || s.SolvedAt.IsZero() == w.solved ||
			s.Status != w.status || s.Reopens != w.reopens || s.Satisfaction != w.satisfaction {
			t.Errorf("state %d: %+v, want %+v", i, s, w)
		}
	}
	// Deleted: one state, at its time.
	del := full
	del.Deleted = true
	if sts := TicketStates(&del); len(sts) != 1 || !sts[0].UpdatedAt.Equal(mon(13, 0)) {
		t.Errorf("deleted: %d states", len(sts))
	}
	// No updated time: the record stands at its latest event.
	noUpd := full
	noUpd.UpdatedAt = time.Time{}
	if sts := TicketStates(&noUpd); len(sts) != 3 || !sts[2].UpdatedAt.Equal(solved) || sts[2].Satisfaction != "good" {
		t.Errorf("no updated time: %d states, last %+v", len(sts), sts[len(sts)-1])
	}
}

// busy answers its first run with a Retry-After longer than a run waits.
type busy struct {
	fixed
	asked int
}

func (b *busy) Collect(ctx context.Context, cursor []byte, batch *collectors.Batch) ([]byte, error) {
	b.asked++
	if b.asked == 1 {
		batch.Tickets = append(batch.Tickets, record.Ticket{ID: "partial", CreatedAt: mon(9, 0)})
		return nil, &collectors.BackoffError{Wait: 7 * time.Minute, Err: errors.New("429")}
	}
	return b.fixed.Collect(ctx, cursor, batch)
}

func TestReplayWaitsOutRetryAfter(t *testing.T) {
	m, _ := newModel(t, t.TempDir())
	src := &busy{fixed: fixed{cursor: "end", b: collectors.Batch{Tickets: []record.Ticket{
		{ID: "a", Queue: "q", CreatedAt: mon(10, 0), UpdatedAt: mon(10, 0), Status: "open"}}}}}
	var waited []time.Duration
	sink := memory{}
	res, err := Run(context.Background(), m, []Collector{{"zd", src}}, sink, Options{From: mon(9, 0), To: mon(11, 0), Step: time.Minute,
		Sleep: func(_ context.Context, d time.Duration) error { waited = append(waited, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if len(waited) != 1 || waited[0] != 7*time.Minute || res.Records["zd"] != 1 {
		t.Fatalf("waited %v, result %+v", waited, res)
	}
	if v := sink["servq_tickets_created_total{queue=q}"][mon(11, 0)]; v != 1 {
		t.Errorf("created %v, want 1 (the failed run's record dropped)", v)
	}
}
