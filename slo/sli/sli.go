// Package sli turns the config's SLOs and KPI targets into PromQL over the
// servq metric catalog. Rules, dashboards and reports all take their
// queries from here, so that the three can never disagree on what "good"
// means.
package sli

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/servq/servq/config"
)

// Metric names of the catalog that SLIs read (collectors/quality/catalog.go).
const (
	ticketSLOEvents = "servq_ticket_slo_events_total"
	ticketSLOCorr   = "servq_ticket_slo_corrections_total"
	ticketsSolved   = "servq_tickets_solved_total"
	ticketsFCR      = "servq_tickets_solved_first_contact_total"
	callsOffered    = "servq_calls_offered_total"
	callsAnswered   = "servq_calls_answered_total"
	callsAbandoned  = "servq_calls_abandoned_total"
	callsShort      = "servq_calls_abandoned_short_total"
	callWaitBucket  = "servq_call_wait_seconds_bucket"
	csatBucket      = "servq_csat_score_bucket"
	csatCount       = "servq_csat_score_count"
	// A ticket rating the customer changed: the old score is retracted
	// here and the new one counted in csat_score (quality.ticketCSAT).
	csatRetBucket = "servq_csat_retracted_score_bucket"
	csatRetCount  = "servq_csat_retracted_score_count"
)

// SLI is one SLO's indicator as PromQL: bad and total events per second
// over a range. Both always return exactly one sample (0 when there was no
// traffic), never NaN and never nothing.
type SLI struct {
	// Good and Bad describe the events in words, for the README, rules'
	// annotations and reports.
	Good, Total string
	bad, total  func(window string) string
}

// Window formats a range the Prometheus way (5m, 1h, 4w).
func Window(d time.Duration) string { return model.Duration(d).String() }

// BadRate is the rate of bad events over window.
func (s *SLI) BadRate(window string) string { return s.bad(window) }

// TotalRate is the rate of all events over window.
func (s *SLI) TotalRate(window string) string { return s.total(window) }

// ErrorRatio is bad/total over window; 0 when there were no events, so a
// quiet night reads as "no budget spent" rather than NaN or a gap.
func (s *SLI) ErrorRatio(window string) string {
	return fmt.Sprintf("(\n  (%s)\n/\n  ((%s) > 0)\n)\nor vector(0)", s.bad(window), s.total(window))
}

// BadCount is the number of bad events in window: increase() is rate()
// times the range, so one formula serves custom SLIs too.
func (s *SLI) BadCount(window string) (string, error) {
	sec, err := seconds(window)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("(%s) * %s", s.bad(window), num(sec)), nil
}

// TotalCount is the number of events in window.
func (s *SLI) TotalCount(window string) (string, error) {
	sec, err := seconds(window)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("(%s) * %s", s.total(window), num(sec)), nil
}

func seconds(window string) (float64, error) {
	d, err := model.ParseDuration(window)
	if err != nil {
		return 0, err
	}
	return time.Duration(d).Seconds(), nil
}

// num formats a number for PromQL without float noise (0.1, not
// 0.09999999999999432).
func num(v float64) string { return strconv.FormatFloat(v, 'g', 12, 64) }

// Num is num for other packages building PromQL.
func Num(v float64) string { return num(v) }

// Selector builds a metric selector with equality matchers in a fixed order.
func Selector(metric string, matchers map[string]string) string {
	if len(matchers) == 0 {
		return metric
	}
	keys := make([]string, 0, len(matchers))
	for k := range matchers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := matchers[k]
		if strings.HasPrefix(v, "=~") {
			parts = append(parts, k+"=~"+strconv.Quote(v[2:]))
			continue
		}
		parts = append(parts, k+"="+strconv.Quote(v))
	}
	return metric + "{" + strings.Join(parts, ",") + "}"
}

// ValueMatcher is how the PromQL selector Selector builds reads a label's
// value: a matcher starting with "=~" is a regular expression anchored at
// both ends, any other must be equal. A series without the label reads as
// "" (the caller passes that). Servq's own counts (the SLO inputs, the
// status page) use it, so they select what the rules select.
func ValueMatcher(matcher string) (func(string) bool, error) {
	re, ok := strings.CutPrefix(matcher, "=~")
	if !ok {
		return func(v string) bool { return v == matcher }, nil
	}
	r, err := regexp.Compile("^(?:" + re + ")$")
	if err != nil {
		return nil, err
	}
	return r.MatchString, nil
}

// LeMatcher matches a histogram bucket bound however it was exposed: the
// Prometheus text format writes le="20", OpenMetrics le="20.0", and both
// write le="1.2096e+06" for large bounds. The returned value is a regex
// matcher for Selector ("=~" prefix).
func LeMatcher(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	re := regexp.QuoteMeta(s)
	if !strings.ContainsAny(s, "e.") {
		re += `(\.0)?`
	}
	return "=~" + re
}

// DedupLabels are the labels that tell copies of one series apart: the
// servq instance and scrape job (two identical servq instances reading the
// same sources, or two jobs scraping one servq, count the same events) and
// the replica label of an HA Prometheus pair queried without
// deduplication (prometheus_replica is the Prometheus Operator's, replica
// the one the Thanos and Mimir docs use).
var DedupLabels = []string{"instance", "job", "prometheus_replica", "replica"}

// Dedup collapses the copies of each series in a vector: the largest
// copy, the one that missed the least. Not their sum: the copies count the
// same events.
func Dedup(vector string) string {
	return "max without (" + strings.Join(DedupLabels, ", ") + ") (" + vector + ")"
}

// sumRate is sum(rate(selector[window])) or 0 when the series are missing,
// each series' copies counted once.
func sumRate(metric string, matchers map[string]string, window string) string {
	return fmt.Sprintf("(sum(%s) or vector(0))", Dedup(fmt.Sprintf("rate(%s[%s])", Selector(metric, matchers), window)))
}

func with(base map[string]string, extra ...string) map[string]string {
	out := make(map[string]string, len(base)+len(extra)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		out[extra[i]] = extra[i+1]
	}
	return out
}

// For returns the SLI of an SLO of cfg. The definitions are the industry
// ones (README "SLO indicators").
func For(cfg *config.Config, s *config.SLO) (*SLI, error) {
	f := s.Filters
	switch s.Indicator {
	case "ticket_first_reply", "ticket_resolution":
		// The quality model applies filters, business hours and the
		// deadline itself: one good or bad event per ticket and SLO.
		ev := "first reply"
		if s.Indicator == "ticket_resolution" {
			ev = "resolution"
		}
		// A correction (a bad verdict overturned by an in-time event
		// delivered later) also counted a good event: it leaves bad and
		// total, so over any window holding both the count is exact.
		corr := func(w string) string { return sumRate(ticketSLOCorr, map[string]string{"slo": s.Name}, w) }
		return &SLI{
			Good:  fmt.Sprintf("tickets whose %s came within %s%s", ev, s.Threshold, bizSuffix(s)),
			Total: fmt.Sprintf("tickets whose %s came, or whose %s deadline passed without it", ev, s.Threshold),
			bad: func(w string) string {
				return fmt.Sprintf("clamp_min(%s - %s, 0)",
					sumRate(ticketSLOEvents, map[string]string{"slo": s.Name, "result": "bad"}, w), corr(w))
			},
			total: func(w string) string {
				return fmt.Sprintf("clamp_min(%s - %s, 0)", sumRate(ticketSLOEvents, map[string]string{"slo": s.Name}, w), corr(w))
			},
		}, nil
	case "ticket_fcr":
		return &SLI{
			Good:  "tickets solved with one public agent reply and no reopen",
			Total: "tickets solved",
			bad: func(w string) string {
				return fmt.Sprintf("clamp_min(%s - %s, 0)", sumRate(ticketsSolved, f, w), sumRate(ticketsFCR, f, w))
			},
			total: func(w string) string { return sumRate(ticketsSolved, f, w) },
		}, nil
	case "call_service_level":
		within := with(f, "outcome", "answered", "le", LeMatcher(s.Threshold.D().Seconds()))
		var total func(string) string
		var totalText string
		switch s.AbandonPolicy {
		case config.AbandonExcludeShort:
			totalText = fmt.Sprintf("calls offered minus short abandons (waited %s or less)", cfg.Model.ShortAbandon)
			total = func(w string) string {
				return fmt.Sprintf("clamp_min(%s - %s, 0)", sumRate(callsOffered, f, w), sumRate(callsShort, f, w))
			}
		case config.AbandonExcludeAll:
			totalText = "calls answered"
			total = func(w string) string { return sumRate(callsAnswered, f, w) }
		default:
			totalText = "calls offered (every abandon, timeout and voicemail is a miss)"
			total = func(w string) string { return sumRate(callsOffered, f, w) }
		}
		return &SLI{
			Good:  fmt.Sprintf("calls answered within %s of waiting", s.Threshold),
			Total: totalText,
			bad: func(w string) string {
				return fmt.Sprintf("clamp_min(%s - %s, 0)", total(w), sumRate(callWaitBucket, within, w))
			},
			total: total,
		}, nil
	case "call_abandonment":
		return &SLI{
			Good:  fmt.Sprintf("calls not abandoned; abandons after %s or less of waiting (short abandons) count nowhere", cfg.Model.ShortAbandon),
			Total: "calls offered minus short abandons",
			bad: func(w string) string {
				return fmt.Sprintf("clamp_min(%s - %s, 0)", sumRate(callsAbandoned, f, w), sumRate(callsShort, f, w))
			},
			total: func(w string) string {
				return fmt.Sprintf("clamp_min(%s - %s, 0)", sumRate(callsOffered, f, w), sumRate(callsShort, f, w))
			},
		}, nil
	case "csat":
		min := s.CSATMin
		if min == 0 {
			min = cfg.Model.CSATSatisfiedMin
		}
		// Scores are whole points with one bucket each: score < min is
		// the bucket le = ceil(min) - 1.
		below := math.Ceil(min) - 1
		// A changed ticket rating counted its new score and retracted its
		// old one: subtracting the retractions counts each response once,
		// at its latest score, over any window that holds both.
		bad := func(w string) string {
			if below < 1 {
				return "vector(0)"
			}
			le := with(f, "le", LeMatcher(below))
			return fmt.Sprintf("clamp_min(%s - %s, 0)", sumRate(csatBucket, le, w), sumRate(csatRetBucket, le, w))
		}
		return &SLI{
			Good:  fmt.Sprintf("CSAT responses scoring %g or more", min),
			Total: "CSAT responses with a score (a changed ticket rating counts once, at its latest score)",
			bad:   bad,
			total: func(w string) string {
				return fmt.Sprintf("clamp_min(%s - %s, 0)", sumRate(csatCount, f, w), sumRate(csatRetCount, f, w))
			},
		}, nil
	case "custom":
		// Like the built-in indicators, a custom one reads 0 without
		// traffic (its metrics may not exist yet), never nothing: the
		// event-count recordings and the budget then stay defined.
		cu := s.Custom
		total := func(w string) string {
			return fmt.Sprintf("((%s) or vector(0))", config.ExpandWindow(cu.TotalQuery, w))
		}
		bad := func(w string) string {
			return fmt.Sprintf("((%s) or vector(0))", config.ExpandWindow(cu.ErrorQuery, w))
		}
		good := "events the error query does not count"
		if cu.GoodQuery != "" {
			good = "events of the good query"
			bad = func(w string) string {
				return fmt.Sprintf("clamp_min(%s - ((%s) or vector(0)), 0)", total(w), config.ExpandWindow(cu.GoodQuery, w))
			}
		}
		return &SLI{Good: good, Total: "events of the total query", bad: bad, total: total}, nil
	}
	return nil, fmt.Errorf("slo %s: unknown indicator %q", s.Name, s.Indicator)
}

func bizSuffix(s *config.SLO) string {
	if s.BusinessHours != "" {
		return " of " + s.BusinessHours + " business hours"
	}
	return ""
}
