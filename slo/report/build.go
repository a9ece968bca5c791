package report

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// Schema names the JSON schema of Report (docs: slo/report/README.md).
const Schema = "servq.report/v1"

// lookback is how far before a period boundary a counter's last sample
// may lie (servq down or unscraped over the boundary).
const lookback = "7d"

// Report is an SLO report for one period, compared with the previous one.
type Report struct {
	Schema      string     `json:"schema"`
	Service     string     `json:"service"`
	Period      PeriodInfo `json:"period"`
	Previous    PeriodInfo `json:"previous_period"`
	GeneratedAt time.Time  `json:"generated_at"`
	Summary     Summary    `json:"summary"`
	SLOs        []SLO      `json:"slos"`
	KPIs        KPIs       `json:"kpis"`
	Volumes     Volumes    `json:"volumes"`
}

// PeriodInfo is a period as reported.
type PeriodInfo struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Summary is the executive summary.
type Summary struct {
	SLOs   int      `json:"slos"`
	Met    int      `json:"met"`
	Missed int      `json:"missed"`
	NoData int      `json:"no_data"`
	Risks  []string `json:"risks"`
}

// Figures are one SLO's counts over one period.
type Figures struct {
	Good  float64  `json:"good"`
	Bad   float64  `json:"bad"`
	Total float64  `json:"total"`
	SLI   *float64 `json:"sli"` // percent good; null without events
	// BudgetAllowed is the bad events the objective allows (total ×
	// (1 − objective)); BudgetSpent the bad events that happened.
	BudgetAllowed    float64  `json:"budget_allowed"`
	BudgetSpent      float64  `json:"budget_spent"`
	BudgetSpentRatio *float64 `json:"budget_spent_ratio"` // spent / allowed; null when nothing was allowed
	Status           string   `json:"status"`             // met, missed, no_data
}

// Breakdown is one queue's part of an SLO's bad events.
type Breakdown struct {
	Queue string  `json:"queue"`
	Bad   float64 `json:"bad"`
	Total float64 `json:"total"`
	// BudgetShare is the queue's bad events as a share of the budget the
	// whole SLO was allowed.
	BudgetShare float64 `json:"budget_share"`
}

// Burn is the hour with the fastest budget burn.
type Burn struct {
	At         time.Time `json:"at"`
	ErrorRatio float64   `json:"error_ratio"`
	BurnRate   float64   `json:"burn_rate"`
}

// CurvePoint is the cumulative state of an SLO at one time of the period.
type CurvePoint struct {
	At              time.Time `json:"at"`
	SLI             *float64  `json:"sli"` // percent, since the period started
	BudgetRemaining float64   `json:"budget_remaining"`
}

// SLO is one SLO's report.
type SLO struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Indicator   string  `json:"indicator"`
	Objective   float64 `json:"objective"` // percent
	Figures
	Previous Figures `json:"previous"`
	// Trend is the SLI change against the previous period, in percentage
	// points; null when either has no events.
	Trend       *float64    `json:"trend"`
	WorstQueues []Breakdown `json:"worst_queues"`
	// WorstChannels are the channels with the most bad events; Queue holds
	// the channel's name.
	WorstChannels []Breakdown  `json:"worst_channels"`
	WorstBurn     *Burn        `json:"worst_burn"`
	Curve         []CurvePoint `json:"curve"`
	// Policy is the configured error-budget policy, set when the budget
	// is exhausted.
	Policy string `json:"policy,omitempty"`
	// Exact is false for custom SLOs, whose counts come from rate()
	// over the period (extrapolated at its edges).
	Exact bool `json:"exact"`
}

// KPI is one KPI over the period and the previous one.
type KPI struct {
	Name     string   `json:"name"`
	Value    *float64 `json:"value"`
	Previous *float64 `json:"previous"`
	Unit     string   `json:"unit"`
	// Target and Met are set for KPIs with a configured target.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
}

// KPIs are the survey KPIs.
type KPIs struct {
	List []KPI `json:"list"`
	// ServqualGaps are perception − expectation per dimension.
	ServqualGaps []Gap `json:"servqual_gaps"`
}

// Gap is one SERVQUAL dimension.
type Gap struct {
	Dimension   string   `json:"dimension"`
	Expectation *float64 `json:"expectation"`
	Perception  *float64 `json:"perception"`
	Gap         *float64 `json:"gap"`
	Previous    *float64 `json:"previous_gap"`
}

// Volumes are event counts of the period and the previous one.
type Volumes struct {
	Current  VolumeFigures `json:"current"`
	Previous VolumeFigures `json:"previous"`
}

// VolumeFigures are event counts of one period.
type VolumeFigures struct {
	TicketsCreated  float64 `json:"tickets_created"`
	TicketsSolved   float64 `json:"tickets_solved"`
	CallsOffered    float64 `json:"calls_offered"`
	CallsAnswered   float64 `json:"calls_answered"`
	SurveyResponses float64 `json:"survey_responses"`
}

// Querier is what a report needs of the Prometheus API.
type Querier interface {
	Query(ctx context.Context, expr string, t time.Time) ([]Sample, error)
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Point, error)
}

// Build computes the report of period p.
func Build(ctx context.Context, cfg *config.Config, q Querier, p Period, now time.Time) (*Report, error) {
	prev := p.Previous()
	r := &Report{Schema: Schema, Service: cfg.Global.Service, GeneratedAt: now.UTC(),
		Period: info(p), Previous: info(prev)}
	b := &builder{q: q}
	for _, s := range cfg.SLOs {
		so, err := b.slo(ctx, cfg, s, p, prev)
		if err != nil {
			return nil, fmt.Errorf("slo %s: %w", s.Name, err)
		}
		r.SLOs = append(r.SLOs, *so)
	}
	var err error
	if r.KPIs, err = b.kpis(ctx, cfg, p, prev); err != nil {
		return nil, err
	}
	if r.Volumes.Current, err = b.volumes(ctx, p); err != nil {
		return nil, err
	}
	if r.Volumes.Previous, err = b.volumes(ctx, prev); err != nil {
		return nil, err
	}
	r.Summary = summarize(r)
	return r, nil
}

func info(p Period) PeriodInfo { return PeriodInfo{Name: p.Name, Start: p.Start, End: p.End} }

type builder struct{ q Querier }

// delta is the exact increase of a sum of counters over p, per value of
// the label by ("" for one total): the counters' last values at or before
// p.End minus those at or before p.Start (a series born in the period
// counts from 0). Where a counter was reset in the period (a histogram
// restarted by a bucket change), its increase() is used instead and exact
// is false.
func (b *builder) delta(ctx context.Context, terms []sli.Term, p Period, by string) (map[string]float64, bool, error) {
	out := map[string]float64{}
	exact := true
	group := "sum"
	if by != "" {
		group = "sum by (" + by + ")"
	}
	secs := int64(p.Duration() / time.Second)
	for _, t := range terms {
		sel := t.Selector()
		at := func(ts time.Time) string {
			return fmt.Sprintf("%s (last_over_time(%s[%s] @ %d))", group, sel, lookback, ts.Unix())
		}
		end, err := b.q.Query(ctx, at(p.End), p.End)
		if err != nil {
			return nil, false, err
		}
		start, err := b.q.Query(ctx, at(p.Start), p.End)
		if err != nil {
			return nil, false, err
		}
		resets, err := b.q.Query(ctx, fmt.Sprintf("%s (resets(%s[%ds] @ %d)) > 0", group, sel, secs, p.End.Unix()), p.End)
		if err != nil {
			return nil, false, err
		}
		d := map[string]float64{}
		for _, s := range end {
			d[s.Labels[by]] += s.Value
		}
		for _, s := range start {
			d[s.Labels[by]] -= s.Value
		}
		if len(resets) > 0 {
			exact = false
			inc, err := b.q.Query(ctx, fmt.Sprintf("%s (increase(%s[%ds] @ %d))", group, sel, secs, p.End.Unix()), p.End)
			if err != nil {
				return nil, false, err
			}
			for _, s := range resets {
				d[s.Labels[by]] = 0
			}
			for _, s := range inc {
				if _, reset := findGroup(resets, by, s.Labels[by]); reset {
					d[s.Labels[by]] = s.Value
				}
			}
		}
		for k, v := range d {
			out[k] += t.Sign * v
		}
	}
	for k, v := range out {
		out[k] = math.Max(v, 0)
	}
	return out, exact, nil
}

func findGroup(ss []Sample, by, value string) (Sample, bool) {
	for _, s := range ss {
		if s.Labels[by] == value {
			return s, true
		}
	}
	return Sample{}, false
}

// figures turns counts into the reported figures.
func figures(bad, total, objective float64) Figures {
	f := Figures{Bad: bad, Total: total, Good: total - bad, BudgetSpent: bad, Status: "no_data"}
	if total <= 0 {
		return f
	}
	budget := (100 - objective) / 100
	sli := 100 * (total - bad) / total
	f.SLI = &sli
	f.BudgetAllowed = total * budget
	if f.BudgetAllowed > 0 {
		r := bad / f.BudgetAllowed
		f.BudgetSpentRatio = &r
	}
	f.Status = "met"
	if sli < objective {
		f.Status = "missed"
	}
	return f
}

func (b *builder) counts(ctx context.Context, c *sli.Counts, p Period) (bad, total float64, err error) {
	bd, _, err := b.delta(ctx, c.Bad, p, "")
	if err != nil {
		return 0, 0, err
	}
	td, _, err := b.delta(ctx, c.Total, p, "")
	if err != nil {
		return 0, 0, err
	}
	return bd[""], td[""], nil
}

func (b *builder) slo(ctx context.Context, cfg *config.Config, s *config.SLO, p, prev Period) (*SLO, error) {
	out := &SLO{Name: s.Name, Description: s.Description, Indicator: s.Indicator, Objective: s.Objective, Exact: true}
	ind, err := sli.For(cfg, s)
	if err != nil {
		return nil, err
	}
	c, err := sli.CountsFor(cfg, s)
	if err != nil {
		return nil, err
	}
	periodCounts := func(p Period) (float64, float64, error) {
		if c != nil {
			return b.counts(ctx, c, p)
		}
		// Custom: rate over the period times its length.
		w := fmt.Sprintf("%ds", int64(p.Duration()/time.Second))
		var v [2]float64
		for i, expr := range []string{ind.BadRate(w), ind.TotalRate(w)} {
			res, err := b.q.Query(ctx, fmt.Sprintf("(%s) * %d", expr, int64(p.Duration()/time.Second)), p.End)
			if err != nil {
				return 0, 0, err
			}
			if len(res) > 0 {
				v[i] = math.Max(res[0].Value, 0)
			}
		}
		return v[0], v[1], nil
	}
	bad, total, err := periodCounts(p)
	if err != nil {
		return nil, err
	}
	pbad, ptotal, err := periodCounts(prev)
	if err != nil {
		return nil, err
	}
	out.Exact = c != nil
	out.Figures = figures(bad, total, s.Objective)
	out.Previous = figures(pbad, ptotal, s.Objective)
	if out.SLI != nil && out.Previous.SLI != nil {
		t := *out.SLI - *out.Previous.SLI
		out.Trend = &t
	}
	if out.BudgetSpentRatio != nil && *out.BudgetSpentRatio >= 1 {
		out.Policy = s.ErrorBudgetPolicy
	}
	if c != nil && out.Bad > 0 { // every built-in indicator's counters carry queue and channel
		if out.WorstQueues, err = b.worst(ctx, c, p, "queue", out.BudgetAllowed); err != nil {
			return nil, err
		}
		if out.WorstChannels, err = b.worst(ctx, c, p, "channel", out.BudgetAllowed); err != nil {
			return nil, err
		}
	}
	// The hour of the fastest burn: the 1h error ratio, hourly.
	if out.Bad > 0 {
		pts, err := b.q.QueryRange(ctx, ind.ErrorRatio("1h"), p.Start.Add(time.Hour), p.End, time.Hour)
		if err != nil {
			return nil, err
		}
		budget := (100 - s.Objective) / 100
		for _, pt := range pts {
			if out.WorstBurn == nil || pt.V > out.WorstBurn.ErrorRatio {
				out.WorstBurn = &Burn{At: pt.T.UTC(), ErrorRatio: pt.V, BurnRate: pt.V / budget}
			}
		}
	}
	if c != nil {
		if out.Curve, err = b.curve(ctx, c, p, s.Objective, total); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// worst lists the three values of label with the most bad events.
func (b *builder) worst(ctx context.Context, c *sli.Counts, p Period, label string, allowed float64) ([]Breakdown, error) {
	bad, _, err := b.delta(ctx, c.Bad, p, label)
	if err != nil {
		return nil, err
	}
	total, _, err := b.delta(ctx, c.Total, p, label)
	if err != nil {
		return nil, err
	}
	var out []Breakdown
	for v, n := range bad {
		if n > 0 {
			share := 0.0
			if allowed > 0 {
				share = n / allowed
			}
			out = append(out, Breakdown{Queue: v, Bad: n, Total: total[v], BudgetShare: share})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bad != out[j].Bad {
			return out[i].Bad > out[j].Bad
		}
		return out[i].Queue < out[j].Queue
	})
	if len(out) > 3 {
		out = out[:3]
	}
	return out, nil
}

// curve is the SLI and the remaining budget since the period started, at
// every step: the cumulative increase of each counter, one range query
// per counter.
func (b *builder) curve(ctx context.Context, c *sli.Counts, p Period, objective, total float64) ([]CurvePoint, error) {
	step := 24 * time.Hour
	if p.Duration() <= 8*24*time.Hour {
		step = 6 * time.Hour
	}
	cum := func(terms []sli.Term) (map[int64]float64, error) {
		out := map[int64]float64{}
		for _, t := range terms {
			sel := t.Selector()
			expr := fmt.Sprintf("sum(last_over_time(%s[%s])) - (sum(last_over_time(%s[%s] @ %d)) or vector(0))", sel, lookback, sel, lookback, p.Start.Unix())
			pts, err := b.q.QueryRange(ctx, expr, p.Start.Add(step), p.End, step)
			if err != nil {
				return nil, err
			}
			for _, pt := range pts {
				out[pt.T.Unix()] += t.Sign * pt.V
			}
		}
		return out, nil
	}
	bad, err := cum(c.Bad)
	if err != nil {
		return nil, err
	}
	tot, err := cum(c.Total)
	if err != nil {
		return nil, err
	}
	allowed := total * (100 - objective) / 100
	var out []CurvePoint
	for t := p.Start.Add(step); !t.After(p.End); t = t.Add(step) {
		bv, tv := math.Max(bad[t.Unix()], 0), math.Max(tot[t.Unix()], 0)
		cp := CurvePoint{At: t.UTC(), BudgetRemaining: 1}
		if tv > 0 {
			v := 100 * (tv - bv) / tv
			cp.SLI = &v
		}
		if allowed > 0 {
			cp.BudgetRemaining = 1 - bv/allowed
		}
		out = append(out, cp)
	}
	return out, nil
}

func summarize(r *Report) Summary {
	s := Summary{SLOs: len(r.SLOs)}
	type risk struct {
		text  string
		score float64
	}
	var risks []risk
	for _, o := range r.SLOs {
		switch o.Status {
		case "met":
			s.Met++
		case "missed":
			s.Missed++
		default:
			s.NoData++
		}
		if o.BudgetSpentRatio == nil {
			continue
		}
		spent := *o.BudgetSpentRatio
		switch {
		case o.Status == "missed":
			text := fmt.Sprintf("%s missed its objective: %.2f%% against %g%%, %.0f%% of the error budget spent", o.Name, *o.SLI, o.Objective, 100*spent)
			if len(o.WorstQueues) > 0 {
				text += fmt.Sprintf(" (most in queue %s)", o.WorstQueues[0].Queue)
			}
			risks = append(risks, risk{text, 10 + spent})
		case spent >= 0.75:
			risks = append(risks, risk{fmt.Sprintf("%s met its objective but spent %.0f%% of its error budget", o.Name, 100*spent), spent})
		}
	}
	for _, k := range r.KPIs.List {
		if k.Met != nil && !*k.Met {
			risks = append(risks, risk{fmt.Sprintf("KPI %s missed its target (%s)", k.Name, k.Target), 5})
		}
	}
	sort.SliceStable(risks, func(i, j int) bool { return risks[i].score > risks[j].score })
	for _, x := range risks {
		s.Risks = append(s.Risks, x.text)
	}
	return s
}
