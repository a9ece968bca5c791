package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// demo simulates a contact centre deterministically: every event is a pure
// function of (seed, minute), so a run can be repeated from the same cursor
// (crash safety) and the whole history is reproducible. Each run emits what
// happened in simulated time between the cursor and now.
type demo struct {
	seed     uint64
	queues   []string
	channels []string
	scale    float64
	backfill time.Duration
}

type demoSpec struct {
	Seed     uint64          `yaml:"seed"`
	Queues   []string        `yaml:"queues"`
	Channels []string        `yaml:"channels"`
	Scale    float64         `yaml:"scale"`
	Backfill config.Duration `yaml:"backfill"`
}

func init() {
	collectors.Register("demo", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		spec := demoSpec{Seed: 1, Scale: 1, Backfill: config.Duration(2 * time.Hour)}
		if err := c.DecodeSpec(&spec); err != nil {
			return nil, err
		}
		if len(spec.Queues) == 0 {
			spec.Queues = []string{"billing", "support", "sales"}
		}
		if len(spec.Channels) == 0 {
			spec.Channels = []string{"email", "chat", "web", "phone"}
		}
		if spec.Scale <= 0 {
			return nil, c.Errorf("scale", "must be positive, got %g", spec.Scale)
		}
		if spec.Backfill < 0 || spec.Backfill.D() > 7*24*time.Hour {
			return nil, c.Errorf("backfill", "must be between 0 and 7d, got %s", spec.Backfill)
		}
		return &demo{seed: spec.Seed, queues: spec.Queues, channels: spec.Channels, scale: spec.Scale, backfill: spec.Backfill.D()}, nil
	})
}

type demoCursor struct {
	Until int64 `json:"until"` // simulated events up to this unix second were emitted
}

// Tickets live at most this long in the simulation; a run regenerates the
// tickets created within it to find those that changed.
const demoTicketLife = 72 * time.Hour

func (d *demo) rng(minute int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(d.seed, uint64(minute)*16+stream))
}

// load is the intraday arrival curve: quiet nights, peaks at 10:00 and
// 14:00, lower weekends.
func load(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	v := 0.08 + math.Exp(-math.Pow(h-10, 2)/4) + 0.8*math.Exp(-math.Pow(h-14, 2)/5)
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		v *= 0.35
	}
	return v
}

func poisson(r *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func (d *demo) Collect(ctx context.Context, cursor []byte, b *collectors.Batch) ([]byte, error) {
	now := b.Now.Truncate(time.Second)
	var cur demoCursor
	if len(cursor) > 0 {
		if err := json.Unmarshal(cursor, &cur); err != nil {
			return nil, fmt.Errorf("demo: bad cursor: %w", err)
		}
	} else {
		cur.Until = now.Add(-d.backfill).Unix()
	}
	from := time.Unix(cur.Until, 0).UTC()
	if !now.After(from) {
		return cursor, nil
	}
	in := func(t time.Time) bool { return t.After(from) && !t.After(now) }
	waiting := map[string][]time.Duration{}
	for m := from.Add(-time.Hour).Unix() / 60; m <= now.Unix()/60; m++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, c := range d.calls(m) {
			if in(c.EndedAt) {
				b.Calls = append(b.Calls, c)
			}
			if !c.EnqueuedAt.After(now) && now.Before(c.EnqueuedAt.Add(c.Wait)) {
				waiting[c.Queue] = append(waiting[c.Queue], now.Sub(c.EnqueuedAt))
			}
		}
		for _, s := range d.surveys(m) {
			if in(s.SubmittedAt) {
				b.Surveys = append(b.Surveys, s)
			}
		}
	}
	open := map[string]map[string]int{}
	for m := from.Add(-demoTicketLife).Unix() / 60; m <= now.Unix()/60; m++ {
		for _, t := range d.tickets(m) {
			// Every instant at which the ticket as reported changes: the
			// events, plus the time-driven status changes of ticketAsOf.
			changed := in(t.CreatedAt) || in(t.FirstReplyAt) || in(t.FirstReplyAt.Add(demoPendingAfter)) ||
				in(t.SolvedAt) || (t.Reopens > 0 && (in(t.UpdatedAt) || in(t.UpdatedAt.Add(time.Hour))))
			if t.CreatedAt.After(now) {
				continue
			}
			asOf := ticketAsOf(t, now)
			if changed {
				b.Tickets = append(b.Tickets, asOf)
			}
			if asOf.SolvedAt.IsZero() {
				if open[asOf.Queue] == nil {
					open[asOf.Queue] = map[string]int{}
				}
				open[asOf.Queue][asOf.Status]++
			}
		}
	}
	for i, q := range d.queues {
		r := d.rng(now.Unix()/60, 15)
		var longest time.Duration
		for _, w := range waiting[q] {
			longest = max(longest, w)
		}
		staff := int(math.Round(3 + 6*load(now)*d.scale))
		busy := min(staff, int(math.Round(float64(staff)*0.6+float64(i))))
		paused := r.IntN(2)
		b.Snapshots = append(b.Snapshots, record.Snapshot{Queue: q, At: now, HasWait: true,
			CallsWaiting: len(waiting[q]), LongestWait: longest,
			Agents:      map[string]int{"available": max(staff-busy-paused, 0), "busy": busy, "paused": paused, "wrap": r.IntN(2)},
			OpenTickets: open[q]})
	}
	next, _ := json.Marshal(demoCursor{Until: now.Unix()})
	return next, nil
}

// calls of one simulated minute.
func (d *demo) calls(minute int64) []record.Call {
	t0 := time.Unix(minute*60, 0).UTC()
	r := d.rng(minute, 1)
	var out []record.Call
	for qi, q := range d.queues {
		n := poisson(r, 1.2*load(t0)*d.scale/float64(qi+1))
		for i := 0; i < n; i++ {
			c := record.Call{ID: fmt.Sprintf("demo-call-%d-%d-%d", minute, qi, i), Queue: q,
				EnqueuedAt: t0.Add(secs(r.Float64() * 60))}
			// Waits grow with load: at peaks more callers wait long.
			c.Wait = secs(r.ExpFloat64() * (4 + 30*load(t0)))
			switch p := r.Float64(); {
			case p < 0.06:
				c.Outcome, c.Wait = record.OutcomeAbandoned, secs(r.Float64()*5) // short abandon
			case p < 0.12:
				c.Outcome = record.OutcomeAbandoned
			case p < 0.13:
				c.Outcome, c.Wait = record.OutcomeTimeout, 300*time.Second
			case p < 0.14:
				c.Outcome = record.OutcomeVoicemail
			case p < 0.20:
				c.Outcome = record.OutcomeTransferred
			default:
				c.Outcome = record.OutcomeAnswered
			}
			c.EndedAt = c.EnqueuedAt.Add(c.Wait)
			if c.Outcome.Answered() {
				c.Agent = fmt.Sprintf("agent-%d", r.IntN(20))
				c.AnsweredAt = c.EndedAt
				c.Talk = secs(120 + r.Float64()*360)
				if r.Float64() < 0.3 {
					c.Hold = secs(10 + r.Float64()*90)
				}
				c.Wrap = secs(30 + r.Float64()*60)
				c.EndedAt = c.AnsweredAt.Add(c.Talk + c.Hold)
			}
			out = append(out, c)
		}
	}
	return out
}

var demoPriorities = []string{"low", "normal", "normal", "normal", "high", "urgent"}

// tickets created in one simulated minute, with their whole future: the
// emitted record is the ticket as of the run's now (ticketAsOf).
func (d *demo) tickets(minute int64) []record.Ticket {
	t0 := time.Unix(minute*60, 0).UTC()
	r := d.rng(minute, 2)
	n := poisson(r, 0.8*load(t0)*d.scale)
	out := make([]record.Ticket, 0, n)
	for i := 0; i < n; i++ {
		t := record.Ticket{ID: fmt.Sprintf("demo-%d-%d", minute, i), Queue: d.queues[r.IntN(len(d.queues))],
			Channel: d.channels[r.IntN(len(d.channels))], Priority: demoPriorities[r.IntN(len(demoPriorities))],
			CreatedAt: t0.Add(secs(r.Float64() * 60)), Complaint: r.Float64() < 0.03}
		// First reply: mostly within an hour, a tail past 4h breaches.
		t.FirstReplyAt = t.CreatedAt.Add(secs(r.ExpFloat64() * 3000))
		t.AgentReplies = 1
		solve := secs(r.ExpFloat64() * 5 * 3600)
		if r.Float64() < 0.3 {
			t.AgentReplies = 2 + r.IntN(3)
			solve += secs(r.Float64() * 20 * 3600)
		}
		t.SolvedAt = t.FirstReplyAt.Add(solve)
		if r.Float64() < 0.05 {
			t.Reopens = 1
			t.UpdatedAt = t.SolvedAt.Add(2 * time.Hour) // reopened, solved again later
		}
		if t.SolvedAt.Sub(t.CreatedAt) > demoTicketLife-6*time.Hour {
			t.SolvedAt = t.CreatedAt.Add(demoTicketLife - 6*time.Hour)
		}
		out = append(out, t)
	}
	return out
}

// demoPendingAfter: a replied ticket waits on the customer (pending) this
// long after the first reply.
const demoPendingAfter = 30 * time.Minute

// ticketAsOf is the ticket as a help desk would report it at now.
func ticketAsOf(t record.Ticket, now time.Time) record.Ticket {
	reopenAt := t.UpdatedAt
	t.UpdatedAt, t.Status = t.CreatedAt, "new"
	reopens := t.Reopens
	t.Reopens = 0
	if !t.FirstReplyAt.After(now) {
		t.Status, t.UpdatedAt = "open", t.FirstReplyAt
	} else {
		t.FirstReplyAt, t.AgentReplies = time.Time{}, 0
	}
	if !t.SolvedAt.After(now) {
		t.Status, t.UpdatedAt = "solved", t.SolvedAt
		if reopens > 0 && !reopenAt.After(now) {
			// Reopened two hours after the solve; solved again one hour later.
			t.Reopens = 1
			t.Status, t.UpdatedAt = "open", reopenAt
			if !reopenAt.Add(time.Hour).After(now) {
				t.Status, t.UpdatedAt = "solved", reopenAt.Add(time.Hour)
			}
		}
	} else {
		t.SolvedAt = time.Time{}
		if t.Status == "open" && !now.Before(t.FirstReplyAt.Add(demoPendingAfter)) {
			t.Status = "pending"
		}
	}
	return t
}

// SERVQUAL expectation and perception means per dimension: expectations
// exceed perceptions, most on responsiveness, least on tangibles.
var demoServqual = map[string][2]float64{
	record.Tangibles: {5.6, 5.4}, record.Reliability: {6.5, 5.6}, record.Responsiveness: {6.3, 5.0},
	record.Assurance: {6.2, 5.7}, record.Empathy: {5.9, 5.3},
}

func clampScore(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, math.Round(v))) }

// surveys submitted in one simulated minute.
func (d *demo) surveys(minute int64) []record.SurveyResponse {
	t0 := time.Unix(minute*60, 0).UTC()
	r := d.rng(minute, 3)
	n := poisson(r, 0.5*load(t0)*d.scale)
	out := make([]record.SurveyResponse, 0, n)
	for i := 0; i < n; i++ {
		s := record.SurveyResponse{ID: fmt.Sprintf("demo-survey-%d-%d", minute, i), SubmittedAt: t0.Add(secs(r.Float64() * 60)),
			Queue: d.queues[r.IntN(len(d.queues))], Channel: d.channels[r.IntN(len(d.channels))], HasScore: true}
		switch k := r.IntN(10); {
		case k < 5:
			s.Survey, s.Kind, s.Score = "post-contact", record.KindCSAT, clampScore(4.2+r.NormFloat64(), 1, 5)
		case k < 8:
			s.Survey, s.Kind, s.Score = "relationship", record.KindNPS, clampScore(7.6+2.2*r.NormFloat64(), 0, 10)
		case k < 9:
			s.Survey, s.Kind, s.Score = "effort", record.KindCES, clampScore(5.3+1.2*r.NormFloat64(), 1, 7)
		default:
			s.Survey, s.Kind, s.HasScore = "servqual", record.KindSERVQUAL, false
			for item := 1; item <= 22; item++ {
				dim := record.ServqualDimension(item)
				m := demoServqual[dim]
				s.Servqual = append(s.Servqual, record.ServqualItem{Dimension: dim, HasE: true, HasP: true,
					Expectation: clampScore(m[0]+0.8*r.NormFloat64(), 1, 7), Perception: clampScore(m[1]+0.9*r.NormFloat64(), 1, 7)})
			}
		}
		out = append(out, s)
	}
	return out
}
