package report

import (
	"strings"
	"testing"
	"time"
)

// twoCopies holds every series of om twice, as Prometheus does when two
// scrape jobs scrape one servq, or as a querier without deduplication
// shows an HA pair: under instance="a" and instance="b". Copy b missed its
// samples after October 31 00:00 (its last scrapes failed), so it counts
// less of October than copy a.
func twoCopies(om string) string {
	cut := time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC).Unix()
	var out strings.Builder
	for _, line := range strings.SplitAfter(om, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line)
			continue
		}
		out.WriteString(strings.Replace(line, "{", `{instance="a",`, 1))
		f := strings.Fields(line)
		if ts := f[len(f)-1]; ts > "" && parseUnix(ts) > cut {
			continue
		}
		out.WriteString(strings.Replace(line, "{", `{instance="b",`, 1))
	}
	return out.String()
}

func parseUnix(s string) int64 {
	var n int64
	for _, c := range s {
		n = n*10 + int64(c-'0')
	}
	return n
}

// TestReportsCountCopiesOnce: the copies of a series count the same
// events once, the largest copy (the one that missed the least), in the
// totals, the breakdowns, the KPIs and the curve: the figures are those of
// knownData held once (checkUTCReport), not twice.
func TestReportsCountCopiesOnce(t *testing.T) {
	url := startBackfilledPrometheus(t, twoCopies(knownData()))
	_, r := buildUTCOctober(t, url)
	s := r.SLOs[0]
	if s.Good != 7440 || s.Bad != 62 || s.Total != 7502 {
		t.Errorf("October = %+v, want 7440 good, 62 bad as with one copy", s.Figures)
	}
	if s.Previous.Good != 7200 || s.Previous.Bad != 30 {
		t.Errorf("September = %+v, want 7200 good, 30 bad", s.Previous)
	}
	if len(s.WorstQueues) != 2 || s.WorstQueues[0].Bad != 31 || s.WorstQueues[1].Bad != 31 {
		t.Errorf("worst queues = %+v, want 31 bad each", s.WorstQueues)
	}
	if len(s.Curve) != 31 || !near(*s.Curve[0].SLI, 100*240.0/242) || !near(s.Curve[29].BudgetRemaining, 1-60/75.02) || !near(s.Curve[30].BudgetRemaining, 1-62/75.02) {
		t.Errorf("curve: %d points, first %+v, Oct 30 %+v, last %+v", len(s.Curve), s.Curve[0], s.Curve[29], s.Curve[len(s.Curve)-1])
	}
	kpi := map[string]KPI{}
	for _, k := range r.KPIs.List {
		kpi[k.Name] = k
	}
	if k := kpi["NPS"]; k.Value == nil || !near(*k.Value, 40) {
		t.Errorf("NPS = %+v, want 40", k)
	}
	if k := kpi["CSAT satisfied"]; k.Value == nil || !near(*k.Value, 87.5) {
		t.Errorf("CSAT satisfied = %+v, want 87.5", k)
	}
}
