package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Formats are the report formats, in the order files are written.
var Formats = []string{"html", "md", "json", "csv"}

// Render writes the report in one format.
func Render(r *Report, format string) ([]byte, error) {
	switch format {
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		return append(b, '\n'), err
	case "md":
		return markdown(r), nil
	case "csv":
		return csvRows(r)
	case "html":
		var buf bytes.Buffer
		err := htmlTmpl.Execute(&buf, r)
		return buf.Bytes(), err
	}
	return nil, fmt.Errorf("unknown report format %q (html, md, json, csv)", format)
}

func pct(v *float64) string {
	if v == nil {
		return "–"
	}
	return strconv.FormatFloat(*v, 'f', 2, 64) + "%"
}

func signed(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%+.2f pp", *v)
}

func ratioPct(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100**v)
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func kpiValue(v *float64) string {
	if v == nil {
		return "–"
	}
	return strconv.FormatFloat(*v, 'f', 2, 64)
}

func markdown(r *Report) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# SLO report %s — %s\n\n", r.Period.Name, r.Service)
	fmt.Fprintf(&b, "Period %s to %s, compared with %s. Generated %s.\n\n", r.Period.Start.Format("2006-01-02 15:04 MST"), r.Period.End.Format("2006-01-02 15:04 MST"), r.Previous.Name, r.GeneratedAt.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "## Summary\n\n%d of %d SLOs met their objective", r.Summary.Met, r.Summary.SLOs)
	if r.Summary.NoData > 0 {
		fmt.Fprintf(&b, " (%d without events)", r.Summary.NoData)
	}
	b.WriteString(".\n\n")
	for _, risk := range r.Summary.Risks {
		fmt.Fprintf(&b, "- %s\n", risk)
	}
	b.WriteString("\n## SLOs\n\n| SLO | objective | attained | good / total | budget allowed | budget spent | status | vs previous |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range r.SLOs {
		fmt.Fprintf(&b, "| %s | %g%% | %s | %s / %s | %.1f | %s (%s) | %s | %s |\n", s.Name, s.Objective, pct(s.SLI), num(s.Good), num(s.Total),
			s.BudgetAllowed, num(s.BudgetSpent), ratioPct(s.BudgetSpentRatio), s.Status, signed(s.Trend))
	}
	for _, s := range r.SLOs {
		fmt.Fprintf(&b, "\n### %s\n\n", s.Name)
		if s.Description != "" {
			fmt.Fprintf(&b, "%s\n\n", s.Description)
		}
		fmt.Fprintf(&b, "Attained %s against %g%% (previous period %s).", pct(s.SLI), s.Objective, pct(s.Previous.SLI))
		if s.WorstBurn != nil {
			fmt.Fprintf(&b, " Fastest burn: the hour ending %s, %.1f%% errors (%.1f× the budget rate).", s.WorstBurn.At.Format("2006-01-02 15:04 UTC"), 100*s.WorstBurn.ErrorRatio, s.WorstBurn.BurnRate)
		}
		b.WriteString("\n")
		if len(s.WorstQueues) > 0 {
			b.WriteString("\nWorst queues by budget spent:\n\n")
			for _, q := range s.WorstQueues {
				fmt.Fprintf(&b, "- %s: %s bad of %s (%.0f%% of the budget)\n", q.Queue, num(q.Bad), num(q.Total), 100*q.BudgetShare)
			}
		}
		if len(s.WorstChannels) > 0 {
			b.WriteString("\nWorst channels by budget spent:\n\n")
			for _, q := range s.WorstChannels {
				fmt.Fprintf(&b, "- %s: %s bad of %s (%.0f%% of the budget)\n", q.Queue, num(q.Bad), num(q.Total), 100*q.BudgetShare)
			}
		}
		if s.Policy != "" {
			fmt.Fprintf(&b, "\n**Error budget exhausted — policy:** %s\n", s.Policy)
		}
		if !s.Exact {
			b.WriteString("\n_Counts from rate() over the period (custom indicator): approximate at the period's edges._\n")
		}
	}
	b.WriteString("\n## Customer KPIs\n\n| KPI | this period | previous | target |\n| --- | --- | --- | --- |\n")
	for _, k := range r.KPIs.List {
		t := k.Target
		if k.Met != nil {
			t += map[bool]string{true: " (met)", false: " (missed)"}[*k.Met]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", k.Name, kpiValue(k.Value), kpiValue(k.Previous), t)
	}
	b.WriteString("\n| SERVQUAL dimension | expectation | perception | gap | previous gap |\n| --- | --- | --- | --- | --- |\n")
	for _, g := range r.KPIs.ServqualGaps {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", g.Dimension, kpiValue(g.Expectation), kpiValue(g.Perception), kpiValue(g.Gap), kpiValue(g.Previous))
	}
	v, p := r.Volumes.Current, r.Volumes.Previous
	fmt.Fprintf(&b, "\n## Volumes\n\n| | this period | previous |\n| --- | --- | --- |\n| tickets created | %s | %s |\n| tickets solved | %s | %s |\n| calls offered | %s | %s |\n| calls answered | %s | %s |\n| survey responses | %s | %s |\n",
		num(v.TicketsCreated), num(p.TicketsCreated), num(v.TicketsSolved), num(p.TicketsSolved), num(v.CallsOffered), num(p.CallsOffered),
		num(v.CallsAnswered), num(p.CallsAnswered), num(v.SurveyResponses), num(p.SurveyResponses))
	return []byte(b.String())
}

func csvRows(r *Report) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"period", "slo", "indicator", "objective_percent", "good", "bad", "total", "sli_percent", "budget_allowed", "budget_spent", "budget_spent_ratio", "status", "previous_sli_percent", "trend_pp", "worst_queue", "exact"})
	opt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return num(*v)
	}
	for _, s := range r.SLOs {
		wq := ""
		if len(s.WorstQueues) > 0 {
			wq = s.WorstQueues[0].Queue
		}
		w.Write([]string{r.Period.Name, s.Name, s.Indicator, num(s.Objective), num(s.Good), num(s.Bad), num(s.Total), opt(s.SLI), num(s.BudgetAllowed),
			num(s.BudgetSpent), opt(s.BudgetSpentRatio), s.Status, opt(s.Previous.SLI), opt(s.Trend), wq, strconv.FormatBool(s.Exact)})
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// svgLine draws the cumulative SLI of an SLO against its objective.
func svgLine(s SLO) template.HTML {
	const w, h, pad = 560.0, 160.0, 28.0
	var pts []CurvePoint
	for _, c := range s.Curve {
		if c.SLI != nil {
			pts = append(pts, c)
		}
	}
	if len(pts) == 0 {
		return template.HTML(`<p class="muted">No events in this period.</p>`)
	}
	lo, hi := s.Objective, 100.0
	for _, p := range pts {
		lo = math.Min(lo, *p.SLI)
	}
	lo = math.Max(0, lo-(hi-lo)*0.1-0.01)
	y := func(v float64) float64 { return pad + (h-2*pad)*(hi-v)/(hi-lo) }
	x := func(i int) float64 {
		if len(pts) == 1 {
			return w / 2
		}
		return pad + (w-2*pad)*float64(i)/float64(len(pts)-1)
	}
	var path strings.Builder
	for i, p := range pts {
		fmt.Fprintf(&path, "%s%.1f,%.1f", map[bool]string{true: "M", false: " L"}[i == 0], x(i), y(*p.SLI))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %g %g" role="img" aria-label="SLI of %s over the period against its objective"><line x1="%g" x2="%g" y1="%.1f" y2="%.1f" class="objective"/><text x="%g" y="%.1f" class="label">objective %g%%</text><path d="%s" class="sli"/><text x="%g" y="%g" class="label">%s</text><text x="%g" y="%g" class="label" text-anchor="end">%s</text></svg>`,
		w, h, template.HTMLEscapeString(s.Name), pad, w-pad, y(s.Objective), y(s.Objective), pad, y(s.Objective)-4, s.Objective, path.String(),
		pad, h-8, pts[0].At.Format("Jan 2"), w-pad, h-8, pts[len(pts)-1].At.Format("Jan 2"))
	return template.HTML(b.String())
}

// svgBudget draws the remaining error budget over the period.
func svgBudget(s SLO) template.HTML {
	const w, h, pad = 560.0, 120.0, 24.0
	if len(s.Curve) == 0 {
		return ""
	}
	lo := 0.0
	for _, c := range s.Curve {
		lo = math.Min(lo, c.BudgetRemaining)
	}
	y := func(v float64) float64 { return pad + (h-2*pad)*(1-v)/(1-lo) }
	var path strings.Builder
	for i, c := range s.Curve {
		xx := pad + (w-2*pad)*float64(i)/math.Max(1, float64(len(s.Curve)-1))
		fmt.Fprintf(&path, "%s%.1f,%.1f", map[bool]string{true: "M", false: " L"}[i == 0], xx, y(c.BudgetRemaining))
	}
	return template.HTML(fmt.Sprintf(`<svg viewBox="0 0 %g %g" role="img" aria-label="Error budget remaining of %s"><line x1="%g" x2="%g" y1="%.1f" y2="%.1f" class="objective"/><text x="%g" y="%.1f" class="label">budget exhausted</text><path d="%s" class="budget"/></svg>`,
		w, h, template.HTMLEscapeString(s.Name), pad, w-pad, y(0), y(0), pad, y(0)-4, path.String()))
}

// svgGaps draws SERVQUAL gaps per dimension as bars around zero.
func svgGaps(gs []Gap) template.HTML {
	const w, rowH, pad, mid = 560.0, 26.0, 120.0, 340.0
	var any bool
	var b strings.Builder
	for i, g := range gs {
		yy := 10 + rowH*float64(i)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" class="label" text-anchor="end">%s</text>`, pad-8, yy+15, g.Dimension)
		if g.Gap == nil {
			fmt.Fprintf(&b, `<text x="%g" y="%.1f" class="label">no answers</text>`, mid+6, yy+15)
			continue
		}
		any = true
		width := math.Min(math.Abs(*g.Gap), 6) / 6 * (mid - pad)
		x := mid
		class := "gap-pos"
		if *g.Gap < 0 {
			x, class = mid-width, "gap-neg"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="18" class="%s"/><text x="%g" y="%.1f" class="label">%+.2f</text>`, x, yy+2, width, class, w-60, yy+15, *g.Gap)
	}
	if !any {
		return template.HTML(`<p class="muted">No SERVQUAL answers in this period.</p>`)
	}
	h := 20 + rowH*float64(len(gs))
	return template.HTML(fmt.Sprintf(`<svg viewBox="0 0 %g %g" role="img" aria-label="SERVQUAL gap per dimension"><line x1="%g" x2="%g" y1="4" y2="%g" class="zero"/>%s</svg>`, w, h, mid, mid, h-4, b.String()))
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": pct, "signed": signed, "ratioPct": ratioPct, "num": num, "kpi": kpiValue,
	"svgLine": svgLine, "svgBudget": svgBudget, "svgGaps": svgGaps,
	"date": func(t interface{ Format(string) string }) string { return t.Format("2006-01-02 15:04 MST") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SLO report {{.Period.Name}} — {{.Service}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.6em 0}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left}
th{background:#f3f3f3}.met{color:#1a7f37;font-weight:600}.missed{color:#c62828;font-weight:600}.no_data{color:#666}
.muted{color:#666}.risk{color:#c62828}.policy{border-left:4px solid #c62828;padding:.3em .8em;background:#fdecea}
svg{width:100%;height:auto;max-width:560px;display:block}.objective,.zero{stroke:#888;stroke-dasharray:4 3}
.sli{fill:none;stroke:#1565c0;stroke-width:2}.budget{fill:none;stroke:#6a1b9a;stroke-width:2}.label{font-size:11px;fill:#555}
.gap-neg{fill:#e57373}.gap-pos{fill:#81c784}section.slo{page-break-inside:avoid}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}}
</style></head>
<body>
<h1>SLO report {{.Period.Name}} — {{.Service}}</h1>
<p class="muted">{{date .Period.Start}} to {{date .Period.End}}, compared with {{.Previous.Name}}. Generated {{date .GeneratedAt}}.</p>
<h2>Summary</h2>
<p><strong>{{.Summary.Met}} of {{.Summary.SLOs}}</strong> SLOs met their objective{{if .Summary.NoData}} ({{.Summary.NoData}} without events){{end}}.</p>
{{if .Summary.Risks}}<ul>{{range .Summary.Risks}}<li class="risk">{{.}}</li>{{end}}</ul>{{else}}<p>No risks: every SLO met its objective with more than a quarter of its budget left.</p>{{end}}
<h2>SLOs</h2>
<table><tr><th>SLO</th><th>objective</th><th>attained</th><th>good / total</th><th>budget allowed</th><th>budget spent</th><th>status</th><th>vs {{.Previous.Name}}</th></tr>
{{range .SLOs}}<tr><td>{{.Name}}</td><td>{{.Objective}}%</td><td>{{pct .SLI}}</td><td>{{num .Good}} / {{num .Total}}</td><td>{{printf "%.1f" .BudgetAllowed}}</td><td>{{num .BudgetSpent}} ({{ratioPct .BudgetSpentRatio}})</td><td class="{{.Status}}">{{.Status}}</td><td>{{signed .Trend}}</td></tr>
{{end}}</table>
{{range .SLOs}}<section class="slo"><h3>{{.Name}}</h3>{{if .Description}}<p>{{.Description}}</p>{{end}}
<p>Attained <strong>{{pct .SLI}}</strong> against {{.Objective}}% (previous period {{pct .Previous.SLI}}).{{with .WorstBurn}} Fastest burn: the hour ending {{date .At}}, {{printf "%.1f" .BurnRate}}× the budget rate.{{end}}</p>
{{svgLine .}}{{svgBudget .}}
{{if .WorstQueues}}<p>Worst queues by budget spent: {{range $i, $q := .WorstQueues}}{{if $i}}, {{end}}{{$q.Queue}} ({{num $q.Bad}} bad of {{num $q.Total}}){{end}}.</p>{{end}}
{{if .WorstChannels}}<p>Worst channels: {{range $i, $q := .WorstChannels}}{{if $i}}, {{end}}{{$q.Queue}} ({{num $q.Bad}} bad of {{num $q.Total}}){{end}}.</p>{{end}}
{{if .Policy}}<p class="policy"><strong>Error budget exhausted — policy:</strong> {{.Policy}}</p>{{end}}
{{if not .Exact}}<p class="muted">Counts from rate() over the period (custom indicator): approximate at the period's edges.</p>{{end}}
</section>{{end}}
<h2>Customer KPIs</h2>
<table><tr><th>KPI</th><th>this period</th><th>previous</th><th>target</th></tr>
{{range .KPIs.List}}<tr><td>{{.Name}}</td><td>{{kpi .Value}}</td><td>{{kpi .Previous}}</td><td>{{.Target}}{{with .Met}}{{if .}} <span class="met">met</span>{{else}} <span class="missed">missed</span>{{end}}{{end}}</td></tr>
{{end}}</table>
<h3>SERVQUAL gaps (perception − expectation)</h3>
{{svgGaps .KPIs.ServqualGaps}}
<h2>Volumes</h2>
<table><tr><th></th><th>this period</th><th>previous</th></tr>
<tr><td>tickets created</td><td>{{num .Volumes.Current.TicketsCreated}}</td><td>{{num .Volumes.Previous.TicketsCreated}}</td></tr>
<tr><td>tickets solved</td><td>{{num .Volumes.Current.TicketsSolved}}</td><td>{{num .Volumes.Previous.TicketsSolved}}</td></tr>
<tr><td>calls offered</td><td>{{num .Volumes.Current.CallsOffered}}</td><td>{{num .Volumes.Previous.CallsOffered}}</td></tr>
<tr><td>calls answered</td><td>{{num .Volumes.Current.CallsAnswered}}</td><td>{{num .Volumes.Previous.CallsAnswered}}</td></tr>
<tr><td>survey responses</td><td>{{num .Volumes.Current.SurveyResponses}}</td><td>{{num .Volumes.Previous.SurveyResponses}}</td></tr>
</table>
</body></html>
`))
