package quality

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/status"
)

const csatConfig = `
collectors:
  - {name: zd, type: demo, schedule: "@every 1m"}
slos:
  - {name: csat, indicator: csat, objective: 80}
  - {name: csat-3, indicator: csat, csat_min: 3, objective: 80}
`

// measure is what /api/v1/slos and the reports compute from the model:
// each SLO's bad and total events by sli.CountsFor.
func measure(t *testing.T, m *Model, cfgText string) map[string]status.Counts {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgText), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return status.Measure(cfg, fams)
}

// A ticket's satisfaction rating is one CSAT response (survey="ticket"),
// counted once however often the ticket is reported; a changed rating
// counts at its latest score. Hand counts, scale 1-5, satisfied = 4-5.
func TestTicketSatisfactionIsCSATCountedOnceAtItsLatestScore(t *testing.T) {
	m, st := newModel(t, t.TempDir(), csatConfig)
	defer st.Close()
	tk := func(id, queue, sat string) record.Ticket {
		return record.Ticket{ID: id, Queue: queue, Channel: "email", Priority: "high", Status: "solved",
			CreatedAt: t0, SolvedAt: t0.Add(1e12), Satisfaction: sat}
	}
	run1 := []record.Ticket{
		tk("A", "billing", "good"),      // 5 (top box)
		tk("B", "billing", "bad"),       // 1 (bottom box)
		tk("C", "billing", "offered"),   // asked, not answered: no response
		tk("D", "billing", "4"),         // 4
		tk("E", "billing", "2"),         // 2
		tk("F", "billing", "unoffered"), // no response
		tk("G", "billing", "7"),         // off the 1-5 scale: no response
		tk("H", "billing", ""),          // no rating
	}
	run1 = append(run1, run1...) // every ticket reported twice
	commit(t, m, "zd", &collectors.Batch{Tickets: run1}, "1")
	const l = "{channel=email,collector=zd,queue=billing,survey=ticket}"
	expect(t, values(t, m), map[string]float64{
		"servq_survey_responses_total{channel=email,collector=zd,kind=csat,queue=billing,survey=ticket}": 4, // A B D E
		"servq_csat_score_count" + l:     4,
		"servq_csat_score_sum" + l:       12, // 5+1+4+2
		"servq_csat_satisfied_total" + l: 2,  // A D
	})
	// csat (min 4): B, E below of 4; csat-3: B, E below 3 too.
	if got, want := measure(t, m, csatConfig), map[string]status.Counts{"csat": {Bad: 2, Total: 4}, "csat-3": {Bad: 2, Total: 4}}; !equalCounts(got, want) {
		t.Errorf("after run 1: %v, want %v", got, want)
	}

	// B changes bad -> good, D 4 -> 5 and moves to another queue (the
	// rating stays on the series it was counted on), E's column goes
	// blank (the rating stays), A is reported again unchanged, B once
	// more with its new rating.
	run2 := []record.Ticket{tk("B", "billing", "good"), tk("D", "sales", "5"), tk("E", "billing", ""), tk("A", "billing", "good"), tk("B", "billing", "good")}
	commit(t, m, "zd", &collectors.Batch{Tickets: run2}, "2")
	got := values(t, m)
	expect(t, got, map[string]float64{
		"servq_survey_responses_total{channel=email,collector=zd,kind=csat,queue=billing,survey=ticket}": 4, // still one per ticket
		"servq_csat_score_count" + l:           6,  // 4 + B's and D's new scores
		"servq_csat_score_sum" + l:             22, // 12 + 5 + 5
		"servq_csat_retracted_score_count" + l: 2,  // B's 1, D's 4
		"servq_csat_retracted_score_sum" + l:   5,
		"servq_csat_retracted_score_bucket{channel=email,collector=zd,queue=billing,survey=ticket,le=3}": 1, // B's 1
		"servq_csat_satisfied_total" + l:           4, // A D + B(5) D(5)
		"servq_csat_satisfied_retracted_total" + l: 1, // D's 4
	})
	// Net: 6-2 = 4 responses (A 5, B 5, D 5, E 2), 4-1 = 3 satisfied,
	// 22-5 = 17 = 5+5+5+2.
	if _, ok := got["servq_csat_score_count{channel=email,collector=zd,queue=sales,survey=ticket}"]; ok {
		t.Error("D's new rating was counted on its new queue")
	}
	if got, want := measure(t, m, csatConfig), map[string]status.Counts{"csat": {Bad: 1, Total: 4}, "csat-3": {Bad: 1, Total: 4}}; !equalCounts(got, want) {
		t.Errorf("after run 2: %v, want %v", got, want)
	}

	// B back to bad: its 5 is retracted, 1 counted.
	commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{tk("B", "billing", "bad")}}, "3")
	expect(t, values(t, m), map[string]float64{
		"servq_csat_score_count" + l:               7,
		"servq_csat_retracted_score_count" + l:     3,
		"servq_csat_satisfied_retracted_total" + l: 2, // D's 4, B's 5
	})
	if got, want := measure(t, m, csatConfig), map[string]status.Counts{"csat": {Bad: 2, Total: 4}, "csat-3": {Bad: 2, Total: 4}}; !equalCounts(got, want) {
		t.Errorf("after run 3: %v, want %v", got, want)
	}
}

func equalCounts(a, b map[string]status.Counts) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Deleted tickets: first seen deleted, a ticket counts nowhere (as in the
// help desks' own reports); counted and then deleted, it counts once in
// tickets_deleted_total, so created - deleted is the help desk's count.
func TestDeletedTicketsCountNowhereOrOnceAsDeleted(t *testing.T) {
	m, st := newModel(t, t.TempDir(), testConfig)
	defer st.Close()
	tk := func(id string, deleted bool) record.Ticket {
		t := record.Ticket{ID: id, Queue: "billing", Channel: "email", Priority: "high", Status: "open",
			CreatedAt: t0, FirstReplyAt: t0.Add(1e12), Complaint: true, Satisfaction: "good", SLABreaches: []string{"first_reply"}}
		if deleted {
			t.Status, t.Deleted = "deleted", true
		}
		return t
	}
	// spam1, spam2 arrive deleted (twice); K1..K3 are real; K3 is then
	// deleted twice, and spam2 restored.
	res := commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{tk("spam1", true), tk("spam2", true), tk("spam1", true), tk("K1", false), tk("K2", false), tk("K3", false)}}, "1")
	if res.Accepted["ticket"] != 5 || res.Duplicate["ticket"] != 1 {
		t.Errorf("accepted %d, duplicate %d tickets; want 5, 1", res.Accepted["ticket"], res.Duplicate["ticket"])
	}
	commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{tk("K3", true), tk("K3", true), tk("spam1", true)}}, "2")
	got := values(t, m)
	expect(t, got, map[string]float64{
		"servq_tickets_deleted_total{" + tl + "}":                                                                    1, // K3, once
		"servq_complaints_total{channel=email,collector=zd,queue=billing}":                                           3,
		"servq_ticket_first_reply_seconds_count{" + tl + "}":                                                         3,
		"servq_ticket_sla_breaches_total{channel=email,collector=zd,metric=first_reply,priority=high,queue=billing}": 3,
		"servq_survey_responses_total{channel=email,collector=zd,kind=csat,queue=billing,survey=ticket}":             3,
		"servq_tickets_open{collector=zd,queue=billing,status=open}":                                                 2, // K1 K2
	})
	if got["servq_tickets_created_total{"+tl+"}"] != 3 {
		t.Errorf("created = %g, want 3 (K1 K2 K3; spam never)", got["servq_tickets_created_total{"+tl+"}"])
	}
	// spam2 restored: from now on a ticket like any other.
	commit(t, m, "zd", &collectors.Batch{Tickets: []record.Ticket{tk("spam2", false)}}, "3")
	expect(t, values(t, m), map[string]float64{
		"servq_tickets_created_total{" + tl + "}":                    4,
		"servq_tickets_deleted_total{" + tl + "}":                    1,
		"servq_tickets_open{collector=zd,queue=billing,status=open}": 3,
	})
}
