package report

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/config"
)

// berlinData is hourly servq counters around two DST months in
// Europe/Berlin, written so that every figure of the reports follows by
// hand (the counts are in the tests that read them):
//
// SLO reply-4h (ticket_first_reply), October 2026 (745 h: Oct 25 has 25 h):
//
//	good support/email  +10 every hour, except +0 in the hour ending
//	                    2026-10-05 03:00Z (a quiet hour, see "decoy")
//	bad support/email   +1 at 10:00Z every day, +4 at 03:00Z on Oct 5 (the
//	                    decoy: 4 of 8 events bad, a 50 % hour below the
//	                    5-bad-event minimum of the fastest burn)
//	bad billing/chat    +2 at 12:00Z every day; servq restarted at
//	                    2026-10-14 05:30Z: the counter reads 3 at 06:00Z
//	                    (3 events since the restart) and counts on from there
//	good legacy/phone   +4 every hour, bad legacy/phone +5 at 09:00Z every
//	                    day; retired: last sample 2026-10-20 09:00Z, more than
//	                    7 days before the period's end
//	good vip/chat       born 2026-10-10 08:00Z at 0, +6 every hour
//	bad vip/chat        born 2026-10-10 08:00Z at 0, +8 in the hour ending
//	                    2026-10-25 01:00Z (02:00 CET, the repeated hour)
//
// No servq_ticket_slo_corrections_total series exist for reply-4h: the
// minus term reads a metric Prometheus has never seen.
//
// SLO resolve-1d (ticket_resolution), March 2026 (743 h: Mar 29 has 23 h):
//
//	good support/email   +5 every hour
//	bad support/email    +1 at 00:00, 06:00, 12:00 and 18:00Z
//	corrections          +1 at 15:00Z every day of March (0 before)
//
// SLO fcr (ticket_fcr), March 2026: tickets solved born 2026-03-10 06:00Z
// without the zero sample servq publishes first (its first sample reads 7),
// +1 every hour; solved first contact born at 0 at the same time, +1 every
// other hour (at even hours UTC).
func berlinData() string {
	var b strings.Builder
	hourly := func(family, labels string, from, to time.Time, value func(t time.Time) (float64, bool)) {
		for t := from; !t.After(to); t = t.Add(time.Hour) {
			if v, ok := value(t); ok {
				fmt.Fprintf(&b, "%s{%s} %g %d\n", family, labels, v, t.Unix())
			}
		}
	}
	utc := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }
	// Counts events at the given hours up to and including t, from "from".
	count := func(from, t time.Time, each func(h time.Time) float64) float64 {
		n := 0.0
		for h := from.Add(time.Hour); !h.After(t); h = h.Add(time.Hour) {
			n += each(h)
		}
		return n
	}
	from, to := utc(2026, 8, 25, 0), utc(2026, 11, 3, 0)
	ev := func(result, queue, channel string) string {
		return fmt.Sprintf(`collector="zd",slo="reply-4h",result=%q,queue=%q,channel=%q,priority="normal"`, result, queue, channel)
	}
	decoy := utc(2026, 10, 5, 3)
	b.WriteString("# TYPE servq_ticket_slo_events counter\n")
	hourly("servq_ticket_slo_events_total", ev("good", "support", "email"), from, to, func(t time.Time) (float64, bool) {
		return count(from, t, func(h time.Time) float64 {
			if h.Equal(decoy) {
				return 0
			}
			return 10
		}), true
	})
	hourly("servq_ticket_slo_events_total", ev("bad", "support", "email"), from, to, func(t time.Time) (float64, bool) {
		return count(from, t, func(h time.Time) float64 {
			switch {
			case h.Hour() == 10:
				return 1
			case h.Equal(decoy):
				return 4
			}
			return 0
		}), true
	})
	restart := utc(2026, 10, 14, 6)
	hourly("servq_ticket_slo_events_total", ev("bad", "billing", "chat"), from, to, func(t time.Time) (float64, bool) {
		daily := func(h time.Time) float64 {
			if h.Hour() == 12 {
				return 2
			}
			return 0
		}
		if t.Before(restart) {
			return 100 + count(from, t, daily), true
		}
		return 3 + count(restart, t, daily), true
	})
	retired := utc(2026, 10, 20, 9)
	hourly("servq_ticket_slo_events_total", ev("good", "legacy", "phone"), from, retired, func(t time.Time) (float64, bool) {
		return count(from, t, func(time.Time) float64 { return 4 }), true
	})
	hourly("servq_ticket_slo_events_total", ev("bad", "legacy", "phone"), from, retired, func(t time.Time) (float64, bool) {
		return count(from, t, func(h time.Time) float64 {
			if h.Hour() == 9 {
				return 5
			}
			return 0
		}), true
	})
	born := utc(2026, 10, 10, 8)
	hourly("servq_ticket_slo_events_total", ev("good", "vip", "chat"), born, to, func(t time.Time) (float64, bool) {
		return count(born, t, func(time.Time) float64 { return 6 }), true
	})
	burst := utc(2026, 10, 25, 1)
	hourly("servq_ticket_slo_events_total", ev("bad", "vip", "chat"), born, to, func(t time.Time) (float64, bool) {
		return count(born, t, func(h time.Time) float64 {
			if h.Equal(burst) {
				return 8
			}
			return 0
		}), true
	})

	// March.
	mfrom, mto := utc(2026, 2, 20, 0), utc(2026, 4, 3, 0)
	res := func(result string) string {
		return fmt.Sprintf(`collector="zd",slo="resolve-1d",result=%q,queue="support",channel="email",priority="normal"`, result)
	}
	hourly("servq_ticket_slo_events_total", res("good"), mfrom, mto, func(t time.Time) (float64, bool) {
		return count(mfrom, t, func(time.Time) float64 { return 5 }), true
	})
	hourly("servq_ticket_slo_events_total", res("bad"), mfrom, mto, func(t time.Time) (float64, bool) {
		return count(mfrom, t, func(h time.Time) float64 {
			if h.Hour()%6 == 0 {
				return 1
			}
			return 0
		}), true
	})
	b.WriteString("# TYPE servq_ticket_slo_corrections counter\n")
	hourly("servq_ticket_slo_corrections_total", `collector="zd",slo="resolve-1d",queue="support",channel="email",priority="normal"`, mfrom, mto, func(t time.Time) (float64, bool) {
		return count(mfrom, t, func(h time.Time) float64 {
			if h.Month() == time.March && h.Hour() == 15 {
				return 1
			}
			return 0
		}), true
	})
	solvedFrom := utc(2026, 3, 10, 6)
	tl := `collector="zd",queue="support",channel="email",priority="normal"`
	b.WriteString("# TYPE servq_tickets_solved counter\n")
	hourly("servq_tickets_solved_total", tl, solvedFrom, mto, func(t time.Time) (float64, bool) {
		return 7 + count(solvedFrom, t, func(time.Time) float64 { return 1 }), true
	})
	b.WriteString("# TYPE servq_tickets_solved_first_contact counter\n")
	hourly("servq_tickets_solved_first_contact_total", tl, solvedFrom, mto, func(t time.Time) (float64, bool) {
		return count(solvedFrom, t, func(h time.Time) float64 {
			if h.Hour()%2 == 0 {
				return 1
			}
			return 0
		}), true
	})
	return b.String()
}

const berlinConfig = `
global: {service: helpdesk, time_zone: Europe/Berlin}
collectors:
  - {name: zd, type: zendesk, schedule: "@every 5m"}
slos:
  - name: reply-4h
    indicator: ticket_first_reply
    threshold: 4h
    objective: 99
    error_budget_policy: Route vip chats to the day shift.
  - name: resolve-1d
    indicator: ticket_resolution
    threshold: 24h
    objective: 95
  - name: fcr
    indicator: ticket_fcr
    objective: 80
  - name: resolve-custom
    indicator: custom
    objective: 95
    custom:
      error_query: sum(rate(servq_ticket_slo_events_total{slo="resolve-1d",result="bad"}[{{.window}}]))
      total_query: sum(rate(servq_ticket_slo_events_total{slo="resolve-1d"}[{{.window}}]))
`

func buildBerlin(t *testing.T, url, spec string) *Report {
	t.Helper()
	cfg, err := config.Parse([]byte(berlinConfig), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePeriod(spec, berlin, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(context.Background(), cfg, &API{URL: url}, p, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sloNamed(t *testing.T, r *Report, name string) SLO {
	t.Helper()
	for _, s := range r.SLOs {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no SLO %s", name)
	return SLO{}
}

func rfc(t time.Time) string { return t.Format(time.RFC3339) }

// point finds the curve point at a time written in RFC 3339.
func point(t *testing.T, s SLO, at string) (int, CurvePoint) {
	t.Helper()
	for i, c := range s.Curve {
		if rfc(c.At) == at {
			return i, c
		}
	}
	t.Fatalf("%s: no curve point at %s", s.Name, at)
	return 0, CurvePoint{}
}

// checkPoint compares a curve point with hand counts of bad and total
// events since the period started.
func checkPoint(t *testing.T, s SLO, at string, bad, total float64) int {
	t.Helper()
	i, c := point(t, s, at)
	if c.SLI == nil || !near(*c.SLI, 100*(total-bad)/total) || !near(c.BudgetRemaining, 1-bad/s.BudgetAllowed) {
		t.Errorf("%s at %s: SLI %v budget remaining %v, want %d bad of %d (SLI %v, remaining %v)", s.Name, at, pct(c.SLI), c.BudgetRemaining,
			int(bad), int(total), 100*(total-bad)/total, 1-bad/s.BudgetAllowed)
	}
	return i
}

func checkBreakdown(t *testing.T, what string, got []Breakdown, want [][3]any, allowed float64) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i].Queue == want[i][0] && got[i].Bad == want[i][1] && got[i].Total == want[i][2] && near(got[i].BudgetShare, got[i].Bad/allowed)
	}
	if !ok {
		t.Errorf("%s = %+v, want (name, bad, total) %v", what, got, want)
	}
}

// October 2026 in Berlin: [Sep 30 22:00Z, Oct 31 23:00Z), 745 hours.
//
//	good support  10 × 745 − 10 (the quiet hour)        = 7440
//	bad support   31 days × 1 + 4 (the decoy hour)       =   35
//	bad billing   Oct 1-13: 13 × 2 = 26; the restart's 3;
//	              Oct 14-31: 18 × 2 = 36                  =   65
//	good legacy   4 × 467 h (to Oct 20 09:00Z)           = 1868
//	bad legacy    Oct 1-20: 20 × 5                        =  100
//	good vip      6 × 519 h (from Oct 10 08:00Z)         = 3114
//	bad vip                                               =    8
//
// Bad 208, good 12422, total 12630: SLI 98.3531 % against 99 %, missed;
// budget 126.3, spent 164.7 %. Per-series boundary counts with no reset
// handling would read billing as 0 (its value at the end, 39, is below
// the start's 214); a 7-day look-back at the end loses legacy (and so
// subtracts its whole value); increase() extrapolates 208.107.
func checkBerlinOctober(t *testing.T, url string) {
	r := buildBerlin(t, url, "2026-10")
	s := sloNamed(t, r, "reply-4h")
	if s.Good != 12422 || s.Bad != 208 || s.Total != 12630 || !near(*s.SLI, 100*12422.0/12630) || s.Status != "missed" || !s.Exact {
		t.Errorf("October = %+v", s.Figures)
	}
	if !near(s.BudgetAllowed, 126.3) || !near(*s.BudgetSpentRatio, 208/126.3) || s.Policy != "Route vip chats to the day shift." {
		t.Errorf("budget allowed %v, spent ratio %v, policy %q", s.BudgetAllowed, *s.BudgetSpentRatio, s.Policy)
	}
	// September: [Aug 31 22:00Z, Sep 30 22:00Z), 720 hours: good 7200 +
	// 2880, bad support 30, billing 60, legacy 150.
	if p := s.Previous; p.Good != 10080 || p.Bad != 240 || p.Total != 10320 || !p.Exact {
		t.Errorf("September = %+v", p)
	}
	// Totals per queue: legacy 1868 + 100, billing 65, support 7440 + 35.
	checkBreakdown(t, "worst queues", s.WorstQueues, [][3]any{{"legacy", 100.0, 1968.0}, {"billing", 65.0, 65.0}, {"support", 35.0, 7475.0}}, s.BudgetAllowed)
	// Channels: phone is legacy; chat is billing and vip (65 + 8 bad,
	// 65 + 3114 + 8 events); email is support.
	checkBreakdown(t, "worst channels", s.WorstChannels, [][3]any{{"phone", 100.0, 1968.0}, {"chat", 73.0, 3187.0}, {"email", 35.0, 7475.0}}, s.BudgetAllowed)
	// The hour ending Oct 25 01:00Z, 02:00 CET (the second 02:00 of the
	// night): 8 bad vip, 10 good support, 6 good vip: 8 of 24. The decoy
	// (Oct 5, 4 bad of 8, 50 %) is below the 5-bad-event minimum; the
	// legacy hours reach 5 of 19.
	if w := s.WorstBurn; w == nil || rfc(w.At) != "2026-10-25T02:00:00+01:00" || w.Bad != 8 || w.Total != 24 || !near(w.ErrorRatio, 1.0/3) || !near(w.BurnRate, 100.0/3) {
		t.Errorf("worst burn = %+v", w)
	}
	// Daily at Berlin midnights, 31 points, the last the period's end.
	if len(s.Curve) != 31 || rfc(s.Curve[0].At) != "2026-10-02T00:00:00+02:00" || rfc(s.Curve[30].At) != "2026-11-01T00:00:00+01:00" {
		t.Fatalf("curve: %d points from %v to %v", len(s.Curve), s.Curve[0].At, s.Curve[len(s.Curve)-1].At)
	}
	for i, c := range s.Curve {
		if c.At.Hour() != 0 || c.At.Minute() != 0 || c.At.Location().String() != "Europe/Berlin" {
			t.Errorf("curve point %d at %v: not a Berlin midnight", i, c.At)
		}
	}
	// To Oct 25 00:00 CEST (Oct 24 22:00Z, 576 h): good support 5750,
	// legacy 1868, vip 6 × 350 = 2100; bad support 24 + 4, billing
	// 26 + 3 + 22, legacy 100: 179 bad of 9897.
	checkPoint(t, s, "2026-10-25T00:00:00+02:00", 179, 9897)
	// Oct 25 has 25 hours: good support +250, vip +150, bad support +1,
	// billing +2, vip +8: 190 bad of 10308.
	checkPoint(t, s, "2026-10-26T00:00:00+01:00", 190, 10308)
	checkPoint(t, s, "2026-11-01T00:00:00+01:00", 208, 12630)
	for _, name := range []string{"resolve-1d", "fcr", "resolve-custom"} {
		if o := sloNamed(t, r, name); o.Status != "no_data" || o.Curve != nil || o.WorstBurn != nil {
			t.Errorf("%s in October = %+v", name, o)
		}
	}
	if r.Summary.Met != 0 || r.Summary.Missed != 1 || r.Summary.NoData != 3 || len(r.Summary.Risks) != 1 ||
		!strings.Contains(r.Summary.Risks[0], "reply-4h missed its objective: 98.35% against 99%, 165% of the error budget spent (most in queue legacy)") {
		t.Errorf("summary = %+v", r.Summary)
	}
	// No survey source, CSAT SLO or survey target: no KPI section; no
	// telephony: no call volumes.
	if r.KPIs != nil || r.Volumes.Current.CallsOffered != nil || r.Volumes.Current.SurveyResponses != nil {
		t.Errorf("KPIs %+v, volumes %+v: sections the config has no sources for", r.KPIs, r.Volumes)
	}
	if rfc(r.GeneratedAt) != "2026-12-01T09:00:00+01:00" {
		t.Errorf("generated at %v, want Berlin time", r.GeneratedAt)
	}
	md, _ := Render(r, "md")
	js, _ := Render(r, "json")
	html, _ := Render(r, "html")
	for _, want := range []string{
		"Period 2026-10-01 00:00 CEST to 2026-11-01 00:00 CET, compared with 2026-09. Generated 2026-12-01 09:00 CET.",
		"Fastest burn: the hour ending 2026-10-25 02:00 CET, 8 bad of 24 events (33.3% errors, 33.3× the budget rate).",
		"| reply-4h | 99% | 98.35% | 12422 / 12630 | 126.3 | 208 (165%) | missed | +0.68 pp |",
		"- legacy: 100 bad of 1968 (79% of the budget)",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	for _, unwanted := range []string{"UTC", "Customer KPIs", "calls offered", "survey responses", "0.0×"} {
		if strings.Contains(string(md), unwanted) || strings.Contains(string(html), unwanted) {
			t.Errorf("report shows %q", unwanted)
		}
	}
	if !strings.Contains(string(js), `"at": "2026-10-25T02:00:00+01:00"`) || strings.Contains(string(js), `"kpis"`) || strings.Contains(string(js), "calls_offered") {
		t.Errorf("JSON: burn time not in Berlin time, or sections without sources:\n%s", js)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || back.SLOs[0].Bad != 208 || !back.SLOs[0].Exact {
		t.Errorf("JSON round trip: %v", err)
	}
	checkBrowserRendering(t, r, "SLI of reply-4h", "98.35%", "12422 / 12630", "2026-10-25 02:00 CET", "Oct 1")
}

// ISO week 43 of 2026 in Berlin: [Oct 18 22:00Z, Oct 25 23:00Z), 169
// hours. Good support 1690, legacy 4 × 35 = 140, vip 6 × 169 = 1014; bad
// support 7, billing 14, legacy 10, vip 8: 39 bad of 2883.
func checkBerlinWeek43(t *testing.T, url string) {
	r := buildBerlin(t, url, "2026-W43")
	s := sloNamed(t, r, "reply-4h")
	if s.Bad != 39 || s.Total != 2883 || !s.Exact {
		t.Errorf("week 43 = %+v", s.Figures)
	}
	// Hourly: 169 points, both 02:00 of Oct 25, the last the period's end.
	if len(s.Curve) != 169 || rfc(s.Curve[168].At) != "2026-10-26T00:00:00+01:00" {
		t.Fatalf("curve: %d points, last %v", len(s.Curve), s.Curve[len(s.Curve)-1].At)
	}
	i, first := point(t, s, "2026-10-25T02:00:00+02:00")
	j, second := point(t, s, "2026-10-25T02:00:00+01:00")
	// The burst's hour spends 8 bad events of the budget (2883 × 1 %).
	if j != i+1 || !near(first.BudgetRemaining-second.BudgetRemaining, 8/28.83) {
		t.Errorf("the repeated hour: points %d and %d, budget %v then %v", i, j, first.BudgetRemaining, second.BudgetRemaining)
	}
	if w := s.WorstBurn; w == nil || rfc(w.At) != "2026-10-25T02:00:00+01:00" || w.Bad != 8 || w.Total != 24 {
		t.Errorf("worst burn = %+v", w)
	}
}

// March 2026 in Berlin: [Feb 28 23:00Z, Mar 31 22:00Z), 743 hours.
//
//	resolve-1d  good 5 × 743 = 3715; bad 31 × 4 = 124 minus 31
//	            corrections = 93; total 3715 + 124 − 31 = 3808
//	            (SLI 97.5578 %, budget 190.4, met)
//	fcr         solved 7 (the first sample, counted from 0) + 520 h = 527,
//	            first contact 260 (even hours): bad 267 of 527; inexact
//	            (the solved series lacks its zero sample)
//
// February [Jan 31 23:00Z, Feb 28 23:00Z): the resolve-1d series are born
// at 0 on Feb 20 00:00Z: good 5 × 215 = 1075, bad 3 + 8 × 4 = 35.
func checkBerlinMarch(t *testing.T, url string) {
	r := buildBerlin(t, url, "2026-03")
	s := sloNamed(t, r, "resolve-1d")
	if s.Good != 3715 || s.Bad != 93 || s.Total != 3808 || s.Status != "met" || !s.Exact || !near(s.BudgetAllowed, 190.4) {
		t.Errorf("March = %+v", s.Figures)
	}
	if p := s.Previous; p.Good != 1075 || p.Bad != 35 || p.Total != 1110 || !p.Exact {
		t.Errorf("February = %+v", p)
	}
	if len(s.Curve) != 31 || rfc(s.Curve[30].At) != "2026-04-01T00:00:00+02:00" {
		t.Fatalf("curve: %d points, last %v", len(s.Curve), s.Curve[len(s.Curve)-1].At)
	}
	// To Mar 29 00:00 CET (Mar 28 23:00Z, 672 h): good 3360, bad events
	// 112, corrections 28: 84 bad of 3360 + 112 − 28 = 3444.
	checkPoint(t, s, "2026-03-29T00:00:00+01:00", 84, 3444)
	// Mar 29 has 23 hours: good +115, bad events +4, corrections +1: 87
	// bad of 3562.
	checkPoint(t, s, "2026-03-30T00:00:00+02:00", 87, 3562)
	checkPoint(t, s, "2026-04-01T00:00:00+02:00", 93, 3808)
	// At most 1 bad event an hour: no fastest burn.
	if s.WorstBurn != nil {
		t.Errorf("worst burn = %+v", s.WorstBurn)
	}
	f := sloNamed(t, r, "fcr")
	if f.Good != 260 || f.Bad != 267 || f.Total != 527 || f.Exact || f.Previous.Status != "no_data" {
		t.Errorf("fcr = %+v, previous %+v", f.Figures, f.Previous)
	}
	// The first sample's 7 solved tickets fall in the hour ending
	// Mar 10 06:00Z: 7 bad of 7.
	if w := f.WorstBurn; w == nil || rfc(w.At) != "2026-03-10T07:00:00+01:00" || w.Bad != 7 || w.Total != 7 {
		t.Errorf("fcr worst burn = %+v", w)
	}
	if r.Volumes.Current.TicketsSolved != 527 || r.Volumes.Previous.TicketsSolved != 0 {
		t.Errorf("volumes = %+v", r.Volumes)
	}
	// The custom SLO reads the same counters through rate(): close to
	// 93 of 3808... but with the corrections not subtracted: 124 of 3839,
	// extrapolated; its curve is the sum of hourly rate() counts.
	c := sloNamed(t, r, "resolve-custom")
	if c.Exact || math.Abs(c.Bad-124) > 2 || math.Abs(c.Total-3839) > 40 || len(c.Curve) != 31 || c.Curve[30].SLI == nil {
		t.Errorf("custom = %+v, %d curve points", c.Figures, len(c.Curve))
	}
	md, _ := Render(r, "md")
	html, _ := Render(r, "html")
	for _, want := range []string{
		"Attained 97.56% against 95% (previous period 96.85%). No hour had 5 or more bad events: no fastest burn to show.",
		"_Approximate: a series that appeared in this period lacks its first sample at 0",
		"_Counts from rate() over the period (custom indicator)",
		"| tickets solved | 527 | 0 |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	// reply-4h has no events in March; the three others have.
	if n := strings.Count(string(html), "No events in this period"); n != 1 {
		t.Errorf(`"No events in this period" shown %d times, want once (reply-4h)`, n)
	}
}

// ISO week 13 of 2026 in Berlin: [Mar 22 23:00Z, Mar 29 22:00Z), 167
// hours: resolve-1d good 835, bad 28 − 7 corrections = 21, total 856.
// fcr: 167 solved, 84 at first contact (even hours from 00:00Z): 83 bad.
func checkBerlinWeek13(t *testing.T, url string) {
	r := buildBerlin(t, url, "2026-W13")
	s := sloNamed(t, r, "resolve-1d")
	if s.Good != 835 || s.Bad != 21 || s.Total != 856 || !s.Exact {
		t.Errorf("week 13 = %+v", s.Figures)
	}
	// Week 12, 168 h: good 840, bad 28 − 7, total 861.
	if p := s.Previous; p.Bad != 21 || p.Total != 861 {
		t.Errorf("week 12 = %+v", p)
	}
	if len(s.Curve) != 167 || rfc(s.Curve[166].At) != "2026-03-30T00:00:00+02:00" {
		t.Fatalf("curve: %d points, last %v", len(s.Curve), s.Curve[len(s.Curve)-1].At)
	}
	// 02:00 does not exist on Mar 29: 01:00 CET is followed by 03:00 CEST.
	if i, _ := point(t, s, "2026-03-29T01:00:00+01:00"); rfc(s.Curve[i+1].At) != "2026-03-29T03:00:00+02:00" {
		t.Errorf("after 01:00 CET: %v", s.Curve[i+1].At)
	}
	checkPoint(t, s, "2026-03-30T00:00:00+02:00", 21, 856)
	if f := sloNamed(t, r, "fcr"); f.Good != 84 || f.Bad != 83 || f.Total != 167 || !f.Exact {
		t.Errorf("fcr week 13 = %+v", f.Figures)
	}
}
