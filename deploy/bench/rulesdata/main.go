// Command rulesdata writes the history of deploy/bench/rules.sh as
// OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`, and
// the servq config of its SLOs: call counters of `-combos` label
// combinations (queue × channel) over `-days` days, sparse (every
// `-sparse`) but for the last `-dense-for`, which is sampled every
// `-scrape` as Prometheus would scrape servq; and the step recordings of
// the SLOs' rules (servq:slo_*:increase1m) every minute and the term
// period sums (servq:slo_term_events:period hourly, open_period every
// minute) over the whole history, with the values the rules would have
// recorded, so that the rules evaluated at the end read full windows of
// their own series; and, sampled like the raw counters, the SLOs' inputs
// as servq pre-sums them (servq_slo_input_total: per SLO and input, the
// sum over the label combinations), which the step rule reads.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// terms are the counter selectors the SLOs' rules read (the servq_term
// of their term recordings, sli.Term.Selector) and their increments per
// scrape interval and label combination (from perScrape).
var terms = []struct {
	term sli.Term
	inc  int
}{
	{sli.Term{Metric: "servq_calls_offered_total"}, 6},
	{sli.Term{Metric: "servq_calls_answered_total"}, 4},
	{sli.Term{Metric: "servq_calls_abandoned_total"}, 2},
	{sli.Term{Metric: "servq_calls_abandoned_short_total"}, 1},
	{sli.Term{Metric: "servq_call_wait_seconds_bucket", Matchers: map[string]string{"outcome": "answered"}, Le: ptr(20)}, 3},
	{sli.Term{Metric: "servq_call_wait_seconds_bucket", Matchers: map[string]string{"outcome": "answered"}, Le: ptr(60)}, 4},
}

func ptr(v float64) *float64 { return &v }

// perScrape are the increments of each counter of one label combination
// per dense scrape interval (and, scaled, per sparse step).
var perScrape = []struct {
	name, extra string
	inc         int
}{
	{"servq_calls_offered_total", "", 6},
	{"servq_calls_answered_total", "", 4},
	{"servq_calls_abandoned_total", "", 2},
	{"servq_calls_abandoned_short_total", "", 1},
	{"servq_call_wait_seconds_bucket", `,outcome="answered",le="20.0"`, 3},
	{"servq_call_wait_seconds_bucket", `,outcome="answered",le="60.0"`, 4},
	{"servq_call_wait_seconds_bucket", `,outcome="answered",le="+Inf"`, 4},
}

// inputInc is the increment of an SLO input per scrape interval and label
// combination (from perScrape), by input and bucket bound.
func inputInc(in sli.Input) int {
	switch in.Name {
	case "offered":
		return 6
	case "answered":
		return 4
	case "abandoned":
		return 2
	case "short":
		return 1
	case "answered_within":
		if *in.Term.Le == 20 {
			return 3
		}
		return 4
	}
	log.Fatalf("rulesdata: no increment for input %s of %s", in.Name, in.SLO)
	return 0
}

// kinds are the SLOs, repeated with different objectives and windows up
// to -slos: their config line and their bad and total events per scrape
// interval and label combination (from perScrape).
var kinds = []struct {
	config     string
	bad, total int
}{
	{"indicator: call_abandonment", 2 - 1, 6 - 1},
	{"indicator: call_service_level, threshold: 20s, abandon_policy: count_as_bad", 6 - 3, 6},
	{"indicator: call_service_level, threshold: 60s, abandon_policy: exclude_short", 6 - 1 - 4, 6 - 1},
	{"indicator: call_service_level, threshold: 20s, abandon_policy: exclude_all", 4 - 3, 4},
}

// origin is the time from which counters count (2023-11-14).
const origin = 1_700_000_000

func main() {
	var (
		out      = flag.String("out", "history.om", "OpenMetrics output")
		cfgOut   = flag.String("config", "servq.yml", "servq config output")
		combos   = flag.Int("combos", 5000, "label combinations (queue × channel)")
		slos     = flag.Int("slos", 50, "SLOs")
		days     = flag.Int("days", 28, "days of history")
		sparse   = flag.Duration("sparse", time.Hour, "sample interval of the raw counters before the dense part")
		denseFor = flag.Duration("dense-for", 2*time.Hour, "last part of the history sampled every -scrape")
		scrape   = flag.Duration("scrape", 30*time.Second, "scrape interval of the dense part")
		endUnix  = flag.Int64("end", time.Now().Unix(), "end of the history (Unix seconds)")
		from     = flag.Int64("from", 0, "write only samples after this time (Unix seconds): to extend a history written before up to -end")
	)
	flag.Parse()
	end := time.Unix(*endUnix, 0).Truncate(time.Minute)
	start := end.Add(-time.Duration(*days) * 24 * time.Hour)
	denseFrom := end.Add(-*denseFor)

	// Raw sample times, and the scrape intervals since a fixed origin
	// that each counter's value is a function of: a history extended
	// later (-from) continues every counter without a reset.
	type point struct {
		t     time.Time
		units int64
	}
	var points []point
	after := time.Unix(*from, 0)
	at := func(t time.Time) {
		if t.After(after) {
			points = append(points, point{t, (t.Unix() - origin) / int64(*scrape/time.Second)})
		}
	}
	for t := start; t.Before(denseFrom); t = t.Add(*sparse) {
		at(t)
	}
	for t := denseFrom; !t.After(end); t = t.Add(*scrape) {
		at(t)
	}

	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, m := range perScrape {
		for c := 0; c < *combos; c++ {
			labels := fmt.Sprintf(`{collector="pbx",queue="q%04d",channel="ch%d"%s}`, c/4, c%4, m.extra)
			for _, p := range points {
				fmt.Fprintf(w, "%s%s %d %d\n", m.name, labels, int64(m.inc)*p.units, p.t.Unix())
			}
		}
	}
	var cfg = "global: {service: bench}\ncollectors:\n  - {name: pbx, type: demo, schedule: \"@every 1m\"}\nslos:\n"
	for i := 0; i < *slos; i++ {
		k := kinds[i%len(kinds)]
		window := []string{"28d", "30d", "7d"}[i%3]
		objective := []string{"80", "90", "95", "99"}[(i/3)%4]
		cfg += fmt.Sprintf("  - {name: slo-%02d, %s, objective: %s, window: %s}\n", i, k.config, objective, window)
	}
	parsed, err := config.Parse([]byte(cfg), *cfgOut)
	if err != nil {
		log.Fatal(err)
	}
	// The SLO inputs, sampled like the raw counters: the sums over the
	// label combinations.
	for _, s := range parsed.SLOs {
		ins, err := sli.Inputs(parsed, s)
		if err != nil {
			log.Fatal(err)
		}
		for _, in := range ins {
			labels := fmt.Sprintf(`{collector="pbx",slo=%q,input=%q,definition=%q}`, in.SLO, in.Name, in.Definition)
			for _, p := range points {
				fmt.Fprintf(w, "%s%s %d %d\n", sli.SLOInput, labels, int64(inputInc(in))*int64(*combos)*p.units, p.t.Unix())
			}
		}
	}
	// Step recordings: per minute, the events of two scrape intervals of
	// every combination. In the sparse part the raw counters are not
	// sampled every minute, but the recordings of a Prometheus that
	// scraped all along would be these.
	perMinute := int(time.Minute / *scrape)
	for i := 0; i < *slos; i++ {
		k := kinds[i%len(kinds)]
		name := fmt.Sprintf("slo-%02d", i)
		for _, rec := range []struct {
			name string
			v    int
		}{{"servq:slo_bad_events:increase1m", k.bad}, {"servq:slo_events:increase1m", k.total}} {
			labels := fmt.Sprintf(`{sloth_id="bench-%s",sloth_service="bench",sloth_slo="%s",sloth_window="1m"}`, name, name)
			for t := start; !t.After(end); t = t.Add(time.Minute) {
				if !t.After(after) {
					continue
				}
				fmt.Fprintf(w, "%s%s %d %d\n", rec.name, labels, rec.v*perMinute**combos, t.Unix())
			}
		}
	}
	// The term period sums (servq:slo_term_events:period once an hour,
	// open_period every minute) and the step counts of each term
	// ("steps:<selector>", 1 a minute).
	type series struct {
		term      string
		perMinute int
	}
	var all []series
	for _, t := range terms {
		all = append(all, series{t.term.Selector(), t.inc * perMinute * *combos}, series{"steps:" + t.term.Selector(), 1})
	}
	for _, sr := range all {
		label := fmt.Sprintf("{servq_term=%s}", strconv.Quote(sr.term))
		for t := start; !t.After(end); t = t.Add(time.Minute) {
			if !t.After(after) {
				continue
			}
			open := int(t.Unix()%3600) / 60
			if open == 0 {
				fmt.Fprintf(w, "servq:slo_term_events:period%s %d %d\n", label, 60*sr.perMinute, t.Unix())
			}
			fmt.Fprintf(w, "servq:slo_term_events:open_period%s %d %d\n", label, open*sr.perMinute, t.Unix())
		}
	}
	fmt.Fprintln(w, "# EOF")
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*cfgOut, []byte(cfg), 0o644); err != nil {
		log.Fatal(err)
	}
}
