package config

import (
	"testing"
	"time"
)

// The embedded demo parses, and its SLOs are the documented examples: one
// on each built-in indicator, with the thresholds and objectives the demo
// simulation is tuned to.
func TestDemoConfigSLOs(t *testing.T) {
	cfg, err := Demo()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != DemoFile || cfg.Global.Service != "demo-contact-centre" || cfg.Model.BusinessHours != "office" {
		t.Errorf("file %q, service %q, model.business_hours %q", cfg.File, cfg.Global.Service, cfg.Model.BusinessHours)
	}
	if len(cfg.BusinessHours) != 1 || cfg.BusinessHours[0].TimeZone != "Europe/Berlin" ||
		len(cfg.BusinessHours[0].Weekly) != 5 || len(cfg.BusinessHours[0].Holidays) < 2 {
		t.Errorf("business_hours = %+v, want office: Europe/Berlin, mon-fri, holidays", cfg.BusinessHours)
	}
	if len(cfg.Collectors) != 1 || cfg.Collectors[0].Name != "demo" || cfg.Collectors[0].Type != "demo" ||
		cfg.Collectors[0].Schedule != "@every 15s" {
		t.Errorf("collectors = %+v, want one demo collector every 15s", cfg.Collectors)
	}
	type slo struct {
		indicator string
		threshold time.Duration
		hours     string
		policy    string
		objective float64
	}
	want := map[string]slo{
		"first-reply-4h":      {"ticket_first_reply", 4 * time.Hour, "office", "", 90},
		"resolution-24h":      {"ticket_resolution", 24 * time.Hour, "", "", 85},
		"fcr":                 {"ticket_fcr", 0, "", "", 70},
		"phone-service-level": {"call_service_level", 20 * time.Second, "", AbandonExcludeShort, 80},
		"abandonment":         {"call_abandonment", 0, "", "", 95},
		"csat":                {"csat", 0, "", "", 85},
	}
	if len(cfg.SLOs) != len(want) {
		t.Errorf("%d SLOs, want %d", len(cfg.SLOs), len(want))
	}
	for _, s := range cfg.SLOs {
		got := slo{s.Indicator, s.Threshold.D(), s.BusinessHours, s.AbandonPolicy, s.Objective}
		if w, ok := want[s.Name]; !ok || got != w {
			t.Errorf("SLO %s = %+v, want %+v", s.Name, got, w)
		}
		if s.Window.D() != 28*24*time.Hour || s.Description == "" {
			t.Errorf("SLO %s: window %s (want 28d), description %q", s.Name, s.Window, s.Description)
		}
	}
}
