package sources

// Helpers shared by the tests of every source: a config and a source built
// from YAML, one collection run, a quality model over the config, and the
// model's metrics read back for comparison with hand-computed numbers.

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
)

// testConfig parses yml as the config file test.yml (error positions read
// "test.yml:N").
func testConfig(t testing.TB, yml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yml), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// buildCollector builds the first collector of cfg in env.
func buildCollector(t testing.TB, cfg *config.Config, env collectors.Env) collectors.Source {
	t.Helper()
	s, err := collectors.Build(cfg.Collectors[0], env)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// buildSource builds the first collector of the config yml.
func buildSource(t testing.TB, yml string) collectors.Source {
	t.Helper()
	return buildCollector(t, testConfig(t, yml), collectors.Env{})
}

// buildSourceErr is buildSource for configs that may be wrong: it returns
// the error of parsing or building.
func buildSourceErr(yml string) (collectors.Source, error) {
	cfg, err := config.Parse([]byte(yml), "test.yml")
	if err != nil {
		return nil, err
	}
	return collectors.Build(cfg.Collectors[0], collectors.Env{})
}

// recordWaits makes the client return at once instead of sleeping and
// records the waits it would have slept.
func recordWaits(c *apiClient) *[]time.Duration {
	var waits []time.Duration
	c.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return &waits
}

// tryCollect runs s once at now from cursor.
func tryCollect(s collectors.Source, cursor []byte, now time.Time) (*collectors.Batch, []byte, error) {
	b := &collectors.Batch{Now: now}
	next, err := s.Collect(context.Background(), cursor, b)
	return b, next, err
}

// collectOnce runs s once at now from cursor; an error fails the test.
func collectOnce(t testing.TB, s collectors.Source, cursor []byte, now time.Time) (*collectors.Batch, []byte) {
	t.Helper()
	b, next, err := tryCollect(s, cursor, now)
	if err != nil {
		t.Fatal(err)
	}
	return b, next
}

// testModel is a quality model over cfg with its state in a temporary
// directory, closed when the test ends.
func testModel(t testing.TB, cfg *config.Config) *quality.Model {
	t.Helper()
	st, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Values are checked as committed: no new-series delay (TestNewSeries* covers it).
	cfg.Global.NewSeriesDelay = new(config.Duration)
	m, err := quality.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// gatherModel gathers m through a pedantic registry.
func gatherModel(t testing.TB, m *quality.Model) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// familyTotals sums every family over its series: counters and gauges by
// name, histograms as name_count and name_sum.
func familyTotals(t testing.TB, m *quality.Model) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range gatherModel(t, m) {
		for _, s := range mf.Metric {
			switch {
			case s.Histogram != nil:
				out[mf.GetName()+"_count"] += float64(s.Histogram.GetSampleCount())
				out[mf.GetName()+"_sum"] += s.Histogram.GetSampleSum()
			case s.Counter != nil:
				out[mf.GetName()] += s.Counter.GetValue()
			case s.Gauge != nil:
				out[mf.GetName()] += s.Gauge.GetValue()
			}
		}
	}
	return out
}

// seriesValues gathers every series as "name{label=value,...}" (labels
// sorted) -> value; a histogram series gives name_count{...}, name_sum{...}
// and name_bucket{...,le=N} (le last).
func seriesValues(t testing.TB, m *quality.Model) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range gatherModel(t, m) {
		name := mf.GetName()
		for _, s := range mf.Metric {
			var ls []string
			for _, l := range s.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			key := func(suffix string, more ...string) string {
				return name + suffix + "{" + strings.Join(append(ls[:len(ls):len(ls)], more...), ",") + "}"
			}
			switch {
			case s.Histogram != nil:
				out[key("_count")] = float64(s.Histogram.GetSampleCount())
				out[key("_sum")] = s.Histogram.GetSampleSum()
				for _, b := range s.Histogram.Bucket {
					out[key("_bucket", fmt.Sprintf("le=%g", b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				}
			case s.Counter != nil:
				out[key("")] = s.Counter.GetValue()
			case s.Gauge != nil:
				out[key("")] = s.Gauge.GetValue()
			}
		}
	}
	return out
}

// matchingSeries is the series of the family name whose labels include
// every label of want.
func matchingSeries(t testing.TB, m *quality.Model, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	var out []*dto.Metric
	for _, mf := range gatherModel(t, m) {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.Metric {
			have := map[string]string{}
			for _, l := range s.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// seriesSum sums the series of the family name whose labels include want:
// counter and gauge values, histogram sample counts.
func seriesSum(t testing.TB, m *quality.Model, name string, want map[string]string) float64 {
	t.Helper()
	sum := 0.0
	for _, s := range matchingSeries(t, m, name, want) {
		sum += s.GetCounter().GetValue() + s.GetGauge().GetValue() + float64(s.GetHistogram().GetSampleCount())
	}
	return sum
}

// histogramSum sums the observed values (sample sums) of the histogram
// family name over its series whose labels include want.
func histogramSum(t testing.TB, m *quality.Model, name string, want map[string]string) float64 {
	t.Helper()
	sum := 0.0
	for _, s := range matchingSeries(t, m, name, want) {
		sum += s.GetHistogram().GetSampleSum()
	}
	return sum
}

// expectValues checks, in key order, that got holds every key of want
// with its value (within 1e-6).
func expectValues(t testing.TB, got, want map[string]float64) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing, want %g", k, want[k])
		} else if math.Abs(g-want[k]) > 1e-6 {
			t.Errorf("%s = %g, want %g", k, g, want[k])
		}
	}
}

// commitRun commits a run's batch and cursor for the collector named
// collector; an error fails the test.
func commitRun(t testing.TB, m *quality.Model, collector string, b *collectors.Batch, next []byte) {
	t.Helper()
	if _, err := m.Commit(collector, b, next); err != nil {
		t.Fatal(err)
	}
}

// mustRFC3339 parses an RFC 3339 time of a fixture; it panics on a typo.
func mustRFC3339(s string) time.Time {
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return at
}

// findProgram returns the first of paths (absolute, or a name looked up in
// PATH) that is installed. When none is, the test is skipped, or fails
// with SERVQ_INTEGRATION=require (as deploy/testenv.Binary does); debian
// names the Debian package(s) that install it.
func findProgram(t testing.TB, debian string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if filepath.IsAbs(p) {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		} else if lp, err := exec.LookPath(p); err == nil {
			return lp
		}
	}
	msg := fmt.Sprintf("%s not installed (Debian package %s)", paths[0], debian)
	if os.Getenv("SERVQ_INTEGRATION") == "require" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// expectConfigError checks that the config head+spec is rejected with an
// error containing want, and that the error shows none of secrets.
func expectConfigError(t testing.TB, head, spec, want string, secrets ...string) {
	t.Helper()
	_, err := buildSourceErr(head + spec)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%q:\n err = %v\nwant %q", spec, err, want)
	}
	for _, s := range secrets {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("%q: the error shows the secret %q: %v", spec, s, err)
		}
	}
}

// exampleYAML is the documented example entry of a source type,
// testdata/<source>/example.yml.
func exampleYAML(t testing.TB, source string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", source, "example.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pollIntoModel runs s once at each of times (before, when set, first
// moves the vendor fake to that instant), commits each run to a quality
// model of the config yml, and runs s again at once from the cursor the
// run returned: the repeat re-reads the vendor's list from the watermark,
// everything it finds there was delivered, so it must deliver no ticket.
// It returns the ticket ids of each run ("," within a run, "|" between
// runs) and the model's servq_tickets_created_total.
func pollIntoModel(t testing.TB, yml string, s collectors.Source, times []time.Time, before func(time.Time)) (string, float64) {
	t.Helper()
	cfg := testConfig(t, yml)
	m := testModel(t, cfg)
	name := cfg.Collectors[0].Name
	var cur []byte
	var runs []string
	for _, now := range times {
		if before != nil {
			before(now)
		}
		b, next := collectOnce(t, s, cur, now)
		commitRun(t, m, name, b, next)
		var ids []string
		for _, tk := range b.Tickets {
			ids = append(ids, tk.ID)
		}
		runs = append(runs, strings.Join(ids, ","))
		again, next2 := collectOnce(t, s, next, now)
		commitRun(t, m, name, again, next2)
		if len(again.Tickets) != 0 {
			t.Errorf("%s: the run repeated at %s delivered %d tickets again", name, now.Format(time.RFC3339), len(again.Tickets))
		}
		cur = next2
	}
	return strings.Join(runs, "|"), familyTotals(t, m)["servq_tickets_created_total"]
}
