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
	fmt.Fprintf(&b, "Period %s to %s, compared with %s. Generated %s.\n\n", r.Period.Start.Format("2006-01-02 15:04 MST"), r.Period.End.Format("2006-01-02 15:04 MST"), r.Previous.Name, r.GeneratedAt.Format("2006-01-02 15:04 MST"))
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
		b.WriteString(burnText(s))
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
		if note := exactNote(s); note != "" {
			fmt.Fprintf(&b, "\n_%s_\n", note)
		}
	}
	if r.KPIs != nil {
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
	}
	b.WriteString("\n## Volumes\n\n| | this period | previous |\n| --- | --- | --- |\n")
	for _, row := range volumeRows(r.Volumes) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", row[0], row[1], row[2])
	}
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

// ChartCSS styles the charts of the report and of LineChart.
const ChartCSS = `svg{width:100%;height:auto;max-width:640px;display:block;margin:.4em 0}.objective{stroke:#c62828;stroke-width:1.2;stroke-dasharray:5 3}.zero{stroke:#888;stroke-dasharray:4 3}
.plot{fill:#fafafa;stroke:#bbb}.grid{stroke:#e2e2e2}.axis{stroke:#888}.tick{font-size:10px;fill:#444}
.sli{fill:none;stroke:#1565c0;stroke-width:2.5}.sli-dot{fill:#1565c0}.budget{fill:none;stroke:#6a1b9a;stroke-width:2.5}.budget-dot{fill:#6a1b9a}.label{font-size:11px;fill:#555}`

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": pct, "signed": signed, "ratioPct": ratioPct, "num": num, "kpi": kpiValue,
	"svgLine": svgLine, "svgBudget": svgBudget, "svgGaps": svgGaps, "burn": burnText, "exactNote": exactNote, "volumeRows": volumeRows,
	"chartCSS": func() template.CSS { return ChartCSS },
	"date":     func(t interface{ Format(string) string }) string { return t.Format("2006-01-02 15:04 MST") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SLO report {{.Period.Name}} — {{.Service}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.6em 0}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left}
th{background:#f3f3f3}.met{color:#1a7f37;font-weight:600}.missed{color:#c62828;font-weight:600}.no_data{color:#666}
.muted{color:#666}.risk{color:#c62828}.policy{border-left:4px solid #c62828;padding:.3em .8em;background:#fdecea}
{{chartCSS}}
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
<p>Attained <strong>{{pct .SLI}}</strong> against {{.Objective}}% (previous period {{pct .Previous.SLI}}).{{burn .}}</p>
{{svgLine $ .}}{{svgBudget $ .}}
{{if .WorstQueues}}<p>Worst queues by budget spent: {{range $i, $q := .WorstQueues}}{{if $i}}, {{end}}{{$q.Queue}} ({{num $q.Bad}} bad of {{num $q.Total}}){{end}}.</p>{{end}}
{{if .WorstChannels}}<p>Worst channels: {{range $i, $q := .WorstChannels}}{{if $i}}, {{end}}{{$q.Queue}} ({{num $q.Bad}} bad of {{num $q.Total}}){{end}}.</p>{{end}}
{{if .Policy}}<p class="policy"><strong>Error budget exhausted — policy:</strong> {{.Policy}}</p>{{end}}
{{with exactNote .}}<p class="muted">{{.}}</p>{{end}}
</section>{{end}}
{{with .KPIs}}<h2>Customer KPIs</h2>
<table><tr><th>KPI</th><th>this period</th><th>previous</th><th>target</th></tr>
{{range .List}}<tr><td>{{.Name}}</td><td>{{kpi .Value}}</td><td>{{kpi .Previous}}</td><td>{{.Target}}{{with .Met}}{{if .}} <span class="met">met</span>{{else}} <span class="missed">missed</span>{{end}}{{end}}</td></tr>
{{end}}</table>
<h3>SERVQUAL gaps (perception − expectation)</h3>
{{svgGaps .ServqualGaps}}{{end}}
<h2>Volumes</h2>
<table><tr><th></th><th>this period</th><th>previous</th></tr>
{{range volumeRows .Volumes}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td><td>{{index . 2}}</td></tr>
{{end}}</table>
</body></html>
`))
