package report

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"

	"encoding/csv"
	"encoding/json"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
)

const reportConfig = `
global: {service: helpdesk, time_zone: UTC}
collectors:
  - {name: svy, type: survey_csv, schedule: "@every 1h"}
slos:
  - name: reply-1h
    indicator: ticket_first_reply
    threshold: 1h
    objective: 99
    error_budget_policy: Freeze routing changes to the billing queue.
`

// knownData is two months of hourly servq counters, from which the
// report's figures follow by hand:
//
//	good replies: 10 every hour, September and October alike
//	bad in support: 1 every day at 12:00 (Sept 30, Oct 31)
//	bad in billing: 1 every day at 12:00 in October only (31)
//
// September: 7200 good + 30 bad = 7230 events, SLI 99.585%.
// October: 7440 good + 62 bad = 7502 events, SLI 99.1735%; the 99%
// objective allows 75.02 bad: 62 is 82.6% of the budget (met, but a risk).
// No hour has 5 bad events (the most is 2 bad of 12 on Oct 1, 11:00-12:00):
// no fastest burn is shown.
func knownData() string {
	var b strings.Builder
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	// Samples every 6 hours, hourly on October 1st (where the worst hour
	// is): the counts are the same, and the input is smaller.
	oct1 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	series := func(labels string, value func(t time.Time, h int) float64) {
		n := 0
		for t := start; !t.After(end); t = t.Add(time.Hour) {
			v := value(t, n)
			n++
			if t.Hour()%6 != 0 && (t.Before(oct1) || !t.Before(oct1.AddDate(0, 0, 1))) {
				continue
			}
			fmt.Fprintf(&b, "servq_ticket_slo_events_total{collector=\"zd\",slo=\"reply-1h\",%s,channel=\"email\",priority=\"normal\"} %g %d\n", labels, v, t.Unix())
		}
	}
	b.WriteString("# TYPE servq_ticket_slo_events counter\n")
	series(`result="good",queue="support"`, func(_ time.Time, h int) float64 { return float64(10 * h) })
	badSupport, badBilling := 0, 0
	series(`result="bad",queue="support"`, func(t time.Time, h int) float64 {
		if h > 0 && t.Hour() == 12 {
			badSupport++
		}
		return float64(badSupport)
	})
	series(`result="bad",queue="billing"`, func(t time.Time, h int) float64 {
		if t.Hour() == 12 && t.After(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)) {
			badBilling++
		}
		return float64(badBilling)
	})
	// Survey counters step once a month, on the 15th at 12:00:
	//   NPS: September 50 promoters, 30 passives, 20 detractors (NPS 30);
	//        October 60, 20, 20 (NPS 40).
	//   SERVQUAL empathy: October expectation 60/10 = 6, perception 40/10
	//        = 4: gap -2; reliability 50/10 both: gap 0. No weights given:
	//        equal weights, weighted gap (-2 + 0) / 2 = -1.
	step := func(family, labels string, sept, oct float64) {
		for t := start; !t.After(end); t = t.Add(6 * time.Hour) {
			v := 0.0
			if !t.Before(time.Date(2026, 9, 15, 12, 0, 0, 0, time.UTC)) {
				v += sept
			}
			if !t.Before(time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC)) {
				v += oct
			}
			fmt.Fprintf(&b, "%s{collector=\"svy\",%s} %g %d\n", family, labels, v, t.Unix())
		}
	}
	b.WriteString("# TYPE servq_nps_responses counter\n")
	step("servq_nps_responses_total", `survey="rel",category="promoter",queue="",channel=""`, 50, 60)
	step("servq_nps_responses_total", `survey="rel",category="passive",queue="",channel=""`, 30, 20)
	step("servq_nps_responses_total", `survey="rel",category="detractor",queue="",channel=""`, 20, 20)
	b.WriteString("# TYPE servq_servqual_score_sum gauge\n")
	step("servq_servqual_score_sum", `survey="sq",dimension="empathy",scale="expectation"`, 0, 60)
	step("servq_servqual_score_sum", `survey="sq",dimension="empathy",scale="perception"`, 0, 40)
	step("servq_servqual_score_sum", `survey="sq",dimension="reliability",scale="expectation"`, 0, 50)
	step("servq_servqual_score_sum", `survey="sq",dimension="reliability",scale="perception"`, 0, 50)
	b.WriteString("# TYPE servq_servqual_score_count gauge\n")
	for _, l := range []string{`dimension="empathy",scale="expectation"`, `dimension="empathy",scale="perception"`, `dimension="reliability",scale="expectation"`, `dimension="reliability",scale="perception"`} {
		step("servq_servqual_score_count", `survey="sq",`+l, 0, 10)
	}
	// CSAT, October only (September has none: null, never NaN): ticket
	// ratings, 10 scores counted with sum 40, 7 satisfied; two of them
	// were changes, whose old scores 1 and 2 (sum 3, not satisfied) are
	// retracted. Net 8 responses: satisfied 7/8 = 87.5 %, mean 37/8 =
	// 4.625 (70 % and 4.0 without the retractions).
	b.WriteString("# TYPE servq_csat_score_count gauge\n")
	step("servq_csat_score_count", `survey="ticket",queue="q",channel="email"`, 0, 10)
	step("servq_csat_retracted_score_count", `survey="ticket",queue="q",channel="email"`, 0, 2)
	b.WriteString("# TYPE servq_csat_score_sum gauge\n")
	step("servq_csat_score_sum", `survey="ticket",queue="q",channel="email"`, 0, 40)
	step("servq_csat_retracted_score_sum", `survey="ticket",queue="q",channel="email"`, 0, 3)
	b.WriteString("# TYPE servq_csat_satisfied counter\n")
	step("servq_csat_satisfied_total", `survey="ticket",queue="q",channel="email"`, 0, 7)
	b.WriteString("# EOF\n")
	return b.String()
}

// startBackfilledPrometheus loads the data with promtool's backfill and
// serves it with a real Prometheus.
func startBackfilledPrometheus(t *testing.T, om string) string {
	t.Helper()
	promtool := testenv.Binary(t, "promtool")
	prom := testenv.Binary(t, "prometheus")
	dir := t.TempDir()
	input := filepath.Join(dir, "data.om")
	if err := os.WriteFile(input, []byte(om), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "tsdb")
	// 30-day blocks: promtool's default of 2 hours makes hundreds of
	// blocks of months of data, which Prometheus opens slowly.
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=720h", input, data).CombinedOutput(); err != nil {
		t.Fatalf("promtool backfill: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte("global: {}\n"), 0o644)
	addr := testenv.FreeAddr(t)
	p := testenv.Start(t, addr, "/-/ready", prom, "--config.file="+cfg, "--storage.tsdb.path="+data,
		"--storage.tsdb.retention.time=10y", "--web.listen-address="+addr, "--log.level=warn")
	return p.URL
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestReports checks reports against hand counts of data backfilled into
// one real Prometheus: knownData in UTC, berlinData around DST months.
func TestReports(t *testing.T) {
	url := startBackfilledPrometheus(t, strings.TrimSuffix(knownData(), "# EOF\n")+berlinData()+"# EOF\n")
	t.Run("utc", func(t *testing.T) { checkUTCReport(t, url) })
	t.Run("berlin-october", func(t *testing.T) { checkBerlinOctober(t, url) })
	t.Run("berlin-week-43", func(t *testing.T) { checkBerlinWeek43(t, url) })
	t.Run("berlin-march", func(t *testing.T) { checkBerlinMarch(t, url) })
	t.Run("berlin-week-13", func(t *testing.T) { checkBerlinWeek13(t, url) })
}

// fixedNow is the clock of every report the tests build.
var fixedNow = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// buildUTCOctober builds the report of October 2026 with reportConfig.
func buildUTCOctober(t *testing.T, url string) (*config.Config, *Report) {
	t.Helper()
	cfg, err := config.Parse([]byte(reportConfig), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePeriod("2026-10", time.UTC, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(context.Background(), cfg, &API{URL: url}, p, time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, r
}

func checkUTCReport(t *testing.T, url string) {
	cfg, r := buildUTCOctober(t, url)
	if len(r.SLOs) != 1 {
		t.Fatalf("%d SLOs", len(r.SLOs))
	}
	s := r.SLOs[0]
	if s.Good != 7440 || s.Bad != 62 || s.Total != 7502 || !near(*s.SLI, 100*7440.0/7502) || s.Status != "met" {
		t.Errorf("October = %+v", s.Figures)
	}
	if !near(s.BudgetAllowed, 75.02) || !near(*s.BudgetSpentRatio, 62/75.02) {
		t.Errorf("budget allowed %v spent ratio %v", s.BudgetAllowed, *s.BudgetSpentRatio)
	}
	if s.Previous.Good != 7200 || s.Previous.Bad != 30 || !near(*s.Trend, 100*7440.0/7502-100*7200.0/7230) {
		t.Errorf("September = %+v, trend %v", s.Previous, *s.Trend)
	}
	if len(s.WorstQueues) != 2 || s.WorstQueues[0].Queue != "billing" || s.WorstQueues[0].Bad != 31 || s.WorstQueues[1].Queue != "support" || s.WorstQueues[1].Bad != 31 {
		t.Errorf("worst queues = %+v", s.WorstQueues)
	}
	if s.WorstBurn != nil {
		t.Errorf("worst burn = %+v, want none (no hour has %d bad events)", s.WorstBurn, minBurnBad)
	}
	if !s.Exact || !s.Previous.Exact {
		t.Errorf("exact = %v, previous %v", s.Exact, s.Previous.Exact)
	}
	if len(s.Curve) != 31 || !near(*s.Curve[0].SLI, 100*240.0/242) || !near(s.Curve[30].BudgetRemaining, 1-62/75.02) {
		t.Errorf("curve: %d points, first %+v, last %+v", len(s.Curve), s.Curve[0], s.Curve[len(s.Curve)-1])
	}
	if s.Policy != "" {
		t.Errorf("policy shown with budget left: %q", s.Policy)
	}
	if r.Summary.Met != 1 || r.Summary.Missed != 0 || len(r.Summary.Risks) != 1 || !strings.Contains(r.Summary.Risks[0], "83% of its error budget") {
		t.Errorf("summary = %+v", r.Summary)
	}
	if r.KPIs == nil {
		t.Fatal("no KPIs although the config has a survey source")
	}
	kpi := map[string]KPI{}
	for _, k := range r.KPIs.List {
		kpi[k.Name] = k
	}
	if k := kpi["NPS"]; k.Value == nil || !near(*k.Value, 40) || k.Previous == nil || !near(*k.Previous, 30) {
		t.Errorf("NPS = %+v", k)
	}
	if k := kpi["SERVQUAL weighted gap"]; k.Value == nil || !near(*k.Value, -1) || k.Previous != nil {
		t.Errorf("weighted gap = %+v", k)
	}
	// Net of retracted ticket ratings; September had no CSAT responses
	// at all: null, never NaN.
	if k := kpi["CSAT satisfied"]; k.Value == nil || !near(*k.Value, 87.5) || k.Previous != nil {
		t.Errorf("CSAT satisfied = %+v, want 87.5 and no previous", k)
	}
	if k := kpi["CSAT average"]; k.Value == nil || !near(*k.Value, 4.625) || k.Previous != nil {
		t.Errorf("CSAT average = %+v, want 4.625 and no previous", k)
	}
	gaps := map[string]Gap{}
	for _, g := range r.KPIs.ServqualGaps {
		gaps[g.Dimension] = g
	}
	if g := gaps["empathy"]; g.Gap == nil || !near(*g.Gap, -2) || !near(*g.Expectation, 6) || !near(*g.Perception, 4) {
		t.Errorf("empathy = %+v", g)
	}
	if g := gaps["reliability"]; g.Gap == nil || !near(*g.Gap, 0) {
		t.Errorf("reliability = %+v", g)
	}
	if g := gaps["tangibles"]; g.Gap != nil {
		t.Errorf("tangibles without answers = %+v", g)
	}
	if len(s.WorstChannels) != 1 || s.WorstChannels[0].Queue != "email" || s.WorstChannels[0].Bad != 62 {
		t.Errorf("worst channels = %+v", s.WorstChannels)
	}
	if v := r.Volumes.Current; v.CallsOffered != nil || v.SurveyResponses == nil {
		t.Errorf("volumes = %+v: want survey responses (a survey source) and no calls (no telephony)", v)
	}
	checkRenders(t, r)
	checkBrowserRendering(t, r, "SLI of reply-1h", "99.17%", "7440 / 7502", "<h2>Summary</h2>")
	checkScheduledReport(t, cfg, url)
	// A period with no data at all: no NaN, status no_data.
	empty, _ := ParsePeriod("2025-03", time.UTC, fixedNow)
	r2, err := Build(context.Background(), cfg, &API{URL: url}, empty, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if e := r2.SLOs[0]; e.Status != "no_data" || e.SLI != nil || e.Total != 0 || e.BudgetSpentRatio != nil {
		t.Errorf("empty period = %+v", e.Figures)
	}
}

// The four formats carry the same figures.
func checkRenders(t *testing.T, r *Report) {
	t.Helper()
	out := map[string]string{}
	for _, f := range Formats {
		b, err := Render(r, f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = string(b)
	}
	var back Report
	if err := json.Unmarshal([]byte(out["json"]), &back); err != nil || back.Schema != Schema || back.SLOs[0].Total != 7502 {
		t.Errorf("JSON does not round-trip: %v", err)
	}
	if strings.Contains(out["json"], "NaN") || strings.Contains(out["md"], "NaN") || strings.Contains(out["html"], "NaN") {
		t.Error("NaN in a report")
	}
	for _, want := range []string{"| reply-1h | 99% | 99.17% | 7440 / 7502 | 75.0 | 62 (83%) | met | -0.41 pp |", "- billing: 31 bad of 31 (41% of the budget)", "1 of 1 SLOs met",
		"No hour had 5 or more bad events", "Generated 2026-11-23 08:00 UTC", "| survey responses | 0 | 0 |", "## Customer KPIs"} {
		if !strings.Contains(out["md"], want) {
			t.Errorf("Markdown lacks %q:\n%s", want, out["md"])
		}
	}
	if strings.Contains(out["md"], "calls offered") {
		t.Error("call volumes in a report whose config reads no telephony")
	}
	rows, err := csv.NewReader(strings.NewReader(out["csv"])).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][1] != "reply-1h" || rows[1][6] != "7502" || rows[1][11] != "met" || rows[1][14] != "billing" {
		t.Errorf("CSV = %v %v", rows, err)
	}
	for _, want := range []string{"<svg", "SLI of reply-1h", "Error budget remaining of reply-1h", "99.17%", "SERVQUAL gap per dimension",
		`class="tick" text-anchor="end">100.0%</text>`, `text-anchor="start">Oct 1</text>`, `class="sli"`} {
		if !strings.Contains(out["html"], want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}

// The HTML opens in a real headless Chromium: the DOM it builds holds the
// figures and the charts, and a screenshot is kept as an artifact
// ($SERVQ_ARTIFACTS, default a temporary directory).
func checkBrowserRendering(t *testing.T, r *Report, wants ...string) {
	t.Helper()
	dir := t.TempDir()
	html := filepath.Join(dir, "report.html")
	b, err := Render(r, "html")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(html, b, 0o644)
	artifacts := os.Getenv("SERVQ_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(os.TempDir(), "servq-artifacts")
	}
	os.MkdirAll(artifacts, 0o755)
	shot := filepath.Join(artifacts, fmt.Sprintf("slo-report-%s-%s.png", r.Period.Name, strings.ReplaceAll(r.Period.Start.Location().String(), "/", "-")))
	dom := testenv.Browse(t, "file://"+html, shot, 1200, 2400)
	for _, want := range append([]string{"<svg"}, wants...) {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM Chromium built lacks %q", want)
		}
	}
	// The SLI line and the budget line are drawn where a reader sees
	// them: the screenshot has pixels of their colours (.sli #1565c0,
	// .budget #6a1b9a), a line's worth of each.
	colours := map[string][3]int{"SLI line": {0x15, 0x65, 0xc0}, "budget line": {0x6a, 0x1b, 0x9a}}
	seen := testenv.CountColours(t, shot, colours)
	for name := range colours {
		if seen[name] < 400 {
			t.Errorf("the screenshot shows %d pixels of the %s: not visible", seen[name], name)
		}
	}
}

// A configured report runs on its schedule: files named
// <name>-<period>.<format>, the summary POSTed to the webhook, success
// counted; a report whose API is down is retried, counted and given up.
func checkScheduledReport(t *testing.T, cfg *config.Config, url string) {
	t.Helper()
	var posted []map[string]any
	var mu sync.Mutex
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		posted = append(posted, m)
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	c := *cfg
	c.Reports = []*config.Report{
		{Name: "monthly", Schedule: "@every 1h", Period: "month", PrometheusURL: url, Formats: Formats, Directory: dir, WebhookURL: config.Secret(hook.URL), TimeZone: "UTC"},
		{Name: "broken", Schedule: "@every 1h", Period: "month", PrometheusURL: "http://127.0.0.1:1", Formats: []string{"json"}, Directory: dir, TimeZone: "UTC"},
	}
	reg := prometheus.NewRegistry()
	s, err := NewScheduler(&c, NewMetrics(reg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC) }
	s.Retries = []time.Duration{time.Millisecond, time.Millisecond}
	s.Run(c.Reports[0])
	s.Run(c.Reports[1])
	for _, f := range Formats {
		if _, err := os.Stat(filepath.Join(dir, "monthly-2026-10."+f)); err != nil {
			t.Errorf("scheduled report file: %v", err)
		}
	}
	if len(posted) != 1 || !strings.Contains(posted[0]["text"].(string), "SLO report 2026-10 (helpdesk): 1 of 1 SLOs met.") {
		t.Errorf("webhook got %v", posted)
	}
	want := map[string]float64{"monthly/success": 1, "broken/error": 2, "broken/failed": 1, "broken/success": 0}
	mfs, _ := reg.Gather()
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "servq_report_runs_total" {
			continue
		}
		for _, m := range mf.Metric {
			l := map[string]string{}
			for _, p := range m.Label {
				l[p.GetName()] = p.GetValue()
			}
			got[l["report"]+"/"+l["result"]] = m.Counter.GetValue()
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("servq_report_runs_total %s = %v, want %v", k, got[k], v)
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{98.85, 100, "99 99.5 100 / 1"},
		{-0.6, 1.05, "-0.5 0 0.5 1 / 1"},
		{99.885, 100, "99.9 99.95 100 / 2"},
		{-35, 105, "0 50 100 / 0"}, // ceil(-0.7) is -0: printed as 0
	} {
		ticks, dec := niceTicks(c.lo, c.hi, 4)
		var parts []string
		for _, v := range ticks {
			parts = append(parts, strconv.FormatFloat(v, 'f', -1, 64))
		}
		if got := strings.Join(parts, " ") + " / " + strconv.Itoa(dec); got != c.want {
			t.Errorf("ticks of [%v, %v] = %s, want %s", c.lo, c.hi, got, c.want)
		}
	}
}
