package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// The step recordings equal the old exact expressions (the SLI's rates
// over the whole window, read from the raw counters) wherever those are
// exact: counters sampled every minute that start at 0, so that
// increase() has nothing to extrapolate. The input is irregular: bursts,
// quiet minutes, a series that appears mid-way at 0 (as servq serves new
// series), a scrape gap of three minutes, three label combinations, two
// copies of one servq; compared for every indicator over 5m, 30m, 1h, 2h
// and the SLO window (ratios, and the window's bad and total events), at
// times around the hourly marks of the term period sums (60, 120) and
// between them, where the 2h window's far edge falls in an open period
// (its steps since the mark before are subtracted).
func TestStepsEqualTheRawWindowExpressions(t *testing.T) {
	t.Parallel()
	stepsEqualRaw(t, nil)
}

// The windows summed from the term period sums stay exact whatever
// evaluations are marks (a missed mark, an extra one where time() falls
// on a boundary): here marks come at irregular times, 37 and 53 minutes
// apart, instead of on the hour.
func TestPeriodSumsExactWithAnyMarks(t *testing.T) {
	t.Parallel()
	stepsEqualRaw(t, func(f *File) {
		n := 0
		for _, g := range f.Groups {
			for i, r := range g.Rules {
				e := strings.ReplaceAll(r.Expr, "vector(time() % 3600) < 60", "vector((time() % 2220 < bool 60) + (time() % 3180 < bool 60)) > 0")
				e = strings.ReplaceAll(e, "(time() % 3600 >= bool 60)", "((time() % 2220 >= bool 60) * (time() % 3180 >= bool 60))")
				if e != r.Expr {
					g.Rules[i].Expr = e
					n++
				}
			}
		}
		if n != 2 {
			t.Fatalf("changed the marks of %d rules, want 2 (period and open_period)", n)
		}
	})
}

// The backfill form of the rules (servq rules --level: period sums
// from the steps alone, for tools that cannot read a rule's own past
// values) gives the same windows.
func TestBackfillRulesEqualTheRawWindowExpressions(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(promtoolConfig), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	backfill, err := GenerateBackfill(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range backfill.Groups {
		for _, r := range g.Rules {
			if strings.HasPrefix(r.Record, "servq:slo_term_events:") && strings.Contains(r.Expr, r.Record+"[") {
				t.Errorf("backfill rule %s reads its own past values:\n%s", r.Record, r.Expr)
			}
		}
	}
	stepsEqualRaw(t, func(f *File) { *f = *backfill })
}

func stepsEqualRaw(t *testing.T, change func(*File)) {
	cfg, err := config.Parse([]byte(promtoolConfig), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Per minute increments, cycled: bursts and quiet minutes.
	burst := func(pattern []int, minutes int, from int) string {
		var parts []string
		for i := 0; i < from; i++ {
			parts = append(parts, "_")
		}
		v := 0
		for i := from; i <= minutes; i++ {
			if i > from {
				v += pattern[i%len(pattern)]
			}
			parts = append(parts, fmt.Sprint(v))
		}
		return strings.Join(parts, " ")
	}
	gap := func(values string, from, n int) string {
		f := strings.Fields(values)
		for i := from; i < from+n; i++ {
			f[i] = "_"
		}
		return strings.Join(f, " ")
	}
	const minutes = 160
	var in []string
	add := func(series, values string) {
		in = append(in, fmt.Sprintf("    - {series: '%s', values: '%s'}", series, values))
	}
	for i, q := range []string{"a", "b", "c"} {
		from := []int{0, 0, 40}[i] // queue c appears at minute 40
		l := fmt.Sprintf(`collector="pbx",queue="%s",channel="phone"`, q)
		add(`servq_calls_offered_total{`+l+`}`, burst([]int{10, 0, 0, 25, 3, 7}, minutes, from))
		add(`servq_calls_answered_total{`+l+`}`, burst([]int{8, 0, 0, 20, 2, 5}, minutes, from))
		add(`servq_calls_abandoned_total{`+l+`}`, burst([]int{2, 0, 0, 5, 1, 2}, minutes, from))
		add(`servq_calls_abandoned_short_total{`+l+`}`, burst([]int{1, 0, 0, 1, 0, 1}, minutes, from))
		add(`servq_call_wait_seconds_bucket{`+l+`,outcome="answered",le="20.0"}`, gap(burst([]int{5, 0, 0, 19, 1, 3}, minutes, from), 100, 3))
		add(`servq_tickets_solved_total{collector="zd",queue="billing",channel="email",priority="`+q+`"}`, burst([]int{4, 1, 0, 9}, minutes, from))
		add(`servq_tickets_solved_first_contact_total{collector="zd",queue="billing",channel="email",priority="`+q+`"}`, burst([]int{3, 0, 0, 2}, minutes, from))
		add(`servq_csat_score_bucket{collector="zd",survey="post",queue="`+q+`",channel="email",le="3"}`, burst([]int{2, 0, 1}, minutes, from))
		add(`servq_csat_score_count{collector="zd",survey="post",queue="`+q+`",channel="email"}`, burst([]int{4, 1, 3}, minutes, from))
		add(`servq_csat_retracted_score_bucket{collector="zd",survey="ticket",queue="`+q+`",channel="email",le="3"}`, burst([]int{1, 0, 0}, minutes, from))
		add(`servq_csat_retracted_score_count{collector="zd",survey="ticket",queue="`+q+`",channel="email"}`, burst([]int{1, 0, 0}, minutes, from))
		for _, c := range []string{`instance="a"`, `instance="b"`} {
			add(`servq_ticket_slo_events_total{collector="zd",slo="reply",result="good",queue="`+q+`",`+c+`}`, burst([]int{10, 0, 30, 1}, minutes, from))
			add(`servq_ticket_slo_events_total{collector="zd",slo="reply",result="bad",queue="`+q+`",`+c+`}`, burst([]int{1, 0, 4, 0, 0}, minutes, from))
			add(`servq_ticket_slo_corrections_total{collector="zd",slo="reply",queue="`+q+`",`+c+`}`, burst([]int{0, 0, 0, 0, 1, 0, 0}, minutes, from))
		}
	}
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	var checks []string
	check := func(recorded, raw string, at int) {
		expr := fmt.Sprintf("abs(sum(%s) - sum(%s)) <= bool (1e-9 * abs(sum(%s)))", recorded, flat(raw), recorded)
		checks = append(checks, fmt.Sprintf("    - {expr: '%s', eval_time: %dm, exp_samples: [{labels: '{}', value: 1}]}", expr, at))
		// And not vacuously: the recording has events.
		checks = append(checks, fmt.Sprintf("    - {expr: 'count(%s)', eval_time: %dm, exp_samples: [{labels: '{}', value: 1}]}", recorded, at))
	}
	for _, name := range []string{"sl-bad", "sl-short", "sl-answered", "abandon", "fcr", "csat", "reply"} {
		var s *config.SLO
		for _, x := range cfg.SLOs {
			if x.Name == name {
				s = x
			}
		}
		ind, err := sli.For(cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf(`{sloth_id="svc-%s"}`, name)
		for _, at := range []int{60, 61, 90, 119, 120, 121, 150} {
			window := sli.Window(s.Window.D())
			for _, w := range []string{"5m", "30m", "1h", "2h", window} {
				check(recErrorRatio+w+id, ind.ErrorRatio(w), at)
			}
			bad, _ := ind.BadCount(window)
			total, _ := ind.TotalCount(window)
			check(recBadEvents+window+id, bad, at)
			check(recEvents+window+id, total, at)
		}
	}
	// The share of the SLO window (28d) the steps cover: 151 steps of a
	// minute at 150m (from 0).
	checks = append(checks, fmt.Sprintf("    - {expr: '%s{sloth_id=\"svc-abandon\"}', eval_time: 150m, exp_samples: [{labels: '%s{sloth_id=\"svc-abandon\",sloth_service=\"svc\",sloth_slo=\"abandon\"}', value: %s}]}",
		recCoverage, recCoverage, exact(151*60.0/(28*86400))))
	runPromtoolTestWith(t, fmt.Sprintf(`
- interval: 1m
  input_series:
%s
  promql_expr_test:
%s
`, strings.Join(in, "\n"), strings.Join(checks, "\n")), change)
}

// The rules of built-in indicators read raw series over at most
// lastWithin, whatever the window: their cost does not grow with the
// window's raw samples. (The coverage recording's subquery reads
// servq_build_info, one series per servq, once an hour of the window.)
// Custom SLIs are the exception: their queries are the user's.
func TestSLORulesReadRawSeriesOverShortRangesOnly(t *testing.T) {
	cfg, err := config.Parse([]byte(strings.Replace(promtoolConfig, "targets:", `  - {name: long, indicator: call_abandonment, objective: 99, window: 90d}
  - {name: day, indicator: ticket_resolution, threshold: 8h, objective: 90, window: 1d}
targets:`, 1)), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range f.Groups {
		if !strings.HasPrefix(g.Name, "servq-slo-") {
			continue
		}
		for _, r := range g.Rules {
			e, err := parser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			parser.Inspect(e, func(node parser.Node, path []parser.Node) error {
				switch x := node.(type) {
				case *parser.MatrixSelector:
					vs := x.VectorSelector.(*parser.VectorSelector)
					n++
					if !strings.Contains(vs.Name, ":") && x.Range > lastWithin {
						t.Errorf("group %s, rule %s%s reads the raw %s over %s", g.Name, r.Record, r.Alert, vs.Name, x.Range)
					}
				case *parser.SubqueryExpr:
					parser.Inspect(x.Expr, func(inner parser.Node, _ []parser.Node) error {
						// The term steps' subquery of two steps over the
						// last samples is the one raw read.
						if vs, ok := inner.(*parser.VectorSelector); ok && vs.Name != "servq_build_info" && !strings.Contains(vs.Name, ":") && x.Range > 2*defaultStep {
							t.Errorf("group %s, rule %s%s reads the raw %s in a subquery over %s", g.Name, r.Record, r.Alert, vs.Name, x.Range)
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	if n == 0 {
		t.Fatal("no range selectors found")
	}
	// Each counter selector is read once an evaluation (one subquery for
	// its last samples now and one interval ago), however many SLOs read
	// it: the five call SLOs read servq_calls_offered_total{} in one
	// place, from the first one's input; no raw counter is read at all.
	reads := map[string]int{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			e, _ := parser.ParseExpr(r.Expr)
			parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
				if m, ok := node.(*parser.MatrixSelector); ok && strings.HasPrefix(g.Name, "servq-slo-") {
					v := *m.VectorSelector.(*parser.VectorSelector)
					v.OriginalOffset = 0
					reads[v.String()]++
				}
				return nil
			})
		}
	}
	for sel, k := range reads {
		if strings.Contains(sel, ":") {
			continue
		}
		if !strings.HasPrefix(sel, sli.SLOInput+"{") {
			t.Errorf("the rules read the raw %s instead of the SLO inputs", sel)
		}
		if k != 1 {
			t.Errorf("%s is read %d times, want once", sel, k)
		}
	}
	var offered string
	for _, s := range cfg.SLOs {
		if c, _ := sli.StepCounts(cfg, s); offered == "" && s.Indicator == "call_service_level" {
			offered = c.Total[0].Selector() // sl-bad: count_as_bad
		}
	}
	if reads[offered] != 1 {
		t.Errorf("%s read %d times: %v", offered, reads[offered], reads)
	}
}

// Rules per SLO: Sloth's 17 (ratios over its 8 windows, 7 metadata
// recordings, 2 alerts), plus servq's own 5 (the two step recordings,
// the window's bad and total events, the window coverage; README
// "Generated rules"), plus one ratio for every window Sloth's 8 lack (the
// SLO window when it is not 30d, alert windows shrunk to a short SLO
// window).
// The recordings of SLOs with built-in indicators are one rule per series
// name and window for all of them: adding SLOs adds their two alerts and
// no recording rule, so that from 3 SLOs on a file has fewer rules than
// Sloth's 17 per SLO (README "Rules per SLO").
func TestRulesPerSLO(t *testing.T) {
	count := func(window string, n int) (recordings, alerts int) {
		text := "global: {service: svc}\ncollectors:\n  - {name: pbx, type: demo, schedule: \"@every 1m\"}\nrules: {operational: false}\nslos:\n"
		for i := range n {
			// Both kinds of built-in counts, objectives apart.
			ind := "call_abandonment"
			if i%2 == 1 {
				ind = "call_service_level\n    threshold: 20s"
			}
			text += fmt.Sprintf("  - name: s%d\n    indicator: %s\n    objective: %d\n    window: %s\n", i, ind, 90+i%9, window)
		}
		cfg, err := config.Parse([]byte(text), "t.yml")
		if err != nil {
			t.Fatal(err)
		}
		f, err := Generate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recordings++
				} else {
					alerts++
				}
			}
		}
		return recordings, alerts
	}
	for _, window := range []string{"30d", "28d", "90d", "7d", "2d", "1h"} {
		r2, a2 := count(window, 2)
		r50, a50 := count(window, 50)
		if r50 != r2 || a2 != 4 || a50 != 100 {
			t.Errorf("window %s: 2 SLOs %d recordings and %d alerts, 50 SLOs %d and %d: want the same recordings and 2 alerts per SLO", window, r2, a2, r50, a50)
		}
		if r3, a3 := count(window, 3); r3+a3 >= 3*17 {
			t.Errorf("window %s: 3 SLOs make %d rules, Sloth %d", window, r3+a3, 3*17)
		}
	}
}

// A step counts a series from its sample one interval ago: servq must
// serve new series at 0 for longer than the interval, or servq rules says
// so.
func TestSeriesDelayNote(t *testing.T) {
	for _, c := range []struct {
		extra string
		note  bool
	}{
		{"", false},                       // 2m > 1m
		{"rules: {interval: 5m}\n", true}, // 2m <= 5m
		{"rules: {interval: 2m}\n", true}, // equal is not longer
		{"global: {service: svc, new_series_delay: 10m}\nrules: {interval: 5m}\n", false},
		{"global: {service: svc, new_series_delay: 0s}\nrules: {interval: 5m}\n", false}, // off: the user's choice
	} {
		text := "collectors:\n  - {name: pbx, type: demo, schedule: \"@every 1m\"}\nslos:\n  - {name: x, indicator: call_abandonment, objective: 99, window: 30d}\n" + c.extra
		if !strings.Contains(c.extra, "global:") {
			text = "global: {service: svc}\n" + text
		}
		cfg, err := config.Parse([]byte(text), "t.yml")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Contains(strings.Join(Warnings(cfg), "\n"), "new_series_delay")
		if got != c.note {
			t.Errorf("%q: note %v, want %v: %q", c.extra, got, c.note, Warnings(cfg))
		}
	}
}
