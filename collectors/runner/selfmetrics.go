package runner

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SelfMetrics are servq's metrics about its own collectors. They live for
// the whole process (across reloads) and are registered once.
type SelfMetrics struct {
	up          *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	runs        *prometheus.CounterVec
	duration    *prometheus.GaugeVec
	records     *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	lag         *lagCollector
}

// NewSelfMetrics creates the collector self metrics and registers them.
func NewSelfMetrics(reg prometheus.Registerer) *SelfMetrics {
	const ns = "servq_"
	s := &SelfMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "collector_up",
			Help: "1 if the collector's last run succeeded, 0 if it failed."}, []string{"collector", "type"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "collector_last_success_timestamp_seconds",
			Help: "Unix time of the collector's last successful run (data freshness)."}, []string{"collector"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "collector_runs_total",
			Help: "Collector runs by result: success, error, panic, skipped (previous run still going)."}, []string{"collector", "result"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "collector_duration_seconds",
			Help: "Duration of the collector's last run, fetch and commit."}, []string{"collector"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "collector_records_total",
			Help: "Records read by kind and result: accepted (new), duplicate (already counted)."}, []string{"collector", "kind", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "collector_rejected_records_total",
			Help: "Input the collector could not use, by reason (malformed line, bad time, bad number, ...)."}, []string{"collector", "reason"}),
		lag: &lagCollector{desc: prometheus.NewDesc(ns+"collector_lag_seconds",
			"Seconds since the newest record the collector delivered.", []string{"collector"}, nil)},
	}
	reg.MustRegister(s.up, s.lastSuccess, s.runs, s.duration, s.records, s.rejected, s.lag)
	return s
}

// forget removes the series of a collector that left the config.
func (s *SelfMetrics) forget(collector string) {
	l := prometheus.Labels{"collector": collector}
	s.up.DeletePartialMatch(l)
	s.lastSuccess.DeletePartialMatch(l)
	s.runs.DeletePartialMatch(l)
	s.duration.DeletePartialMatch(l)
	s.records.DeletePartialMatch(l)
	s.rejected.DeletePartialMatch(l)
}

// lagCollector computes lag at scrape time from the runner in service;
// a reload swaps the runner while scrapes go on.
type lagCollector struct {
	desc   *prometheus.Desc
	mu     sync.RWMutex
	source func() map[string]time.Time
}

func (l *lagCollector) set(f func() map[string]time.Time) {
	l.mu.Lock()
	l.source = f
	l.mu.Unlock()
}

func (l *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *lagCollector) Collect(ch chan<- prometheus.Metric) {
	l.mu.RLock()
	source := l.source
	l.mu.RUnlock()
	if source == nil {
		return
	}
	now := time.Now()
	for name, t := range source() {
		if t.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, now.Sub(t).Seconds(), name)
	}
}
