package quality

import (
	"sort"

	"github.com/servq/servq/config"
)

// Namespace prefixes every metric servq exports.
const Namespace = "servq_"

// catalog holds the families of the metric catalog (DESIGN.md), the
// contract between collectors, rules and dashboards.
type catalog struct {
	ticketsCreated, ticketsSolved, ticketsReopened, ticketsFCR, complaints *family
	firstReply, firstReplyBiz, resolution, resolutionBiz                   *family
	ticketSLOEvents, ticketsOpen, oldestOpen, slaBreaches                  *family
	ticketSLOCorrections, watermark, ticketsDeleted                        *family

	callsOffered, callsAnswered, callsAbandoned, callsAbandonedShort, callsTransferred *family
	callWait, callHandle                                                               *family
	queueWaiting, queueLongestWait, queueAgents                                        *family

	surveyResponses, csatSatisfied, csatScore, npsResponses, cesScore *family
	csatRetracted, csatSatisfiedRetracted                             *family
	servqualScore, servqualWeightPoints, servqualWeighted             *family

	labelOverflow *family

	// sloInput holds, per SLO, the sums of the counters its indicator
	// reads (see sloinputs.go).
	sloInput *family

	all []*family
}

// union merges the SLO thresholds into a bucket layout, so that every SLO
// threshold is a bucket bound and "within threshold" is exact.
func union(base []float64, extra ...float64) []float64 {
	seen := map[float64]bool{}
	var out []float64
	for _, v := range append(append([]float64(nil), base...), extra...) {
		if v > 0 && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Float64s(out)
	return out
}

// scale returns the integer bounds lo..hi: score histograms of integer
// scales have one bucket per answer, so any "score >= N" is exact.
func scale(lo, hi float64) []float64 {
	var out []float64
	for v := lo; v <= hi; v++ {
		out = append(out, v)
	}
	return out
}

func newCatalog(cfg *config.Config) *catalog {
	m := cfg.Model
	tl := []string{"queue", "channel", "priority"}
	frB := union(m.Buckets.FirstReply, cfg.SLOThresholds("ticket_first_reply")...)
	resB := union(m.Buckets.Resolution, cfg.SLOThresholds("ticket_resolution")...)
	waitB := union(m.Buckets.CallWait, append(cfg.SLOThresholds("call_service_level"), m.ShortAbandon.D().Seconds())...)
	c := &catalog{
		ticketsCreated:       newFamily(Namespace+"tickets_created_total", "Tickets created, counted once per ticket when first seen.", kindCounter, nil, tl...),
		ticketsSolved:        newFamily(Namespace+"tickets_solved_total", "Tickets solved, counted once per ticket at its first solve.", kindCounter, nil, tl...),
		ticketsReopened:      newFamily(Namespace+"tickets_reopened_total", "Reopen events of solved tickets.", kindCounter, nil, tl...),
		ticketsFCR:           newFamily(Namespace+"tickets_solved_first_contact_total", "Tickets solved with at most one agent reply and no reopen (first-contact resolution).", kindCounter, nil, tl...),
		ticketsDeleted:       newFamily(Namespace+"tickets_deleted_total", "Tickets deleted after they were counted created, once per ticket (created minus deleted is the help desk's count). Tickets first seen deleted count nowhere.", kindCounter, nil, tl...),
		complaints:           newFamily(Namespace+"complaints_total", "Tickets marked as complaints.", kindCounter, nil, "queue", "channel"),
		firstReply:           newFamily(Namespace+"ticket_first_reply_seconds", "Calendar time from ticket creation to the first public agent reply.", kindHistogram, frB, tl...),
		firstReplyBiz:        newFamily(Namespace+"ticket_first_reply_business_seconds", "Business time from ticket creation to the first public agent reply.", kindHistogram, frB, tl...),
		resolution:           newFamily(Namespace+"ticket_resolution_seconds", "Calendar time from ticket creation to its first solve.", kindHistogram, resB, tl...),
		resolutionBiz:        newFamily(Namespace+"ticket_resolution_business_seconds", "Business time from ticket creation to its first solve.", kindHistogram, resB, tl...),
		ticketSLOEvents:      newFamily(Namespace+"ticket_slo_events_total", "Ticket SLO events: good when met in time, bad as soon as the deadline passed; one per ticket and SLO.", kindCounter, nil, "slo", "result", "queue", "channel", "priority"),
		ticketSLOCorrections: newFamily(Namespace+"ticket_slo_corrections_total", "Bad ticket SLO events overturned by later data: the deadline was judged passed (by the watermark wait bound, or a source that delivered late) but the reply or solve came in time. Each also counted a good event; SLIs subtract corrections from bad and total.", kindCounter, nil, "slo", "queue", "channel", "priority"),
		watermark:            newFamily(Namespace+"collector_watermark_timestamp_seconds", "The collector's completeness watermark: the source has delivered every change up to this Unix time. Ticket deadline verdicts wait for it (up to the collector's watermark_wait).", kindGauge, nil),
		ticketsOpen:          newFamily(Namespace+"tickets_open", "Open tickets by status.", kindGauge, nil, "queue", "status"),
		slaBreaches:          newFamily(Namespace+"ticket_sla_breaches_total", "SLA breaches the source itself reported (Zendesk, Freshdesk, Jira SLAs), once per ticket and SLA metric.", kindCounter, nil, "metric", "queue", "channel", "priority"),
		oldestOpen:           newFamily(Namespace+"tickets_oldest_open_created_timestamp_seconds", "Creation time of the oldest open ticket of the queue (age: time() minus this).", kindGauge, nil, "queue"),

		callsOffered:        newFamily(Namespace+"calls_offered_total", "Calls that entered a queue.", kindCounter, nil, "queue", "channel"),
		callsAnswered:       newFamily(Namespace+"calls_answered_total", "Calls answered by an agent (transferred calls included).", kindCounter, nil, "queue", "channel"),
		callsAbandoned:      newFamily(Namespace+"calls_abandoned_total", "Calls where the caller hung up while waiting.", kindCounter, nil, "queue", "channel"),
		callsAbandonedShort: newFamily(Namespace+"calls_abandoned_short_total", "Abandoned calls that waited less than the short-abandon threshold.", kindCounter, nil, "queue", "channel"),
		callsTransferred:    newFamily(Namespace+"calls_transferred_total", "Answered calls that were transferred away.", kindCounter, nil, "queue", "channel"),
		callWait:            newFamily(Namespace+"call_wait_seconds", "Time calls waited in queue, by how they left it (answered: speed of answer).", kindHistogram, waitB, "queue", "channel", "outcome"),
		callHandle:          newFamily(Namespace+"call_handle_seconds", "Handle time of answered calls: talk + hold + after-call work.", kindHistogram, m.Buckets.CallHandle, "queue", "channel"),
		queueWaiting:        newFamily(Namespace+"queue_calls_waiting", "Calls waiting in the queue at the last reading.", kindGauge, nil, "queue"),
		queueLongestWait:    newFamily(Namespace+"queue_longest_wait_seconds", "Longest current wait in the queue at the last reading.", kindGauge, nil, "queue"),
		queueAgents:         newFamily(Namespace+"queue_agents", "Agents of the queue by state at the last reading.", kindGauge, nil, "queue", "state"),

		surveyResponses:        newFamily(Namespace+"survey_responses_total", "Survey responses received.", kindCounter, nil, "survey", "kind", "queue", "channel"),
		csatSatisfied:          newFamily(Namespace+"csat_satisfied_total", "CSAT responses at or above the satisfied threshold.", kindCounter, nil, "survey", "queue", "channel"),
		csatScore:              newFamily(Namespace+"csat_score", "CSAT scores, one bucket per scale point.", kindHistogram, scale(1, m.CSATScaleMax), "survey", "queue", "channel"),
		csatRetracted:          newFamily(Namespace+"csat_retracted_score", "CSAT scores withdrawn because the customer changed the rating of a ticket; the new score is in csat_score. Responses = csat_score_count minus this _count.", kindHistogram, scale(1, m.CSATScaleMax), "survey", "queue", "channel"),
		csatSatisfiedRetracted: newFamily(Namespace+"csat_satisfied_retracted_total", "Satisfied CSAT ratings withdrawn because the customer changed the rating of a ticket; subtract from csat_satisfied_total.", kindCounter, nil, "survey", "queue", "channel"),
		npsResponses:           newFamily(Namespace+"nps_responses_total", "NPS responses by category (promoter 9-10, passive 7-8, detractor 0-6).", kindCounter, nil, "survey", "category", "queue", "channel"),
		cesScore:               newFamily(Namespace+"ces_score", "Customer effort scores, one bucket per scale point.", kindHistogram, scale(1, m.CESScaleMax), "survey", "queue", "channel"),
		servqualScore:          newFamily(Namespace+"servqual_score", "SERVQUAL item answers on the 1-7 scale by dimension and scale (expectation or perception).", kindHistogram, scale(1, 7), "survey", "dimension", "scale"),
		servqualWeightPoints:   newFamily(Namespace+"servqual_weight_points_total", "Points respondents gave each SERVQUAL dimension in their 100-point split.", kindCounter, nil, "survey", "dimension"),
		servqualWeighted:       newFamily(Namespace+"servqual_weighted_responses_total", "SERVQUAL responses that included a 100-point importance split.", kindCounter, nil, "survey"),

		sloInput: newFamily(Namespace+"slo_input_total", "What the SLO's indicator reads, pre-summed: every increment of the counters its filters select (input: offered, answered, short, abandoned, answered_within the threshold, solved, solved_first_contact, scored, scored_below the minimum, retracted, retracted_below, good, bad, corrected), in the same commit. definition is a hash of what is summed: a changed SLO counts anew.", kindCounter, nil, "slo", "input", "definition"),

		labelOverflow: newFamily(Namespace+"label_overflow_total", "Records whose label value was replaced by \"other\" because the label reached its cap.", kindCounter, nil, "label"),
	}
	c.all = []*family{
		c.ticketsCreated, c.ticketsSolved, c.ticketsReopened, c.ticketsFCR, c.complaints,
		c.firstReply, c.firstReplyBiz, c.resolution, c.resolutionBiz, c.ticketSLOEvents, c.ticketSLOCorrections, c.watermark, c.ticketsOpen, c.oldestOpen, c.slaBreaches,
		c.callsOffered, c.callsAnswered, c.callsAbandoned, c.callsAbandonedShort, c.callsTransferred,
		c.callWait, c.callHandle, c.queueWaiting, c.queueLongestWait, c.queueAgents,
		c.ticketsDeleted, c.surveyResponses, c.csatSatisfied, c.csatScore, c.csatRetracted, c.csatSatisfiedRetracted, c.npsResponses, c.cesScore,
		c.servqualScore, c.servqualWeightPoints, c.servqualWeighted, c.labelOverflow, c.sloInput,
	}
	return c
}
