package report

import (
	"context"
	"fmt"

	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

func term(metric string, matchers ...string) []sli.Term {
	m := map[string]string{}
	for i := 0; i+1 < len(matchers); i += 2 {
		m[matchers[i]] = matchers[i+1]
	}
	return []sli.Term{{Sign: 1, Metric: metric, Matchers: m}}
}

func ratio(num, den float64, scale float64) *float64 {
	if den <= 0 {
		return nil
	}
	v := scale * num / den
	return &v
}

// kpis computes the survey KPIs of both periods from exact counts: NPS,
// CSAT (satisfied share and mean), CES mean, SERVQUAL gaps and the
// weighted index; configured survey targets are judged on them.
func (b *builder) kpis(ctx context.Context, cfg *config.Config, p, prev Period) (KPIs, error) {
	type values struct {
		nps, csatSat, csatAvg, ces, weighted *float64
		gaps                                 map[string][3]*float64 // E, P, gap
	}
	one := func(metric string, p Period, matchers ...string) (float64, error) {
		d, _, err := b.sum(ctx, term(metric, matchers...), p, "")
		return d[""], err
	}
	compute := func(p Period) (values, error) {
		var v values
		nps, _, err := b.sum(ctx, term("servq_nps_responses_total"), p, "category")
		if err != nil {
			return v, err
		}
		n := nps["promoter"] + nps["passive"] + nps["detractor"]
		v.nps = ratio(nps["promoter"]-nps["detractor"], n, 100)
		// A changed ticket rating counted its new score and retracted
		// the old one: net of retractions, each response counts once.
		net := func(metric, retracted string) (float64, error) {
			v, err := one(metric, p)
			if err != nil {
				return 0, err
			}
			r, err := one(retracted, p)
			return v - r, err
		}
		sat, err := net("servq_csat_satisfied_total", "servq_csat_satisfied_retracted_total")
		if err != nil {
			return v, err
		}
		cnt, err := net("servq_csat_score_count", "servq_csat_retracted_score_count")
		if err != nil {
			return v, err
		}
		sum, err := net("servq_csat_score_sum", "servq_csat_retracted_score_sum")
		if err != nil {
			return v, err
		}
		v.csatSat, v.csatAvg = ratio(sat, cnt, 100), ratio(sum, cnt, 1)
		csum, err := one("servq_ces_score_sum", p)
		if err != nil {
			return v, err
		}
		ccnt, err := one("servq_ces_score_count", p)
		if err != nil {
			return v, err
		}
		v.ces = ratio(csum, ccnt, 1)
		v.gaps = map[string][3]*float64{}
		means := map[string]map[string]*float64{}
		for _, scale := range []string{"expectation", "perception"} {
			s, _, err := b.sum(ctx, term("servq_servqual_score_sum", "scale", scale), p, "dimension")
			if err != nil {
				return v, err
			}
			c, _, err := b.sum(ctx, term("servq_servqual_score_count", "scale", scale), p, "dimension")
			if err != nil {
				return v, err
			}
			means[scale] = map[string]*float64{}
			for _, d := range record.Dimensions {
				means[scale][d] = ratio(s[d], c[d], 1)
			}
		}
		points, _, err := b.sum(ctx, term("servq_servqual_weight_points_total"), p, "dimension")
		if err != nil {
			return v, err
		}
		var wsum, wgap, allPoints float64
		for _, d := range record.Dimensions {
			allPoints += points[d]
		}
		for _, d := range record.Dimensions {
			e, pe := means["expectation"][d], means["perception"][d]
			var gap *float64
			if e != nil && pe != nil {
				g := *pe - *e
				gap = &g
				// Weights: configured, else respondents' points, else equal.
				w := 1.0
				switch {
				case len(cfg.Model.ServqualWeights) > 0:
					w = cfg.Model.ServqualWeights[d]
				case allPoints > 0:
					w = points[d]
				}
				wsum += w
				wgap += w * g
			}
			v.gaps[d] = [3]*float64{e, pe, gap}
		}
		v.weighted = ratio(wgap, wsum, 1)
		return v, nil
	}
	cur, err := compute(p)
	if err != nil {
		return KPIs{}, err
	}
	old, err := compute(prev)
	if err != nil {
		return KPIs{}, err
	}
	out := KPIs{List: []KPI{
		{Name: "NPS", Value: cur.nps, Previous: old.nps, Unit: "score"},
		{Name: "CSAT satisfied", Value: cur.csatSat, Previous: old.csatSat, Unit: "percent"},
		{Name: "CSAT average", Value: cur.csatAvg, Previous: old.csatAvg, Unit: "score"},
		{Name: "CES average", Value: cur.ces, Previous: old.ces, Unit: "score"},
		{Name: "SERVQUAL weighted gap", Value: cur.weighted, Previous: old.weighted, Unit: "score"},
	}}
	for _, d := range record.Dimensions {
		g := cur.gaps[d]
		out.ServqualGaps = append(out.ServqualGaps, Gap{Dimension: d, Expectation: g[0], Perception: g[1], Gap: g[2], Previous: old.gaps[d][2]})
	}
	// Targets on these KPIs: judged on the period's value.
	byKPI := map[string]*float64{"nps": cur.nps, "csat_satisfied": cur.csatSat, "csat_average": cur.csatAvg, "ces_average": cur.ces, "servqual_weighted_gap": cur.weighted}
	for _, t := range cfg.Targets {
		val, ok := byKPI[t.KPI]
		if t.KPI == "servqual_gap" {
			val, ok = cur.gaps[t.Dimension][2], true
		}
		if !ok || len(t.Filters) > 0 || len(t.By) > 0 {
			continue // a filtered or split target is judged by its alert
		}
		k := KPI{Name: "target " + t.Name, Value: val, Unit: "score"}
		if val != nil {
			met := (t.Min == nil || *val >= *t.Min) && (t.Max == nil || *val <= *t.Max)
			k.Met = &met
		}
		if t.Min != nil {
			k.Target = fmt.Sprintf("%s at least %g", t.KPI, *t.Min)
		} else {
			k.Target = fmt.Sprintf("%s at most %g", t.KPI, *t.Max)
		}
		out.List = append(out.List, k)
	}
	return out, nil
}

// any says whether a survey KPI had responses in either period.
func (k KPIs) any() bool {
	for _, x := range k.List {
		if x.Value != nil || x.Previous != nil {
			return true
		}
	}
	for _, g := range k.ServqualGaps {
		if g.Expectation != nil || g.Perception != nil || g.Previous != nil {
			return true
		}
	}
	return false
}

// volumes counts the period's events; calls and survey responses only
// where the sections may have them.
func (b *builder) volumes(ctx context.Context, p Period, sec sections) (VolumeFigures, error) {
	var v VolumeFigures
	counts := map[string]*float64{"servq_tickets_created_total": &v.TicketsCreated, "servq_tickets_solved_total": &v.TicketsSolved}
	if sec.telephony || sec.generic {
		v.CallsOffered, v.CallsAnswered = new(float64), new(float64)
		counts["servq_calls_offered_total"], counts["servq_calls_answered_total"] = v.CallsOffered, v.CallsAnswered
	}
	if sec.surveys || sec.generic {
		v.SurveyResponses = new(float64)
		counts["servq_survey_responses_total"] = v.SurveyResponses
	}
	for metric, dst := range counts {
		d, _, err := b.sum(ctx, term(metric), p, "")
		if err != nil {
			return v, err
		}
		*dst = d[""]
	}
	return v, nil
}
