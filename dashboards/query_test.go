package dashboards

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/servq/servq/cmd/servq/app"
	_ "github.com/servq/servq/collectors/sources" // the demo source
	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/slo/rules"
)

// queryTestConfig is the demo, made fast: runs every second, ten
// simulated minutes per second at five times the volume, so that within
// a minute every family has moved, sparse SERVQUAL answers included.
func queryTestConfig(t *testing.T) string {
	t.Helper()
	y := string(config.DemoYAML())
	for old, repl := range map[string]string{
		`schedule: "@every 15s"`: `schedule: "@every 1s"`,
		"    scale: 1\n":         "    scale: 5\n",
		"    speed: 1\n":         "    speed: 600\n",
		// New series show their value after 2s instead of 2m: a 1s scrape
		// still records every one at 0 first.
		"  service: demo-contact-centre\n": "  service: demo-contact-centre\n  new_series_delay: 2s\n",
	} {
		if !strings.Contains(y, old) {
			t.Fatalf("demo.yml no longer contains %q", old)
		}
		y = strings.Replace(y, old, repl, 1)
	}
	return y
}

// expand substitutes Grafana's variables the way Grafana would with "All"
// selected in every multi-value variable.
func expand(expr, slo string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m", "$__range", "1h",
		"$job", ".+", "$instance", ".+",
		"$collector", ".*", "$queue", ".*", "$channel", ".*", "$slo", slo,
	).Replace(expr)
}

var labelValues = regexp.MustCompile(`^label_values\((.*), (\w+)\)$`)

// Every panel query, variable query and alert query of the demo's
// dashboards parses with Prometheus' PromQL parser and returns data from a
// real Prometheus that scrapes a running servq demo with the generated
// recording rules loaded. A query may be empty only when the panel says
// why (no alert firing, no rejected input, no push configured). Prometheus
// scrapes the servq four times over (two jobs, two instances, two
// replicas): every panel must show what one copy alone shows.
func TestEveryQueryReturnsData(t *testing.T) {
	testenv.Binary(t, "prometheus")
	dir := t.TempDir()
	cfgText := queryTestConfig(t)
	cfgFile := filepath.Join(dir, "servq.yml")
	writeFile(t, cfgFile, cfgText)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	// The demo's day has quiet nights (no tickets open, no calls waiting):
	// on the wall clock, whether the backlog panels had data depended on
	// the hour the test ran. servq's clock starts on a fixed Tuesday
	// morning instead and runs at the wall clock's pace, since Prometheus
	// scrapes in real time.
	base, started := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), time.Now()
	clock := func() time.Time { return base.Add(time.Since(started)) }
	svc, err := app.New(app.Options{ConfigFile: cfgFile, StoragePath: filepath.Join(dir, "data"), Now: clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	metrics := &freezable{h: svc.Handler("/metrics")}
	srv := httptest.NewServer(metrics)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Shutdown(ctx)
	})
	rf, err := rules.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rulesYAML, err := rules.Marshal(rf, "servq.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Scrapes every 3 s: a 1 s interval also made the scrape timeout 1 s,
	// and the race-enabled demo's /metrics, scraped four times at once on
	// a loaded CI machine, took longer, so no copy collected five samples.
	// Prometheus holds four copies of every servq series: the one of the
	// job the config names, the same servq scraped by a second job, as a
	// second instance of the job, and as the second replica of an HA pair.
	// With "All" selected, every panel must show what the one copy shows.
	target := strings.TrimPrefix(srv.URL, "http://")
	prom := testenv.StartPrometheus(t, fmt.Sprintf(`
global: {scrape_interval: 3s, scrape_timeout: 3s, evaluation_interval: 1s}
rule_files: [servq.rules.yml]
scrape_configs:
  - job_name: %[1]s
    static_configs: [{targets: [%[2]q]}]
  - job_name: %[1]s-copy
    static_configs: [{targets: [%[2]q]}]
  - job_name: %[1]s-second-instance
    static_configs: [{targets: [%[2]q]}]
    relabel_configs:
      - {target_label: job, replacement: %[1]s}
      - {target_label: instance, replacement: servq-b:9090}
  - job_name: %[1]s-replica
    static_configs: [{targets: [%[2]q], labels: {prometheus_replica: B}}]
    relabel_configs:
      - {target_label: job, replacement: %[1]s}
`, cfg.Rules.Job, target), map[string]string{"servq.rules.yml": string(rulesYAML)})

	// Wait for rates (two scrapes with new events) and recordings.
	testenv.Eventually(t, 90*time.Second, "rates of calls, tickets and surveys and the SLO recordings", func() bool {
		for _, q := range []string{
			"sum(rate(servq_calls_offered_total[1m])) > 0",
			"sum(rate(servq_tickets_created_total[1m])) > 0",
			"sum(increase(servq_servqual_score_count[1h])) > 0",
			"sum(increase(servq_servqual_weight_points_total[1h])) > 0",
			"slo:period_error_budget_remaining:ratio",
		} {
			if s, err := testenv.QueryE(prom.URL, q); err != nil || len(s) == 0 {
				return false
			}
		}
		return true
	})
	// From now on every scrape reads the same figures, so that the four
	// copies of a gauge agree once each has been scraped again (at 600
	// times real time they would differ between scrapes 0.2s apart).
	testenv.Eventually(t, 30*time.Second, "five scrapes of every copy", func() bool {
		s, err := testenv.QueryE(prom.URL, "count(count_over_time(servq_build_info[1m]) >= 5) == 4")
		return err == nil && len(s) == 1
	})
	frozen := metrics.freeze()
	testenv.Eventually(t, 30*time.Second, "a scrape of every copy after the freeze", func() bool {
		s, err := testenv.QueryE(prom.URL, fmt.Sprintf("count(timestamp(servq_build_info) > %f) == 4", float64(frozen.UnixMilli())/1e3+0.1))
		return err == nil && len(s) == 1
	})
	at := time.Now()
	copies := copySelectors{
		{"job": cfg.Rules.Job, "instance": target, "prometheus_replica": ""},
		{"job": cfg.Rules.Job + "-copy"},
		{"instance": "servq-b:9090"},
		{"prometheus_replica": "B"},
	}

	slo := cfg.SLOs[0].Name
	boards, err := Boards(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, b := range boards {
		for _, v := range b.vars {
			q, ok := v.Query.(map[string]any)
			if !ok {
				continue
			}
			m := labelValues.FindStringSubmatch(q["query"].(string))
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", b.UID, v.Name, q["query"])
				continue
			}
			expr := "group by (" + m[2] + ") (" + expand(m[1], slo) + ")"
			checkQuery(t, prom.URL, b.UID+" variable "+v.Name, expr, "")
			checked++
		}
		for _, pn := range b.panels {
			for _, tg := range pn.Targets {
				where := b.UID + "/" + pn.Title
				expr := expand(tg.Expr, slo)
				checkQuery(t, prom.URL, where, expr, tg.MayBeEmpty)
				checkCountedOnce(t, prom.URL, at, where, expr, copies)
				checked++
			}
		}
	}
	// The Grafana-managed alert rules: they must parse and evaluate; they
	// return series only while the alert would fire.
	ars, err := AlertRules(cfg, "prometheus", "servq")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ars {
		checkQuery(t, prom.URL, "alert rule "+r.Title, r.Data[0].Model["expr"].(string), "an alert query returns series only while firing")
		checked++
	}
	t.Logf("%d queries checked", checked)
}

func checkQuery(t *testing.T, base, where, expr, mayBeEmpty string) {
	t.Helper()
	if _, err := parser.ParseExpr(expr); err != nil {
		t.Errorf("%s: does not parse: %v\n%s", where, err, expr)
		return
	}
	s, err := testenv.QueryE(base, expr)
	if err != nil {
		t.Errorf("%s: Prometheus rejects it: %v\n%s", where, err, expr)
		return
	}
	if len(s) == 0 && mayBeEmpty == "" {
		t.Errorf("%s: returns no data\n%s", where, expr)
	}
}

// freezable serves the handler's responses until freeze, then the last
// one again and again.
type freezable struct {
	h      http.Handler
	mu     sync.Mutex
	frozen bool
	last   *httptest.ResponseRecorder
}

func (f *freezable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.frozen || f.last == nil {
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, r)
		f.last = rec
	}
	for k, v := range f.last.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(f.last.Code)
	w.Write(f.last.Body.Bytes())
}

func (f *freezable) freeze() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = true
	return time.Now()
}

// copySelectors pick out each copy of the servq's series in Prometheus.
type copySelectors []map[string]string

// checkCountedOnce compares a query over every copy of the series with the
// same query over each copy alone (its matchers added to every raw
// selector), evaluated at the same instant. Each copy was scraped at its
// own moments of a demo running at 600 times real time, and rates over
// series a few seconds old extrapolate differently, so the copies' figures
// differ: the figure over every copy must lie within 25% of the range the
// single copies span. A copy counted twice doubles it, at least.
func checkCountedOnce(t *testing.T, base string, at time.Time, where, expr string, copies copySelectors) {
	t.Helper()
	if strings.Contains(expr, "scrape_duration_seconds") {
		return // four scrapes take four different times: no copies
	}
	values := func(expr string) map[string]float64 {
		ss, err := testenv.QueryAtE(base, expr, at)
		if err != nil {
			t.Errorf("%s: %v", where, err)
		}
		m := map[string]float64{}
		for _, s := range ss {
			m[fmt.Sprint(s.Metric)] = s.Value
		}
		return m
	}
	all := values(expr)
	lo, hi := map[string]float64{}, map[string]float64{}
	for _, c := range copies {
		node, err := parser.ParseExpr(expr)
		if err != nil {
			return // checkQuery reported it
		}
		parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && isRawMetric(vs.Name) {
				for l, v := range c {
					vs.LabelMatchers = append(vs.LabelMatchers, labels.MustNewMatcher(labels.MatchEqual, l, v))
				}
			}
			return nil
		})
		for k, v := range values(node.String()) {
			if l, ok := lo[k]; !ok || v < l {
				lo[k] = v
			}
			if h, ok := hi[k]; !ok || v > h {
				hi[k] = v
			}
		}
	}
	if len(all) != len(lo) {
		t.Errorf("%s: %d series over every copy, %d over the copies one by one\n%s", where, len(all), len(lo), expr)
		return
	}
	for k, got := range all {
		l, ok := lo[k]
		h := hi[k]
		switch {
		case !ok:
			t.Errorf("%s: series %s only over every copy\n%s", where, k, expr)
		case math.IsNaN(got) && (math.IsNaN(l) || math.IsNaN(h)):
		case got < l-0.25*math.Abs(l) || got > h+0.25*math.Abs(h):
			t.Errorf("%s: %s is %g over every copy, %g to %g over each alone\n%s", where, k, got, l, h, expr)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
