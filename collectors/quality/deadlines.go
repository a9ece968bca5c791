package quality

import (
	"encoding/binary"
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

func (st *ticketState) sloDone(name string) bool {
	for _, d := range st.done {
		if d == name {
			return true
		}
	}
	return false
}

// sloEvents counts, for every ticket SLO the ticket falls under, exactly one
// event: good when the reply (or solve) came by the deadline, bad when it
// came later or the deadline passed first. Tickets still within their
// deadline are put in the deadline index.
func (r *run) sloEvents(t *record.Ticket, st *ticketState, solvedAt time.Time, q, ch, pr string) error {
	if t.CreatedAt.IsZero() {
		return nil
	}
	for i := range r.m.tslos {
		s := &r.m.tslos[i]
		if st.sloDone(s.name) || !s.matches(r.name, q, ch, pr) {
			continue
		}
		// Both results exist from the ticket's first sighting on, so the
		// first breach is an increase Prometheus can see.
		r.touch(r.m.cat.ticketSLOEvents, s.name, "good", q, ch, pr)
		r.touch(r.m.cat.ticketSLOEvents, s.name, "bad", q, ch, pr)
		deadline := s.deadline(t.CreatedAt)
		key := deadlineKey(deadline, t.ID, s.name)
		event := t.FirstReplyAt
		if s.resolution {
			event = solvedAt
		}
		var result string
		switch {
		case t.Deleted:
			// A deleted ticket (spam, duplicate) is no service event.
		case !event.IsZero() && !event.After(deadline):
			result = "good"
		case !event.IsZero() || !r.now.Before(deadline):
			result = "bad"
		default:
			if err := r.tx.Put(state.SpaceDeadlines, key, encodeLabels(q, ch, pr)); err != nil {
				return err
			}
			continue
		}
		if result != "" {
			r.add(r.m.cat.ticketSLOEvents, 1, s.name, result, q, ch, pr)
		}
		st.done = append(st.done, s.name)
		if err := r.tx.Delete(state.SpaceDeadlines, key); err != nil {
			return err
		}
	}
	return nil
}

// expireDeadlines counts a bad event for every indexed deadline that has
// passed by the run's clock, so breaches are counted when they happen.
func (r *run) expireDeadlines() error {
	end := binary.BigEndian.AppendUint64(nil, uint64(max(r.now.Unix(), 0)+1))
	type due struct {
		key         []byte
		ticket, slo string
		q, ch, pr   string
	}
	var dues []due
	err := r.tx.Scan(state.SpaceDeadlines, end, func(k, v []byte) error {
		ticket, slo, ok := strings.Cut(string(k[8:]), "\x00")
		if !ok {
			return nil
		}
		q, ch, pr := decodeLabels(v)
		dues = append(dues, due{append([]byte(nil), k...), ticket, slo, q, ch, pr})
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range dues {
		if err := r.tx.Delete(state.SpaceDeadlines, d.key); err != nil {
			return err
		}
		raw := r.tx.Get(state.SpaceTickets, []byte(d.ticket))
		if raw == nil {
			continue // pruned meanwhile
		}
		st, err := decodeTicketState(raw)
		if err != nil {
			return err
		}
		if st.sloDone(d.slo) {
			continue
		}
		r.add(r.m.cat.ticketSLOEvents, 1, d.slo, "bad", d.q, d.ch, d.pr)
		st.done = append(st.done, d.slo)
		if err := r.tx.Put(state.SpaceTickets, []byte(d.ticket), st.encode()); err != nil {
			return err
		}
	}
	return nil
}

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
