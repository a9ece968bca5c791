package quality

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

const testConfig = `
global: {label_limit: 5}
model:
  business_hours: office
business_hours:
  - name: office
    time_zone: UTC
    weekly: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-17:00"]}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
  - {name: zd, type: demo, schedule: "@every 1m"}
  - {name: svy, type: demo, schedule: "@every 1m"}
slos:
  - {name: reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: sl-20s, indicator: call_service_level, threshold: 20s, objective: 80}
`

// newModel is a model of cfgText whose values are served as committed (no
// new-series delay: TestNewSeriesAreServedAtZeroForTheDelay covers it).
func newModel(t testing.TB, dir, cfgText string) (*Model, *state.Store) {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgText), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.NewSeriesDelay = new(config.Duration)
	return newModelFrom(t, dir, cfg)
}

func newModelFrom(t testing.TB, dir string, cfg *config.Config) (*Model, *state.Store) {
	t.Helper()
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, st
}

// values gathers the model into "name{l=v,...}" -> value (counters and
// gauges) and name_count / name_sum / name_bucket{...,le=} for histograms.
func values(t testing.TB, m *Model) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.Metric {
			ls := labelString(mt.Label)
			switch {
			case mt.Counter != nil:
				out[mf.GetName()+ls] = mt.Counter.GetValue()
			case mt.Gauge != nil:
				out[mf.GetName()+ls] = mt.Gauge.GetValue()
			case mt.Histogram != nil:
				out[mf.GetName()+"_count"+ls] = float64(mt.Histogram.GetSampleCount())
				out[mf.GetName()+"_sum"+ls] = mt.Histogram.GetSampleSum()
				for _, b := range mt.Histogram.Bucket {
					le := fmt.Sprintf("%g", b.GetUpperBound())
					out[mf.GetName()+"_bucket"+strings.TrimSuffix(ls, "}")+",le="+le+"}"] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: missing (want %g)", k, w)
			continue
		}
		if math.Abs(g-w) > 1e-9 {
			t.Errorf("%s = %g, want %g", k, g, w)
		}
	}
}

// Monday 2026-11-02 10:00 UTC.
var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func commit(t *testing.T, m *Model, name string, b *collectors.Batch, cursor string) Result {
	t.Helper()
	if b.Now.IsZero() {
		b.Now = t0.Add(24 * time.Hour)
	}
	res, err := m.Commit(name, b, []byte(cursor))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

const tl = "channel=email,collector=zd,priority=high,queue=billing"

func TestTicketUpdatedManyTimesCountsEachEventOnce(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	base := record.Ticket{ID: "T1", Queue: "billing", Channel: "email", Priority: "high", Status: "new", CreatedAt: t0}
	v1 := base
	v2 := base
	v2.Status, v2.FirstReplyAt, v2.AgentReplies = "pending", t0.Add(30*time.Minute), 1
	v3 := v2
	v3.Status, v3.SolvedAt = "solved", t0.Add(2*time.Hour)
	// The ticket arrives three times in one run and twice more later.
	commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{v1, v2, v2}}, "c1")
	commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{v3, v3}}, "c2")
	got := values(t, m)
	expect(t, got, map[string]float64{
		"servq_tickets_created_total{" + tl + "}":              1,
		"servq_tickets_solved_total{" + tl + "}":               1,
		"servq_tickets_solved_first_contact_total{" + tl + "}": 1, // one agent reply, no reopen
		"servq_ticket_first_reply_seconds_count{" + tl + "}":   1,
		"servq_ticket_first_reply_seconds_sum{" + tl + "}":     1800, // 10:00 -> 10:30
		"servq_ticket_resolution_seconds_sum{" + tl + "}":      7200, // 10:00 -> 12:00
		// Monday 10:00-12:00 is inside 09:00-17:00: business = calendar.
		"servq_ticket_resolution_business_seconds_sum{" + tl + "}": 7200,
		// The SLO threshold 4h (14400s) is a bucket bound: 1800 <= 14400.
		"servq_ticket_first_reply_seconds_bucket{" + strings.TrimSuffix(tl, "") + ",le=14400}": 1,
		// new -> pending -> solved: the ticket left tickets_open again.
		"servq_tickets_open{collector=zd,queue=billing,status=new}":     0,
		"servq_tickets_open{collector=zd,queue=billing,status=pending}": 0,
	})
	if c, _ := m.Cursor("zd"); string(c) != "c2" {
		t.Errorf("cursor = %q, want c2", c)
	}
}

func TestReopenCountedOnceWhetherSeenOrCountedBySource(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	solved := record.Ticket{ID: "T2", Queue: "billing", Channel: "email", Priority: "high", Status: "solved",
		CreatedAt: t0, FirstReplyAt: t0.Add(time.Hour), SolvedAt: t0.Add(3 * time.Hour), AgentReplies: 1}
	reopened := solved
	reopened.Status = "open" // the source has not updated its reopen count yet
	again := solved
	again.Reopens, again.AgentReplies, again.SolvedAt = 1, 2, t0.Add(5*time.Hour)
	commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{solved}}, "1")
	commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{reopened}}, "2")
	commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{again, again}}, "3")
	expect(t, values(t, m), map[string]float64{
		"servq_tickets_reopened_total{" + tl + "}": 1, // inferred at "open", then confirmed by Reopens=1
		"servq_tickets_solved_total{" + tl + "}":   1, // counted at the first solve only
		// FCR was decided at the first solve (1 reply, no reopen yet).
		"servq_tickets_solved_first_contact_total{" + tl + "}":       1,
		"servq_tickets_open{collector=zd,queue=billing,status=open}": 0,
	})
}

func TestCallMetricsFollowIndustryDefinitions(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	s := time.Second
	calls := []record.Call{
		{ID: "1", Queue: "sales", Outcome: record.OutcomeAnswered, Wait: 10 * s, Talk: 120 * s, Hold: 30 * s, Wrap: 60 * s},
		{ID: "2", Queue: "sales", Outcome: record.OutcomeAnswered, Wait: 25 * s, Talk: 300 * s},
		{ID: "3", Queue: "sales", Outcome: record.OutcomeAbandoned, Wait: 3 * s},
		{ID: "4", Queue: "sales", Outcome: record.OutcomeAbandoned, Wait: 40 * s},
		{ID: "5", Queue: "sales", Outcome: record.OutcomeTimeout, Wait: 300 * s},
		{ID: "6", Queue: "sales", Outcome: record.OutcomeTransferred, Wait: 15 * s, Talk: 90 * s},
		{ID: "6", Queue: "sales", Outcome: record.OutcomeTransferred, Wait: 15 * s, Talk: 90 * s}, // repeated
		{ID: "7", Queue: "sales", Outcome: record.OutcomeAbandoned, Wait: 5 * s},                  // exactly at the 5s threshold
	}
	res := commit(t, m, "pbx", &collectors.Batch{Calls: calls}, "x")
	if res.Accepted["call"] != 7 || res.Duplicate["call"] != 1 {
		t.Errorf("result = %+v, want 7 accepted 1 duplicate", res)
	}
	q := "channel=phone,collector=pbx,queue=sales"
	qo := func(outcome string) string { return "channel=phone,collector=pbx,outcome=" + outcome + ",queue=sales" }
	expect(t, values(t, m), map[string]float64{
		"servq_calls_offered_total{" + q + "}":                  7,
		"servq_calls_answered_total{" + q + "}":                 3, // 1, 2 and transferred 6
		"servq_calls_transferred_total{" + q + "}":              1,
		"servq_calls_abandoned_total{" + q + "}":                3, // 3, 4, 7
		"servq_calls_abandoned_short_total{" + q + "}":          2, // waits 3s and 5s are <= 5s
		"servq_call_wait_seconds_count{" + qo("answered") + "}": 3,
		// ASA = (10+25+15)/3 = 16.67s: the sum is 50.
		"servq_call_wait_seconds_sum{" + qo("answered") + "}": 50,
		// Answered within the 20s SLO threshold: waits 10 and 15.
		"servq_call_wait_seconds_bucket{" + qo("answered") + ",le=20}": 2,
		// Short abandons read from the histogram agree with the counter.
		"servq_call_wait_seconds_bucket{" + qo("abandoned") + ",le=5}": 2,
		"servq_call_wait_seconds_count{" + qo("timeout") + "}":         1,
		// AHT = ((120+30+60) + 300 + 90)/3 = 200s.
		"servq_call_handle_seconds_sum{" + q + "}":   600,
		"servq_call_handle_seconds_count{" + q + "}": 3,
	})
}

func TestSurveyMetrics(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	var b collectors.Batch
	for i, sc := range []float64{5, 4, 3, 2} {
		b.Surveys = append(b.Surveys, record.SurveyResponse{ID: fmt.Sprint("c", i), Survey: "post", Kind: record.KindCSAT, Score: sc, HasScore: true, Queue: "q", Channel: "chat"})
	}
	for i, sc := range []float64{10, 9, 8, 6, 0} {
		b.Surveys = append(b.Surveys, record.SurveyResponse{ID: fmt.Sprint("n", i), Survey: "rel", Kind: record.KindNPS, Score: sc, HasScore: true, Queue: "q", Channel: "chat"})
	}
	b.Surveys = append(b.Surveys, record.SurveyResponse{ID: "s1", Survey: "sq", Kind: record.KindSERVQUAL,
		Servqual: []record.ServqualItem{
			{Dimension: record.Tangibles, Expectation: 7, Perception: 5, HasE: true, HasP: true},
			{Dimension: record.Tangibles, Expectation: 6, Perception: 6, HasE: true, HasP: true},
			{Dimension: record.Empathy, Expectation: 5, HasE: true}, // perception not answered
		},
		Weights: map[string]float64{record.Tangibles: 30, record.Empathy: 70}})
	b.Surveys = append(b.Surveys, b.Surveys[0]) // the same response delivered twice
	commit(t, m, "svy", &b, "1")
	c := "channel=chat,collector=svy,queue=q"
	expect(t, values(t, m), map[string]float64{
		"servq_survey_responses_total{channel=chat,collector=svy,kind=csat,queue=q,survey=post}": 4,
		// CSAT = satisfied/responses = 2/4 (scores 5 and 4 are >= 4).
		"servq_csat_satisfied_total{" + c + ",survey=post}": 2,
		"servq_csat_score_sum{" + c + ",survey=post}":       14,
		// NPS = %promoters - %detractors = 2/5 - 2/5 = 0.
		"servq_nps_responses_total{category=promoter," + c + ",survey=rel}":  2,
		"servq_nps_responses_total{category=passive," + c + ",survey=rel}":   1,
		"servq_nps_responses_total{category=detractor," + c + ",survey=rel}": 2,
		// Tangibles gap = mean P - mean E = (5+6)/2 - (7+6)/2 = -1.
		"servq_servqual_score_sum{collector=svy,dimension=tangibles,scale=expectation,survey=sq}":   13,
		"servq_servqual_score_count{collector=svy,dimension=tangibles,scale=expectation,survey=sq}": 2,
		"servq_servqual_score_sum{collector=svy,dimension=tangibles,scale=perception,survey=sq}":    11,
		"servq_servqual_score_count{collector=svy,dimension=empathy,scale=expectation,survey=sq}":   1,
		"servq_servqual_weight_points_total{collector=svy,dimension=empathy,survey=sq}":             70,
		"servq_servqual_weighted_responses_total{collector=svy,survey=sq}":                          1,
	})
	if _, ok := values(t, m)["servq_servqual_score_count{collector=svy,dimension=empathy,scale=perception,survey=sq}"]; ok {
		t.Error("an unanswered perception item must not be observed")
	}
}

// A crash between fetch and commit means the same batch is fetched again
// from the old cursor; a restart reloads committed values. Neither loses or
// doubles anything.
func TestRestartAndCrashBeforeCommit(t *testing.T) {
	dir := t.TempDir()
	m, st := newModel(t, dir, testConfig)
	calls := []record.Call{{ID: "a", Queue: "q", Outcome: record.OutcomeAnswered, Wait: time.Second}}
	commit(t, m, "pbx", &collectors.Batch{Calls: calls}, "off=100")
	before := values(t, m)
	st.Close() // process ends (the fetch of the next run never committed)

	m2, st2 := newModel(t, dir, testConfig)
	defer st2.Close()
	if got := values(t, m2); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("after restart\n got %v\nwant %v", got, before)
	}
	c, _ := m2.Cursor("pbx")
	if string(c) != "off=100" {
		t.Fatalf("cursor after restart = %q", c)
	}
	// The next run re-reads a call it had already delivered (overlap) and a new one.
	more := []record.Call{calls[0], {ID: "b", Queue: "q", Outcome: record.OutcomeAbandoned, Wait: 9 * time.Second}}
	commit(t, m2, "pbx", &collectors.Batch{Calls: more}, "off=200")
	expect(t, values(t, m2), map[string]float64{
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=q}":   2,
		"servq_calls_answered_total{channel=phone,collector=pbx,queue=q}":  1,
		"servq_calls_abandoned_total{channel=phone,collector=pbx,queue=q}": 1,
	})
}

// A collector removed from the config leaves /metrics but keeps its state:
// put back, it continues from its committed values.
func TestRemovedCollectorLeavesMetricsButKeepsState(t *testing.T) {
	dir := t.TempDir()
	m, st := newModel(t, dir, testConfig)
	commit(t, m, "pbx", &collectors.Batch{Now: time.Now(), Calls: []record.Call{{ID: "c1", Queue: "q", Outcome: record.OutcomeAnswered}}}, "1")
	st.Close()
	without := strings.Replace(testConfig, `  - {name: pbx, type: demo, schedule: "@every 1m"}`+"\n", "", 1)
	m2, st2 := newModel(t, dir, without)
	for k := range values(t, m2) {
		if strings.Contains(k, "collector=pbx") {
			t.Fatalf("removed collector still served: %s", k)
		}
	}
	st2.Close()
	m3, st3 := newModel(t, dir, testConfig)
	defer st3.Close()
	commit(t, m3, "pbx", &collectors.Batch{Now: time.Now(), Calls: []record.Call{{ID: "c2", Queue: "q", Outcome: record.OutcomeAnswered}}}, "2")
	expect(t, values(t, m3), map[string]float64{"servq_calls_offered_total{channel=phone,collector=pbx,queue=q}": 2})
}

func TestLabelCapMapsOverflowToOtherAndRemembersAdmittedValues(t *testing.T) {
	dir := t.TempDir()
	m, st := newModel(t, dir, testConfig) // label_limit: 5
	var calls []record.Call
	for i := 0; i < 7; i++ {
		calls = append(calls, record.Call{ID: fmt.Sprint(i), Queue: fmt.Sprint("q", i), Outcome: record.OutcomeAnswered})
	}
	commit(t, m, "pbx", &collectors.Batch{Calls: calls}, "1")
	got := values(t, m)
	expect(t, got, map[string]float64{
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=q4}":    1,
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=other}": 2, // q5 and q6
		"servq_label_overflow_total{collector=pbx,label=queue}":              2,
	})
	st.Close()
	m2, st2 := newModel(t, dir, testConfig)
	defer st2.Close()
	// After a restart q0 is still admitted and q7 still overflows.
	commit(t, m2, "pbx", &collectors.Batch{Calls: []record.Call{
		{ID: "x", Queue: "q0", Outcome: record.OutcomeAnswered}, {ID: "y", Queue: "q7", Outcome: record.OutcomeAnswered}}}, "2")
	expect(t, values(t, m2), map[string]float64{
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=q0}":    2,
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=other}": 3,
	})
}

func TestBusinessSecondsUseTheSchedule(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	fri := time.Date(2026, 11, 6, 16, 0, 0, 0, time.UTC) // Friday 16:00
	tk := record.Ticket{ID: "W", Queue: "billing", Channel: "email", Priority: "high", Status: "open",
		CreatedAt: fri, FirstReplyAt: fri.Add(66 * time.Hour)} // Monday 10:00
	commit(t, m, "zd", &collectors.Batch{Now: fri.Add(70 * time.Hour), Tickets: []record.Ticket{tk}}, "1")
	expect(t, values(t, m), map[string]float64{
		"servq_ticket_first_reply_seconds_sum{" + tl + "}": 66 * 3600,
		// Friday 16:00-17:00 (1h) + Monday 09:00-10:00 (1h) = 7200s.
		"servq_ticket_first_reply_business_seconds_sum{" + tl + "}":  7200,
		"servq_tickets_open{collector=zd,queue=billing,status=open}": 1,
	})
}

func TestSnapshotSetsGaugesAndZeroesUnreportedStates(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	commit(t, m, "pbx", &collectors.Batch{Snapshots: []record.Snapshot{{Queue: "q", CallsWaiting: 4, HasWait: true,
		LongestWait: 95 * time.Second, Agents: map[string]int{"available": 2, "paused": 1}}}}, "1")
	commit(t, m, "pbx", &collectors.Batch{Snapshots: []record.Snapshot{{Queue: "q", CallsWaiting: 0, HasWait: true,
		Agents: map[string]int{"available": 3}}}}, "2")
	expect(t, values(t, m), map[string]float64{
		"servq_queue_calls_waiting{collector=pbx,queue=q}":          0,
		"servq_queue_longest_wait_seconds{collector=pbx,queue=q}":   0,
		"servq_queue_agents{collector=pbx,queue=q,state=available}": 3,
		"servq_queue_agents{collector=pbx,queue=q,state=paused}":    0,
	})
}

func TestPruneBoundsTheStore(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig) // retention 90d by default
	defer st.Close()
	old := t0
	commit(t, m, "pbx", &collectors.Batch{Now: old, Calls: []record.Call{{ID: "old", Queue: "q", Outcome: record.OutcomeAnswered}},
		Tickets: []record.Ticket{{ID: "stale", Queue: "q", Status: "open", CreatedAt: old}}}, "1")
	later := old.Add(91 * 24 * time.Hour)
	commit(t, m, "pbx", &collectors.Batch{Now: later, Calls: []record.Call{{ID: "new", Queue: "q", Outcome: record.OutcomeAnswered}}}, "2")
	var seen, tickets int
	st.View("pbx", func(tx *state.Tx) error {
		seen, tickets = tx.Count(state.SpaceSeen), tx.Count(state.SpaceTickets)
		return nil
	})
	if seen != 1 || tickets != 0 {
		t.Errorf("after pruning: %d dedup keys, %d tickets; want 1 and 0", seen, tickets)
	}
	expect(t, values(t, m), map[string]float64{
		"servq_tickets_open{collector=pbx,queue=q,status=open}":          0, // the pruned open ticket left the gauge
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=q}": 2,
	})
}

// TestPruneIsIncremental: pruning never walks the whole store in one
// commit (the first commit after a start used to read every key of a
// million-ticket store, making the whole file resident). Each commit
// sweeps at most pruneBudget keys per space from where the last one
// stopped, also across a restart, until the pass is done.
func TestPruneIsIncremental(t *testing.T) {
	dir := t.TempDir()
	m, st := newModel(t, dir, testConfig) // retention 90d by default
	const n = 2*pruneBudget + 100
	tickets := make([]record.Ticket, n)
	for i := range tickets {
		tickets[i] = record.Ticket{ID: fmt.Sprintf("t%05d", i), Queue: "q", Status: "open", CreatedAt: t0}
	}
	commit(t, m, "pbx", &collectors.Batch{Now: t0, Tickets: tickets}, "1")
	count := func(st *state.Store) (n int) {
		st.View("pbx", func(tx *state.Tx) error { n = tx.Count(state.SpaceTickets); return nil })
		return n
	}
	later := t0.Add(91 * 24 * time.Hour)
	commit(t, m, "pbx", &collectors.Batch{Now: later}, "2")
	if got := count(st); got != n-pruneBudget {
		t.Fatalf("after one commit: %d tickets left, want %d (one budget pruned)", got, n-pruneBudget)
	}
	// A restart continues the pass where it stopped (the first commit's
	// pass had visited the first budget of keys, unexpired then): the
	// last 100 go, and the pass is done.
	st.Close()
	m, st = newModel(t, dir, testConfig)
	defer st.Close()
	commit(t, m, "pbx", &collectors.Batch{Now: later.Add(time.Minute)}, "3")
	if got := count(st); got != pruneBudget {
		t.Fatalf("after the restart's first commit: %d tickets left, want %d", got, pruneBudget)
	}
	// The next pass begins an hour after, not at each commit.
	commit(t, m, "pbx", &collectors.Batch{Now: later.Add(59 * time.Minute)}, "4")
	if got := count(st); got != pruneBudget {
		t.Fatalf("a pass began within the hour: %d tickets left", got)
	}
	commit(t, m, "pbx", &collectors.Batch{Now: later.Add(2 * time.Hour)}, "5")
	if got := count(st); got != 0 {
		t.Fatalf("after the next pass: %d tickets left", got)
	}
	expect(t, values(t, m), map[string]float64{"servq_tickets_open{collector=pbx,queue=q,status=open}": 0})
}

// TestLabelValuesAreCleanedBeforeTheyAreServed: text from a source becomes
// a label value only as valid UTF-8, without any configured secret (a
// vendor echoing the request's token into a queue name), cut to 128 bytes
// after the redaction so no part of a secret survives the cut.
func TestLabelValuesAreCleanedBeforeTheyAreServed(t *testing.T) {
	const secret = "zd-token-7f3a9c1e5b"
	redact.Add(secret)
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	long := strings.Repeat("x ", 60) + secret // the secret straddles byte 128
	commit(t, m, "pbx", &collectors.Batch{Calls: []record.Call{
		{ID: "1", Queue: "billing " + secret, Outcome: record.OutcomeAnswered},
		{ID: "2", Queue: "billing " + secret, Outcome: record.OutcomeAnswered},
		{ID: "3", Queue: long, Outcome: record.OutcomeAnswered},
		{ID: "4", Queue: "caf\xe9", Outcome: record.OutcomeAnswered},
	}}, "1")
	got := values(t, m)
	expect(t, got, map[string]float64{
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=billing " + redact.Placeholder + "}":                        2,
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=" + strings.Repeat("x ", 60) + redact.Placeholder[:8] + "}": 1,
		"servq_calls_offered_total{channel=phone,collector=pbx,queue=caf?}":                                                      1,
	})
	for k := range got {
		if strings.Contains(k, "zd-token") {
			t.Errorf("a secret's part is served: %s", k)
		}
	}
}
