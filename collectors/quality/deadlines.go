package quality

import (
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/calendar"
)

// ticketSLO is a ticket SLO with a deadline: first reply or resolution
// within a threshold, in calendar or business time.
type ticketSLO struct {
	name       string
	resolution bool // else first reply
	threshold  time.Duration
	cal        *calendar.Calendar // nil: calendar time
	filters    map[string]string  // queue, channel, priority, collector
}

func ticketSLOs(cfg *config.Config) ([]ticketSLO, error) {
	cals := map[string]*calendar.Calendar{}
	for _, b := range cfg.BusinessHours {
		c, err := calendar.New(b.Name, b.TimeZone, b.Weekly, b.Holidays)
		if err != nil {
			return nil, err
		}
		cals[b.Name] = c
	}
	var out []ticketSLO
	for _, s := range cfg.SLOs {
		if s.Indicator != "ticket_first_reply" && s.Indicator != "ticket_resolution" {
			continue
		}
		out = append(out, ticketSLO{name: s.Name, resolution: s.Indicator == "ticket_resolution",
			threshold: s.Threshold.D(), cal: cals[s.BusinessHours], filters: s.Filters})
	}
	return out, nil
}

// deadline is when the ticket breaches the SLO if nothing happened.
func (s *ticketSLO) deadline(created time.Time) time.Time {
	if s.cal != nil {
		return s.cal.Add(created, s.threshold)
	}
	return created.Add(s.threshold)
}

func (s *ticketSLO) matches(collector, queue, channel, priority string) bool {
	for k, v := range s.filters {
		var have string
		switch k {
		case "queue":
			have = queue
		case "channel":
			have = channel
		case "priority":
			have = priority
		case "collector":
			have = collector
		}
		if have != v {
			return false
		}
	}
	return true
}

// deadlineKey orders the index by deadline: 8 bytes of big-endian unix
// seconds, then ticket id, NUL, SLO name.
func deadlineKey(at time.Time, ticket, slo string) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(ticket)+1+len(slo)), uint64(max(at.Unix(), 0)))
	k = append(k, ticket...)
	k = append(k, 0)
	return append(k, slo...)
}

// A ticket's done list holds, per ticket SLO, its verdict: the SLO's name
// once final, or provisional+name+sep+labels while the ticket was judged
// bad only because its deadline passed with no reply or solve known. A
// provisional verdict is overturned (a correction) if the reply or solve
// later turns out to have come in time; the labels are those the bad event
// was counted under, so the correction nets out on the same series.
const provisional = "~"

func (st *ticketState) sloDone(name string) bool {
	for _, d := range st.done {
		if d == name {
			return true
		}
	}
	return false
}

// provisionalVerdict returns the index in done of the SLO's provisional
// verdict and the labels it was counted under, or -1.
func (st *ticketState) provisionalVerdict(name string) (int, []string) {
	prefix := provisional + name + sep
	for i, d := range st.done {
		if strings.HasPrefix(d, prefix) {
			q, ch, pr := decodeLabels([]byte(d[len(prefix):]))
			return i, []string{q, ch, pr}
		}
	}
	return -1, nil
}

func provisionalEntry(name, q, ch, pr string) string {
	return provisional + name + sep + string(encodeLabels(q, ch, pr))
}

// sloEvents counts, for every ticket SLO the ticket falls under, exactly one
// event: good when the reply (or solve) came by the deadline, however late
// the source delivered it; bad when it came later, or when the deadline was
// judged passed without it (r.judgeBy: the source's watermark, bounded by
// the watermark wait). Tickets still within their deadline are put in the
// deadline index. A bad verdict made without the event stays provisional:
// an in-time event that shows up later is counted as a correction.
func (r *run) sloEvents(t *record.Ticket, st *ticketState, solvedAt time.Time, q, ch, pr string) error {
	if t.CreatedAt.IsZero() {
		return nil
	}
	for i := range r.m.tslos {
		s := &r.m.tslos[i]
		if st.sloDone(s.name) {
			continue
		}
		deadline := s.deadline(t.CreatedAt)
		event := t.FirstReplyAt
		if s.resolution {
			event = solvedAt
		}
		if at, labels := st.provisionalVerdict(s.name); at >= 0 {
			if event.IsZero() || t.Deleted {
				continue
			}
			if !event.After(deadline) {
				r.add(r.m.cat.ticketSLOEvents, 1, s.name, "good", labels[0], labels[1], labels[2])
				r.add(r.m.cat.ticketSLOCorrections, 1, s.name, labels[0], labels[1], labels[2])
			}
			st.done[at] = s.name
			continue
		}
		if !s.matches(r.name, q, ch, pr) {
			continue
		}
		// Both results exist from the ticket's first sighting on, so the
		// first breach is an increase Prometheus can see.
		r.touch(r.m.cat.ticketSLOEvents, s.name, "good", q, ch, pr)
		r.touch(r.m.cat.ticketSLOEvents, s.name, "bad", q, ch, pr)
		key := deadlineKey(deadline, t.ID, s.name)
		done := s.name
		switch {
		case t.Deleted:
			// A deleted ticket (spam, duplicate) is no service event.
		case !event.IsZero() && !event.After(deadline):
			r.add(r.m.cat.ticketSLOEvents, 1, s.name, "good", q, ch, pr)
		case !event.IsZero():
			r.add(r.m.cat.ticketSLOEvents, 1, s.name, "bad", q, ch, pr)
		case !r.judgeBy.Before(deadline):
			r.add(r.m.cat.ticketSLOEvents, 1, s.name, "bad", q, ch, pr)
			done = provisionalEntry(s.name, q, ch, pr)
		default:
			r.put(state.SpaceDeadlines, key, encodeLabels(q, ch, pr))
			continue
		}
		st.done = append(st.done, done)
		r.del(state.SpaceDeadlines, key)
	}
	return nil
}

// expireDeadlines counts a bad event for every indexed deadline that has
// been judged passed (r.judgeBy), so breaches are counted when they happen
// as far as the source can tell, and provisionally: see sloEvents.
func (r *run) expireDeadlines() error {
	end := binary.BigEndian.AppendUint64(nil, uint64(max(r.judgeBy.Unix(), 0)+1))
	type due struct {
		key         []byte
		ticket, slo string
		q, ch, pr   string
	}
	var dues []due
	err := r.tx.Scan(state.SpaceDeadlines, end, func(k, v []byte) error {
		if len(dues) == expireBudget {
			r.moreDue = true
			return errEnough
		}
		ticket, slo, ok := strings.Cut(string(k[8:]), "\x00")
		if !ok {
			return nil
		}
		q, ch, pr := decodeLabels(v)
		dues = append(dues, due{append([]byte(nil), k...), ticket, slo, q, ch, pr})
		return nil
	})
	if err != nil && err != errEnough {
		return err
	}
	for _, d := range dues {
		r.del(state.SpaceDeadlines, d.key)
		raw, err := r.getTicket(d.ticket)
		if err != nil {
			return err
		}
		if raw == nil {
			continue // pruned meanwhile
		}
		st, err := decodeTicketState(raw)
		if err != nil {
			return err
		}
		if at, _ := st.provisionalVerdict(d.slo); st.sloDone(d.slo) || at >= 0 {
			continue
		}
		r.add(r.m.cat.ticketSLOEvents, 1, d.slo, "bad", d.q, d.ch, d.pr)
		st.done = append(st.done, provisionalEntry(d.slo, d.q, d.ch, d.pr))
		r.putTicket(d.ticket, &st)
	}
	return nil
}

// expireBudget bounds the deadlines one transaction judges passed. The
// first commit after a large first sync may find a deadline of every
// ticket due (chunks judge none, see Model.CommitChunk): judged in one
// transaction, every ticket state of the store would be rewritten at
// once. The commit goes on in further transactions of this many instead.
const expireBudget = 10000

var errEnough = errors.New("enough for one transaction")

func encodeLabels(ls ...string) []byte {
	return []byte(strings.Join(ls, sep))
}

func decodeLabels(b []byte) (q, ch, pr string) {
	parts := strings.SplitN(string(b), sep, 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}
