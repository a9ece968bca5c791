package app

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/servq/servq/config"
)

func gauge(name string, series map[string]float64) *dto.MetricFamily {
	f := &dto.MetricFamily{Name: proto.String(name)}
	for queue, v := range series {
		f.Metric = append(f.Metric, &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String("queue"), Value: proto.String(queue)}},
			Gauge: &dto.Gauge{Value: proto.Float64(v)}})
	}
	return f
}

// Gauge KPIs fold their series as the generated rules do (sum, max, the
// age of the oldest), with the target's filters; window KPIs and split
// targets are left to Prometheus.
func TestKPINow(t *testing.T) {
	now := time.Unix(10000, 0)
	fams := []*dto.MetricFamily{
		gauge("servq_queue_calls_waiting", map[string]float64{"sales": 3, "support": 4, "vip": 9}),
		gauge("servq_queue_longest_wait_seconds", map[string]float64{"sales": 30, "support": 95}),
		gauge("servq_tickets_oldest_open_created_timestamp_seconds", map[string]float64{"a": 9000, "b": 6400}),
	}
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		target   config.Target
		value    string
		met, has bool
	}{
		{config.Target{KPI: "calls_waiting", Max: f(10), Filters: map[string]string{"queue": "=~s.*"}}, "7 calls", true, true},
		{config.Target{KPI: "calls_waiting", Max: f(10)}, "16 calls", false, true},
		{config.Target{KPI: "longest_wait", Max: f(60)}, "95 s", false, true},
		{config.Target{KPI: "oldest_open_ticket_age", Max: f(3600)}, "3600 s", true, true},
		{config.Target{KPI: "calls_waiting", By: []string{"queue"}}, "", false, false},
		{config.Target{KPI: "nps", Min: f(30)}, "", false, false},
		{config.Target{KPI: "open_tickets", Max: f(1)}, "", false, false}, // no series
	} {
		v, met, has := kpiNow(&c.target, fams, now)
		if v != c.value || met != c.met || has != c.has {
			t.Errorf("%s %v = %q %v %v, want %q %v %v", c.target.KPI, c.target.Filters, v, met, has, c.value, c.met, c.has)
		}
	}
}
