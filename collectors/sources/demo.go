package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// demo simulates a contact centre, so that `servq run` without a config
// shows every metric of the catalog moving without any system to connect.
// Phone queues are simulated second by second (arrivals, patience, agents
// on shift, pauses, after-call work), tickets follow a life cycle decided
// at their creation and worked at the pace of the back office's shifts,
// and solved tickets bring survey responses.
//
// Every random number is a pure function of the seed and of the simulated
// minute or record it belongs to, and everything that carries over from one
// run to the next (the simulated clock, callers waiting, agents' states,
// tickets with events still ahead) is in the cursor. A run from the same
// cursor and clock therefore produces the same records (crash safety), and
// simulating an hour in one run or in four gives the same history.
type demo struct {
	seed     uint64
	queues   []string
	channels []string
	scale    float64
	backfill int64 // seconds of simulated history on the first run
	speed    float64
	// maxActive caps the tickets the cursor follows (demoMaxActive; lower
	// in tests).
	maxActive int
}

type demoSpec struct {
	Seed     int64           `yaml:"seed"`
	Queues   []string        `yaml:"queues"`
	Channels []string        `yaml:"channels"`
	Scale    float64         `yaml:"scale"`
	Backfill config.Duration `yaml:"backfill"`
	Speed    float64         `yaml:"speed"`
}

// Bounds that keep one run fast and the cursor far below 1 MiB.
const (
	demoMaxBackfill = 7 * 24 * time.Hour
	demoMaxScale    = 20
	demoMaxNames    = 10
	demoMaxSpeed    = 10000
	// demoMaxActive caps the tickets the cursor follows; the oldest beyond
	// it are closed out.
	demoMaxActive = 5000
)

func init() {
	collectors.Register("demo", newDemo)
}

func newDemo(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
	spec := demoSpec{Seed: 1, Scale: 1, Speed: 1, Backfill: config.Duration(2 * time.Hour)}
	if err := c.DecodeSpec(&spec); err != nil {
		return nil, err
	}
	if len(spec.Queues) == 0 {
		spec.Queues = []string{"billing", "support", "sales"}
	}
	if len(spec.Channels) == 0 {
		spec.Channels = []string{"email", "chat", "web", "phone"}
	}
	if err := checkDemoNames(c, "queues", spec.Queues); err != nil {
		return nil, err
	}
	if err := checkDemoNames(c, "channels", spec.Channels); err != nil {
		return nil, err
	}
	switch {
	case spec.Scale <= 0 || spec.Scale > demoMaxScale:
		return nil, c.Errorf("scale", "must be above 0 and at most %d, got %g", demoMaxScale, spec.Scale)
	case spec.Speed <= 0 || spec.Speed > demoMaxSpeed:
		return nil, c.Errorf("speed", "must be above 0 and at most %d, got %g", demoMaxSpeed, spec.Speed)
	case spec.Backfill < 0 || spec.Backfill.D() > demoMaxBackfill:
		return nil, c.Errorf("backfill", "must be between 0 and 7d, got %s", spec.Backfill)
	}
	return &demo{seed: uint64(spec.Seed), queues: spec.Queues, channels: spec.Channels,
		scale: spec.Scale, backfill: int64(spec.Backfill.D() / time.Second), speed: spec.Speed, maxActive: demoMaxActive}, nil
}

func checkDemoNames(c *config.Collector, field string, names []string) error {
	if len(names) > demoMaxNames {
		return c.Errorf(field, "at most %d, got %d", demoMaxNames, len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			return c.Errorf(field, "names must be non-empty and distinct, got %q", names)
		}
		seen[n] = true
	}
	return nil
}

// ---- randomness -------------------------------------------------------

// Streams keep the random numbers of different uses independent.
const (
	streamArrivals uint64 = iota + 1
	streamPauses
	streamTicketCount
	streamTicket
)

// mix is the splitmix64 finalizer: it spreads neighbouring inputs (minute
// numbers) over the whole seed space of the generator.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// rng returns the generator of one (stream, a, b), e.g. the arrivals of one
// minute or the life of one ticket.
func (d *demo) rng(stream uint64, a, b int64) *rand.Rand {
	return rand.New(rand.NewPCG(mix(d.seed^mix(stream)), mix(mix(uint64(a))^uint64(b))))
}

// poisson draws a Poisson count by Knuth's multiplication method, fine for
// the small means used here (at most ~30).
func poisson(r *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for k < 1000 {
		p *= r.Float64()
		if p <= l {
			break
		}
		k++
	}
	return k
}

// expSecs draws an exponential duration in seconds with the given mean,
// cut at limit so that no record lives forever.
func expSecs(r *rand.Rand, mean, limit time.Duration) int64 {
	return int64(min(r.ExpFloat64()*mean.Seconds(), limit.Seconds()))
}

// pick returns an index drawn with the given weights.
func pick(r *rand.Rand, weights []float64) int {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	x := r.Float64() * sum
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// ---- clocks and curves (UTC) ------------------------------------------

func utc(s int64) time.Time { return time.Unix(s, 0).UTC() }

func weekend(t time.Time) bool { return t.Weekday() == time.Saturday || t.Weekday() == time.Sunday }

// load is the intraday arrival curve: quiet nights, peaks at 10:00 and
// 14:00, weekends at about a third of weekdays.
func load(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	v := 0.03 + math.Exp(-(h-10)*(h-10)/4) + 0.8*math.Exp(-(h-14)*(h-14)/5)
	if weekend(t) {
		v *= 0.35
	}
	return v
}

// callRate is the expected arrivals per minute of queue qi: the first queue
// is the busiest.
func (d *demo) callRate(qi int, t time.Time) float64 {
	return 1.2 / (1 + 0.5*float64(qi)) * load(t) * d.scale
}

// ticketRate is the expected tickets per minute: e-mail and web forms
// arrive at night too, so the curve is flatter than the phones'.
func (d *demo) ticketRate(t time.Time) float64 { return 0.35 * (0.25 + load(t)) * d.scale }

// phonesOpen: the first queue is staffed around the clock, the others
// 06:00-22:00 on weekdays and 08:00-18:00 at weekends; outside those hours
// their callers are sent to voicemail.
func phonesOpen(qi int, t time.Time) bool {
	switch {
	case qi == 0:
		return true
	case weekend(t):
		return t.Hour() >= 8 && t.Hour() < 18
	}
	return t.Hour() >= 6 && t.Hour() < 22
}

// demoAHT is the mean agent time per call used for staffing: talk (2-8 min,
// mean 300 s) + hold (a quarter of calls, mean 65 s) + wrap-up (mean 60 s).
const demoAHT = 300 + 16 + 60

// staff is the number of agents the workforce plan puts on queue qi at s:
// square-root staffing on the half hour's expected load (offered erlangs
// plus a safety margin), thinner over lunch, when the queue builds up.
func (d *demo) staff(qi int, s int64) int {
	t := utc(s)
	if !phonesOpen(qi, t) {
		return 0
	}
	plan := t.Truncate(30 * time.Minute).Add(15 * time.Minute)
	erlangs := d.callRate(qi, plan) * demoAHT / 60
	n := math.Ceil(erlangs + 1.2*math.Sqrt(erlangs))
	if t.Hour() == 12 {
		n = math.Ceil(n * 0.85)
	}
	return max(1, int(n))
}

// workWindow is the back office's day shift on the day starting at day
// (unix seconds, UTC midnight): weekdays 07:00-19:00, Saturdays
// 09:00-15:00, none on Sundays.
func workWindow(day int64) (start, end int64) {
	switch utc(day).Weekday() {
	case time.Sunday:
		return day, day
	case time.Saturday:
		return day + 9*3600, day + 15*3600
	}
	return day + 7*3600, day + 19*3600
}

// demoOffShift: outside the day shift a thin on-call team works tickets,
// so work takes this many times longer.
const demoOffShift = 5

// addWork returns the instant at which work seconds of back-office time
// have passed after at: an hour of work asked for at 18:30 on a weekday
// is done at 21:30 (30 minutes on shift, then 30 at a fifth of the pace).
func addWork(at, work int64) int64 {
	t := at
	for i := 0; work > 0 && i < 1000; i++ {
		day := floorDiv(t, 86400) * 86400
		start, end := workWindow(day)
		next, slow := day+86400, int64(demoOffShift)
		switch {
		case t < start:
			next = start
		case t < end:
			next, slow = end, 1
		}
		if work*slow <= next-t {
			return t + work*slow
		}
		work -= (next - t) / slow
		t = next
	}
	return t
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// ---- cursor and simulated clock ---------------------------------------

const demoCursorVersion = 2

type demoCursor struct {
	V int `json:"v"`
	// Real is the wall-clock instant (unix ns) that corresponds to Sim, the
	// simulated unix second reached so far.
	Real   int64        `json:"real"`
	Sim    int64        `json:"sim"`
	Queues []*demoQueue `json:"queues"`
	// Tickets with events still ahead (creation minute, index of the
	// ticket in its minute): their lives are regenerated from these.
	Tickets [][2]int64 `json:"tickets,omitempty"`
}

// demoCatchUp bounds the simulated time one run covers; after a long
// downtime the simulation catches up over several runs.
const demoCatchUp = int64(demoMaxBackfill / time.Second)

// start decodes the cursor and returns the simulated interval (from, to]
// this run covers. A cursor it cannot read (corrupt, or from an older
// version of the demo) restarts the simulation rather than stopping it.
func (d *demo) start(cursor []byte, b *collectors.Batch) (cur demoCursor, from, to int64, first bool) {
	if len(cursor) > 0 {
		err := json.Unmarshal(cursor, &cur)
		if err == nil && cur.V != demoCursorVersion {
			err = fmt.Errorf("cursor version %d, want %d", cur.V, demoCursorVersion)
		}
		if err == nil {
			return cur, cur.Sim, d.advance(&cur, b.Now), false
		}
		b.Reject("bad_cursor", "cursor", fmt.Errorf("demo: restarting the simulation: %w", err))
	}
	to = b.Now.Unix()
	from = to - d.backfill
	cur = demoCursor{V: demoCursorVersion, Real: to * 1e9, Sim: from}
	return cur, from, to, true
}

// advance moves the simulated clock by the wall-clock time since the last
// run times speed, in whole seconds, and returns the new simulated now.
func (d *demo) advance(cur *demoCursor, now time.Time) int64 {
	elapsed := now.UnixNano() - cur.Real
	if elapsed <= 0 {
		return cur.Sim
	}
	var adv, real int64
	if d.speed == 1 {
		adv = min(elapsed/1e9, demoCatchUp)
		real = adv * 1e9
	} else {
		adv = min(int64(float64(elapsed)*d.speed/1e9), demoCatchUp)
		real = int64(float64(adv) * 1e9 / d.speed)
	}
	cur.Real += real
	return cur.Sim + adv
}

// Collect simulates (cursor's instant, now] and emits what ended in it.
func (d *demo) Collect(ctx context.Context, cursor []byte, b *collectors.Batch) ([]byte, error) {
	cur, from, to, first := d.start(cursor, b)
	queues := d.queueStates(cur.Queues, from)
	if err := d.simulateCalls(ctx, queues, from, to, b); err != nil {
		return nil, err
	}
	if first {
		// The desk did not open with the simulation: start with the
		// tickets of the weeks before in flight.
		cur.Tickets = d.ticketsInFlight(from)
	}
	tickets, open, err := d.simulateTickets(ctx, cur.Tickets, from, to, first, b)
	if err != nil {
		return nil, err
	}
	for qi, q := range queues {
		b.Snapshots = append(b.Snapshots, q.snapshot(d.queues[qi], to, open[d.queues[qi]]))
	}
	cur.Sim, cur.Queues, cur.Tickets = to, queues, tickets
	// Everything happens in the simulation as it is delivered: the run is
	// complete up to the simulated instant it reached. That is the run's
	// clock at speed 1, but earlier while a run catches up after a long
	// downtime (demoCatchUp), when the rest is not simulated yet.
	b.Watermark = utc(to)
	return json.Marshal(cur)
}

// ---- phone queues -----------------------------------------------------

// demoCall is a caller, from arrival until the call ends. Everything about
// the caller is drawn on arrival, so that waiting calls carry over in the
// cursor as plain data.
type demoCall struct {
	ID       string `json:"id"`
	Enq      int64  `json:"e"`
	Patience int32  `json:"p"` // seconds the caller waits before hanging up
	Talk     int32  `json:"t"`
	Hold     int32  `json:"h,omitempty"`
	Wrap     int32  `json:"w"`
	Transfer bool   `json:"x,omitempty"` // answered, then transferred away
	Voice    bool   `json:"v,omitempty"` // takes the voicemail option when offered
	Ans      int64  `json:"a,omitempty"`
}

// Queue behaviour: callers are offered voicemail after demoVoicemailAfter,
// the queue gives up after demoQueueTimeout, and out of hours callers hear
// an announcement for demoClosedMessage before voicemail.
const (
	demoVoicemailAfter = 60
	demoQueueTimeout   = 180
	demoClosedMessage  = 20
)

// exit is when and how a waiting caller leaves unanswered; open says
// whether the queue was staffed when the caller arrived.
func (c *demoCall) exit(open bool) (int64, record.CallOutcome) {
	if !open {
		if c.Patience < demoClosedMessage {
			return c.Enq + int64(c.Patience), record.OutcomeAbandoned
		}
		return c.Enq + demoClosedMessage, record.OutcomeVoicemail
	}
	at, out := c.Enq+int64(c.Patience), record.OutcomeAbandoned
	if c.Voice && c.Enq+demoVoicemailAfter < at {
		at, out = c.Enq+demoVoicemailAfter, record.OutcomeVoicemail
	}
	if c.Enq+demoQueueTimeout < at {
		at, out = c.Enq+demoQueueTimeout, record.OutcomeTimeout
	}
	return at, out
}

// Agent states, as reported in snapshots; "" is logged off.
const (
	agentAvailable = "available"
	agentBusy      = "busy"
	agentWrap      = "wrap"
	agentPaused    = "paused"
)

type demoAgent struct {
	State string    `json:"s,omitempty"`
	Until int64     `json:"u,omitempty"` // end of the call, wrap-up or pause
	Since int64     `json:"i,omitempty"` // idle since: the longest idle agent gets the next call
	Leave bool      `json:"l,omitempty"` // logs off when the current state ends
	Call  *demoCall `json:"c,omitempty"`
}

type demoQueue struct {
	Name    string      `json:"name"`
	Waiting []demoCall  `json:"waiting,omitempty"`
	Agents  []demoAgent `json:"agents,omitempty"`

	qi   int
	next int64 // earliest Until among agents; derived, not stored
}

// queueStates lines the cursor's queues up with the configured ones; a
// queue new in the config starts with its planned staff, all available.
func (d *demo) queueStates(saved []*demoQueue, from int64) []*demoQueue {
	out := make([]*demoQueue, len(d.queues))
	for qi, name := range d.queues {
		for _, q := range saved {
			if q != nil && q.Name == name {
				out[qi] = q
			}
		}
		if out[qi] == nil {
			out[qi] = &demoQueue{Name: name}
			for range d.staff(qi, from) {
				out[qi].Agents = append(out[qi].Agents, demoAgent{State: agentAvailable, Since: from})
			}
		}
		out[qi].qi = qi
		out[qi].reschedule()
	}
	return out
}

// arrivals draws the callers of one minute for every queue, each queue's
// in order of arrival. IDs number the minute's callers across queues.
func (d *demo) arrivals(minute int64) [][]demoCall {
	r := d.rng(streamArrivals, minute, 0)
	t := utc(minute * 60)
	out := make([][]demoCall, len(d.queues))
	n := 0
	for qi := range d.queues {
		k := poisson(r, d.callRate(qi, t))
		for range k {
			out[qi] = append(out[qi], d.caller(r, fmt.Sprintf("demo-call-%d-%d", minute, n), minute*60+r.Int64N(60)))
			n++
		}
		slices.SortStableFunc(out[qi], func(a, b demoCall) int { return int(a.Enq - b.Enq) })
	}
	return out
}

func (d *demo) caller(r *rand.Rand, id string, enq int64) demoCall {
	c := demoCall{ID: id, Enq: enq, Talk: 120 + r.Int32N(361), Wrap: 30 + r.Int32N(61)}
	// A few callers hang up within seconds (misdials: short abandons); the
	// others' patience is exponential, mean 3 minutes.
	if r.Float64() < 0.05 {
		c.Patience = 1 + r.Int32N(4)
	} else {
		c.Patience = 10 + int32(expSecs(r, 170*time.Second, time.Hour))
	}
	if r.Float64() < 0.25 {
		c.Hold = 10 + r.Int32N(111)
	}
	c.Transfer = r.Float64() < 0.08
	c.Voice = r.Float64() < 0.15
	return c
}

// simulateCalls steps every queue second by second through (from, to].
func (d *demo) simulateCalls(ctx context.Context, queues []*demoQueue, from, to int64, b *collectors.Batch) error {
	var arr [][]demoCall
	pos := make([]int, len(queues))
	for s := from + 1; s <= to; s++ {
		if s == from+1 || s%60 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			arr = d.arrivals(floorDiv(s, 60))
			for qi := range pos {
				pos[qi] = 0
				for pos[qi] < len(arr[qi]) && arr[qi][pos[qi]].Enq < s {
					pos[qi]++
				}
			}
		}
		for qi, q := range queues {
			q.finish(s, b)
			if s%60 == 0 {
				q.plan(d.staff(qi, s), s, d.rng(streamPauses, s/60, int64(qi)))
			}
			for pos[qi] < len(arr[qi]) && arr[qi][pos[qi]].Enq == s {
				q.Waiting = append(q.Waiting, arr[qi][pos[qi]])
				pos[qi]++
			}
			q.leave(s, b)
			q.route(s)
		}
	}
	return nil
}

func (q *demoQueue) reschedule() {
	q.next = math.MaxInt64
	for _, a := range q.Agents {
		if a.State != "" && a.State != agentAvailable {
			q.next = min(q.next, a.Until)
		}
	}
}

// finish ends the calls, wrap-ups and pauses due at s.
func (q *demoQueue) finish(s int64, b *collectors.Batch) {
	if s < q.next {
		return
	}
	for i := range q.Agents {
		a := &q.Agents[i]
		if a.State == "" || a.State == agentAvailable || a.Until > s {
			continue
		}
		switch a.State {
		case agentBusy:
			b.Calls = append(b.Calls, q.answered(a.Call, i, s))
			a.State, a.Until, a.Call = agentWrap, s+int64(a.Call.Wrap), nil
		case agentWrap, agentPaused:
			a.State, a.Since = agentAvailable, s
			if a.Leave {
				*a = demoAgent{}
			}
		}
	}
	q.trim()
	q.reschedule()
}

func (q *demoQueue) answered(c *demoCall, agent int, end int64) record.Call {
	out := record.OutcomeAnswered
	if c.Transfer {
		out = record.OutcomeTransferred
	}
	return record.Call{ID: c.ID, Queue: q.Name, Agent: fmt.Sprintf("%s-%02d", q.Name, agent+1), Channel: "phone",
		EnqueuedAt: utc(c.Enq), AnsweredAt: utc(c.Ans), EndedAt: utc(end),
		Wait: secsDur(c.Ans - c.Enq), Talk: secsDur(int64(c.Talk)), Hold: secsDur(int64(c.Hold)), Wrap: secsDur(int64(c.Wrap)),
		Outcome: out}
}

func secsDur(s int64) time.Duration { return time.Duration(s) * time.Second }

// plan brings the queue to the planned staff at the top of a minute and
// sends some idle agents on a break.
func (q *demoQueue) plan(target int, s int64, r *rand.Rand) {
	on := 0
	for _, a := range q.Agents {
		if a.State != "" && !a.Leave {
			on++
		}
	}
	// Agents about to log off stay instead when more are needed; newcomers
	// take free desks.
	for i := 0; on < target; i++ {
		if i == len(q.Agents) {
			q.Agents = append(q.Agents, demoAgent{})
		}
		switch a := &q.Agents[i]; {
		case a.State == "":
			*a = demoAgent{State: agentAvailable, Since: s}
			on++
		case a.Leave:
			a.Leave = false
			on++
		}
	}
	// Idle agents log off at once, the others after their call or break.
	for _, idle := range []bool{true, false} {
		for i := len(q.Agents) - 1; i >= 0 && on > target; i-- {
			a := &q.Agents[i]
			if a.State == "" || a.Leave || (a.State == agentAvailable) != idle {
				continue
			}
			a.Leave = true
			on--
			if idle {
				*a = demoAgent{}
			}
		}
	}
	for i := range q.Agents {
		// About one break every 100 idle minutes, 5 to 15 minutes long.
		if a := &q.Agents[i]; r.Float64() < 0.01 && a.State == agentAvailable {
			a.State, a.Until = agentPaused, s+300+r.Int64N(601)
		}
	}
	q.trim()
	q.reschedule()
}

func (q *demoQueue) trim() {
	for len(q.Agents) > 0 && q.Agents[len(q.Agents)-1].State == "" {
		q.Agents = q.Agents[:len(q.Agents)-1]
	}
}

// leave emits the callers who hang up, time out or go to voicemail at s.
func (q *demoQueue) leave(s int64, b *collectors.Batch) {
	kept := q.Waiting[:0]
	for _, c := range q.Waiting {
		at, out := c.exit(phonesOpen(q.qi, utc(c.Enq)))
		if at > s {
			kept = append(kept, c)
			continue
		}
		b.Calls = append(b.Calls, record.Call{ID: c.ID, Queue: q.Name, Channel: "phone",
			EnqueuedAt: utc(c.Enq), EndedAt: utc(at), Wait: secsDur(at - c.Enq), Outcome: out})
	}
	clear(q.Waiting[len(kept):])
	q.Waiting = kept
}

// route gives waiting callers, first come first served, to the agents idle
// the longest.
func (q *demoQueue) route(s int64) {
	for len(q.Waiting) > 0 {
		best := -1
		for i, a := range q.Agents {
			if a.State == agentAvailable && !a.Leave && (best < 0 || a.Since < q.Agents[best].Since) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		c := q.Waiting[0]
		q.Waiting = q.Waiting[1:]
		c.Ans = s
		q.Agents[best] = demoAgent{State: agentBusy, Until: s + int64(c.Talk) + int64(c.Hold), Call: &c}
		q.next = min(q.next, q.Agents[best].Until)
	}
}

func (q *demoQueue) snapshot(name string, s int64, open map[string]int) record.Snapshot {
	agents := map[string]int{agentAvailable: 0, agentBusy: 0, agentWrap: 0, agentPaused: 0}
	for _, a := range q.Agents {
		if a.State != "" {
			agents[a.State]++
		}
	}
	snap := record.Snapshot{Queue: name, At: utc(s), HasWait: true, CallsWaiting: len(q.Waiting), Agents: agents,
		OpenTickets: map[string]int{"new": open["new"], "open": open["open"], "pending": open["pending"]}}
	if len(q.Waiting) > 0 {
		snap.LongestWait = secsDur(s - q.Waiting[0].Enq)
	}
	return snap
}

// ---- tickets ----------------------------------------------------------

// demoStep is a change of a ticket: from At on it has this status, this
// many public agent replies and reopens.
type demoStep struct {
	At      int64
	Status  string
	Replies int
	Reopens int
}

// demoTicket is a ticket's whole life, decided when it is created.
type demoTicket struct {
	ref    [2]int64
	base   record.Ticket
	steps  []demoStep
	survey *record.SurveyResponse
}

// last is when the ticket's last event happens: until then the cursor
// keeps following it.
func (t *demoTicket) last() int64 {
	at := t.steps[len(t.steps)-1].At
	if t.survey != nil {
		at = max(at, t.survey.SubmittedAt.Unix())
	}
	return at
}

// asOf is the ticket as a help desk would report it at s.
func (t *demoTicket) asOf(s int64) record.Ticket {
	tk := t.base
	var solved int64
	for _, st := range t.steps {
		if st.At > s {
			break
		}
		if st.Replies > 0 && tk.FirstReplyAt.IsZero() {
			tk.FirstReplyAt = utc(st.At)
		}
		if st.Status == "solved" && tk.Status != "solved" {
			solved = st.At
		}
		tk.Status, tk.AgentReplies, tk.Reopens, tk.UpdatedAt = st.Status, st.Replies, st.Reopens, utc(st.At)
	}
	if tk.Status == "solved" {
		tk.SolvedAt = utc(solved)
	}
	// The simulated help desk runs its own SLA policy, as Zendesk or
	// Freshdesk do, and reports a first-reply breach once the target has
	// passed without a reply.
	target := demoSLAFirstReply[tk.Priority]
	if reply := tk.FirstReplyAt; target > 0 && ((!reply.IsZero() && reply.Sub(tk.CreatedAt) > target) ||
		(reply.IsZero() && s-tk.CreatedAt.Unix() > int64(target/time.Second))) {
		tk.SLABreaches = []string{"first_reply"}
	}
	return tk
}

// demoSLAFirstReply is the simulated help desk's own first-reply SLA per
// priority, in calendar time.
var demoSLAFirstReply = map[string]time.Duration{"low": 24 * time.Hour, "normal": 8 * time.Hour, "high": 4 * time.Hour, "urgent": time.Hour}

// changedIn reports whether the ticket was created or changed in (from, to].
func (t *demoTicket) changedIn(from, to int64) bool {
	for _, st := range t.steps {
		if st.At > from && st.At <= to {
			return true
		}
	}
	return false
}

var (
	demoPriorities = []string{"low", "normal", "high", "urgent"}
	// Share of tickets per priority and the mean back-office time to the
	// first reply: urgent tickets jump the queue.
	demoPriorityShare = []float64{15, 55, 22, 8}
	demoReplyWork     = []time.Duration{150 * time.Minute, 90 * time.Minute, 45 * time.Minute, 20 * time.Minute}
	// Agent replies until solved: 1 for about three quarters of tickets,
	// which with ~6% reopens gives an FCR of about 70%.
	demoReplyShare = []float64{74, 14, 8, 4}
)

// ticket regenerates ticket i of minute m with its whole life.
func (d *demo) ticket(m int64, i int64) *demoTicket {
	r := d.rng(streamTicket, m, i)
	weights := make([]float64, len(d.queues))
	for qi := range weights {
		weights[qi] = 1 / (1 + 0.5*float64(qi))
	}
	created := m*60 + r.Int64N(60)
	prio := pick(r, demoPriorityShare)
	t := &demoTicket{ref: [2]int64{m, i}, base: record.Ticket{ID: fmt.Sprintf("demo-ticket-%d-%d", m, i),
		Queue: d.queues[pick(r, weights)], Channel: d.channels[r.IntN(len(d.channels))], Priority: demoPriorities[prio],
		CreatedAt: utc(created), Complaint: r.Float64() < 0.02+0.05*float64(prio)/3}}
	t.steps = []demoStep{{At: created, Status: "new"}}
	reply := addWork(created, expSecs(r, demoReplyWork[prio], 10*time.Hour))
	if r.Float64() < 0.03 {
		// Now and then a ticket is forgotten in a view for most of a day.
		reply = addWork(reply, int64(5*3600+r.Int64N(5*3600)))
	}
	if triage := addWork(created, expSecs(r, 10*time.Minute, 2*time.Hour)); triage < reply {
		t.steps = append(t.steps, demoStep{At: triage, Status: "open"})
	}
	t.steps = append(t.steps, demoStep{At: reply, Status: "pending", Replies: 1})
	d.converse(r, t, 1+pick(r, demoReplyShare))
	if sol := t.steps[len(t.steps)-1]; r.Float64() < 0.3 {
		t.survey = d.survey(r, t, sol.At)
	}
	return t
}

// converse plays the exchanges after the first reply: the customer answers
// (open), an agent replies (pending), until the ticket is solved with the
// last reply or after the customer confirms; some solved tickets come back.
func (d *demo) converse(r *rand.Rand, t *demoTicket, replies int) {
	at := t.steps[len(t.steps)-1].At
	for k := 2; k <= replies; k++ {
		at += 60 + expSecs(r, 3*time.Hour, 3*24*time.Hour)
		t.steps = append(t.steps, demoStep{At: at, Status: "open", Replies: k - 1})
		at = addWork(at, 60+expSecs(r, 45*time.Minute, 8*time.Hour))
		t.steps = append(t.steps, demoStep{At: at, Status: "pending", Replies: k})
	}
	if r.Float64() < 0.5 {
		t.steps[len(t.steps)-1].Status = "solved" // solved with the reply
	} else {
		at += 60 + expSecs(r, 8*time.Hour, 3*24*time.Hour)
		t.steps = append(t.steps, demoStep{At: at, Status: "solved", Replies: replies})
	}
	if r.Float64() < 0.06 {
		at += 600 + expSecs(r, 18*time.Hour, 5*24*time.Hour)
		t.steps = append(t.steps, demoStep{At: at, Status: "open", Replies: replies, Reopens: 1})
		at = addWork(at, 60+expSecs(r, time.Hour, 8*time.Hour))
		// Help desks count at most a handful of replies; keep it to four.
		t.steps = append(t.steps, demoStep{At: at, Status: "solved", Replies: min(replies+1, 4), Reopens: 1})
	}
}

// ticketCount is the number of tickets created in minute m.
func (d *demo) ticketCount(m int64) int64 {
	return int64(min(poisson(d.rng(streamTicketCount, m, 0), d.ticketRate(utc(m*60))), 4095))
}

// demoWarmUp is how far before its first instant the simulation looks for
// tickets still in flight.
const demoWarmUp = 14 * 24 * 3600

// ticketsInFlight returns the tickets created in the two weeks up to from
// that still have events ahead, oldest first.
func (d *demo) ticketsInFlight(from int64) [][2]int64 {
	var refs [][2]int64
	for m := floorDiv(from-demoWarmUp, 60); m <= floorDiv(from, 60); m++ {
		for i := range d.ticketCount(m) {
			if t := d.ticket(m, i); t.base.CreatedAt.Unix() <= from && t.last() > from {
				refs = append(refs, t.ref)
			}
		}
	}
	return refs
}

// simulateTickets emits the tickets created or changed in (from, to] as of
// to, and the surveys submitted in it; a first run (sync) also reports the
// open tickets in flight, as a source's first export does. It returns the
// tickets to follow in the next run and the open tickets by queue and
// status.
func (d *demo) simulateTickets(ctx context.Context, refs [][2]int64, from, to int64, sync bool, b *collectors.Batch) ([][2]int64, map[string]map[string]int, error) {
	var live []*demoTicket
	visit := func(t *demoTicket) {
		if t.changedIn(from, to) || (sync && t.asOf(to).Status != "solved") {
			b.Tickets = append(b.Tickets, t.asOf(to))
		}
		if s := t.survey; s != nil && s.SubmittedAt.Unix() > from && s.SubmittedAt.Unix() <= to {
			b.Surveys = append(b.Surveys, *s)
		}
		if t.last() > to {
			live = append(live, t)
		}
	}
	for _, ref := range refs {
		visit(d.ticket(ref[0], ref[1]))
	}
	for m := floorDiv(from, 60); m <= floorDiv(to, 60); m++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		for i := range d.ticketCount(m) {
			if t := d.ticket(m, i); t.base.CreatedAt.Unix() > from && t.base.CreatedAt.Unix() <= to {
				visit(t)
			}
		}
	}
	// refs are older than the tickets created in this run, so live is in
	// order of creation and the oldest are first to close out.
	if n := len(live) - d.maxActive; n > 0 {
		for _, t := range live[:n] {
			closeOut(t, to, b)
		}
		live = live[n:]
	}
	next := make([][2]int64, len(live))
	open := map[string]map[string]int{}
	for i, t := range live {
		next[i] = t.ref
		if tk := t.asOf(to); tk.Status != "solved" {
			if open[tk.Queue] == nil {
				open[tk.Queue] = map[string]int{}
			}
			open[tk.Queue][tk.Status]++
		}
	}
	return next, open, nil
}

// closeOut stops following a ticket: an unsolved one is reported closed,
// as help desks close tickets abandoned for too long.
func closeOut(t *demoTicket, s int64, b *collectors.Batch) {
	tk := t.asOf(s)
	if tk.Status == "solved" {
		return
	}
	tk.Status, tk.SolvedAt, tk.UpdatedAt = "closed", utc(s), utc(s)
	b.Tickets = append(b.Tickets, tk)
}

// ---- surveys ----------------------------------------------------------

// SERVQUAL expectation and perception means per dimension: expectations
// exceed perceptions everywhere, most on responsiveness and reliability,
// least on tangibles, as in most published SERVQUAL studies.
var demoServqual = map[string][2]float64{
	record.Tangibles: {5.6, 5.4}, record.Reliability: {6.5, 5.6}, record.Responsiveness: {6.3, 5.0},
	record.Assurance: {6.2, 5.7}, record.Empathy: {5.9, 5.3},
}

// demoServqualWeights is the typical 100-point importance split: reliability
// matters most, tangibles least.
var demoServqualWeights = []float64{11, 30, 23, 19, 17}

// CSAT answer shares (1..5) after a smooth and after a poor experience.
var (
	demoCSATGood = []float64{1, 1, 3, 25, 70}
	demoCSATPoor = []float64{8, 8, 16, 33, 35}
)

func clampScore(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, math.Round(v))) }

// survey is the response to the survey sent when the ticket was solved.
// Scores follow the ticket's experience: late, reopened, long or
// complained-about tickets score lower.
func (d *demo) survey(r *rand.Rand, t *demoTicket, solved int64) *record.SurveyResponse {
	created := t.base.CreatedAt.Unix()
	last := t.steps[len(t.steps)-1]
	poor := t.base.Complaint || solved-created > 24*3600 || last.Replies >= 3 || last.Reopens > 0
	s := &record.SurveyResponse{ID: "demo-survey-" + t.base.ID[len("demo-ticket-"):], TicketID: t.base.ID,
		Queue: t.base.Queue, Channel: t.base.Channel, HasScore: true}
	shift := 0.0
	if poor {
		shift = 1
	}
	kind := pick(r, []float64{55, 20, 15, 10})
	// Post-contact surveys (CSAT, CES) are answered within hours, the
	// relationship ones (NPS, SERVQUAL) over the following days.
	if kind == 0 || kind == 2 {
		s.SubmittedAt = utc(solved + 300 + expSecs(r, 2*time.Hour, 2*24*time.Hour))
	} else {
		s.SubmittedAt = utc(solved + 600 + expSecs(r, 20*time.Hour, 5*24*time.Hour))
	}
	switch kind {
	case 0:
		shares := demoCSATGood
		if poor {
			shares = demoCSATPoor
		}
		s.Survey, s.Kind, s.Score = "post-contact", record.KindCSAT, float64(1+pick(r, shares))
	case 1:
		s.Survey, s.Kind, s.Score = "relationship", record.KindNPS, clampScore(8.6-2.5*shift+1.6*r.NormFloat64(), 0, 10)
	case 2:
		s.Survey, s.Kind, s.Score = "effort", record.KindCES, clampScore(5.7-1.5*shift+1.1*r.NormFloat64(), 1, 7)
	default:
		s.Survey, s.Kind, s.HasScore = "servqual", record.KindSERVQUAL, false
		s.Servqual = servqualItems(r, 0.6*shift)
		if r.Float64() < 0.5 {
			s.Weights = servqualSplit(r)
		}
	}
	return s
}

// servqualItems answers the 22 items; each respondent expects and perceives
// a little more or less than average overall.
func servqualItems(r *rand.Rand, poorer float64) []record.ServqualItem {
	e, p := 0.4*r.NormFloat64(), 0.4*r.NormFloat64()-poorer
	items := make([]record.ServqualItem, 0, 22)
	for item := 1; item <= 22; item++ {
		dim := record.ServqualDimension(item)
		m := demoServqual[dim]
		items = append(items, record.ServqualItem{Dimension: dim, HasE: true, HasP: true,
			Expectation: clampScore(m[0]+e+0.7*r.NormFloat64(), 1, 7), Perception: clampScore(m[1]+p+0.9*r.NormFloat64(), 1, 7)})
	}
	return items
}

// servqualSplit is one respondent's 100 points over the five dimensions.
func servqualSplit(r *rand.Rand) map[string]float64 {
	raw := make([]float64, len(record.Dimensions))
	var sum float64
	for i, w := range demoServqualWeights {
		raw[i] = math.Max(1, w*(1+0.3*r.NormFloat64()))
		sum += raw[i]
	}
	out := make(map[string]float64, len(raw))
	left := 100.0
	for i, dim := range record.Dimensions {
		v := math.Round(raw[i] / sum * 100)
		if i == len(raw)-1 {
			v = left
		}
		v = math.Max(0, math.Min(v, left))
		out[dim] = v
		left -= v
	}
	return out
}
