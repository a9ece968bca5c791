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

// minBurnBad is the fewest bad events an hour needs to be the fastest
// burn: 1 bad of 2 events is a 50 % error ratio, yet says nothing about
// the budget.
const minBurnBad = 5

// Report is an SLO report for one period, compared with the previous one.
// Its times are in the report's time zone.
type Report struct {
	Schema      string     `json:"schema"`
	Service     string     `json:"service"`
	Period      PeriodInfo `json:"period"`
	Previous    PeriodInfo `json:"previous_period"`
	GeneratedAt time.Time  `json:"generated_at"`
	Summary     Summary    `json:"summary"`
	SLOs        []SLO      `json:"slos"`
	// KPIs are the survey KPIs, left out where the config reads no
	// surveys (sections).
	KPIs    *KPIs   `json:"kpis,omitempty"`
	Volumes Volumes `json:"volumes"`
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
	// Exact is false for custom SLOs, whose counts come from rate() over
	// the period (extrapolated at its edges), and where a series born in
	// the period lacks its first sample at 0 (README "How the figures
	// are computed").
	Exact bool `json:"exact"`
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

// Burn is the hour with the fastest budget burn among the hours with at
// least minBurnBad bad events.
type Burn struct {
	At         time.Time `json:"at"` // the end of the hour
	Bad        float64   `json:"bad"`
	Total      float64   `json:"total"`
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
	WorstChannels []Breakdown `json:"worst_channels"`
	WorstBurn     *Burn       `json:"worst_burn"`
	// Curve is hourly for periods of up to 8 days, else daily (at the
	// zone's midnights), the period's end last.
	Curve []CurvePoint `json:"curve"`
	// Policy is the configured error-budget policy, set when the budget
	// is exhausted.
	Policy string `json:"policy,omitempty"`
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

// VolumeFigures are event counts of one period; call and survey counts
// only where the config reads telephony or surveys (sections).
type VolumeFigures struct {
	TicketsCreated  float64  `json:"tickets_created"`
	TicketsSolved   float64  `json:"tickets_solved"`
	CallsOffered    *float64 `json:"calls_offered,omitempty"`
	CallsAnswered   *float64 `json:"calls_answered,omitempty"`
	SurveyResponses *float64 `json:"survey_responses,omitempty"`
}

// Querier is what a report needs of the Prometheus API.
type Querier interface {
	Query(ctx context.Context, expr string, t time.Time) ([]Sample, error)
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error)
	Samples(ctx context.Context, expr string, t time.Time) ([]Series, error)
}

// Build computes the report of period p; its times are in p's zone.
func Build(ctx context.Context, cfg *config.Config, q Querier, p Period, now time.Time) (*Report, error) {
	prev := p.Previous()
	loc := p.Start.Location()
	r := &Report{Schema: Schema, Service: cfg.Global.Service, GeneratedAt: now.In(loc),
		Period: info(p), Previous: info(prev)}
	b := &builder{q: q, counts: map[string]*termCount{}, running: map[string]map[int64]float64{}}
	for _, s := range cfg.SLOs {
		so, err := b.slo(ctx, cfg, s, p, prev)
		if err != nil {
			return nil, fmt.Errorf("slo %s: %w", s.Name, err)
		}
		r.SLOs = append(r.SLOs, *so)
	}
	sec := sectionsOf(cfg)
	var err error
	if r.Volumes.Current, err = b.volumes(ctx, p, sec); err != nil {
		return nil, err
	}
	if r.Volumes.Previous, err = b.volumes(ctx, prev, sec); err != nil {
		return nil, err
	}
	if sec.surveys || sec.generic {
		k, err := b.kpis(ctx, cfg, p, prev)
		if err != nil {
			return nil, err
		}
		if sec.surveys || k.any() {
			r.KPIs = &k
		}
	}
	// A source that may deliver anything (sql, http_json, exec) keeps a
	// section only where it delivered such data.
	if cur, prv := &r.Volumes.Current, &r.Volumes.Previous; !sec.telephony && cur.CallsOffered != nil &&
		*cur.CallsOffered+*cur.CallsAnswered+*prv.CallsOffered+*prv.CallsAnswered == 0 {
		cur.CallsOffered, cur.CallsAnswered, prv.CallsOffered, prv.CallsAnswered = nil, nil, nil, nil
	}
	if r.KPIs == nil {
		r.Volumes.Current.SurveyResponses, r.Volumes.Previous.SurveyResponses = nil, nil
	}
	r.Summary = summarize(r)
	return r, nil
}

func info(p Period) PeriodInfo { return PeriodInfo{Name: p.Name, Start: p.Start, End: p.End} }

type builder struct {
	q Querier
	// counts caches each term's count per period: bad and total share
	// terms, and totals, breakdowns and curves read the same counts.
	counts map[string]*termCount
	// running caches each term's range query of cumulative counts.
	running map[string]map[int64]float64
}

// figures turns counts into the reported figures.
func figures(bad, total, objective float64, exact bool) Figures {
	f := Figures{Bad: bad, Total: total, Good: total - bad, BudgetSpent: bad, Status: "no_data", Exact: exact}
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

// periodFigures are an SLO's figures over p: exact counts where the
// indicator has Counts, else rate() over the period times its length.
func (b *builder) periodFigures(ctx context.Context, ind *sli.SLI, c *sli.Counts, p Period, objective float64) (Figures, error) {
	if c != nil {
		bad, be, err := b.sum(ctx, c.Bad, p, "")
		if err != nil {
			return Figures{}, err
		}
		total, te, err := b.sum(ctx, c.Total, p, "")
		if err != nil {
			return Figures{}, err
		}
		return figures(bad[""], total[""], objective, be && te), nil
	}
	secs := int64(p.Duration() / time.Second)
	w := fmt.Sprintf("%ds", secs)
	var v [2]float64
	for i, expr := range []string{ind.BadRate(w), ind.TotalRate(w)} {
		res, err := b.q.Query(ctx, fmt.Sprintf("(%s) * %d", expr, secs), p.End)
		if err != nil {
			return Figures{}, err
		}
		for _, s := range res {
			v[i] += s.Value
		}
		v[i] = math.Max(v[i], 0)
	}
	return figures(v[0], v[1], objective, false), nil
}

func (b *builder) slo(ctx context.Context, cfg *config.Config, s *config.SLO, p, prev Period) (*SLO, error) {
	out := &SLO{Name: s.Name, Description: s.Description, Indicator: s.Indicator, Objective: s.Objective}
	ind, err := sli.For(cfg, s)
	if err != nil {
		return nil, err
	}
	c, err := sli.CountsFor(cfg, s)
	if err != nil {
		return nil, err
	}
	if out.Figures, err = b.periodFigures(ctx, ind, c, p, s.Objective); err != nil {
		return nil, err
	}
	if out.Previous, err = b.periodFigures(ctx, ind, c, prev, s.Objective); err != nil {
		return nil, err
	}
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
	if out.Total <= 0 {
		return out, nil
	}
	grid, step := hourGrid(p)
	var bad, total []float64
	if c != nil {
		if bad, err = b.cumulative(ctx, c.Bad, p, grid, step); err != nil {
			return nil, err
		}
		if total, err = b.cumulative(ctx, c.Total, p, grid, step); err != nil {
			return nil, err
		}
	} else if bad, total, err = b.customCumulative(ctx, ind, p, grid, step); err != nil {
		return nil, err
	}
	out.WorstBurn = fastestBurn(p, grid, bad, total, (100-s.Objective)/100)
	out.Curve = curve(p, grid, bad, total, out.BudgetAllowed)
	return out, nil
}

// customCumulative approximates a custom SLO's cumulative counts on the
// grid from its counts over each step (rate() times the step), as its
// period figures come from rate() too.
func (b *builder) customCumulative(ctx context.Context, ind *sli.SLI, p Period, grid []time.Time, step time.Duration) (bad, total []float64, err error) {
	side := func(count func(string) (string, error)) ([]float64, error) {
		expr, err := count(sli.Window(step))
		if err != nil {
			return nil, err
		}
		byT := map[int64]float64{}
		if len(grid) > 1 {
			res, err := b.q.QueryRange(ctx, expr, p.Start.Add(step), grid[len(grid)-2], step)
			if err != nil {
				return nil, err
			}
			for _, s := range res {
				for _, pt := range s.Points {
					byT[pt.T.Unix()] += pt.V
				}
			}
		}
		// The last interval may be shorter than the step.
		last := p.Start
		if len(grid) > 1 {
			last = grid[len(grid)-2]
		}
		if expr, err = count(sli.Window(p.End.Sub(last))); err != nil {
			return nil, err
		}
		res, err := b.q.Query(ctx, expr, p.End)
		if err != nil {
			return nil, err
		}
		for _, s := range res {
			byT[p.End.Unix()] += s.Value
		}
		out := make([]float64, len(grid))
		sum := 0.0
		for i, t := range grid {
			sum += math.Max(byT[t.Unix()], 0)
			out[i] = sum
		}
		return out, nil
	}
	if bad, err = side(ind.BadCount); err != nil {
		return nil, nil, err
	}
	total, err = side(ind.TotalCount)
	return bad, total, err
}

// fastestBurn is the grid interval (an hour) with the highest error
// ratio among those with at least minBurnBad bad events; the earliest on
// a tie; nil when no hour had that many.
func fastestBurn(p Period, grid []time.Time, bad, total []float64, budget float64) *Burn {
	var out *Burn
	pb, pt := 0.0, 0.0
	for i, at := range grid {
		b, t := bad[i]-pb, total[i]-pt
		pb, pt = bad[i], total[i]
		if b < minBurnBad || t <= 0 {
			continue
		}
		ratio := b / t
		if out == nil || ratio > out.ErrorRatio {
			out = &Burn{At: at.In(p.Start.Location()), Bad: b, Total: t, ErrorRatio: ratio}
		}
	}
	if out != nil && budget > 0 {
		out.BurnRate = out.ErrorRatio / budget
	}
	return out
}

// curve is the cumulative SLI and remaining budget at the grid's times
// for periods of up to 8 days, else at the end of every day in the
// period's zone (a DST day has 23 or 25 hours); the period's end last.
func curve(p Period, grid []time.Time, bad, total []float64, allowed float64) []CurvePoint {
	at := grid
	if p.Duration() > 8*24*time.Hour {
		at = dayEnds(p)
	}
	var out []CurvePoint
	i := 0
	for _, t := range at {
		// The grid's last time at or before t: t itself wherever the
		// zone's offsets change by whole hours.
		for i+1 < len(grid) && !grid[i+1].After(t) {
			i++
		}
		bv, tv := bad[i], total[i]
		cp := CurvePoint{At: t.In(p.Start.Location()), BudgetRemaining: 1}
		if tv > 0 {
			v := 100 * (tv - bv) / tv
			cp.SLI = &v
		}
		if allowed > 0 {
			cp.BudgetRemaining = 1 - bv/allowed
		}
		out = append(out, cp)
	}
	return out
}

// worst lists the three values of label with the most bad events.
func (b *builder) worst(ctx context.Context, c *sli.Counts, p Period, label string, allowed float64) ([]Breakdown, error) {
	bad, _, err := b.sum(ctx, c.Bad, p, label)
	if err != nil {
		return nil, err
	}
	total, _, err := b.sum(ctx, c.Total, p, label)
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
	if r.KPIs != nil {
		for _, k := range r.KPIs.List {
			if k.Met != nil && !*k.Met {
				risks = append(risks, risk{fmt.Sprintf("KPI %s missed its target (%s)", k.Name, k.Target), 5})
			}
		}
	}
	sort.SliceStable(risks, func(i, j int) bool { return risks[i].score > risks[j].score })
	for _, x := range risks {
		s.Risks = append(s.Risks, x.text)
	}
	return s
}
