package app

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/servq/servq/collectors/runner"
	"github.com/servq/servq/internal/redact"
	"github.com/servq/servq/slo/status"
)

// Handler returns the HTTP handler of the exporter: the landing page,
// metricsPath, /-/healthy, /-/ready, /-/reload and /api/v1/collectors.
func (s *Service) Handler(metricsPath string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(metricsPath, promhttp.InstrumentMetricHandler(s.reg, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slogAdapter{s},
		ErrorHandling:     promhttp.ContinueOnError,
	})))
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

type landingSLO struct {
	Name, Indicator, Threshold, Window string
	Objective                          float64
	Status                             status.SLO
}

type landingData struct {
	Version, Config, MetricsPath, ReloadError string
	Collectors                                []runner.Status
	SLOs                                      []landingSLO
	Now                                       time.Time
}

// The landing page shows names, schedules, times and errors; it never
// renders config values, so no secret can reach it.
var landingTmpl = template.Must(template.New("landing").Funcs(template.FuncMap{
	"pct": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.2f%%", *v)
	},
	"mul100": func(v float64) float64 { return v * 100 },
	"dur":    func(sec float64) string { return time.Duration(sec * float64(time.Second)).Round(time.Minute).String() },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>servq</title>
<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.ok{color:#1a7f37}.err{color:#c62828}</style></head>
<body><h1>servq</h1>
<p>Customer-service quality metrics, SLOs and error budgets. Version {{.Version}}; config <code>{{.Config}}</code>.</p>
<ul><li><a href="{{.MetricsPath}}">Metrics</a></li><li><a href="api/v1/collectors">Collector status (JSON)</a></li>
<li><a href="api/v1/slos">SLO status (JSON)</a></li><li><a href="-/healthy">Health</a></li><li><a href="-/ready">Readiness</a></li></ul>
{{if .ReloadError}}<p class="err">Last reload failed, the previous configuration is still running: {{.ReloadError}}</p>{{end}}
<h2>Collectors</h2>
<table><tr><th>name</th><th>type</th><th>schedule</th><th>status</th><th>last run</th><th>last success</th><th>duration</th><th>records</th><th>rejected</th><th>next run</th></tr>
{{range .Collectors}}<tr><td>{{.Name}}</td><td>{{.Type}}</td><td><code>{{.Schedule}}</code></td>
<td>{{if .Running}}running{{else if .Error}}<span class="err">error: {{.Error}}</span>{{else if .LastRun.IsZero}}pending{{else}}<span class="ok">ok</span>{{end}}{{if not .BackoffUntil.IsZero}}<br>the vendor asked to wait (Retry-After): runs skipped until {{.BackoffUntil.Format "2006-01-02 15:04:05 MST"}}{{end}}</td>
<td>{{ago $.Now .LastRun}}</td><td>{{ago $.Now .LastSuccess}}</td><td>{{printf "%.3fs" .Duration}}</td><td>{{.Records}}</td><td>{{.Rejected}}</td>
<td>{{if not .Next.IsZero}}{{.Next.Format "2006-01-02 15:04:05 MST"}}{{end}}</td></tr>
{{end}}</table>
<h2>SLOs</h2>
<p>From servq's own counts, sampled every minute; "covered" is how much of the window servq has seen.</p>
<table><tr><th>name</th><th>indicator</th><th>threshold</th><th>objective</th><th>window</th><th>SLI</th><th>good / total</th><th>budget remaining</th><th>burn rate 1h</th><th>burn rate window</th><th>covered</th><th>state</th></tr>
{{range .SLOs}}<tr><td>{{.Name}}</td><td>{{.Indicator}}</td><td>{{.Threshold}}</td><td>{{.Objective}}%</td><td>{{.Window}}</td>
{{if .Status.Computed}}<td>{{pct .Status.SLI}}</td><td>{{printf "%.0f" .Status.Good}} / {{printf "%.0f" .Status.Total}}</td><td>{{printf "%.1f%%" (mul100 .Status.BudgetRemaining)}}</td>
<td>{{printf "%.2f×" .Status.BurnRate1h}}</td><td>{{printf "%.2f×" .Status.BurnRateWindow}}</td><td>{{dur .Status.CoveredSeconds}}</td>{{else}}<td colspan="6">{{if eq .Indicator "custom"}}computed by Prometheus only (custom query){{else}}no sample yet{{end}}</td>{{end}}
<td class="{{if eq .Status.State "ok"}}ok{{else if eq .Status.State "no_data"}}{{else}}err{{end}}">{{.Status.State}}</td></tr>
{{end}}</table>
</body></html>
`))

func (s *Service) landing(w http.ResponseWriter, metricsPath string) {
	cfg := s.Config()
	d := landingData{Version: Version(), Config: s.configName(), MetricsPath: metricsPath[1:],
		Collectors: s.Runner().Statuses(), Now: s.now()}
	if err := s.LastReloadError(); err != nil {
		d.ReloadError = redact.Error(err)
	}
	st := s.SLOStatus(d.Now)
	for i, o := range cfg.SLOs {
		th := ""
		if o.Threshold > 0 {
			th = o.Threshold.String()
		}
		l := landingSLO{Name: o.Name, Indicator: o.Indicator, Threshold: th, Window: o.Window.String(), Objective: o.Objective}
		if i < len(st) {
			l.Status = st[i]
		}
		d.SLOs = append(d.SLOs, l)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := landingTmpl.Execute(w, d); err != nil {
		s.log.Error("rendering landing page", "err", err)
	}
}
