package runner

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SelfMetrics are servq's metrics about its own collectors. They live for
// the whole process (across reloads) and are registered once.
type SelfMetrics struct {
	up          *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	runs        *counterVec
	duration    *prometheus.GaugeVec
	records     *counterVec
	rejected    *counterVec
	lag         *lagCollector
	// backoff: until when the vendor asked the collector to wait (0 when
	// it did not): its runs are skipped until then.
	backoff *prometheus.GaugeVec
}

// NewSelfMetrics creates the collector self metrics and registers them.
func NewSelfMetrics(reg prometheus.Registerer) *SelfMetrics {
	const ns = "servq_"
	s := &SelfMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "collector_up",
			Help: "1 if the collector's last run succeeded, 0 if it failed."}, []string{"collector", "type"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "collector_last_success_timestamp_seconds",
			Help: "Unix time of the collector's last successful run (data freshness)."}, []string{"collector"}),
		runs: newCounterVec(ns+"collector_runs_total",
			"Collector runs by result: success, error, panic, skipped (previous run still going).", "collector", "result"),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "collector_duration_seconds",
			Help: "Duration of the collector's last run, fetch and commit."}, []string{"collector"}),
		records: newCounterVec(ns+"collector_records_total",
			"Records read by kind and result: accepted (new), duplicate (already counted).", "collector", "kind", "result"),
		rejected: newCounterVec(ns+"collector_rejected_records_total",
			"Input the collector could not use, by reason (malformed line, bad time, bad number, ...).", "collector", "reason"),
		lag: &lagCollector{desc: prometheus.NewDesc(ns+"collector_lag_seconds",
			"Seconds since the newest record the collector delivered.", []string{"collector"}, nil)},
		backoff: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "collector_backoff_until_timestamp_seconds",
			Help: "Unix time until which the collector's runs are skipped because its vendor answered Retry-After (0: none)."}, []string{"collector"}),
	}
	reg.MustRegister(s.up, s.lastSuccess, s.runs, s.duration, s.records, s.rejected, s.lag, s.backoff)
	return s
}

// forget removes the series of a collector that left the config.
func (s *SelfMetrics) forget(collector string) {
	l := prometheus.Labels{"collector": collector}
	s.up.DeletePartialMatch(l)
	s.lastSuccess.DeletePartialMatch(l)
	s.runs.forget(collector)
	s.duration.DeletePartialMatch(l)
	s.records.forget(collector)
	s.rejected.forget(collector)
	s.backoff.DeletePartialMatch(l)
}

// SetClock sets the clock that decides when a new series shows its value
// and that collector lag is measured against (time.Now by default; tests
// replace it).
func (s *SelfMetrics) SetClock(now func() time.Time) {
	for _, v := range []*counterVec{s.runs, s.records, s.rejected} {
		v.mu.Lock()
		v.clock = now
		v.mu.Unlock()
	}
	s.lag.mu.Lock()
	s.lag.clock = now
	s.lag.mu.Unlock()
}

// setDelay applies the config's new-series delay (a reload may change it).
func (s *SelfMetrics) setDelay(d time.Duration) {
	for _, v := range []*counterVec{s.runs, s.records, s.rejected} {
		v.mu.Lock()
		v.delay = d
		v.mu.Unlock()
	}
}

// counterVec is a counter family whose new series are served at zero for
// the new-series delay, as the quality model serves its own: rate() over
// runs, records and rejections then sees a series' first increment too
// (a client_golang CounterVec series is born with its first value).
type counterVec struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	delay  time.Duration
	clock  func() time.Time
	series map[string]*delayedCounter
}

type delayedCounter struct {
	labels    []string
	value     float64
	visibleAt time.Time
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{desc: prometheus.NewDesc(name, help, labels, nil), clock: time.Now, series: map[string]*delayedCounter{}}
}

// add increments the series of labels (the collector first) by v.
func (c *counterVec) add(v float64, labels ...string) {
	key := strings.Join(labels, "\xff")
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.series[key]
	if s == nil {
		s = &delayedCounter{labels: labels, visibleAt: c.clock().Add(c.delay)}
		c.series[key] = s
	}
	s.value += v
}

// forget removes a collector's series.
func (c *counterVec) forget(collector string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.series {
		if s.labels[0] == collector {
			delete(c.series, k)
		}
	}
}

func (c *counterVec) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *counterVec) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	for _, s := range c.series {
		v := s.value
		if now.Before(s.visibleAt) {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, v, s.labels...)
	}
}

// lagCollector computes lag at scrape time from the runner in service;
// a reload swaps the runner while scrapes go on.
type lagCollector struct {
	desc   *prometheus.Desc
	mu     sync.RWMutex
	source func() map[string]time.Time
	clock  func() time.Time // nil: time.Now
}

func (l *lagCollector) set(f func() map[string]time.Time) {
	l.mu.Lock()
	l.source = f
	l.mu.Unlock()
}

func (l *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *lagCollector) Collect(ch chan<- prometheus.Metric) {
	l.mu.RLock()
	source, clock := l.source, l.clock
	l.mu.RUnlock()
	if source == nil {
		return
	}
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	for name, t := range source() {
		if t.IsZero() {
			continue
		}
		// A record time ahead of this clock (the source's clock is
		// fast, within the model's skew bound, or the run's clock is
		// simulated) is no lag: never negative.
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, max(now.Sub(t).Seconds(), 0), name)
	}
}
