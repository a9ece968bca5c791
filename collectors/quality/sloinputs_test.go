package quality

import (
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

const inputsConfig = `
global: {label_limit: 4}
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
  - {name: pbx2, type: demo, schedule: "@every 1m"}
  - {name: zd, type: demo, schedule: "@every 1m"}
  - {name: svy, type: demo, schedule: "@every 1m"}
slos:
  - {name: sl-all, indicator: call_service_level, threshold: 20s, objective: 80}
  - {name: sl-short, indicator: call_service_level, threshold: 30s, objective: 80, abandon_policy: exclude_short, filters: {queue: sales}}
  - {name: sl-answered, indicator: call_service_level, threshold: 20s, objective: 80, abandon_policy: exclude_all, filters: {queue: "=~s.*|other", collector: pbx2}}
  - {name: abandon, indicator: call_abandonment, objective: 95, filters: {channel: phone}}
  - {name: abandon-re, indicator: call_abandonment, objective: 95, filters: {queue: "=~(sales|q[0-9])"}}
  - {name: fcr, indicator: ticket_fcr, objective: 70, filters: {queue: billing}}
  - {name: fcr-prio, indicator: ticket_fcr, objective: 70, filters: {priority: "=~high|urgent"}}
  - {name: csat, indicator: csat, objective: 80}
  - {name: csat-q, indicator: csat, csat_min: 5, objective: 80, filters: {queue: billing, channel: "=~e.*"}}
  - {name: reply, indicator: ticket_first_reply, threshold: 1h, objective: 90}
  - {name: reply-billing, indicator: ticket_first_reply, threshold: 2h, objective: 90, filters: {queue: billing}}
  - {name: resolve, indicator: ticket_resolution, threshold: 4h, objective: 90}
`

// rawSum is what the PromQL of an input's raw selector sums over the
// served series: the selector parsed and matched by Prometheus' own
// matchers (regular expressions anchored as in PromQL), the bucket's le
// as the text format writes it.
func rawSum(t *testing.T, fams map[string]*dto.MetricFamily, term sli.Term) float64 {
	t.Helper()
	ms, err := parser.ParseMetricSelector(term.Selector())
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var samples []struct {
				name, le string
				v        float64
			}
			switch {
			case m.Counter != nil:
				samples = append(samples, struct {
					name, le string
					v        float64
				}{f.GetName(), "", m.GetCounter().GetValue()})
			case m.Histogram != nil:
				samples = append(samples, struct {
					name, le string
					v        float64
				}{f.GetName() + "_count", "", float64(m.GetHistogram().GetSampleCount())})
				for _, b := range m.GetHistogram().GetBucket() {
					samples = append(samples, struct {
						name, le string
						v        float64
					}{f.GetName() + "_bucket", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64), float64(b.GetCumulativeCount())})
				}
			}
			for _, s := range samples {
				get := func(name string) string {
					switch name {
					case labels.MetricName:
						return s.name
					case "le":
						return s.le
					}
					for _, lp := range m.GetLabel() {
						if lp.GetName() == name {
							return lp.GetValue()
						}
					}
					return ""
				}
				ok := true
				for _, mt := range ms {
					ok = ok && mt.Matches(get(mt.Name))
				}
				if ok {
					total += s.v
				}
			}
		}
	}
	return total
}

// Every SLO input equals, after every commit, the sum of the raw series its
// selector matches: random calls, tickets (replies, solves, reopens,
// deadlines passing, ticket ratings that change) and surveys over several
// collectors, with label values beyond the cap (other) and regular
// expression filters.
func TestSLOInputsEqualTheSumOfTheirRawSeries(t *testing.T) {
	cfg, err := config.Parse([]byte(inputsConfig), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.NewSeriesDelay = new(config.Duration)
	m, st := newModelFrom(t, t.TempDir(), cfg)
	defer st.Close()
	rng := rand.New(rand.NewSource(7))
	pick := func(vs ...string) string { return vs[rng.Intn(len(vs))] }
	queues := []string{"sales", "billing", "q1", "support", "q2", "q3", ""}
	outcomes := []record.CallOutcome{record.OutcomeAnswered, record.OutcomeAbandoned, record.OutcomeTimeout, record.OutcomeTransferred, record.OutcomeVoicemail}
	var inputs []sli.Input
	for _, s := range cfg.SLOs {
		ins, err := sli.Inputs(cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, ins...)
	}
	type tk struct{ rec record.Ticket }
	var tickets []*tk
	now := t0
	nonzero := map[string]bool{}
	for round := 0; round < 30; round++ {
		now = now.Add(17 * time.Minute)
		for _, col := range []string{"pbx", "pbx2"} {
			var b collectors.Batch
			for i := 0; i < 40; i++ {
				b.Calls = append(b.Calls, record.Call{ID: fmt.Sprint(col, round, i), Queue: pick(queues...), Channel: pick("phone", "chat", ""),
					Outcome: outcomes[rng.Intn(len(outcomes))], Wait: time.Duration(rng.Intn(60)) * time.Second, Talk: time.Minute,
					EndedAt: now.Add(-time.Minute)})
			}
			b.Now = now
			commit(t, m, col, &b, fmt.Sprint(round))
		}
		var b collectors.Batch
		for i := 0; i < 15; i++ {
			x := &tk{rec: record.Ticket{ID: fmt.Sprint(round, "-", i), Queue: pick(queues...), Channel: pick("email", "web"), Priority: pick("low", "high", "urgent"),
				Status: "open", CreatedAt: now.Add(-time.Duration(rng.Intn(300)) * time.Minute)}}
			tickets = append(tickets, x)
		}
		for _, x := range tickets {
			r := &x.rec
			switch rng.Intn(5) {
			case 0:
				if r.FirstReplyAt.IsZero() {
					// At any time since the ticket was created: a reply
					// delivered after its deadline was judged passed but
					// made in time is a correction.
					r.FirstReplyAt = r.CreatedAt.Add(time.Duration(rng.Int63n(int64(now.Sub(r.CreatedAt)) + 1)))
					r.AgentReplies = 1
				}
			case 1:
				if !r.FirstReplyAt.IsZero() && r.SolvedAt.IsZero() {
					r.SolvedAt, r.Status = r.FirstReplyAt.Add(time.Duration(rng.Int63n(int64(now.Sub(r.FirstReplyAt))+1))), "solved"
				}
			case 2:
				if r.Status == "solved" {
					r.Status, r.Reopens = "open", r.Reopens+1
				}
			case 3:
				r.Satisfaction = pick("good", "bad", "1", "3", "4", "5", "")
			default:
				continue
			}
			r.UpdatedAt = now
			b.Tickets = append(b.Tickets, *r)
		}
		b.Now, b.Watermark = now, now
		commit(t, m, "zd", &b, fmt.Sprint(round))
		var sv collectors.Batch
		for i := 0; i < 10; i++ {
			sv.Surveys = append(sv.Surveys, record.SurveyResponse{ID: fmt.Sprint(round, "-", i), Survey: "post", Kind: record.KindCSAT,
				Score: float64(1 + rng.Intn(5)), HasScore: true, Queue: pick(queues...), Channel: pick("email", "chat"), SubmittedAt: now.Add(-time.Minute)})
		}
		sv.Now = now
		commit(t, m, "svy", &sv, fmt.Sprint(round))

		fams := map[string]*dto.MetricFamily{}
		for _, f := range m.GatherAll() {
			fams[f.GetName()] = f
		}
		for _, in := range inputs {
			want := rawSum(t, fams, in.Term)
			got := rawSum(t, fams, sli.Term{Metric: sli.SLOInput, Matchers: map[string]string{"slo": in.SLO, "input": in.Name, "definition": in.Definition}})
			if math.Abs(got-want) > 1e-9 {
				t.Fatalf("round %d: %s %s = %g, want %g (the sum of %s)", round, in.SLO, in.Name, got, want, in.Term.Selector())
			}
			if got > 0 {
				nonzero[in.SLO+" "+in.Name] = true
			}
		}
	}
	// Every input was exercised.
	for _, in := range inputs {
		if !nonzero[in.SLO+" "+in.Name] {
			t.Errorf("%s %s stayed 0: the test does not exercise it", in.SLO, in.Name)
		}
	}
}

// A changed SLO (here its threshold) is another definition: its input
// counts from 0 from the reload on, and the old definition's sums are no
// longer served; an unchanged input continues.
func TestChangedSLOInputCountsAnew(t *testing.T) {
	dir := t.TempDir()
	conf := func(threshold string) string {
		return `
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: sl, indicator: call_service_level, threshold: ` + threshold + `, objective: 80}
`
	}
	calls := func(id string) *collectors.Batch {
		return &collectors.Batch{Calls: []record.Call{
			{ID: id + "a", Queue: "q", Outcome: record.OutcomeAnswered, Wait: 10 * time.Second},
			{ID: id + "b", Queue: "q", Outcome: record.OutcomeAnswered, Wait: 25 * time.Second},
		}}
	}
	inputs := func(m *Model) map[string]float64 {
		out := map[string]float64{}
		for k, v := range values(t, m) {
			if len(k) > len(sli.SLOInput) && k[:len(sli.SLOInput)] == sli.SLOInput {
				out[k] = v
			}
		}
		return out
	}
	m, st := newModel(t, dir, conf("20s"))
	commit(t, m, "pbx", calls("1"), "1")
	before := inputs(m)
	st.Close()
	m, st = newModel(t, dir, conf("30s"))
	defer st.Close()
	after := inputs(m)
	for k := range before {
		if _, ok := after[k]; ok && strings.Contains(k, "input=answered_within") {
			t.Errorf("%s of the old definition still served after the reload", k)
		}
	}
	commit(t, m, "pbx", calls("2"), "2")
	after = inputs(m)
	var within, offered []float64
	for k, v := range after {
		switch {
		case strings.Contains(k, "input=answered_within"):
			within = append(within, v)
		case strings.Contains(k, "input=offered"):
			offered = append(offered, v)
		}
	}
	// Within 30s: both calls of the second commit, none of the first.
	if len(within) != 1 || within[0] != 2 {
		t.Errorf("answered_within after the change = %v, want [2]", within)
	}
	// Offered is the same definition: it continues (2 + 2).
	if len(offered) != 1 || offered[0] != 4 {
		t.Errorf("offered = %v, want [4]", offered)
	}
	if len(before) != 2 {
		t.Errorf("inputs before = %v, want offered and answered_within", before)
	}
}

// BenchmarkCommitCallsSLOInputs is the cost of the SLO inputs at commit:
// batches of 1,000 calls over 1,000 queues and 4 channels, through a model
// without SLOs and one with 50 call SLOs (the SLOs of deploy/bench/rules.sh,
// half of them filtered by a regular expression on the queue), in one run.
func BenchmarkCommitCallsSLOInputs(b *testing.B) {
	base := "global: {label_limit: 1000}\ncollectors:\n  - {name: pbx, type: demo, schedule: \"@every 1m\"}\n"
	kinds := []string{
		"indicator: call_abandonment",
		"indicator: call_service_level, threshold: 20s, abandon_policy: count_as_bad",
		"indicator: call_service_level, threshold: 60s, abandon_policy: exclude_short",
		"indicator: call_service_level, threshold: 20s, abandon_policy: exclude_all",
	}
	with := base + "slos:\n"
	for i := 0; i < 50; i++ {
		filter := ""
		if i%2 == 1 {
			filter = fmt.Sprintf(`, filters: {queue: "=~q%d.*"}`, i%10)
		}
		with += fmt.Sprintf("  - {name: slo-%02d, %s, objective: 90%s}\n", i, kinds[i%4], filter)
	}
	outcomes := []record.CallOutcome{record.OutcomeAnswered, record.OutcomeAbandoned, record.OutcomeTimeout}
	for _, c := range []struct{ name, cfg string }{{"slos=0", base}, {"slos=50", with}} {
		b.Run(c.name, func(b *testing.B) {
			m, st := newModel(b, b.TempDir(), c.cfg)
			defer st.Close()
			const batch = 1000
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				bt := collectors.Batch{Now: t0.Add(time.Duration(i) * time.Second)}
				for j := 0; j < batch; j++ {
					k := i + j
					bt.Calls = append(bt.Calls, record.Call{ID: fmt.Sprint(k), Queue: fmt.Sprint("q", k%1000), Channel: fmt.Sprint("ch", k/1000%4),
						Outcome: outcomes[k%3], Wait: time.Duration(k%90) * time.Second, Talk: time.Minute})
				}
				if _, err := m.Commit("pbx", &bt, []byte(fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
		})
	}
}
