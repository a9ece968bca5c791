package sources

import (
	"reflect"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

func demoSource(t testing.TB, extra string) collectors.Source {
	return buildSource(t, "collectors:\n  - name: sim\n    type: demo\n    schedule: \"@every 15s\"\n"+extra)
}

// Monday 2026-11-02, midnight UTC.
var demoDay = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func TestDemoIsDeterministic(t *testing.T) {
	s := demoSource(t, "")
	b1, c1 := collectOnce(t, s, nil, demoDay.Add(10*time.Hour))
	b2, c2 := collectOnce(t, s, nil, demoDay.Add(10*time.Hour))
	if !reflect.DeepEqual(b1, b2) || string(c1) != string(c2) {
		t.Fatal("two runs from the same cursor differ")
	}
	if b1.Len() == 0 {
		t.Fatal("no records in a 2h backfill at 10:00")
	}
}

// Running an hour in one step or in four steps yields the same calls and
// surveys, and the same final state of every ticket.
func TestDemoContinuationMatchesOneStep(t *testing.T) {
	s := demoSource(t, "")
	start := demoDay.Add(9 * time.Hour)
	_, cur := collectOnce(t, s, nil, start)
	one, _ := collectOnce(t, s, cur, start.Add(time.Hour))
	var steps collectors.Batch
	c := cur
	for i := 1; i <= 4; i++ {
		b, next := collectOnce(t, s, c, start.Add(time.Duration(i)*15*time.Minute))
		steps.Calls = append(steps.Calls, b.Calls...)
		steps.Surveys = append(steps.Surveys, b.Surveys...)
		steps.Tickets = append(steps.Tickets, b.Tickets...)
		c = next
	}
	ids := func(cs []record.Call) map[string]bool {
		m := map[string]bool{}
		for _, c := range cs {
			if m[c.ID] {
				t.Errorf("call %s emitted twice", c.ID)
			}
			m[c.ID] = true
		}
		return m
	}
	if a, b := ids(one.Calls), ids(steps.Calls); !reflect.DeepEqual(a, b) {
		t.Errorf("calls: one step %d, four steps %d", len(a), len(b))
	}
	if len(one.Surveys) != len(steps.Surveys) {
		t.Errorf("surveys: one step %d, four steps %d", len(one.Surveys), len(steps.Surveys))
	}
	final := func(ts []record.Ticket) map[string]record.Ticket {
		m := map[string]record.Ticket{}
		for _, t := range ts {
			m[t.ID] = t
		}
		return m
	}
	if !reflect.DeepEqual(final(one.Tickets), final(steps.Tickets)) {
		t.Error("final ticket states differ between one step and four")
	}
}

// Over a simulated day every record kind and every call outcome appears,
// peak hours are busier than the night, and scores stay within scales.
func TestDemoSimulatesARealisticDay(t *testing.T) {
	s := demoSource(t, "    backfill: 24h\n")
	b, cur := collectOnce(t, s, nil, demoDay.Add(24*time.Hour))
	if len(cur) > 1<<20 {
		t.Errorf("cursor is %d bytes", len(cur))
	}
	byHour := map[int]int{}
	outcomes := map[record.CallOutcome]int{}
	for _, c := range b.Calls {
		byHour[c.EnqueuedAt.Hour()]++
		outcomes[c.Outcome]++
		if c.Wait < 0 || c.EndedAt.Before(c.EnqueuedAt) {
			t.Fatalf("impossible call %+v", c)
		}
	}
	// The arrival curve at 10:00 is about 1.1 against 0.08 at 03:00; with
	// Poisson noise, ask for at least 4 times as many calls.
	if byHour[10] < 4*byHour[3] || byHour[10] == 0 {
		t.Errorf("calls at 10:00 = %d, at 03:00 = %d: no daily pattern", byHour[10], byHour[3])
	}
	for _, o := range []record.CallOutcome{record.OutcomeAnswered, record.OutcomeAbandoned, record.OutcomeTimeout, record.OutcomeTransferred, record.OutcomeVoicemail} {
		if outcomes[o] == 0 {
			t.Errorf("no %s calls in a day", o)
		}
	}
	kinds := map[record.SurveyKind]int{}
	for _, r := range b.Surveys {
		kinds[r.Kind]++
		lo, hi := map[record.SurveyKind][2]float64{record.KindCSAT: {1, 5}, record.KindNPS: {0, 10}, record.KindCES: {1, 7}}[r.Kind][0], map[record.SurveyKind][2]float64{record.KindCSAT: {1, 5}, record.KindNPS: {0, 10}, record.KindCES: {1, 7}}[r.Kind][1]
		if r.HasScore && (r.Score < lo || r.Score > hi) {
			t.Errorf("%s score %g outside %g-%g", r.Kind, r.Score, lo, hi)
		}
		for _, it := range r.Servqual {
			if it.Expectation < 1 || it.Expectation > 7 || it.Perception < 1 || it.Perception > 7 {
				t.Errorf("SERVQUAL item outside 1-7: %+v", it)
			}
		}
	}
	for _, k := range []record.SurveyKind{record.KindCSAT, record.KindNPS, record.KindCES, record.KindSERVQUAL} {
		if kinds[k] == 0 {
			t.Errorf("no %s responses in a day", k)
		}
	}
	var solved, replied, reopened, complaints int
	for _, tk := range b.Tickets {
		if tk.Solved() {
			solved++
		}
		if !tk.FirstReplyAt.IsZero() {
			replied++
		}
		if tk.Reopens > 0 {
			reopened++
		}
		if tk.Complaint {
			complaints++
		}
	}
	if solved == 0 || replied == 0 || reopened == 0 || complaints == 0 {
		t.Errorf("tickets: solved %d, replied %d, reopened %d, complaints %d; every kind of event should occur", solved, replied, reopened, complaints)
	}
	if len(b.Snapshots) != 3 || b.Snapshots[0].Agents == nil {
		t.Errorf("snapshots = %+v", b.Snapshots)
	}
}
