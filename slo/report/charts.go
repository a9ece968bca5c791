package report

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// burnText is the sentence on the fastest burn, in the report's zone.
func burnText(s SLO) string {
	switch {
	case s.WorstBurn != nil:
		w := s.WorstBurn
		return fmt.Sprintf(" Fastest burn: the hour ending %s, %s bad of %s events (%.1f%% errors, %.1f× the budget rate).",
			w.At.Format("2006-01-02 15:04 MST"), num(w.Bad), num(w.Total), 100*w.ErrorRatio, w.BurnRate)
	case s.Bad > 0:
		return fmt.Sprintf(" No hour had %d or more bad events: no fastest burn to show.", minBurnBad)
	}
	return ""
}

// exactNote says why an SLO's counts are approximate; "" when exact.
func exactNote(s SLO) string {
	switch {
	case s.Exact:
		return ""
	case s.Indicator == "custom":
		return "Counts from rate() over the period (custom indicator): approximate at the period's edges."
	}
	return "Approximate: a series that appeared in this period lacks its first sample at 0 (a scrape gap longer than the look-back), so it counts from 0."
}

// volumeRows are the volume table's rows: calls and survey responses only
// where the report has them.
func volumeRows(v Volumes) [][3]string {
	c, p := v.Current, v.Previous
	rows := [][3]string{
		{"tickets created", num(c.TicketsCreated), num(p.TicketsCreated)},
		{"tickets solved", num(c.TicketsSolved), num(p.TicketsSolved)},
	}
	opt := func(name string, a, b *float64) {
		if a != nil || b != nil {
			rows = append(rows, [3]string{name, optNum(a), optNum(b)})
		}
	}
	opt("calls offered", c.CallsOffered, p.CallsOffered)
	opt("calls answered", c.CallsAnswered, p.CallsAnswered)
	opt("survey responses", c.SurveyResponses, p.SurveyResponses)
	return rows
}

func optNum(v *float64) string {
	if v == nil {
		return "–"
	}
	return num(*v)
}

// plot maps a period and a value range onto an SVG area, with room left
// for the value axis and below for the dates.
type plot struct {
	w, h, left, right, top, bottom float64
	from, to                       time.Time
	lo, hi                         float64
}

func (p plot) x(t time.Time) float64 {
	return p.left + (p.w-p.left-p.right)*float64(t.Sub(p.from))/float64(p.to.Sub(p.from))
}

func (p plot) y(v float64) float64 {
	return p.top + (p.h-p.top-p.bottom)*(p.hi-v)/(p.hi-p.lo)
}

// niceTicks are round values (1, 2 or 5 × 10ⁿ apart) covering [lo, hi],
// and the decimals their labels need.
func niceTicks(lo, hi float64, n int) ([]float64, int) {
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	decimals := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	var out []float64
	for v := math.Ceil(lo/step-1e-9) * step; v <= hi+step*1e-9; v += step {
		t := math.Round(v/step) * step
		if t == 0 {
			t = 0 // not -0, which formats as "-0%"
		}
		out = append(out, t)
	}
	return out, decimals
}

// frame draws the plot area, the value axis with its grid and labels, and
// the date axis: midnights of the report's zone, at most eight labelled.
func (p plot) frame(b *strings.Builder, ticks []float64, label func(float64) string) {
	fmt.Fprintf(b, `<rect x="%g" y="%g" width="%g" height="%g" class="plot"/>`, p.left, p.top, p.w-p.left-p.right, p.h-p.top-p.bottom)
	for _, v := range ticks {
		fmt.Fprintf(b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" class="grid"/><text x="%g" y="%.1f" class="tick" text-anchor="end">%s</text>`,
			p.left, p.w-p.right, p.y(v), p.y(v), p.left-4, p.y(v)+3.5, label(v))
	}
	days := append([]time.Time{p.from}, dayEnds(Period{Start: p.from, End: p.to})...)
	every := (len(days) + 7) / 8
	for i := 0; i < len(days); i += every {
		d := days[i]
		format := "Jan 2"
		if p.to.Sub(p.from) <= 48*time.Hour || d.Hour() != 0 {
			format = "Jan 2 15:04"
		}
		anchor := "middle"
		switch {
		case i == 0:
			anchor = "start"
		case i == len(days)-1:
			anchor = "end"
		}
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" class="axis"/><text x="%.1f" y="%g" class="tick" text-anchor="%s">%s</text>`,
			p.x(d), p.x(d), p.h-p.bottom, p.h-p.bottom+4, p.x(d), p.h-p.bottom+16, anchor, d.Format(format))
	}
}

// path draws a line through points, with a dot at each point when they
// are few (a single point would otherwise draw nothing).
func path(b *strings.Builder, xs, ys []float64, class string) {
	var d strings.Builder
	for i := range xs {
		fmt.Fprintf(&d, "%s%.1f,%.1f", map[bool]string{true: "M", false: " L"}[i == 0], xs[i], ys[i])
	}
	fmt.Fprintf(b, `<path d="%s" class="%s"/>`, d.String(), class)
	if len(xs) <= 62 {
		for i := range xs {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" class="%s-dot"/>`, xs[i], ys[i], class)
		}
	}
}

func percentLabel(decimals int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v, 'f', decimals, 64) + "%" }
}

// svgLine draws the cumulative SLI of an SLO since the period's start
// against its objective, on a value axis in percent.
func svgLine(r *Report, s SLO) template.HTML {
	if s.Total <= 0 {
		return template.HTML(`<p class="muted">No events in this period.</p>`)
	}
	var xs []time.Time
	var ys []float64
	for _, c := range s.Curve {
		if c.SLI != nil {
			xs, ys = append(xs, c.At), append(ys, *c.SLI)
		}
	}
	if len(xs) == 0 {
		return template.HTML(`<p class="muted">No SLI curve for this SLO.</p>`)
	}
	lo := s.Objective
	for _, v := range ys {
		lo = math.Min(lo, v)
	}
	// At least 0.1 points of range, and room under the lowest value, so
	// that a line at 99.96 % against 99.9 % is not drawn on the frame.
	span := math.Max(100-lo, 0.1)
	p := plot{w: 640, h: 226, left: 60, right: 12, top: 18, bottom: 26, from: r.Period.Start, to: r.Period.End,
		lo: math.Max(0, 100-span*1.15), hi: 100}
	ticks, dec := niceTicks(p.lo, p.hi, 4)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %g %g" role="img" aria-label="SLI of %s since the period started, against its objective">`, p.w, p.h, template.HTMLEscapeString(s.Name))
	p.frame(&b, ticks, percentLabel(dec))
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" class="objective"/><text x="%g" y="%.1f" class="label" text-anchor="end">objective %g%%</text>`,
		p.left, p.w-p.right, p.y(s.Objective), p.y(s.Objective), p.w-p.right-4, p.y(s.Objective)-4, s.Objective)
	px, py := make([]float64, len(xs)), make([]float64, len(xs))
	for i := range xs {
		px[i], py[i] = p.x(xs[i]), p.y(ys[i])
	}
	path(&b, px, py, "sli")
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="label">SLI since %s: %s at the end</text></svg>`, p.left, p.top-6, r.Period.Start.Format("Jan 2"), pct(s.SLI))
	return template.HTML(b.String())
}

// svgBudget draws the remaining error budget over the period, from 100 %
// at its start, on a value axis in percent of the budget.
func svgBudget(r *Report, s SLO) template.HTML {
	if len(s.Curve) == 0 {
		return ""
	}
	lo := 0.0
	for _, c := range s.Curve {
		lo = math.Min(lo, c.BudgetRemaining)
	}
	p := plot{w: 640, h: 176, left: 60, right: 12, top: 18, bottom: 26, from: r.Period.Start, to: r.Period.End,
		lo: lo - 0.05*(1-lo), hi: 1.05}
	ticks, dec := niceTicks(100*p.lo, 100*p.hi, 4)
	for i := range ticks {
		ticks[i] /= 100
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %g %g" role="img" aria-label="Error budget remaining of %s">`, p.w, p.h, template.HTMLEscapeString(s.Name))
	p.frame(&b, ticks, func(v float64) string { return percentLabel(dec)(100 * v) })
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" class="objective"/><text x="%g" y="%.1f" class="label" text-anchor="end">budget exhausted</text>`,
		p.left, p.w-p.right, p.y(0), p.y(0), p.w-p.right-4, p.y(0)-4)
	px, py := []float64{p.x(r.Period.Start)}, []float64{p.y(1)}
	for _, c := range s.Curve {
		px, py = append(px, p.x(c.At)), append(py, p.y(c.BudgetRemaining))
	}
	path(&b, px, py, "budget")
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="label">error budget remaining</text></svg>`, p.left, p.top-6)
	return template.HTML(b.String())
}

// Chart is a line chart drawn with the report's axes, for other pages
// (servq's status page): values over [From, To], a dashed reference line
// at Ref, value labels in percent of Scale (100 for percentages, 1 for
// ratios shown as percentages).
type Chart struct {
	Label, Title, RefLabel string
	From, To               time.Time
	At                     []time.Time
	Values                 []float64
	Lo, Hi, Ref, Scale     float64
	// Class is the CSS class of the line: "sli" or "budget" (ChartCSS).
	Class string
}

// maxChartPoints bounds the points of a line: a 28d window sampled every
// minute has 40320, more than a 640-unit wide chart can show.
const maxChartPoints = 320

// LineChart draws c as inline SVG.
func LineChart(c Chart) template.HTML {
	p := plot{w: 640, h: 200, left: 60, right: 12, top: 18, bottom: 26, from: c.From, to: c.To, lo: c.Lo, hi: c.Hi}
	ticks, dec := niceTicks(p.lo*100/c.Scale, p.hi*100/c.Scale, 4)
	for i := range ticks {
		ticks[i] *= c.Scale / 100
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %g %g" role="img" aria-label="%s">`, p.w, p.h, template.HTMLEscapeString(c.Label))
	p.frame(&b, ticks, func(v float64) string { return percentLabel(dec)(v * 100 / c.Scale) })
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" class="objective"/><text x="%g" y="%.1f" class="label" text-anchor="end">%s</text>`,
		p.left, p.w-p.right, p.y(c.Ref), p.y(c.Ref), p.w-p.right-4, p.y(c.Ref)-4, template.HTMLEscapeString(c.RefLabel))
	step := max(1, (len(c.At)+maxChartPoints-1)/maxChartPoints)
	var px, py []float64
	for i := 0; i < len(c.At); i += step {
		if i+step >= len(c.At) {
			i = len(c.At) - 1 // always end at the last value
		}
		px, py = append(px, p.x(c.At[i])), append(py, p.y(c.Values[i]))
	}
	if len(px) > 0 {
		path(&b, px, py, c.Class)
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="label">%s</text></svg>`, p.left, p.top-6, template.HTMLEscapeString(c.Title))
	return template.HTML(b.String())
}
