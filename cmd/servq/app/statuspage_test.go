package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/slo/status"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startAt starts a service on cfgText ("" for the embedded demo) with the
// clock, waits for the first run and the first SLO sample (the baseline),
// then runs every collector each step up to until, sampling the SLOs after
// each run, as the minute sampler would.
func startAt(t *testing.T, cfgText string, clock *fakeClock, step, until time.Duration) (*Service, string) {
	t.Helper()
	dir := t.TempDir()
	file := ""
	if cfgText != "" {
		file = filepath.Join(dir, "servq.yml")
		if err := os.WriteFile(file, []byte(cfgText), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := New(Options{ConfigFile: file, StoragePath: filepath.Join(dir, "data"), Logger: quietLogger(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	srvURL := serve(t, svc)
	testenv.Eventually(t, 20*time.Second, "first collection and first status sample", func() bool {
		st := svc.SLOStatus(clock.Now())
		return svc.Runner().Ready() && len(st) > 0 && st[0].Computed
	})
	for d := time.Duration(0); d < until; d += step {
		clock.Add(step)
		for _, name := range svc.Runner().Names() {
			// A run of the scheduler at the same moment is harmless: it
			// reads the same clock.
			svc.Runner().Run(name)
		}
		svc.ObserveSLOs(clock.Now())
	}
	return svc, srvURL
}

func serve(t *testing.T, svc *Service) string {
	t.Helper()
	srv := httptest.NewServer(svc.Handler("/metrics"))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Shutdown(ctx)
	})
	return srv.URL
}

const statusPageConfig = `
global: {service: test, time_zone: Europe/Berlin}
collectors:
  - name: sim
    type: demo
    schedule: "@every 1h"
    backfill: 24h
slos:
  - {name: reply, indicator: ticket_first_reply, threshold: 4h, objective: 90, window: 1d}
targets:
  - {name: nps, kpi: nps, min: 30, description: NPS of the last 7 days}
  - {name: backlog, kpi: open_tickets, max: 100000}
`

// The status page, opened in a real headless Chromium, shows each SLO's
// charts, burn rates and alert pairs with the very numbers of
// /api/v1/slos, every time in global.time_zone, and the collectors'
// totals since start.
func TestStatusPageInChromium(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	// Six hours in 30-minute runs: a quarter of the 1d window seen.
	svc, url := startAt(t, statusPageConfig, clock, 30*time.Minute, 6*time.Hour)
	_, body := get(t, url+"/api/v1/slos")
	var resp struct{ Data []status.SLO }
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Data) != 1 {
		t.Fatalf("/api/v1/slos: %v %s", err, body)
	}
	d := resp.Data[0]
	if d.Total < status.MinEvents || d.Coverage < status.MinCoverage || d.State == "collecting" || len(d.BurnRates) != 3 || len(d.Alerts) == 0 {
		t.Fatalf("fixture too thin: %+v", d)
	}
	_, page := get(t, url+"/")
	// The screenshot is an artifact: in $SERVQ_ARTIFACTS when set (as for
	// the reports), else in the test's temporary directory.
	dir := os.Getenv("SERVQ_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	shot := filepath.Join(dir, "status-page.png")
	dom := testenv.Browse(t, url+"/", shot, 420, 3200) // a phone's width
	wants := []string{
		`All times in <strong>Europe/Berlin</strong>`, `2026-11-28 19:00:00 CET`, // page built at 18:00 UTC
		`aria-label="SLI of reply`, `aria-label="Error budget remaining of reply`, `class="sli"`, `class="budget"`,
		`<td class="sli-value">` + fmt.Sprintf("%.2f%%", *d.SLI) + `</td>`,
		`<td class="counts">` + fmt.Sprintf("%.0f / %.0f", d.Good, d.Total) + `</td>`,
		`<td class="budget-value">` + fmt.Sprintf("%.1f%%", 100*d.BudgetRemaining) + `</td>`,
		`<th scope="row">6h</th><td>` + fmt.Sprintf("%.2f×", d.BurnRates[1].BurnRate) + `</td>`,
		`<th scope="row">nps</th>`, `computed by Prometheus`, `<th scope="row">backlog</th>`,
		`<th scope="col">rejected (last / since start)</th>`,
	}
	for _, a := range d.Alerts {
		state := "not firing"
		if a.Firing {
			state = "firing"
		}
		wants = append(wants, fmt.Sprintf(`<td>%s and %s</td><td>%.2f%% (%.4g×)</td><td>%.2f%% / %.2f%%</td><td><span class="%s">%s</span>`,
			a.Long, a.Short, 100*a.Threshold, a.Factor, 100*a.LongRatio, 100*a.ShortRatio, map[bool]string{true: "err", false: "ok"}[a.Firing], state))
	}
	for _, w := range wants {
		if !strings.Contains(dom, w) {
			t.Errorf("the page lacks %q", w)
		}
	}
	// No time on the page is in another zone.
	if m := regexp.MustCompile(`\d\d:\d\d:\d\d (UTC|GMT)`).FindString(dom); m != "" {
		t.Errorf("the page shows %q, not in Europe/Berlin", m)
	}
	// No script and no external asset: usable without JavaScript.
	if strings.Contains(page, "<script") || regexp.MustCompile(`(src|href)="(https?:)?//`).MatchString(page) {
		t.Error("the page loads a script or an external asset")
	}
	// The collector's totals count every run since start.
	c := svc.Runner().Statuses()[0]
	if c.TotalRecords <= c.Records || !strings.Contains(dom, fmt.Sprintf("<td>%d / %d</td>", c.Records, c.TotalRecords)) {
		t.Errorf("collector totals %d (last %d) not on the page", c.TotalRecords, c.Records)
	}
	// Its watermark (newest record, from the demo's fake clock) too, in
	// the page's zone.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if c.Watermark.IsZero() || !strings.Contains(dom, `<td class="watermark">`+c.Watermark.In(berlin).Format("2006-01-02 15:04:05 MST")+`</td>`) {
		t.Errorf("watermark %v not on the page", c.Watermark)
	}
	// The backlog target's value is the sum of servq_tickets_open on
	// /metrics.
	_, metrics := get(t, url+"/metrics")
	var open float64
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "servq_tickets_open{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			open += v
		}
	}
	if want := fmt.Sprintf(`<span class="kpi-value ok">%g tickets</span> (met)`, open); open == 0 || !strings.Contains(dom, want) {
		t.Errorf("the page lacks %q", want)
	}
	colours := map[string][3]int{"SLI line": {0x15, 0x65, 0xc0}, "budget line": {0x6a, 0x1b, 0x9a}}
	// The lines' pixels are counted on a desktop-wide screenshot, where
	// the charts are drawn at their full 640 units.
	wide := filepath.Join(dir, "status-page-wide.png")
	testenv.Browse(t, url+"/", wide, 1100, 3000)
	seen := testenv.CountColours(t, wide, colours)
	for name := range colours {
		if seen[name] < 200 {
			t.Errorf("the screenshot shows %d pixels of the %s: not visible", seen[name], name)
		}
	}
}

// The demo ten minutes into its 28d windows says "collecting data", not
// "exhausted", whatever its first minutes looked like.
func TestDemoEarlyShowsCollecting(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)} // a Monday, open hours
	svc, url := startAt(t, "", clock, time.Minute, 10*time.Minute)
	counted := false
	for _, s := range svc.SLOStatus(clock.Now()) {
		if s.State == "exhausted" || s.State == "burning" || s.State == "ok" {
			t.Errorf("%s 10 minutes in: %s", s.Name, s.State)
		}
		counted = counted || s.Total > 0
	}
	if !counted {
		t.Fatal("the demo counted nothing in 10 minutes: the test shows nothing")
	}
	_, page := get(t, url+"/")
	if !strings.Contains(page, "collecting data: 0% of the window seen") || strings.Contains(page, `class="err">budget exhausted`) {
		t.Errorf("the demo's page early in the window does not say it is collecting data")
	}
}
