package app

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// /metrics lists every SLO input of the running config in
// servq_slo_input_info before any record counted in it (a collector that
// never ran), and a reload that changes an SLO's filter replaces its
// definitions: what ServqSLOInputNotServed compares with the rules.
func TestSLOInputInfoFollowsTheConfig(t *testing.T) {
	const cfgText = `
collectors:
  - {name: pbx, type: demo, schedule: "0 0 1 1 *"}
slos:
  - {name: abandon, indicator: call_abandonment, objective: 95, filters: {queue: %s}}
`
	series := func(queue string) []string {
		cfg, err := config.Parse([]byte(fmt.Sprintf(cfgText, queue)), "t.yml")
		if err != nil {
			t.Fatal(err)
		}
		ins, err := sli.Inputs(cfg, cfg.SLOs[0])
		if err != nil || len(ins) == 0 {
			t.Fatalf("inputs %v, %v", ins, err)
		}
		var out []string
		for _, in := range ins {
			out = append(out, fmt.Sprintf(`%s{definition="%s",input="%s",slo="%s"} 1`, sli.SLOInputInfo, in.Definition, in.Name, in.SLO))
		}
		return out
	}
	svc, srv, file := startService(t, fmt.Sprintf(cfgText, "sales"))
	check := func(want, gone []string) {
		t.Helper()
		_, m := get(t, srv.URL+"/metrics")
		for _, s := range want {
			if !strings.Contains(m, s) {
				t.Errorf("/metrics lacks %s", s)
			}
		}
		for _, s := range gone {
			if strings.Contains(m, s) {
				t.Errorf("/metrics still has %s", s)
			}
		}
	}
	sales, support := series("sales"), series("support")
	check(sales, nil)
	if err := os.WriteFile(file, []byte(fmt.Sprintf(cfgText, "support")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := svc.Reload(); err != nil {
		t.Fatal(err)
	}
	check(support, sales)
}
