// Package status computes each SLO's state from servq's own view: the
// cumulative good/total counts in the quality model, sampled once a minute
// into the state store, give the SLI, budget and burn rate over any window
// without asking Prometheus. It backs /api/v1/slos and the landing page.
package status

import (
	"encoding/binary"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/rules"
	"github.com/servq/servq/slo/sli"
)

// When servq has seen less than MinCoverage of an SLO's window, or fewer
// than MinEvents events in it, the budget figures extrapolate from too
// little: a demo two minutes into a 28d window with one late call is not
// "exhausted". The state is then "collecting" and the page says how much
// of the window servq has seen.
const (
	MinCoverage = 0.1
	MinEvents   = 10
)

// BurnWindows are the windows the status reports burn rates over, those
// of the generated alerts.
var BurnWindows = []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour, 72 * time.Hour}

// Namespace of the samples in the state store. A colon cannot be part of a
// collector name, so it never meets a collector's namespace.
const Namespace = "servq:slo-status"

// Counts are cumulative bad and total events of an SLO.
type Counts struct{ Bad, Total float64 }

// Measure computes every SLO's cumulative counts from the gathered
// families, from the same counters as the generated rules and reports
// (sli.CountsFor). Custom SLOs read metrics servq does not have: they are
// left out.
func Measure(cfg *config.Config, fams []*dto.MetricFamily) map[string]Counts {
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	sum := func(terms []sli.Term) float64 {
		var v float64
		for _, t := range terms {
			v += t.Sign * sumTerm(byName, t)
		}
		return math.Max(v, 0)
	}
	out := map[string]Counts{}
	for _, s := range cfg.SLOs {
		c, err := sli.CountsFor(cfg, s)
		if err != nil || c == nil {
			continue
		}
		out[s.Name] = Counts{Bad: sum(c.Bad), Total: sum(c.Total)}
	}
	return out
}

// sumTerm sums the series of a term: a counter, a histogram's _count, or
// the cumulative count of its bucket Le.
func sumTerm(byName map[string]*dto.MetricFamily, t sli.Term) float64 {
	name, part := t.Metric, ""
	for _, suffix := range []string{"_bucket", "_count"} {
		if base := strings.TrimSuffix(t.Metric, suffix); base != t.Metric && byName[base] != nil {
			name, part = base, suffix
		}
	}
	f := byName[name]
	if f == nil {
		return 0
	}
	match := matchers(t.Matchers)
	var total float64
next:
	for _, m := range f.GetMetric() {
		for k, ok := range match {
			v := "" // PromQL reads a missing label as empty
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k {
					v = lp.GetValue()
					break
				}
			}
			if !ok(v) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Histogram != nil && part == "_count":
			total += float64(m.GetHistogram().GetSampleCount())
		case m.Histogram != nil && part == "_bucket" && t.Le != nil:
			for _, b := range m.GetHistogram().GetBucket() {
				if b.GetUpperBound() == *t.Le {
					total += float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return total
}

type point struct {
	at time.Time
	c  Counts
}

// Tracker keeps a sample of every SLO's counts per Every, in memory and in
// the state store, as far back as the SLO's window.
type Tracker struct {
	Every time.Duration

	mu     sync.Mutex
	store  *state.Store
	points map[string][]point
}

// NewTracker loads the stored samples.
func NewTracker(store *state.Store) (*Tracker, error) {
	t := &Tracker{Every: time.Minute, store: store, points: map[string][]point{}}
	err := store.View(Namespace, func(tx *state.Tx) error {
		return tx.ForEach(state.SpaceMeta, func(k, v []byte) error {
			name, at, c, ok := decodePoint(k, v)
			if ok {
				t.points[name] = append(t.points[name], point{at, c})
			}
			return nil
		})
	})
	return t, err
}

func pointKey(name string, at time.Time) []byte {
	k := append([]byte(name), 0)
	return binary.BigEndian.AppendUint64(k, uint64(at.Unix()))
}

func decodePoint(k, v []byte) (string, time.Time, Counts, bool) {
	i := strings.IndexByte(string(k), 0)
	if i < 0 || len(k) != i+9 || len(v) != 16 {
		return "", time.Time{}, Counts{}, false
	}
	at := time.Unix(int64(binary.BigEndian.Uint64(k[i+1:])), 0)
	c := Counts{Bad: math.Float64frombits(binary.LittleEndian.Uint64(v)), Total: math.Float64frombits(binary.LittleEndian.Uint64(v[8:]))}
	return string(k[:i]), at, c, true
}

// Observe records the counts at now when Every has passed since the last
// sample, and forgets samples older than the SLO's window.
func (t *Tracker) Observe(cfg *config.Config, now time.Time, counts map[string]Counts) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	windows := map[string]time.Duration{}
	for _, s := range cfg.SLOs {
		windows[s.Name] = s.Window.D()
	}
	return t.store.Update(Namespace, func(tx *state.Tx) error {
		for _, name := range sortedKeys(counts) {
			ps := t.points[name]
			if n := len(ps); n > 0 && now.Sub(ps[n-1].at) < t.Every {
				continue
			}
			// The first sample is the baseline: what the model counted
			// before it (a servq that ran before this SLO was configured,
			// a burst of history read at start) is not attributed to any
			// moment, just as Prometheus sees only increases after its
			// first scrape. The status and the rules thus agree.
			c := counts[name]
			v := binary.LittleEndian.AppendUint64(nil, math.Float64bits(c.Bad))
			v = binary.LittleEndian.AppendUint64(v, math.Float64bits(c.Total))
			if err := tx.Put(state.SpaceMeta, pointKey(name, now), v); err != nil {
				return err
			}
			ps = append(ps, point{now, c})
			// Keep one sample at or before the window's start.
			cut := 0
			for cut+1 < len(ps) && !ps[cut+1].at.After(now.Add(-windows[name])) {
				if err := tx.Delete(state.SpaceMeta, pointKey(name, ps[cut].at)); err != nil {
					return err
				}
				cut++
			}
			t.points[name] = ps[cut:]
		}
		return nil
	})
}

// SLO is the state of one SLO as servq sees it.
type SLO struct {
	Name      string  `json:"name"`
	Indicator string  `json:"indicator"`
	Objective float64 `json:"objective"`
	Window    string  `json:"window"`
	// Computed is false for custom SLOs (Prometheus has their data) and
	// while no sample exists yet.
	Computed bool `json:"computed"`
	// CoveredSeconds: how much of the window the samples cover (servq may
	// have started recently).
	CoveredSeconds float64 `json:"covered_seconds"`
	Good           float64 `json:"good"`
	Bad            float64 `json:"bad"`
	Total          float64 `json:"total"`
	// SLI is the percentage of good events; null without events.
	SLI *float64 `json:"sli"`
	// BudgetRemaining is 1 - spent/allowed (negative when overspent).
	BudgetRemaining float64 `json:"budget_remaining"`
	// BurnRate1h and BurnRateWindow: error ratio / budget over the last
	// hour and over the window.
	BurnRate1h     float64 `json:"burn_rate_1h"`
	BurnRateWindow float64 `json:"burn_rate_window"`
	// Coverage is CoveredSeconds as a fraction of the window (0 to 1).
	Coverage float64 `json:"coverage"`
	// BurnRates over the alert windows no longer than the SLO window.
	BurnRates []Burn `json:"burn_rates,omitempty"`
	// Alerts: each burn-rate alert pair of the generated rules evaluated
	// on servq's own counts.
	Alerts []Alert `json:"alerts,omitempty"`
	// State: ok, burning (1h burn above 1), exhausted, collecting (less
	// than MinCoverage of the window seen or fewer than MinEvents
	// events), no_data.
	State string `json:"state"`
}

// Burn is the burn rate over one window.
type Burn struct {
	Window string `json:"window"`
	// Covered is false when the samples do not reach back over the whole
	// window: the rate is then over what they cover.
	Covered  bool    `json:"covered"`
	BurnRate float64 `json:"burn_rate"`
	Bad      float64 `json:"bad"`
	Total    float64 `json:"total"`
}

// Alert is one burn-rate alert pair: it fires when the error ratios over
// both windows exceed Threshold, as the generated rule does (minus its
// min_bad_events guard, applied here too).
type Alert struct {
	Severity  string  `json:"severity"`
	Long      string  `json:"long"`
	Short     string  `json:"short"`
	Factor    float64 `json:"factor"`
	Threshold float64 `json:"threshold"`
	// LongRatio, ShortRatio: error ratios (0 to 1) over the windows.
	LongRatio  float64 `json:"long_error_ratio"`
	ShortRatio float64 `json:"short_error_ratio"`
	Firing     bool    `json:"firing"`
}

// Point is one sample of an SLO's cumulative counts.
type Point struct {
	At time.Time
	Counts
}

// Samples are the samples of an SLO kept for its window, oldest first.
func (t *Tracker) Samples(name string) []Point {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Point
	for _, p := range t.points[name] {
		out = append(out, Point{p.at, p.c})
	}
	return out
}

// Status computes every SLO's state at now. current, when not nil, holds
// the counts of this moment, so the status is live between samples.
func (t *Tracker) Status(cfg *config.Config, now time.Time, current map[string]Counts) []SLO {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []SLO
	for _, s := range cfg.SLOs {
		st := SLO{Name: s.Name, Indicator: s.Indicator, Objective: s.Objective, Window: s.Window.String(), State: "no_data", BudgetRemaining: 1}
		ps := t.points[s.Name]
		if len(ps) == 0 {
			out = append(out, st)
			continue
		}
		budget := (100 - s.Objective) / 100
		last := ps[len(ps)-1]
		if c, ok := current[s.Name]; ok && now.After(last.at) {
			last = point{now, c}
		}
		first := at(ps, now.Add(-s.Window.D()))
		st.Computed = true
		st.CoveredSeconds = min(last.at.Sub(first.at), s.Window.D()).Seconds()
		st.Bad, st.Total = delta(first.c, last.c)
		st.Good = st.Total - st.Bad
		if st.Total > 0 {
			ratio := st.Bad / st.Total
			sli := 100 * (1 - ratio)
			st.SLI = &sli
			st.BurnRateWindow = ratio / budget
			st.BudgetRemaining = 1 - st.BurnRateWindow
		}
		if b, tot := delta(at(ps, now.Add(-time.Hour)).c, last.c); tot > 0 {
			st.BurnRate1h = b / tot / budget
		}
		st.Coverage = st.CoveredSeconds / s.Window.D().Seconds()
		ratio := func(w time.Duration) (bad, total, r float64, covered bool) {
			from := at(ps, now.Add(-w))
			bad, total = delta(from.c, last.c)
			if total > 0 {
				r = bad / total
			}
			return bad, total, r, !from.at.After(now.Add(-w))
		}
		for _, w := range BurnWindows {
			if w > s.Window.D() {
				break
			}
			b, tot, r, cov := ratio(w)
			st.BurnRates = append(st.BurnRates, Burn{Window: sli.Window(w), Covered: cov, BurnRate: r / budget, Bad: b, Total: tot})
		}
		for _, p := range rules.BurnPairs(s) {
			lb, _, lr, _ := ratio(p.Long)
			_, _, sr, _ := ratio(p.Short)
			a := Alert{Severity: p.Severity, Long: sli.Window(p.Long), Short: sli.Window(p.Short), Factor: p.Factor, Threshold: p.Threshold,
				LongRatio: lr, ShortRatio: sr}
			a.Firing = lr > p.Threshold && sr > p.Threshold && (s.Alerting.MinBadEvents <= 1 || lb >= float64(s.Alerting.MinBadEvents))
			st.Alerts = append(st.Alerts, a)
		}
		switch {
		case st.Total == 0:
			st.State = "no_data"
		case st.Coverage < MinCoverage || st.Total < MinEvents:
			st.State = "collecting"
		case st.BudgetRemaining <= 0:
			st.State = "exhausted"
		case st.BurnRate1h > 1:
			st.State = "burning"
		default:
			st.State = "ok"
		}
		out = append(out, st)
	}
	return out
}

// at is the last sample at or before t, or the first one.
func at(ps []point, t time.Time) point {
	i := sort.Search(len(ps), func(i int) bool { return ps[i].at.After(t) })
	if i == 0 {
		return ps[0]
	}
	return ps[i-1]
}

// delta is the increase between two samples; a decrease is a reset (a
// histogram restarted after a bucket change) and counts from zero.
func delta(from, to Counts) (bad, total float64) {
	bad, total = to.Bad-from.Bad, to.Total-from.Total
	if bad < 0 || total < 0 {
		return to.Bad, to.Total
	}
	return bad, total
}

func sortedKeys(m map[string]Counts) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// matchers reads a term's matchers as its PromQL selector does
// (sli.ValueMatcher). A regular expression that does not compile (servq
// check refuses it) matches nothing.
func matchers(ms map[string]string) map[string]func(string) bool {
	out := make(map[string]func(string) bool, len(ms))
	for k, v := range ms {
		m, err := sli.ValueMatcher(v)
		if err != nil {
			m = func(string) bool { return false }
		}
		out[k] = m
	}
	return out
}
