package app

import (
	"fmt"
	"math"
	"regexp"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/servq/servq/config"
)

// gaugeKPIs are the target KPIs that are a gauge of this moment, which
// servq can read from its own registry; the others are increases over a
// window that only Prometheus keeps. agg folds the series; age turns a
// timestamp into the time since it.
var gaugeKPIs = map[string]struct {
	metric, unit string
	agg          func(a, b float64) float64
	age          bool
}{
	"open_tickets":           {"servq_tickets_open", "tickets", func(a, b float64) float64 { return a + b }, false},
	"calls_waiting":          {"servq_queue_calls_waiting", "calls", func(a, b float64) float64 { return a + b }, false},
	"longest_wait":           {"servq_queue_longest_wait_seconds", "s", math.Max, false},
	"oldest_open_ticket_age": {"servq_tickets_oldest_open_created_timestamp_seconds", "s", math.Min, true},
}

// kpiNow is the current value of a gauge KPI target from servq's own
// metrics, with whether it meets its bound; ok is false for KPIs servq
// cannot compute (window KPIs, targets split by labels) or without series.
func kpiNow(t *config.Target, fams []*dto.MetricFamily, now time.Time) (value string, met, ok bool) {
	g, known := gaugeKPIs[t.KPI]
	if !known || len(t.By) > 0 {
		return "", false, false
	}
	var v float64
	n := 0
	for _, f := range fams {
		if f.GetName() != g.metric {
			continue
		}
		for _, m := range f.GetMetric() {
			if !matches(m, t.Filters) || m.GetGauge() == nil {
				continue
			}
			x := m.GetGauge().GetValue()
			if n == 0 {
				v = x
			} else {
				v = g.agg(v, x)
			}
			n++
		}
	}
	if n == 0 {
		return "", false, false
	}
	if g.age {
		v = math.Max(0, float64(now.UnixNano())/1e9-v)
	}
	met = (t.Min == nil || v >= *t.Min) && (t.Max == nil || v <= *t.Max)
	return fmt.Sprintf("%g %s", math.Round(v*100)/100, g.unit), met, true
}

// matches applies a target's filters as the generated rules do: equality,
// or a fully anchored regular expression after "=~".
func matches(m *dto.Metric, filters map[string]string) bool {
	for k, want := range filters {
		got := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k {
				got = lp.GetValue()
			}
		}
		if len(want) > 2 && want[:2] == "=~" {
			re, err := regexp.Compile("^(?:" + want[2:] + ")$")
			if err != nil || !re.MatchString(got) {
				return false
			}
		} else if got != want {
			return false
		}
	}
	return true
}
