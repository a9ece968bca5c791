package report

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/slo/sli"
)

// minLookback is the least a period's start looks back for a counter's
// last value: servq may have been down or unscraped over the boundary.
const minLookback = 7 * 24 * time.Hour

// seriesCount is one series' increase over a period.
type seriesCount struct {
	labels map[string]string
	inc    float64
	// steps are the increases at the series' raw sample times, kept for
	// series read sample by sample (reset within the period or at its
	// start), whose cumulative count the curve takes from them.
	steps []Point
}

// termCount is one term's increase over a period, series by series.
type termCount struct {
	series []seriesCount
	// plain is the summed increase of the series counted from their
	// boundary values alone (no reset): the curve's value at the end.
	plain float64
	// exact is false when a series' value before its first sample is
	// unknown (see count).
	exact bool
	// dropped are the seriesKeys of the copies dedup left out (nil when
	// every series is held once).
	dropped map[string]bool
}

// promDuration writes a duration as PromQL seconds: exact for any period,
// DST hours included.
func promDuration(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) + "s" }

// termQueries are the PromQL of one term over one period.
type termQueries struct {
	sel string
	// end and start are every series' last value at or before the
	// period's end (looking back over the whole period, so that a series
	// retired early in the period is still seen) and its start.
	end, start string
	// reset selects the series to read sample by sample: a reset within
	// the period, or a first value in the period below the start's (a
	// reset at the boundary).
	reset string
	// bornMin is the smallest value in the period of the series without
	// a value at the start; without a reset that is the first sample.
	bornMin string
}

func queriesFor(t sli.Term, p Period) termQueries {
	sel := t.Selector()
	d := promDuration(p.Duration())
	back := promDuration(max(p.Duration(), minLookback))
	e, s := p.End.Unix(), p.Start.Unix()
	start := fmt.Sprintf("last_over_time(%s[%s] @ %d)", sel, back, s)
	return termQueries{
		sel:     sel,
		end:     fmt.Sprintf("last_over_time(%s[%s] @ %d)", sel, d, e),
		start:   start,
		reset:   fmt.Sprintf("(resets(%s[%s] @ %d) > 0) or (min_over_time(%s[%s] @ %d) < %s)", sel, d, e, sel, d, e, start),
		bornMin: fmt.Sprintf("min_over_time(%s[%s] @ %d) unless %s", sel, d, e, start),
	}
}

// running is the summed increase from the period's start to each
// evaluation time of a range query, over the series that count from their
// boundary values: each series' last value minus its value at the start
// (or from 0 for a series born in the period; a series retired before the
// period is in both and counts 0), the series read sample by sample left
// out. It is the per-series join of count, evaluated at every step.
func (q termQueries) running(p Period) string {
	now := fmt.Sprintf("last_over_time(%s[%s])", q.sel, promDuration(p.Duration()))
	return fmt.Sprintf("sum(((%s - %s) or %s) unless (%s))", now, q.start, now, q.reset)
}

// runningBySeries is running before its sum: one curve per series.
func (q termQueries) runningBySeries(p Period) string {
	now := fmt.Sprintf("last_over_time(%s[%s])", q.sel, promDuration(p.Duration()))
	return fmt.Sprintf("((%s - %s) or %s) unless (%s)", now, q.start, now, q.reset)
}

// seriesKey identifies a series by its full label set (the metric name
// aside: PromQL functions drop it, and a term reads one metric).
func seriesKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l[k]))
		b.WriteByte(',')
	}
	return b.String()
}

// exactSelector selects one series by all its labels. A series with more
// labels matches too; callers compare label sets.
func exactSelector(metric string, l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(l[k])
	}
	return metric + "{" + strings.Join(parts, ",") + "}"
}

// count is the exact increase of one term over p, per series, joined on
// the full label set:
//
//   - a series with a value at or before the start and no reset counts
//     its last value at or before the end minus that value;
//   - a series without a value at the start was born in the period and
//     counts from 0;
//   - a series retired in the period counts up to its last sample (the
//     end looks back over the whole period), one retired before the period
//     counts nothing;
//   - a series reset in the period, or at its start, is read sample by
//     sample: every increase between consecutive samples, a sample below
//     its predecessor counting from 0.
//
// The count is exact unless a born series' first sample is above 0:
// servq publishes every new series at 0 first, so a series that starts
// higher lost its earlier samples (a scrape gap longer than the look-back)
// and counting it from 0 may count events of an earlier period.
func (b *builder) count(ctx context.Context, t sli.Term, p Period) (*termCount, error) {
	key := fmt.Sprintf("%s|%d|%d", t.Selector(), p.Start.Unix(), p.End.Unix())
	if c, ok := b.counts[key]; ok {
		return c, nil
	}
	q := queriesFor(t, p)
	byKey := func(expr string) (map[string]Sample, error) {
		res, err := b.q.Query(ctx, expr, p.End)
		if err != nil {
			return nil, err
		}
		m := make(map[string]Sample, len(res))
		for _, s := range res {
			m[seriesKey(s.Labels)] = s
		}
		return m, nil
	}
	end, err := byKey(q.end)
	if err != nil {
		return nil, err
	}
	start, err := byKey(q.start)
	if err != nil {
		return nil, err
	}
	reset, err := byKey(q.reset)
	if err != nil {
		return nil, err
	}
	bornMin, err := byKey(q.bornMin)
	if err != nil {
		return nil, err
	}
	c := &termCount{exact: true}
	keys := make([]string, 0, len(end))
	for k := range end {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a fixed order: sums come out the same every time
	for _, k := range keys {
		e := end[k]
		base, hasBase := start[k]
		if _, ok := reset[k]; ok {
			sc, exact, err := b.sampleBySample(ctx, t.Metric, e.Labels, base.Value, hasBase, p)
			if err != nil {
				return nil, err
			}
			c.exact = c.exact && exact
			c.series = append(c.series, sc)
			continue
		}
		inc := e.Value
		if hasBase {
			inc -= base.Value
		} else if m, ok := bornMin[k]; ok && m.Value > 0 {
			c.exact = false
		}
		c.plain += inc
		c.series = append(c.series, seriesCount{labels: e.Labels, inc: inc})
	}
	c.dedup()
	b.counts[key] = c
	return c, nil
}

// dedup keeps one copy of each series that Prometheus holds several times
// under different sli.DedupLabels (two scrape jobs or an HA pair queried
// without deduplication): the copies count the same events, so the
// report counts the largest copy, the one that missed the least, as the
// rules' sli.Dedup does. The other copies are left out of the totals and
// of the curve.
func (c *termCount) dedup() {
	best := map[string]int{}
	for i, s := range c.series {
		k := logicalKey(s.labels)
		if j, ok := best[k]; !ok || s.inc > c.series[j].inc {
			best[k] = i
		}
	}
	if len(best) == len(c.series) {
		return
	}
	kept := make([]seriesCount, 0, len(best))
	c.plain = 0
	c.dropped = map[string]bool{}
	for i, s := range c.series {
		if best[logicalKey(s.labels)] != i {
			c.dropped[seriesKey(s.labels)] = true
			continue
		}
		kept = append(kept, s)
		if s.steps == nil {
			c.plain += s.inc
		}
	}
	c.series = kept
}

// logicalKey is seriesKey without the labels that tell copies apart.
func logicalKey(l map[string]string) string {
	m := make(map[string]string, len(l))
	for k, v := range l {
		m[k] = v
	}
	for _, k := range sli.DedupLabels {
		delete(m, k)
	}
	return seriesKey(m)
}

// sampleBySample counts a series across its resets from its raw samples.
func (b *builder) sampleBySample(ctx context.Context, metric string, labels map[string]string, base float64, hasBase bool, p Period) (seriesCount, bool, error) {
	expr := fmt.Sprintf("%s[%s] @ %d", exactSelector(metric, labels), promDuration(p.Duration()), p.End.Unix())
	res, err := b.q.Samples(ctx, expr, p.End)
	if err != nil {
		return seriesCount{}, false, err
	}
	want := seriesKey(labels)
	sc := seriesCount{labels: labels}
	exact := true
	prev, hasPrev := base, hasBase
	for _, s := range res {
		if seriesKey(s.Labels) != want {
			continue
		}
		for _, pt := range s.Points {
			var d float64
			switch {
			case !hasPrev:
				d = pt.V // born in the period: from 0
				exact = pt.V == 0
			case pt.V < prev:
				d = pt.V // reset: the counter restarted from 0
			default:
				d = pt.V - prev
			}
			prev, hasPrev = pt.V, true
			if d != 0 {
				sc.inc += d
				sc.steps = append(sc.steps, Point{T: pt.T, V: d})
			}
		}
	}
	return sc, exact, nil
}

// sum is the exact increase of a signed sum of counters over p per value
// of the label by ("" for one total), each group clamped at 0 after
// summing (a correction never makes a count negative); exact as count.
func (b *builder) sum(ctx context.Context, terms []sli.Term, p Period, by string) (map[string]float64, bool, error) {
	out := map[string]float64{}
	exact := true
	for _, t := range terms {
		c, err := b.count(ctx, t, p)
		if err != nil {
			return nil, false, err
		}
		exact = exact && c.exact
		for _, s := range c.series {
			out[s.labels[by]] += t.Sign * s.inc
		}
	}
	for k, v := range out {
		out[k] = math.Max(v, 0)
	}
	return out, exact, nil
}

// cumulative is the signed sum of the terms' increases from p's start to
// every time of grid (hourGrid), clamped at 0: the series counted from
// their boundary values by one range query per term, the series read
// sample by sample from their samples. The value at p's end is the
// period's count itself.
func (b *builder) cumulative(ctx context.Context, terms []sli.Term, p Period, grid []time.Time, step time.Duration) ([]float64, error) {
	out := make([]float64, len(grid))
	for _, t := range terms {
		c, err := b.count(ctx, t, p)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s|%d|%d", t.Selector(), p.Start.Unix(), p.End.Unix())
		plain, ok := b.running[key]
		if !ok && len(grid) > 1 {
			plain = map[int64]float64{}
			q := queriesFor(t, p)
			expr := q.running(p)
			if c.dropped != nil {
				// Per series, to leave out the copies count dropped.
				expr = q.runningBySeries(p)
			}
			res, err := b.q.QueryRange(ctx, expr, p.Start.Add(step), grid[len(grid)-2], step)
			if err != nil {
				return nil, err
			}
			for _, s := range res {
				if c.dropped[seriesKey(s.Labels)] {
					continue
				}
				for _, pt := range s.Points {
					plain[pt.T.Unix()] += pt.V
				}
			}
			b.running[key] = plain
		}
		for i, at := range grid {
			v := plain[at.Unix()]
			if i == len(grid)-1 {
				v = c.plain
			}
			for _, s := range c.series {
				for _, st := range s.steps {
					if !st.T.After(at) {
						v += st.V
					}
				}
			}
			out[i] += t.Sign * v
		}
	}
	for i, v := range out {
		out[i] = math.Max(v, 0)
	}
	return out, nil
}
