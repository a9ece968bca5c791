package app

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/servq/servq/collectors/runner"
	"github.com/servq/servq/internal/redact"
	"github.com/servq/servq/slo/report"
	"github.com/servq/servq/slo/status"
)

// Handler returns the HTTP handler of the exporter: the landing page,
// metricsPath, /-/healthy, /-/ready, /-/reload, /api/v1/collectors and,
// with Options.EnablePprof, /debug/pprof/.
func (s *Service) Handler(metricsPath string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(metricsPath, promhttp.InstrumentMetricHandler(s.reg, s.metricsHandler()))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("servq is Healthy.\n"))
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "servq is not ready: collectors not started.", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("servq is Ready.\n"))
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload the configuration", http.StatusMethodNotAllowed)
			return
		}
		if err := s.Reload(); err != nil {
			http.Error(w, "failed to reload config: "+redact.Error(err), http.StatusInternalServerError)
			return
		}
		w.Write([]byte("configuration reloaded\n"))
	})
	mux.HandleFunc("/api/v1/collectors", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": s.Runner().Statuses()})
	})
	// Webhook receivers (survey webhooks) authenticate each delivery by
	// its signature; the collector's handler is looked up per request, as
	// a reload replaces the runner.
	mux.HandleFunc("/webhooks/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/webhooks/")
		h := s.Runner().Handler(name)
		if name == "" || strings.Contains(name, "/") || h == nil {
			http.Error(w, "no webhook collector named "+strconv.Quote(name), http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
	mux.HandleFunc("/api/v1/slos", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": s.SLOStatus(s.now())})
	})
	if s.opt.EnablePprof {
		// Behind the same listener, TLS and basic auth as every other
		// path: the web server wraps this whole mux.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		s.landing(w, metricsPath)
	})
	return mux
}

type slogAdapter struct{ s *Service }

func (a slogAdapter) Println(v ...any) { a.s.log.Error("metrics handler", "err", v) }

// landingSLO is one SLO on the status page: its config, servq's status
// and the charts of its window.
type landingSLO struct {
	Name, Indicator, Threshold, Window string
	Objective                          float64
	Status                             status.SLO
	SLIChart, BudgetChart              template.HTML
}

type landingTarget struct {
	Name, Description, KPI, Bound, Window string
	// Value: the current value when servq can compute it (gauge KPIs).
	Value    string
	Met, Has bool
}

type landingData struct {
	Version, Config, MetricsPath, ReloadError, Zone string
	Collectors                                      []runner.Status
	SLOs                                            []landingSLO
	Targets                                         []landingTarget
	Now                                             time.Time
	MinCoverage                                     float64
	MinEvents                                       int
}

// The status page shows names, schedules, times, counts and errors
// (redacted); it never renders config values, so no secret can reach it.
// It needs no script and no external asset: a meta refresh keeps it
// current, and every time is in global.time_zone.
var landingTmpl = template.Must(template.New("landing").Funcs(template.FuncMap{
	"pct": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.2f%%", *v)
	},
	"mul100": func(v float64) float64 { return v * 100 },
	"dur":    func(sec float64) string { return time.Duration(sec * float64(time.Second)).Round(time.Minute).String() },
	"at": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.Format("2006-01-02 15:04:05 MST")
	},
	"stateText": stateText,
	"chartCSS":  func() template.CSS { return report.ChartCSS },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60"><title>servq status</title>
<style>body{font-family:system-ui,sans-serif;margin:1em auto;max-width:64em;padding:0 .8em;color:#1b1b1b;line-height:1.4}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}
.scroll{overflow-x:auto}.ok{color:#1a7f37}.err{color:#c62828;font-weight:600}.warn{color:#9a5b00;font-weight:600}.muted{color:#555}
section.slo{border-top:1px solid #ccc;margin-top:1.2em}
{{chartCSS}}</style></head>
<body><header><h1>servq status</h1>
<p>Customer-service quality metrics, SLOs and error budgets from servq's own counts. Version {{.Version}}; config <code>{{.Config}}</code>.
All times in <strong>{{.Zone}}</strong> (global.time_zone); page built {{at .Now}}, refreshed every minute.</p>
<nav aria-label="links"><a href="{{.MetricsPath}}">Metrics</a> · <a href="api/v1/collectors">Collectors (JSON)</a> · <a href="api/v1/slos">SLOs (JSON)</a> · <a href="-/healthy">Health</a> · <a href="-/ready">Readiness</a></nav></header>
<main>
{{if .ReloadError}}<p class="err" role="alert">Last reload failed, the previous configuration is still running: {{.ReloadError}}</p>{{end}}
<h2>SLOs</h2>
<p class="muted">From servq's own counts, sampled every minute. The budget is called exhausted only once servq has seen {{printf "%.0f" (mul100 .MinCoverage)}}% of the window and {{.MinEvents}} events; before that the state is "collecting data".</p>
<div class="scroll"><table><caption class="muted">Summary</caption>
<tr><th scope="col">SLO</th><th scope="col">objective</th><th scope="col">window</th><th scope="col">SLI</th><th scope="col">good / total</th><th scope="col">budget remaining</th><th scope="col">state</th></tr>
{{range .SLOs}}<tr><th scope="row"><a href="#slo-{{.Name}}">{{.Name}}</a></th><td>{{.Objective}}%</td><td>{{.Window}}</td>
{{if .Status.Computed}}<td>{{pct .Status.SLI}}</td><td>{{printf "%.0f" .Status.Good}} / {{printf "%.0f" .Status.Total}}</td><td>{{printf "%.1f%%" (mul100 .Status.BudgetRemaining)}}</td>{{else}}<td colspan="3">{{if eq .Indicator "custom"}}computed by Prometheus only (custom query){{else}}no sample yet{{end}}</td>{{end}}
<td>{{stateText .Status}}</td></tr>
{{end}}</table></div>
{{range .SLOs}}<section class="slo" id="slo-{{.Name}}" aria-labelledby="h-slo-{{.Name}}"><h3 id="h-slo-{{.Name}}">{{.Name}}</h3>
<p>Indicator <code>{{.Indicator}}</code>{{if .Threshold}} (threshold {{.Threshold}}){{end}}, objective {{.Objective}}% over {{.Window}}. State: {{stateText .Status}}.</p>
{{if .Status.Computed}}<div class="scroll"><table>
<tr><th scope="row">SLI</th><td class="sli-value">{{pct .Status.SLI}}</td></tr>
<tr><th scope="row">good / total</th><td class="counts">{{printf "%.0f" .Status.Good}} / {{printf "%.0f" .Status.Total}}</td></tr>
<tr><th scope="row">budget remaining</th><td class="budget-value">{{printf "%.1f%%" (mul100 .Status.BudgetRemaining)}}</td></tr>
<tr><th scope="row">window seen</th><td>{{dur .Status.CoveredSeconds}} ({{printf "%.1f%%" (mul100 .Status.Coverage)}} of {{.Window}})</td></tr>
</table></div>
<h4>Burn rates</h4>
<div class="scroll"><table><tr><th scope="col">window</th><th scope="col">burn rate</th><th scope="col">bad / total</th></tr>
{{range .Status.BurnRates}}<tr><th scope="row">{{.Window}}</th><td>{{printf "%.2f×" .BurnRate}}</td><td>{{printf "%.0f" .Bad}} / {{printf "%.0f" .Total}}{{if not .Covered}} <span class="muted">(servq has seen less than {{.Window}})</span>{{end}}</td></tr>
{{end}}</table></div>
<h4>Alert state per burn window</h4>
<p class="muted">The pairs of the generated burn-rate alerts, evaluated on servq's own counts: a pair fires when the error ratio of both windows is above its threshold.</p>
<div class="scroll"><table><tr><th scope="col">severity</th><th scope="col">windows</th><th scope="col">threshold</th><th scope="col">error ratio long / short</th><th scope="col">state</th></tr>
{{range .Status.Alerts}}<tr><th scope="row">{{.Severity}}</th><td>{{.Long}} and {{.Short}}</td><td>{{printf "%.2f%%" (mul100 .Threshold)}} ({{printf "%.4g×" .Factor}})</td><td>{{printf "%.2f%%" (mul100 .LongRatio)}} / {{printf "%.2f%%" (mul100 .ShortRatio)}}</td><td>{{if .Firing}}<span class="err">firing</span>{{else}}<span class="ok">not firing</span>{{end}}</td></tr>
{{end}}</table></div>
<h4>SLI and error budget over the window</h4>
{{.SLIChart}}{{.BudgetChart}}{{end}}
</section>
{{end}}
<h2>KPI targets</h2>
{{if .Targets}}<p class="muted">Queue and backlog KPIs (open tickets, calls waiting, longest wait, oldest open ticket) are read from servq's own metrics now; KPIs over a window (NPS, CSAT, CES, SERVQUAL) and targets split by labels are computed by Prometheus (the generated <code>servq:target:value</code> recording rule and its alerts), as servq does not keep their windows.</p>
<div class="scroll"><table><tr><th scope="col">target</th><th scope="col">KPI</th><th scope="col">bound</th><th scope="col">window</th><th scope="col">current value</th></tr>
{{range .Targets}}<tr><th scope="row">{{.Name}}</th><td>{{.KPI}}{{if .Description}}<br><span class="muted">{{.Description}}</span>{{end}}</td><td>{{.Bound}}</td><td>{{.Window}}</td><td>{{if .Has}}<span class="kpi-value {{if .Met}}ok{{else}}err{{end}}">{{.Value}}</span> ({{if .Met}}met{{else}}missed{{end}}){{else}}computed by Prometheus{{end}}</td></tr>
{{end}}</table></div>{{else}}<p>No KPI targets configured (<code>targets:</code>).</p>{{end}}
<h2>Collectors</h2>
<div class="scroll"><table><tr><th scope="col">name</th><th scope="col">type</th><th scope="col">schedule</th><th scope="col">status</th><th scope="col">last run</th><th scope="col">last success</th><th scope="col">newest record</th><th scope="col">records (last / since start)</th><th scope="col">rejected (last / since start)</th><th scope="col">next run</th></tr>
{{range .Collectors}}<tr><th scope="row">{{.Name}}</th><td>{{.Type}}</td><td><code>{{.Schedule}}</code></td>
<td>{{if .Running}}running{{if .Error}}; the last run ended in <span class="err">error: {{.Error}}</span>{{end}}{{else if .Error}}<span class="err">error: {{.Error}}</span>{{else if .LastRun.IsZero}}pending{{else}}<span class="ok">ok</span>{{end}}{{if not .BackoffUntil.IsZero}}<br>the vendor asked to wait (Retry-After): runs skipped until {{at .BackoffUntil}}{{end}}</td>
<td>{{at .LastRun}}</td><td>{{at .LastSuccess}}</td><td class="watermark">{{at .Watermark}}</td><td>{{.Records}} / {{.TotalRecords}}</td><td>{{if .TotalRejected}}<span class="warn">{{.Rejected}} / {{.TotalRejected}}</span>{{else}}0 / 0{{end}}</td>
<td>{{if not .Next.IsZero}}{{at .Next}}{{end}}</td></tr>
{{end}}</table></div>
</main></body></html>
`))

// stateText is an SLO's state in words; early in the window it says how
// much servq has seen rather than a budget extrapolated from minutes.
func stateText(st status.SLO) template.HTML {
	switch st.State {
	case "ok":
		return `<span class="ok">ok</span>`
	case "burning":
		return `<span class="warn">burning (1h burn rate above 1×)</span>`
	case "exhausted":
		return `<span class="err">budget exhausted</span>`
	case "collecting":
		return template.HTML(fmt.Sprintf(`<span class="muted">collecting data: %.0f%% of the window seen, %.0f events</span>`, 100*st.Coverage, st.Total))
	}
	return `<span class="muted">no data</span>`
}

func (s *Service) landing(w http.ResponseWriter, metricsPath string) {
	cfg := s.Config()
	loc, err := time.LoadLocation(cfg.Global.TimeZone)
	if err != nil {
		loc = time.UTC // checked at load; kept safe
	}
	now := s.now().In(loc)
	d := landingData{Version: Version(), Config: s.configName(), MetricsPath: metricsPath[1:], Zone: loc.String(),
		Now: now, MinCoverage: status.MinCoverage, MinEvents: status.MinEvents}
	for _, c := range s.Runner().Statuses() {
		c.LastRun, c.LastSuccess, c.Next, c.BackoffUntil, c.Watermark = inZone(c.LastRun, loc), inZone(c.LastSuccess, loc), inZone(c.Next, loc), inZone(c.BackoffUntil, loc), inZone(c.Watermark, loc)
		d.Collectors = append(d.Collectors, c)
	}
	if err := s.LastReloadError(); err != nil {
		d.ReloadError = redact.Error(err)
	}
	st := s.SLOStatus(now)
	for i, o := range cfg.SLOs {
		th := ""
		if o.Threshold > 0 {
			th = o.Threshold.String()
		}
		l := landingSLO{Name: o.Name, Indicator: o.Indicator, Threshold: th, Window: o.Window.String(), Objective: o.Objective}
		if i < len(st) {
			l.Status = st[i]
			if l.Status.Computed {
				l.SLIChart, l.BudgetChart = sloCharts(o.Name, o.Objective, o.Window.D(), now, s.slos.Samples(o.Name), l.Status)
			}
		}
		d.SLOs = append(d.SLOs, l)
	}
	fams := s.gatherFor(cfg)
	for _, t := range cfg.Targets {
		lt := landingTarget{Name: t.Name, Description: t.Description, KPI: t.KPI, Window: t.Window.String()}
		lt.Value, lt.Met, lt.Has = kpiNow(t, fams, now)
		if t.Window == 0 {
			lt.Window = "–" // a KPI of this moment has no window
		}
		switch {
		case t.Min != nil && t.Max != nil:
			lt.Bound = fmt.Sprintf("%g to %g", *t.Min, *t.Max)
		case t.Min != nil:
			lt.Bound = fmt.Sprintf("at least %g", *t.Min)
		case t.Max != nil:
			lt.Bound = fmt.Sprintf("at most %g", *t.Max)
		}
		d.Targets = append(d.Targets, lt)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := landingTmpl.Execute(w, d); err != nil {
		s.log.Error("rendering landing page", "err", err)
	}
}

func inZone(t time.Time, loc *time.Location) time.Time {
	if t.IsZero() {
		return t
	}
	return t.In(loc)
}

// sloCharts draws the SLI and the remaining budget over the SLO's window
// from the status samples, counted from the same baseline as the status
// (the last sample at or before the window's start) and ending at the
// status's own figures, so the charts end where the tables do.
func sloCharts(name string, objective float64, window time.Duration, now time.Time, ps []status.Point, st status.SLO) (sliChart, budgetChart template.HTML) {
	from := now.Add(-window)
	base := 0
	for i, p := range ps {
		if !p.At.After(from) {
			base = i
		}
	}
	budget := (100 - objective) / 100
	var at, bat []time.Time
	var slis, rem []float64
	add := func(t time.Time, bad, total float64) {
		if st.Total <= 0 {
			return
		}
		// The budget starts whole at the baseline; the SLI has no value
		// before the first event.
		bat, rem = append(bat, t.In(now.Location())), append(rem, 1-bad/(budget*st.Total))
		if total > 0 {
			at, slis = append(at, t.In(now.Location())), append(slis, 100*(1-bad/total))
		}
	}
	if b := ps[base]; b.At.After(from) {
		add(b.At, 0, 0) // servq started within the window
	}
	for _, p := range ps[base+1:] {
		bad, total := p.Bad-ps[base].Bad, p.Total-ps[base].Total
		if bad < 0 || total < 0 { // a reset counts from zero, as the status does
			bad, total = p.Bad, p.Total
		}
		if p.At.Before(now) {
			add(p.At, bad, total)
		}
	}
	add(now, st.Bad, st.Total)
	if len(at) == 0 {
		return `<p class="muted">No events in the window yet: no chart.</p>`, ""
	}
	lo, rlo := objective, 0.0
	for _, v := range slis {
		lo = min(lo, v)
	}
	for _, v := range rem {
		rlo = min(rlo, v)
	}
	span := max(100-lo, 0.1)
	sliChart = report.LineChart(report.Chart{Label: "SLI of " + name + " over its window, against its objective",
		Title: "SLI since the window's start", From: from, To: now, At: at, Values: slis,
		Lo: max(0, 100-span*1.15), Hi: 100, Ref: objective, RefLabel: fmt.Sprintf("objective %g%%", objective), Scale: 100, Class: "sli"})
	budgetChart = report.LineChart(report.Chart{Label: "Error budget remaining of " + name + " over its window",
		Title: "error budget remaining", From: from, To: now, At: bat, Values: rem,
		Lo: rlo - 0.05*(1-rlo), Hi: 1.05, Ref: 0, RefLabel: "budget exhausted", Scale: 1, Class: "budget"})
	return sliChart, budgetChart
}
