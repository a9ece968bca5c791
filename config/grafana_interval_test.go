package config

import (
	"strings"
	"testing"
	"time"
)

// Grafana refuses rule groups whose interval is not a multiple of its 10s
// base interval: servq check says so at the key that sets the interval of
// the Grafana-managed rules, with a usable value, instead of servq
// dashboards failing after creating the rules.
func TestGrafanaRuleIntervalMustBeMultipleOf10s(t *testing.T) {
	for _, c := range []struct {
		rules string
		want  string // "" for accepted
		eval  time.Duration
	}{
		{"", "", time.Minute},
		{"  interval: 30s\n", "", 30 * time.Second},
		{"  interval: 15s\n", "g.yml:2: rules.interval: 15s is not a multiple of 10s, which Grafana-managed alert rules (servq dashboards) need: set rules.grafana_interval to one for them (e.g. 20s), or make rules.interval one", 0},
		{"  interval: 15s\n  grafana_interval: 20s\n", "", 20 * time.Second},
		{"  grafana_interval: 15s\n", "g.yml:2: rules.grafana_interval: 15s is not a multiple of 10s: Grafana evaluates rule groups in steps of 10s and refuses other intervals; use 20s", 0},
		{"  interval: 1m\n  grafana_interval: 1m5s\n", "rules.grafana_interval: 1m5s is not a multiple of 10s", 0},
	} {
		src := "rules:\n" + c.rules
		if c.rules == "" {
			src = "rules: {}\n"
		}
		cfg, err := Parse([]byte(src), "g.yml")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.rules, err)
		case c.want == "":
			if got := cfg.Rules.GrafanaRuleInterval(); got != c.eval {
				t.Errorf("%q: Grafana interval %s, want %s", c.rules, got, c.eval)
			}
		case err == nil || !strings.Contains(err.Error(), c.want):
			t.Errorf("%q: error %v, want %q", c.rules, err, c.want)
		}
	}
}
