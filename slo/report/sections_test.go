package report

import (
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/config"
)

func TestSections(t *testing.T) {
	for name, c := range map[string]struct {
		yaml string
		want sections
	}{
		"tickets only":    {`collectors: [{name: zd, type: zendesk, schedule: "@every 5m"}]`, sections{}},
		"survey source":   {`collectors: [{name: s, type: survey_webhook, schedule: "@every 5m"}]`, sections{surveys: true}},
		"telephony":       {`collectors: [{name: pbx, type: asterisk_cdr, schedule: "@every 5m"}]`, sections{telephony: true}},
		"demo":            {`collectors: [{name: d, type: demo, schedule: "@every 5m"}]`, sections{surveys: true, telephony: true}},
		"generic":         {`collectors: [{name: x, type: exec, schedule: "@every 5m"}]`, sections{generic: true}},
		"CSAT SLO":        {"slos: [{name: c, indicator: csat, objective: 80}]", sections{surveys: true}},
		"call SLO":        {"slos: [{name: a, indicator: call_abandonment, objective: 95}]", sections{telephony: true}},
		"NPS target":      {"targets: [{name: n, kpi: nps, min: 20, window: 30d}]", sections{surveys: true}},
		"calls waiting":   {"targets: [{name: w, kpi: calls_waiting, max: 5}]", sections{telephony: true}},
		"open tickets":    {"targets: [{name: o, kpi: open_tickets, max: 50}]", sections{}},
		"nothing at all":  {"", sections{}},
		"ticket SLO only": {"slos: [{name: r, indicator: ticket_first_reply, threshold: 1h, objective: 95}]", sections{}},
	} {
		cfg, err := config.Parse([]byte("global: {service: s}\n"+c.yaml+"\n"), "t.yml")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := sectionsOf(cfg); got != c.want {
			t.Errorf("%s: sections %+v, want %+v", name, got, c.want)
		}
	}
}

// An SLO with events never reads "No events", whatever its curve; a
// report without KPIs or calls shows neither section.
func TestRenderWithoutCurveOrSections(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	p, _ := ParsePeriod("2026-10", berlin, fixedNow)
	sli := 99.96
	r := &Report{Schema: Schema, Service: "s", Period: info(p), Previous: info(p.Previous()), GeneratedAt: fixedNow.In(berlin),
		SLOs: []SLO{{Name: "a", Indicator: "ticket_first_reply", Objective: 99.9,
			Figures: Figures{Good: 2499, Bad: 1, Total: 2500, SLI: &sli, Status: "met", Exact: true}}}}
	for _, f := range []string{"md", "html"} {
		b, err := Render(r, f)
		if err != nil {
			t.Fatal(err)
		}
		out := string(b)
		for _, unwanted := range []string{"No events", "Customer KPIs", "calls offered", "survey responses", "Fastest burn"} {
			if strings.Contains(out, unwanted) {
				t.Errorf("%s shows %q", f, unwanted)
			}
		}
		if !strings.Contains(out, "No hour had 5 or more bad events") {
			t.Errorf("%s does not say why no fastest burn is shown", f)
		}
	}
}
