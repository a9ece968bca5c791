package app

import (
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/servq/servq/deploy/testenv"
)

// staticConfig collects a simulated day once and then sits still (the
// next run is an hour away), with new series served at once: its /metrics
// only changes in servq's own live metrics.
const staticConfig = `
global: {service: test, new_series_delay: 0s}
collectors:
  - name: sim
    type: demo
    schedule: "@every 1h"
    backfill: 24h
slos:
  - {name: reply, indicator: ticket_first_reply, threshold: 4h, objective: 90}
targets:
  - {name: backlog, kpi: open_tickets, max: 1000}
`

// scrape fetches /metrics with the given Accept (and gzip when asked),
// checking the encoding headers; it returns the decoded body.
func scrape(t *testing.T, h http.Handler, accept string, gz bool) ([]byte, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", accept)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("scrape %q: %d %s", accept, w.Code, w.Body)
	}
	body := w.Body.Bytes()
	if cl := w.Header().Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
		t.Fatalf("scrape %q gzip=%v: Content-Length %s for %d bytes", accept, gz, cl, len(body))
	}
	if gz {
		if enc := w.Header().Get("Content-Encoding"); enc != "gzip" {
			t.Fatalf("scrape %q with Accept-Encoding gzip: Content-Encoding %q", accept, enc)
		}
		r, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		r.Multistream(false) // one member, as every client reads it
		if body, err = io.ReadAll(r); err != nil {
			t.Fatalf("gunzip (CRC and size checked): %v", err)
		}
		if extra, _ := io.ReadAll(w.Body); len(extra) > 0 {
			t.Fatalf("%d bytes after the gzip member", len(extra))
		}
	}
	return body, w.Header().Get("Content-Type")
}

// samples parses an exposition with Prometheus' parser into series →
// value, dropping servq's per-request and runtime metrics (they change
// between two scrapes), and fails on a family exposed twice.
func samples(t *testing.T, b []byte, ct string) map[string]float64 {
	t.Helper()
	p, err := textparse.New(b, ct, labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	types := map[string]bool{}
	for {
		e, err := p.Next()
		if err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("parsing %s: %v", ct, err)
		}
		switch e {
		case textparse.EntryType:
			n, _ := p.Type()
			// (client_golang's go_memstats_alloc_bytes gauge and _total
			// counter are one OpenMetrics family twice: not servq's.)
			if types[string(n)] && strings.HasPrefix(string(n), "servq_") {
				t.Fatalf("%s: family %s twice", ct, n)
			}
			types[string(n)] = true
		case textparse.EntrySeries:
			var ls labels.Labels
			p.Labels(&ls)
			_, _, v := p.Series()
			if name := ls.Get("__name__"); strings.HasPrefix(name, "servq_") && !volatile[name] && !strings.HasPrefix(name, "servq_web_") {
				// Prometheus drops empty labels (build info's branch).
				out[labels.NewBuilder(ls).Del(emptyLabels(ls)...).Labels().String()] = v
			}
		}
	}
}

// /metrics serves, in every format and with or without gzip, exactly what
// client_golang's handler renders from the same registries, live metrics
// and model together with no family twice; formats the cache does not
// keep and name[] filters are served too.
func TestMetricsHandlerMatchesUncachedPath(t *testing.T) {
	svc, _, _ := startService(t, staticConfig)
	testenv.Eventually(t, 30*time.Second, "first collection", func() bool { return svc.Runner().Ready() })
	h := svc.Handler("/metrics")
	uncached := promhttp.HandlerFor(prometheus.GathererFunc(svc.gatherAll), promhttp.HandlerOpts{EnableOpenMetrics: true})
	for name, accept := range map[string]string{
		"prometheus-2":      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
		"prometheus-3":      "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
		"protobuf":          "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.6",
		"text":              "text/plain",
		"browser":           "text/html,application/xhtml+xml,*/*;q=0.8",
		"none":              "",
		"protobuf-compact":  "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text",
		"openmetrics-2.0.0": "application/openmetrics-text;version=2.0.0",
	} {
		for _, gz := range []bool{false, true} {
			got, ct := scrape(t, h, accept, gz)
			want, wct := scrape(t, uncached, accept, false)
			if ct != wct {
				t.Errorf("%s: Content-Type %q, client_golang negotiates %q", name, ct, wct)
				continue
			}
			if strings.Contains(ct, "compact-text") || strings.Contains(ct, "version=2.0.0") {
				// Prometheus does not parse these: served uncached, same bytes
				// up to servq's live values.
				if !strings.Contains(string(got), "servq_tickets_created_total") {
					t.Errorf("%s: model missing from the uncached format:\n%.500s", name, got)
				}
				continue
			}
			g, w := samples(t, got, ct), samples(t, want, wct)
			if len(w) < 100 {
				t.Fatalf("%s: only %d servq samples uncached", name, len(w))
			}
			if d := diffSamples(g, w); d != "" {
				t.Errorf("%s gzip=%v: cached exposition differs from client_golang's:\n%s", name, gz, d)
			}
		}
	}
	// name[] filters as client_golang does.
	req := httptest.NewRequest(http.MethodGet, "/metrics?name[]=servq_tickets_created_total", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if body := w.Body.String(); !strings.Contains(body, "servq_tickets_created_total{") || strings.Contains(body, "go_goroutines") {
		t.Errorf("name[] filter not applied:\n%.500s", body)
	}
}

// volatile are servq's series whose value depends on the moment of the
// scrape.
var volatile = map[string]bool{"servq_collector_lag_seconds": true}

func emptyLabels(ls labels.Labels) []string {
	var out []string
	ls.Range(func(l labels.Label) {
		if l.Value == "" {
			out = append(out, l.Name)
		}
	})
	return out
}

func diffSamples(got, want map[string]float64) string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, "missing "+k)
		} else if g != v && !(math.IsNaN(g) && math.IsNaN(v)) {
			d = append(d, fmt.Sprintf("%s = %v, want %v", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "extra "+k)
		}
	}
	sort.Strings(d)
	if len(d) > 20 {
		d = append(d[:20], fmt.Sprintf("… %d more", len(d)-20))
	}
	return strings.Join(d, "\n")
}

// A real Prometheus ingests exactly the samples client_golang's uncached
// handler renders: as it negotiates by default (OpenMetrics, gzip), and
// with native histograms enabled, when it asks for protobuf first.
func TestPrometheusIngestsCachedExposition(t *testing.T) {
	svc, srv, _ := startService(t, staticConfig)
	testenv.Eventually(t, 30*time.Second, "first collection", func() bool { return svc.Runner().Ready() })
	uncached := promhttp.HandlerFor(prometheus.GathererFunc(svc.gatherAll), promhttp.HandlerOpts{EnableOpenMetrics: true})
	body, ct := scrape(t, uncached, "text/plain", false)
	want := samples(t, body, ct)
	for name, flags := range map[string][]string{"openmetrics": nil, "protobuf": {"--enable-feature=native-histograms"}} {
		t.Run(name, func(t *testing.T) {
			bin := testenv.Binary(t, "prometheus")
			dir := t.TempDir()
			cfg := filepath.Join(dir, "prometheus.yml")
			os.WriteFile(cfg, []byte(`
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: servq
    static_configs: [{targets: ["`+strings.TrimPrefix(srv.URL, "http://")+`"]}]
`), 0o644)
			addr := testenv.FreeAddr(t)
			prom := testenv.Start(t, addr, "/-/ready", bin, append([]string{"--config.file=" + cfg,
				"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr, "--log.level=warn"}, flags...)...)
			testenv.Eventually(t, 60*time.Second, "Prometheus to scrape servq", func() bool {
				s, err := testenv.QueryE(prom.URL, `up{job="servq"} == 1 and on() count(servq_tickets_created_total) > 0`)
				return err == nil && len(s) == 1
			})
			got := map[string]float64{}
			for _, s := range testenv.Query(t, prom.URL, `{__name__=~"servq_.+",__name__!~"servq_web_.+",job="servq"}`) {
				delete(s.Metric, "job")
				delete(s.Metric, "instance")
				if volatile[s.Metric["__name__"]] {
					continue
				}
				got[labels.FromMap(s.Metric).String()] = s.Value
			}
			if d := diffSamples(got, want); d != "" {
				t.Errorf("Prometheus ingested other samples than servq serves:\n%s", d)
			}
		})
	}
}

// The status page and /api/v1/slos read only the families of their SLOs
// and KPI targets, not every series servq serves.
func TestStatusGathersOnlyWhatItReads(t *testing.T) {
	svc, _, _ := startService(t, staticConfig)
	testenv.Eventually(t, 30*time.Second, "first collection", func() bool { return svc.Runner().Ready() })
	all, err := svc.gatherAll()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range svc.gatherFor(svc.Config()) {
		names = append(names, mf.GetName())
	}
	sort.Strings(names)
	want := "servq_ticket_slo_events_total servq_tickets_open" // corrections: no series yet
	if got := strings.Join(names, " "); got != want || len(all) < 50 {
		t.Errorf("families read for the status: %s (of %d); want %s", got, len(all), want)
	}
}
