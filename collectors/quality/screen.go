package quality

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// screen removes from b every record whose times or numbers are out of
// record's bounds and rejects it with its reason (bad_time or bad_number),
// so that it is counted in servq_collector_rejected_records_total and
// never committed. Sources check the same bounds where they parse; this is
// the second line of defence for any source (exec, http_json, sql, a new
// plugin) that lets one through.
func screen(b *collectors.Batch, now time.Time) {
	b.Tickets = keep(b, b.Tickets, func(t *record.Ticket) string {
		return fmt.Sprintf("ticket %q", t.ID)
	}, func(t *record.Ticket) (string, error) {
		if r, err := times(now, "created_at", t.CreatedAt, "updated_at", t.UpdatedAt,
			"first_reply_at", t.FirstReplyAt, "solved_at", t.SolvedAt); err != nil {
			return r, err
		}
		if r, err := durations(record.MaxTicketDuration, "first_reply_business", t.FirstReplyBusiness,
			"resolution_business", t.ResolutionBusiness); err != nil {
			return r, err
		}
		if t.Reopens < 0 || t.AgentReplies < 0 {
			return "bad_number", fmt.Errorf("negative count: reopens %d, agent_replies %d", t.Reopens, t.AgentReplies)
		}
		return "", nil
	})
	b.Calls = keep(b, b.Calls, func(c *record.Call) string {
		return fmt.Sprintf("call %q", c.ID)
	}, func(c *record.Call) (string, error) {
		// The usual case first, without boxing every time and duration
		// into times' and durations' arguments: calls come by the
		// million in a log's backfill.
		lim := record.MaxCallDuration
		if record.CheckTime(c.EnqueuedAt, now) == nil && record.CheckTime(c.AnsweredAt, now) == nil &&
			record.CheckTime(c.EndedAt, now) == nil && record.CheckDuration(c.Wait, lim) == nil &&
			record.CheckDuration(c.Talk, lim) == nil && record.CheckDuration(c.Hold, lim) == nil &&
			record.CheckDuration(c.Wrap, lim) == nil {
			return "", nil
		}
		if r, err := times(now, "enqueued_at", c.EnqueuedAt, "answered_at", c.AnsweredAt, "ended_at", c.EndedAt); err != nil {
			return r, err
		}
		return durations(record.MaxCallDuration, "wait", c.Wait, "talk", c.Talk, "hold", c.Hold, "wrap", c.Wrap)
	})
	b.Surveys = keep(b, b.Surveys, func(s *record.SurveyResponse) string {
		return fmt.Sprintf("survey response %q", s.ID)
	}, func(s *record.SurveyResponse) (string, error) {
		if r, err := times(now, "submitted_at", s.SubmittedAt); err != nil {
			return r, err
		}
		finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
		if s.HasScore && !finite(s.Score) {
			return "bad_number", errors.New("score is not a finite number")
		}
		for _, it := range s.Servqual {
			if !finite(it.Expectation) || !finite(it.Perception) {
				return "bad_number", fmt.Errorf("SERVQUAL item of %s is not a finite number", it.Dimension)
			}
		}
		for d, w := range s.Weights {
			if !finite(w) {
				return "bad_number", fmt.Errorf("weight of %s is not a finite number", d)
			}
		}
		return "", nil
	})
	b.Snapshots = keep(b, b.Snapshots, func(s *record.Snapshot) string {
		return fmt.Sprintf("snapshot of queue %q", s.Queue)
	}, func(s *record.Snapshot) (string, error) {
		if r, err := times(now, "at", s.At); err != nil {
			return r, err
		}
		return durations(record.MaxCallDuration, "longest_wait", s.LongestWait)
	})
}

// keep filters recs in place, rejecting those check refuses.
func keep[T any](b *collectors.Batch, recs []T, pos func(*T) string, check func(*T) (string, error)) []T {
	out := recs[:0]
	for i := range recs {
		reason, err := check(&recs[i])
		if err != nil {
			b.Reject(reason, pos(&recs[i]), fmt.Errorf("refused by the quality model: %w", err))
			continue
		}
		out = append(out, recs[i])
	}
	clear(recs[len(out):]) // no stale copies keep memory alive
	return out
}

// times checks name/time pairs against record.CheckTime.
func times(now time.Time, pairs ...any) (string, error) {
	for i := 0; i < len(pairs); i += 2 {
		if err := record.CheckTime(pairs[i+1].(time.Time), now); err != nil {
			return "bad_time", fmt.Errorf("%s: %w", pairs[i], err)
		}
	}
	return "", nil
}

// durations checks name/duration pairs against [0, limit].
func durations(limit time.Duration, pairs ...any) (string, error) {
	for i := 0; i < len(pairs); i += 2 {
		if err := record.CheckDuration(pairs[i+1].(time.Duration), limit); err != nil {
			return "bad_number", fmt.Errorf("%s: %w", pairs[i], err)
		}
	}
	return "", nil
}
