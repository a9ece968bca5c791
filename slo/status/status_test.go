package status

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

const cfgText = `
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: sl, indicator: call_service_level, threshold: 20s, objective: 80, window: 1d}
  - {name: abandon, indicator: call_abandonment, objective: 90, window: 1d}
  - name: api
    indicator: custom
    objective: 99
    custom: {total_query: 'sum(rate(x[{{.window}}]))', error_query: 'sum(rate(y[{{.window}}]))'}
`

// calls makes n calls: answered within 20s, answered late, abandoned
// after 30s, abandoned after 2s (short).
func calls(prefix string, fast, slow, aband, short int) []record.Call {
	var out []record.Call
	add := func(n int, o record.CallOutcome, wait time.Duration) {
		for i := 0; i < n; i++ {
			out = append(out, record.Call{ID: prefix + string(o) + wait.String() + string(rune('a'+i)), Queue: "q", Outcome: o, Wait: wait})
		}
	}
	add(fast, record.OutcomeAnswered, 10*time.Second)
	add(slow, record.OutcomeAnswered, 40*time.Second)
	add(aband, record.OutcomeAbandoned, 30*time.Second)
	add(short, record.OutcomeAbandoned, 2*time.Second)
	return out
}

func TestStatusFromServqsOwnCounts(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(cfgText), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Values are checked as committed: no new-series delay (TestNewSeries* covers it).
	cfg.Global.NewSeriesDelay = new(config.Duration)
	m, err := quality.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	tr, err := NewTracker(st)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	observe := func(now time.Time, b []record.Call) {
		t.Helper()
		if len(b) > 0 {
			if _, err := m.Commit("pbx", &collectors.Batch{Now: now, Calls: b}, []byte(now.String())); err != nil {
				t.Fatal(err)
			}
		}
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Observe(cfg, now, Measure(cfg, fams)); err != nil {
			t.Fatal(err)
		}
	}
	// Day 1: 8 fast, 1 slow, 1 abandoned: SL bad 2 of 10.
	observe(t0, calls("d1", 8, 1, 1, 0))
	// Day 2 (more than the 1d window later): 6 fast, 1 slow, 2 abandoned,
	// 1 short abandon: in the window 10 offered, bad 10 - 6 = 4.
	observe(t0.Add(25*time.Hour), nil)
	observe(t0.Add(25*time.Hour+30*time.Minute), calls("d2", 6, 1, 2, 1))
	now := t0.Add(25*time.Hour + 30*time.Minute)

	check := func(tr *Tracker) {
		t.Helper()
		got := map[string]SLO{}
		for _, s := range tr.Status(cfg, now, nil) {
			got[s.Name] = s
		}
		sl := got["sl"]
		// SL: 4 bad of 10, SLI 60 %, budget 20 %: burn 2x, remaining -1.
		if !sl.Computed || sl.Bad != 4 || sl.Total != 10 || sl.SLI == nil || *sl.SLI != 60 || sl.BurnRateWindow != 2 || sl.BudgetRemaining != -1 || sl.State != "exhausted" {
			t.Errorf("sl = %+v", sl)
		}
		// The t0 sample (taken after day 1 was committed) is the last one
		// at or before the window's start: the window counts day 2 only,
		// and the samples cover all of it.
		if sl.CoveredSeconds != 86400 || sl.Coverage != 1 {
			t.Errorf("sl covers %vs (%v), want the whole window", sl.CoveredSeconds, sl.Coverage)
		}
		// Burn rates over the alert windows up to the 1d window: all of
		// day 2 is within the last 2h, so each is 2x.
		if len(sl.BurnRates) != 3 || sl.BurnRates[1].Window != "6h" || sl.BurnRates[1].BurnRate != 2 || !sl.BurnRates[2].Covered {
			t.Errorf("sl burn rates = %+v", sl.BurnRates)
		}
		// The alert pairs of the generated rules on these counts: 40 %
		// errors is above the 1d/2h ticket's 1.2 x 20 % = 24 % but under
		// the pages' cap of 60 %.
		var firing []string
		for _, a := range sl.Alerts {
			if a.Firing {
				firing = append(firing, a.Severity+" "+a.Long+"/"+a.Short)
			}
		}
		if len(sl.Alerts) != 3 || strings.Join(firing, ",") != "ticket 1d/2h" || sl.Alerts[2].Threshold != 0.24 {
			t.Errorf("sl alerts = %+v, firing %v", sl.Alerts, firing)
		}
		// Abandonment: 3 abandoned of which 1 short: (3 - 1) of (10 - 1),
		// budget 10 %: burn 2.22, but fewer than MinEvents events: too
		// few to call the budget exhausted.
		ab := got["abandon"]
		if ab.Bad != 2 || ab.Total != 9 || ab.State != "collecting" || ab.BurnRateWindow < 2.2222 || ab.BurnRateWindow > 2.2223 {
			t.Errorf("abandon = %+v", ab)
		}
		if api := got["api"]; api.Computed || api.State != "no_data" {
			t.Errorf("custom SLO = %+v, want not computed", api)
		}
	}
	check(tr)
	// The samples survive a restart.
	tr2, err := NewTracker(st)
	if err != nil {
		t.Fatal(err)
	}
	check(tr2)
	// A day later, only the last sample at or before the window's start
	// (t0+25h30m) and the new one remain, in memory and in the store.
	later := now.Add(25 * time.Hour)
	observe(later, calls("d3", 1, 0, 0, 0))
	if n := len(tr.points["sl"]); n != 2 {
		t.Errorf("%d samples kept, want 2", n)
	}
	tr3, err := NewTracker(st)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tr3.points["sl"]); n != 2 {
		t.Errorf("%d samples stored, want 2", n)
	}
	if s := tr3.Status(cfg, later, nil)[0]; s.Bad != 0 || s.Total != 1 || s.State != "collecting" {
		t.Errorf("sl a day later = %+v", s)
	}
	// Between samples the status is live: 10s later, one late call more.
	if _, err := m.Commit("pbx", &collectors.Batch{Now: later.Add(10 * time.Second), Calls: calls("d4", 0, 1, 0, 0)}, []byte("d4")); err != nil {
		t.Fatal(err)
	}
	fams, _ := reg.Gather()
	if s := tr.Status(cfg, later.Add(10*time.Second), Measure(cfg, fams))[0]; s.Bad != 1 || s.Total != 2 {
		t.Errorf("live status = %+v, want 1 bad of 2", s)
	}
	st.Close()
}

// What the model counted before an SLO's first sample (history read at
// start, a servq that ran before the SLO existed) is the baseline, not a
// burst in the last hour: Prometheus, scraping from its first sample on,
// sees the same. A demo that reads a backlog at start must not say
// "exhausted" seconds later.
func TestCountsBeforeTheFirstSampleAreTheBaseline(t *testing.T) {
	cfg, err := config.Parse([]byte(cfgText), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg.Global.NewSeriesDelay = new(config.Duration)
	m, err := quality.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	tr, err := NewTracker(st)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	commit := func(now time.Time, b []record.Call) {
		t.Helper()
		if _, err := m.Commit("pbx", &collectors.Batch{Now: now, Calls: b}, []byte(now.String())); err != nil {
			t.Fatal(err)
		}
	}
	measure := func() map[string]Counts {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return Measure(cfg, fams)
	}
	// A backlog of 10 abandoned calls is read before the first sample.
	commit(t0, calls("old", 0, 0, 10, 0))
	if err := tr.Observe(cfg, t0.Add(6*time.Second), measure()); err != nil {
		t.Fatal(err)
	}
	if s := tr.Status(cfg, t0.Add(6*time.Second), measure())[0]; s.State != "no_data" || s.Total != 0 || s.BurnRate1h != 0 {
		t.Errorf("6s after start = %+v, want no_data with nothing counted", s)
	}
	// Then 9 calls answered in time and 1 late within the hour.
	commit(t0.Add(time.Minute), calls("new", 9, 1, 0, 0))
	now := t0.Add(90 * time.Second)
	if err := tr.Observe(cfg, now, measure()); err != nil {
		t.Fatal(err)
	}
	s := tr.Status(cfg, now, measure())[0]
	// 1 bad of 10, budget 20 %: burn 0.5x over the hour and the window;
	// 84s of a 1d window seen: collecting, whatever the burn.
	if s.Bad != 1 || s.Total != 10 || s.BurnRate1h != 0.5 || s.BurnRateWindow != 0.5 || s.BudgetRemaining != 0.5 || s.State != "collecting" {
		t.Errorf("status = %+v, want 1 bad of 10 at burn 0.5", s)
	}
	// Early in the window even a budget spent twice over is not called
	// exhausted: 30 late calls more.
	commit(now, calls("late", 0, 30, 0, 0))
	if s := tr.Status(cfg, now.Add(time.Second), measure())[0]; s.BudgetRemaining > 0 || s.State != "collecting" || s.Coverage >= MinCoverage {
		t.Errorf("early exhausted budget = %+v, want collecting", s)
	}
	// Past MinCoverage of the window it is.
	later := t0.Add(3 * time.Hour)
	if err := tr.Observe(cfg, later, measure()); err != nil {
		t.Fatal(err)
	}
	if s := tr.Status(cfg, later, measure())[0]; s.State != "exhausted" || s.Coverage < MinCoverage {
		t.Errorf("3h into the window = %+v, want exhausted", s)
	}
}

// TestMeasureReadsFiltersAsPromQLDoes: an SLO filtered by a regular
// expression (queue: "=~sal.*") counts the calls of every queue it
// matches, as its rules' selector does, not the queues literally named
// "=~sal.*" (none: the status read 0 events); an equality filter counts
// its queue only.
func TestMeasureReadsFiltersAsPromQLDoes(t *testing.T) {
	cfg, err := config.Parse([]byte(`
collectors:
  - {name: pbx, type: demo, schedule: "@every 1m"}
slos:
  - {name: sal, indicator: call_abandonment, objective: 90, window: 1d, filters: {queue: "=~sal.*"}}
  - {name: support, indicator: call_abandonment, objective: 90, window: 1d, filters: {queue: support}}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.NewSeriesDelay = new(config.Duration)
	st, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := quality.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var b []record.Call
	for i, q := range []string{"sales", "salon", "salon", "support", "resale"} {
		// Every call abandoned after 30 s: bad for the abandonment SLOs.
		b = append(b, record.Call{ID: fmt.Sprint("c", i), Queue: q, Outcome: record.OutcomeAbandoned, Wait: 30 * time.Second, EndedAt: now.Add(-time.Minute)})
	}
	if _, err := m.Commit("pbx", &collectors.Batch{Now: now, Calls: b}, []byte("c")); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := Measure(cfg, fams)
	if c := got["sal"]; c.Bad != 3 || c.Total != 3 {
		t.Errorf("sal (queue =~sal.*): %+v, want 3 bad of 3 (sales, salon twice; not resale)", c)
	}
	if c := got["support"]; c.Bad != 1 || c.Total != 1 {
		t.Errorf("support: %+v, want 1 bad of 1", c)
	}
}
