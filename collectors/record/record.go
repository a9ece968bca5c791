// Package record defines the normalized records that every source plugin
// emits and the quality model consumes. A record describes what a source
// knows about one ticket, call or survey response at the time it was read;
// the quality model decides which events in it are new.
package record

import (
	"strings"
	"time"
)

// Ticket is the state of one ticket as the source reported it. A source may
// report the same ticket many times (every update); the quality model counts
// each event on it (created, first reply, solved, reopen) exactly once.
type Ticket struct {
	ID       string // unique within the collector
	Queue    string // queue or group
	Channel  string // email, phone, chat, web, ...
	Priority string
	Status   string // new, open, pending, hold, solved, closed, deleted
	Tags     []string

	CreatedAt    time.Time
	UpdatedAt    time.Time // zero when the source does not say
	FirstReplyAt time.Time // zero while unanswered
	SolvedAt     time.Time // zero while unsolved

	Reopens      int // times reopened, as the source counts them
	AgentReplies int // public agent replies; FCR = solved with exactly one

	// Business-time durations when the source computes them itself
	// (Zendesk metric sets, Jira SLA cycles). Zero means unknown: the
	// quality model then computes them from its own business-hours schedule.
	FirstReplyBusiness time.Duration
	ResolutionBusiness time.Duration

	// Satisfaction attached to the ticket, if any (e.g. Zendesk "good"/"bad").
	Satisfaction string
	Complaint    bool // the ticket is a complaint
	// SLABreaches names the SLA targets the source itself says the ticket
	// breached (Zendesk SLA breach events, Freshdesk escalation flags, Jira
	// Service Management breached cycles): first_reply, resolution,
	// next_reply, or the source's own SLA name. Each is counted once per
	// ticket, however often reported.
	SLABreaches []string
	Deleted     bool // the source deleted the ticket
}

// Solved reports whether the ticket has a solve time.
func (t *Ticket) Solved() bool { return !t.SolvedAt.IsZero() }

// InSolvedState reports whether the ticket is currently solved. The status
// wins when the source reports one (a reopened ticket may keep its old
// solved_at); otherwise the solve time decides.
func (t *Ticket) InSolvedState() bool {
	switch strings.ToLower(t.Status) {
	case "solved", "closed", "resolved":
		return true
	case "":
		return t.Solved()
	}
	return false
}

// CallOutcome is how a call left the queue.
type CallOutcome string

// Call outcomes. Offered = every outcome; abandoned = the caller hung up
// while waiting; timeout = the queue gave up (EXITWITHTIMEOUT, EXITEMPTY,
// EXITWITHKEY); transferred = answered and transferred away; voicemail =
// sent to voicemail before answer.
const (
	OutcomeAnswered    CallOutcome = "answered"
	OutcomeAbandoned   CallOutcome = "abandoned"
	OutcomeTimeout     CallOutcome = "timeout"
	OutcomeTransferred CallOutcome = "transferred"
	OutcomeVoicemail   CallOutcome = "voicemail"
)

// Answered reports whether an agent took the call.
func (o CallOutcome) Answered() bool { return o == OutcomeAnswered || o == OutcomeTransferred }

// Call is one finished call through a queue. Sources emit a call once it has
// left the queue (completed, abandoned, timed out); still-waiting calls show
// up in Snapshots instead.
type Call struct {
	ID         string // unique within the collector (e.g. Asterisk uniqueid)
	Queue      string
	Agent      string // never used as a metric label (cardinality, privacy)
	Channel    string // optional, "phone" when empty
	EnqueuedAt time.Time
	AnsweredAt time.Time // zero unless answered
	EndedAt    time.Time

	Wait time.Duration // time in queue until answer or until leaving
	Talk time.Duration
	Hold time.Duration
	Wrap time.Duration // after-call work

	Outcome CallOutcome
	// HandleUnknown: the source knows no talk, hold or wrap-up times (a
	// statistics API such as Twilio TaskRouter's); the call then stays out
	// of the handle-time histogram instead of counting as 0 seconds.
	HandleUnknown bool
}

// Handle is the handle time of an answered call: talk + hold + wrap-up.
func (c *Call) Handle() time.Duration { return c.Talk + c.Hold + c.Wrap }

// SurveyKind names the instrument a response answers.
type SurveyKind string

// Survey kinds.
const (
	KindCSAT     SurveyKind = "csat"
	KindNPS      SurveyKind = "nps"
	KindCES      SurveyKind = "ces"
	KindSERVQUAL SurveyKind = "servqual"
)

// SERVQUAL dimensions, in the order of the 22-item instrument
// (Parasuraman, Zeithaml & Berry 1988/1991): items 1-4 tangibles,
// 5-9 reliability, 10-13 responsiveness, 14-17 assurance, 18-22 empathy.
const (
	Tangibles      = "tangibles"
	Reliability    = "reliability"
	Responsiveness = "responsiveness"
	Assurance      = "assurance"
	Empathy        = "empathy"
)

// Dimensions lists the SERVQUAL dimensions in instrument order.
var Dimensions = []string{Tangibles, Reliability, Responsiveness, Assurance, Empathy}

// ServqualDimension returns the dimension of a 1-based item number of the
// 22-item SERVQUAL instrument, or "" when the item is out of range.
func ServqualDimension(item int) string {
	switch {
	case item >= 1 && item <= 4:
		return Tangibles
	case item >= 5 && item <= 9:
		return Reliability
	case item >= 10 && item <= 13:
		return Responsiveness
	case item >= 14 && item <= 17:
		return Assurance
	case item >= 18 && item <= 22:
		return Empathy
	}
	return ""
}

// ServqualItem is one answered SERVQUAL item: the respondent's expectation
// and perception on the 1-7 scale. A missing side is NaN-free: HasE/HasP
// say whether that side was answered.
type ServqualItem struct {
	Dimension   string
	Expectation float64
	Perception  float64
	HasE, HasP  bool
}

// SurveyResponse is one respondent's answer to one survey.
type SurveyResponse struct {
	ID          string // unique within the collector; upserts replace by ID
	Survey      string // configured survey name (label value)
	Kind        SurveyKind
	Score       float64 // CSAT (1-5 by default), NPS (0-10), CES (1-7)
	HasScore    bool
	Servqual    []ServqualItem
	Weights     map[string]float64 // respondent's 100-point split per dimension, if asked
	TicketID    string
	Channel     string
	Queue       string
	SubmittedAt time.Time
}

// Snapshot is a point-in-time reading of a queue. Nil maps and negative
// numbers mean "not reported by this source".
type Snapshot struct {
	Queue        string
	At           time.Time
	CallsWaiting int // -1 when unknown
	LongestWait  time.Duration
	HasWait      bool           // CallsWaiting/LongestWait are reported
	Agents       map[string]int // agents by state: available, busy, paused, ...
	OpenTickets  map[string]int // open tickets by status
}
