package sources

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// queueLog tails an Asterisk queue_log (epoch|callid|queue|agent|event|data…)
// from its committed offset and turns each call that left a queue into a
// record.Call. Calls still in flight (waiting or talking), and agents'
// states, live in the cursor so that a call entering in one run and
// completing in the next is whole.
//
// A call whose end is never logged (Asterisk crashed, the log was cut) is
// counted once it is stale: the log's own time has run staleAfter past the
// call's last line. It then counts as what the log proves: answered when
// CONNECT was seen, otherwise offered and not answered (timeout).
type queueLog struct {
	path       string
	queues     map[string]bool
	channel    string
	maxBytes   int64
	staleAfter int64 // seconds
}

type queueLogSpec struct {
	Path           string          `yaml:"path"`
	Queues         []string        `yaml:"queues"`
	Channel        string          `yaml:"channel"`
	MaxReadBytes   int64           `yaml:"max_read_bytes"`
	StaleCallAfter config.Duration `yaml:"stale_call_after"`
}

// qlDefaultStaleAfter is how long the log must run on past a call's last
// line before the call counts as ended without its end line. It must exceed
// the longest real call, or a call still talking is counted early and its
// real end then counts nowhere (the call is already counted).
const qlDefaultStaleAfter = 24 * time.Hour

func init() {
	collectors.Register("asterisk_queue_log", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		spec := queueLogSpec{Channel: "phone", StaleCallAfter: config.Duration(qlDefaultStaleAfter)}
		if err := c.DecodeSpec(&spec); err != nil {
			return nil, err
		}
		if spec.Path == "" {
			return nil, c.Errorf("path", "is required (e.g. /var/log/asterisk/queue_log)")
		}
		if spec.MaxReadBytes < 0 {
			return nil, c.Errorf("max_read_bytes", "must not be negative")
		}
		if spec.StaleCallAfter.D() < time.Hour {
			// Shorter would count calls still talking as ended.
			return nil, c.Errorf("stale_call_after", "must be at least 1h, got %s", spec.StaleCallAfter)
		}
		q := &queueLog{path: spec.Path, channel: spec.Channel, maxBytes: spec.MaxReadBytes,
			staleAfter: int64(spec.StaleCallAfter.D() / time.Second)}
		if len(spec.Queues) > 0 {
			q.queues = map[string]bool{}
			for _, n := range spec.Queues {
				q.queues[n] = true
			}
		}
		return q, nil
	})
}

// qlCursor is everything the plugin remembers between runs.
type qlCursor struct {
	Inode   uint64                     `json:"inode"`
	Dev     uint64                     `json:"dev"`
	Offset  int64                      `json:"offset"`
	Line    int64                      `json:"line"`
	Pending map[string]*qlCall         `json:"pending,omitempty"`
	Agents  map[string]map[string]bool `json:"agents,omitempty"` // queue -> agent -> paused
	// Newest is the log's own clock: the newest epoch of any line read
	// (never ahead of the run's clock, see Collect). Staleness is judged
	// on it, not on the wall clock, so that replaying an old log counts
	// the same as reading it live. It survives rotation: the new file
	// continues the same clock.
	Newest int64 `json:"newest,omitempty"`
	// Fingerprint of the file's first bytes up to Offset (at most
	// fingerprintLen, as filecursor.go): a file truncated in place
	// (copytruncate) that grew past Offset again before this run no
	// longer matches and is read from the start. Empty in a cursor of an
	// older version: then only a file smaller than Offset is taken as
	// truncated, as before.
	Fingerprint string `json:"fp,omitempty"`
}

// qlCall is a call that entered a queue and has not ended yet.
type qlCall struct {
	Queue   string `json:"q"`
	Enter   int64  `json:"e"`
	Connect int64  `json:"c,omitempty"`
	Agent   string `json:"a,omitempty"`
	// Skew is CONNECT's holdtime (the wait until answer, which ASA and
	// service level use) minus Connect − Enter. Kept as a difference, not
	// the holdtime itself, because it is almost always 0 (omitted from the
	// cursor, no allocation) and a cursor of an older version, which has
	// no such field, then reads as Connect − Enter.
	Skew int64 `json:"s,omitempty"`
	// id is the map key, kept to give the finished call its ID without
	// another copy; empty for a call read from a cursor.
	id string
}

// wait is the time the call waited until it was answered: CONNECT's
// holdtime.
func (p *qlCall) wait() int64 { return max(p.Connect-p.Enter+p.Skew, 0) }

// last is the time of the call's newest line.
func (p *qlCall) last() int64 { return max(p.Enter, p.Connect) }

func (q *queueLog) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	cur := qlCursor{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return nil, fmt.Errorf("asterisk_queue_log: bad cursor: %w", err)
		}
	}
	if cur.Pending == nil {
		cur.Pending = map[string]*qlCall{}
	}
	if cur.Agents == nil {
		cur.Agents = map[string]map[string]bool{}
	}
	f, err := os.Open(q.path)
	if err != nil {
		return nil, fmt.Errorf("asterisk_queue_log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st != nil && (st.Ino != cur.Inode || uint64(st.Dev) != cur.Dev) {
		// A new file (first run or logrotate moved the old one away):
		// read it from the start.
		cur.Inode, cur.Dev, cur.Offset, cur.Line = st.Ino, uint64(st.Dev), 0, 0
	}
	head := make([]byte, min(fi.Size(), fingerprintLen))
	if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if fi.Size() < cur.Offset || (cur.Fingerprint != "" && fingerprint(head[:min(int64(len(head)), cur.Offset)]) != cur.Fingerprint) {
		// Truncated in place (copytruncate), perhaps written past the
		// old offset since: start over. The lines are new ones (the old
		// ones were copied away); any call read before is counted once
		// by the quality model's dedup key.
		cur.Offset, cur.Line = 0, 0
	}
	if _, err := f.Seek(cur.Offset, io.SeekStart); err != nil {
		return nil, err
	}
	// Size the call slice once from the bytes to read (a call takes about
	// 150 bytes of log), up to a chunk: the runner takes the calls in
	// chunks (Batch.Flush), so a larger slice would only hold memory.
	left := fi.Size() - cur.Offset
	if q.maxBytes > 0 {
		left = min(left, q.maxBytes)
	}
	b.Calls = slices.Grow(b.Calls, int(min(left/150, qlChunkCap)))
	// The log's clock never runs ahead of the run's: one line with a
	// garbled future epoch must not make every call in flight stale, now
	// and (through the cursor) in every later run.
	clock, ahead := int64(math.MaxInt64), int64(math.MaxInt64)
	if !b.Now.IsZero() {
		clock = b.Now.Unix()
		ahead = clock + int64(record.MaxClockSkew/time.Second)
	}
	q.dropPhantoms(&cur, b, ahead)
	run := &qlRun{q: q, cur: &cur, b: b, clock: clock, ahead: ahead, names: map[string]string{}}
	r := bufio.NewReaderSize(f, 1<<20)
	var read int64
	// fingerprinted sets cur.Fingerprint for the bytes read so far.
	fingerprinted := func() error {
		if n := min(cur.Offset, fingerprintLen); n > int64(len(head)) {
			// The file grew while it was read: fingerprint what was read.
			head = make([]byte, n)
			if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
		}
		cur.Fingerprint = fingerprint(head[:min(int64(len(head)), cur.Offset)])
		return nil
	}
	for q.maxBytes == 0 || read < q.maxBytes {
		if b.Full() {
			// A chunk ends at a line boundary with everything the
			// cursor holds as of that line: the offset after it, the
			// calls still in a queue and the agents' states. A run
			// resumed from it (after a crash between chunks) reads
			// the next line with the same state as this run would.
			// Stale calls are only expired at the run's end, as
			// without chunks, so where the chunks fall changes
			// nothing counted.
			if err := fingerprinted(); err != nil {
				return nil, err
			}
			next, err := json.Marshal(cur)
			if err != nil {
				return nil, err
			}
			if err := b.Flush(ctx, next); err != nil {
				return nil, err
			}
		}
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than 1 MiB is not queue_log: skip it whole.
			n := int64(len(line))
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				n += int64(len(line))
			}
			if err != nil {
				break
			}
			cur.Line++
			cur.Offset += n
			read += n
			b.Reject("long_line", fmt.Sprintf("%s:%d", q.path, cur.Line), errors.New("line longer than 1 MiB"))
			continue
		}
		if err != nil {
			break // EOF; a partial last line waits for the next run
		}
		cur.Line++
		cur.Offset += int64(len(line))
		read += int64(len(line))
		run.line(line[:len(line)-1])
		if cur.Line%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if err := fingerprinted(); err != nil {
		return nil, err
	}
	q.expire(&cur, b)
	if cur.Newest > 0 {
		// Every line up to the newest one read is delivered; lines not
		// yet written cannot be vouched for.
		b.Watermark = time.Unix(cur.Newest, 0).UTC()
	}
	q.snapshot(&cur, b)
	return json.Marshal(cur)
}

// expire counts the calls whose end the log never showed: those whose last
// line is more than staleAfter older than the log's newest line. Each is
// emitted once and leaves the cursor in the same commit; should its end
// line still come, the call is emitted again and the quality model's
// dedup key (c:<call id>) counts it once, as stale.
func (q *queueLog) expire(cur *qlCursor, b *collectors.Batch) {
	var stale []string
	for id, p := range cur.Pending {
		if cur.Newest-p.last() > q.staleAfter {
			stale = append(stale, id)
		}
	}
	sort.Strings(stale) // map order must not leak into the records
	for _, id := range stale {
		p := cur.Pending[id]
		delete(cur.Pending, id)
		c := record.Call{ID: id, Queue: p.Queue, Channel: q.channel, EnqueuedAt: time.Unix(p.Enter, 0).UTC()}
		if p.Connect != 0 {
			// Answered: the wait is known, the talk is not, so it stays
			// out of handle time. Its last known instant is the answer.
			c.Outcome, c.Agent, c.HandleUnknown = record.OutcomeAnswered, p.Agent, true
			c.AnsweredAt = time.Unix(p.Connect, 0).UTC()
			c.EndedAt, c.Wait = c.AnsweredAt, time.Duration(p.wait())*time.Second
		} else {
			// Offered and never answered; whether the caller hung up is
			// unknown, so not abandoned: timeout, the queue did not serve
			// it. How long it waited is unknown too: 0, ended at entry.
			c.Outcome, c.EndedAt = record.OutcomeTimeout, c.EnqueuedAt
		}
		b.Calls = append(b.Calls, c)
	}
}

// qlChunkCap bounds the call slice sized up front: a little more than a
// chunk of the runner (collectors.DefaultChunkSize records).
const qlChunkCap = 16 << 10

// maxFields is the most fields any event uses (5 fixed + 5 data).
const maxFields = 10

// Bounds of queue_log numbers (see record's bounds): epochs from
// 2000-01-01 to MaxClockSkew ahead of the run's clock, times in seconds
// (holdtime, calltime, waittime) up to MaxCallDuration, ringtime in
// milliseconds up to the same.
var (
	qlMinEpoch   = record.MinTime.Unix()
	qlMaxSeconds = int64(record.MaxCallDuration / time.Second)
	qlMaxMillis  = int64(record.MaxCallDuration / time.Millisecond)
)

// dropPhantoms removes from the cursor calls whose last line is ahead of
// the bound: a cursor written by a version that accepted future epochs
// would keep them waiting, never stale, for ever.
func (q *queueLog) dropPhantoms(cur *qlCursor, b *collectors.Batch, ahead int64) {
	var ids []string
	for id, p := range cur.Pending {
		if p.last() > ahead {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		b.Reject("bad_time", q.path+": cursor", fmt.Errorf("call %q in flight since epoch %d, more than %s ahead of the run's clock: dropped", id, cur.Pending[id].last(), record.MaxClockSkew))
		delete(cur.Pending, id)
	}
}

// qlRun is the state of one Collect while it reads lines.
type qlRun struct {
	q            *queueLog
	cur          *qlCursor
	b            *collectors.Batch
	clock, ahead int64
	// names interns queue and agent names: a log repeats a few dozen
	// of them millions of times, and a string per line was a fifth of
	// the parse.
	names map[string]string
}

// maxNames bounds the interned names: a log of garbage does not grow the
// map without end (names past it are copied each time, as before).
const maxNames = 4096

func (r *qlRun) name(b []byte) string {
	if s, ok := r.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.names) < maxNames {
		r.names[s] = s
	}
	return s
}

// pos is the position of the current line, for rejections.
func (r *qlRun) pos() string { return fmt.Sprintf("%s:%d", r.q.path, r.cur.Line) }

// num reads data field i (named name) of event, a number from 0 to limit.
func (r *qlRun) num(event []byte, data [][]byte, i int, name string, limit int64) (int64, bool) {
	if i >= len(data) {
		r.b.Reject("short_line", r.pos(), fmt.Errorf("%s needs data field %d (%s)", event, i+1, name))
		return 0, false
	}
	v, ok := atoi(data[i])
	if !ok {
		r.b.Reject("bad_number", r.pos(), fmt.Errorf("%s data field %d (%s) %q is not a number", event, i+1, name, data[i]))
		return 0, false
	}
	if v > limit {
		r.b.Reject("bad_number", r.pos(), fmt.Errorf("%s data field %d (%s) %d is above the maximum %d", event, i+1, name, v, limit))
		return 0, false
	}
	return v, true
}

func (r *qlRun) line(line []byte) {
	q, cur, b := r.q, r.cur, r.b
	line = bytes.TrimSuffix(line, []byte{'\r'})
	var f [maxFields][]byte
	n := 0
	for n < maxFields-1 {
		i := bytes.IndexByte(line, '|')
		if i < 0 {
			break
		}
		f[n], line = line[:i], line[i+1:]
		n++
	}
	f[n] = line
	n++
	if n < 5 {
		if len(bytes.TrimSpace(f[0])) > 0 {
			b.Reject("short_line", r.pos(), fmt.Errorf("%d fields, want at least 5", n))
		}
		return
	}
	epoch, ok := atoi(f[0])
	if !ok {
		b.Reject("bad_time", r.pos(), fmt.Errorf("epoch %q is not a number", f[0]))
		return
	}
	// A line from before 2000 is a PBX clock never set; one from more
	// than MaxClockSkew ahead, a wrong PBX clock. It is rejected, not
	// held: holding it would stop the whole log behind one line. The call
	// it belongs to still counts from its other lines (an end line derives
	// the entry; a call without its end line goes stale).
	if epoch < qlMinEpoch {
		b.Reject("bad_time", r.pos(), fmt.Errorf("epoch %d is before %s", epoch, record.MinTime.Format("2006-01-02")))
		return
	}
	if epoch > r.ahead {
		b.Reject("bad_time", r.pos(), fmt.Errorf("epoch %d is %ds ahead of the run's clock (at most %s allowed)", epoch, epoch-r.clock, record.MaxClockSkew))
		return
	}
	cur.Newest = max(cur.Newest, min(epoch, r.clock))
	callid, queue, agent, event := f[1], f[2], f[3], f[4]
	data := f[5:n]
	switch string(event) {
	case "ENTERQUEUE":
		if q.queues != nil && !q.queues[string(queue)] {
			return
		}
		id := string(callid)
		cur.Pending[id] = &qlCall{Queue: r.name(queue), Enter: epoch, id: id}
	case "CONNECT":
		hold, ok := r.num(event, data, 0, "holdtime", qlMaxSeconds)
		if !ok {
			return
		}
		p := r.pending(callid, queue, epoch-hold)
		if p != nil {
			p.Connect, p.Agent, p.Skew = epoch, r.name(agent), hold-(epoch-p.Enter)
		}
	case "COMPLETEAGENT", "COMPLETECALLER":
		// holdtime|calltime|origposition
		if hold, ok := r.num(event, data, 0, "holdtime", qlMaxSeconds); ok {
			if talk, ok := r.num(event, data, 1, "calltime", qlMaxSeconds); ok {
				r.finish(callid, queue, agent, epoch, record.OutcomeAnswered, hold, talk)
			}
		}
	case "BLINDTRANSFER", "ATTENDEDTRANSFER":
		// extension|context|holdtime|calltime|origposition
		if hold, ok := r.num(event, data, 2, "holdtime", qlMaxSeconds); ok {
			if talk, ok := r.num(event, data, 3, "calltime", qlMaxSeconds); ok {
				r.finish(callid, queue, agent, epoch, record.OutcomeTransferred, hold, talk)
			}
		}
	case "ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY":
		// position|origposition|waittime
		wait, ok := r.num(event, data, 2, "waittime", qlMaxSeconds)
		if !ok {
			return
		}
		out := record.OutcomeTimeout
		if string(event) == "ABANDON" {
			out = record.OutcomeAbandoned
		}
		r.finish(callid, queue, agent, epoch, out, wait, 0)
	case "EXITWITHKEY":
		// key|position|origposition|waittime; old versions log key|position.
		wait := int64(-1)
		if len(data) >= 4 {
			v, ok := r.num(event, data, 3, "waittime", qlMaxSeconds)
			if !ok {
				return
			}
			wait = v
		}
		r.finish(callid, queue, agent, epoch, record.OutcomeTimeout, wait, 0)
	case "RINGNOANSWER":
		r.num(event, data, 0, "ringtime", qlMaxMillis) // milliseconds; validated, not a call outcome
	case "ADDMEMBER":
		q.agents(cur, string(queue))[string(agent)] = false
	case "REMOVEMEMBER":
		delete(q.agents(cur, string(queue)), string(agent))
	case "PAUSE", "UNPAUSE":
		if ag := cur.Agents[string(queue)]; ag != nil {
			if _, member := ag[string(agent)]; member {
				ag[string(agent)] = string(event) == "PAUSE"
			}
		}
	case "PAUSEALL", "UNPAUSEALL":
		for _, ag := range cur.Agents {
			if _, member := ag[string(agent)]; member {
				ag[string(agent)] = string(event) == "PAUSEALL"
			}
		}
	}
}

func (q *queueLog) agents(cur *qlCursor, queue string) map[string]bool {
	if cur.Agents[queue] == nil {
		cur.Agents[queue] = map[string]bool{}
	}
	return cur.Agents[queue]
}

// pending returns the waiting call, creating it when its ENTERQUEUE was
// before the log's start (rotation) with the enter time derived from its end.
func (r *qlRun) pending(callid, queue []byte, enter int64) *qlCall {
	if r.q.queues != nil && !r.q.queues[string(queue)] {
		return nil
	}
	p := r.cur.Pending[string(callid)]
	if p == nil {
		id := string(callid)
		p = &qlCall{Queue: r.name(queue), Enter: enter, id: id}
		r.cur.Pending[id] = p
	}
	return p
}

// finish emits the call that left the queue at epoch. wait < 0 means the
// event did not say: it is then derived from the ENTERQUEUE time.
func (r *qlRun) finish(callid, queue, agent []byte, epoch int64, out record.CallOutcome, wait, talk int64) {
	b := r.b
	end := epoch
	answered := out.Answered()
	enterGuess := epoch - wait
	if answered {
		enterGuess = epoch - talk - wait
	}
	p := r.pending(callid, queue, enterGuess)
	if p == nil {
		return
	}
	delete(r.cur.Pending, string(callid))
	if answered && p.Connect != 0 {
		// The wait until CONNECT, not the end line's holdtime: some
		// builds log the two a second apart, and ASA and service level
		// are about the answer.
		wait = p.wait()
	}
	if wait < 0 {
		wait = max(epoch-p.Enter, 0)
		if wait > qlMaxSeconds {
			// Derived from an ENTERQUEUE more than MaxCallDuration
			// earlier: not a wait, a call id reused or a lost end.
			b.Reject("bad_number", r.pos(), fmt.Errorf("%s waited %ds since its ENTERQUEUE, above the maximum %d", callid, wait, qlMaxSeconds))
			return
		}
	}
	id := p.id
	if id == "" {
		id = string(callid)
	}
	c := record.Call{ID: id, Queue: p.Queue, Channel: r.q.channel,
		EnqueuedAt: time.Unix(p.Enter, 0).UTC(), EndedAt: time.Unix(end, 0).UTC(),
		Wait: time.Duration(wait) * time.Second, Talk: time.Duration(talk) * time.Second, Outcome: out}
	if answered {
		at := p.Connect
		if at == 0 {
			at = epoch - talk
		}
		c.AnsweredAt = time.Unix(at, 0).UTC()
		c.Agent = r.name(agent) // the agent who ended or transferred the call
		if c.Agent == "" || c.Agent == "NONE" {
			c.Agent = p.Agent
		}
	}
	b.Calls = append(b.Calls, c)
}

// snapshot reports every known queue: calls waiting (entered, not yet
// connected), the longest of those waits, and agents by state. Unlike
// staleness it reads the run's clock: a caller waiting alone writes no
// lines, so the log's clock would not see the wait grow.
func (q *queueLog) snapshot(cur *qlCursor, b *collectors.Batch) {
	now := b.Now.Unix()
	type acc struct {
		waiting int
		longest int64
	}
	byQ := map[string]*acc{}
	for _, p := range cur.Pending {
		a := byQ[p.Queue]
		if a == nil {
			a = &acc{}
			byQ[p.Queue] = a
		}
		if p.Connect == 0 {
			a.waiting++
			a.longest = max(a.longest, now-p.Enter)
		}
	}
	names := map[string]bool{}
	for n := range byQ {
		names[n] = true
	}
	for n := range cur.Agents {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		if n != "NONE" {
			sorted = append(sorted, n)
		}
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		s := record.Snapshot{Queue: n, At: b.Now, HasWait: true}
		if a := byQ[n]; a != nil {
			// Bounded like every call duration: a log that fell silent
			// leaves its last callers waiting by the run's clock.
			s.CallsWaiting = a.waiting
			s.LongestWait = time.Duration(min(a.longest, int64(record.MaxCallDuration/time.Second))) * time.Second
		}
		if ag, ok := cur.Agents[n]; ok {
			s.Agents = map[string]int{"available": 0, "paused": 0}
			for _, paused := range ag {
				if paused {
					s.Agents["paused"]++
				} else {
					s.Agents["available"]++
				}
			}
		}
		b.Snapshots = append(b.Snapshots, s)
	}
}

// atoi parses a non-negative decimal without allocating.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
