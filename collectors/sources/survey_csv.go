package sources

import (
	"context"
	"fmt"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// surveyCSV reads survey exports: CSAT, NPS, CES (one score column) or the
// 22-item SERVQUAL instrument (22 expectation and 22 perception columns).
type surveyCSV struct {
	spec   surveyCSVSpec
	kind   record.SurveyKind
	times  timeParser
	lo, hi float64
}

type surveyCSVSpec struct {
	Path       string `yaml:"path"`
	Survey     string `yaml:"survey"`
	Kind       string `yaml:"kind"`
	HeaderRows int    `yaml:"header_rows"`
	Mapping    struct {
		ID          string `yaml:"id"`
		SubmittedAt string `yaml:"submitted_at"`
		Score       string `yaml:"score"`
		TicketID    string `yaml:"ticket_id"`
		Channel     string `yaml:"channel"`
		Queue       string `yaml:"queue"`
	} `yaml:"mapping"`
	ExpectationColumns []string          `yaml:"expectation_columns"`
	PerceptionColumns  []string          `yaml:"perception_columns"`
	WeightColumns      map[string]string `yaml:"weight_columns"`
	ScaleMin           *float64          `yaml:"scale_min"`
	ScaleMax           *float64          `yaml:"scale_max"`
	TimeFormat         string            `yaml:"time_format"`
	TimeZone           string            `yaml:"time_zone"`
}

// Default answer scales by instrument.
var surveyScales = map[record.SurveyKind][2]float64{
	record.KindCSAT: {1, 5}, record.KindNPS: {0, 10}, record.KindCES: {1, 7}, record.KindSERVQUAL: {1, 7},
}

func init() {
	collectors.Register("survey_csv", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		s := &surveyCSV{}
		if err := c.DecodeSpec(&s.spec); err != nil {
			return nil, err
		}
		sp := &s.spec
		switch {
		case sp.Path == "":
			return nil, c.Errorf("path", "is required")
		case sp.Survey == "":
			return nil, c.Errorf("survey", "is required (the survey label, e.g. post-contact)")
		case sp.Mapping.ID == "" || sp.Mapping.SubmittedAt == "":
			return nil, c.Errorf("mapping", "mapping.id and mapping.submitted_at are required")
		}
		s.kind = record.SurveyKind(sp.Kind)
		scale, ok := surveyScales[s.kind]
		if !ok {
			return nil, c.Errorf("kind", "unknown kind %q (csat, nps, ces, servqual)", sp.Kind)
		}
		if s.kind == record.KindSERVQUAL {
			if len(sp.ExpectationColumns) != 22 {
				return nil, c.Errorf("expectation_columns", "needs the 22 item columns in instrument order, got %d", len(sp.ExpectationColumns))
			}
			if len(sp.PerceptionColumns) != 22 {
				return nil, c.Errorf("perception_columns", "needs the 22 item columns in instrument order, got %d", len(sp.PerceptionColumns))
			}
			for dim := range sp.WeightColumns {
				if !isDimension(dim) {
					return nil, c.Errorf("weight_columns."+dim, "unknown SERVQUAL dimension %q", dim)
				}
			}
		} else if sp.Mapping.Score == "" {
			return nil, c.Errorf("mapping", "mapping.score is required for kind %s", sp.Kind)
		}
		s.lo, s.hi = scale[0], scale[1]
		if sp.ScaleMin != nil {
			s.lo = *sp.ScaleMin
		}
		if sp.ScaleMax != nil {
			s.hi = *sp.ScaleMax
		}
		if s.lo >= s.hi {
			return nil, c.Errorf("scale_max", "must be greater than scale_min (%g)", s.lo)
		}
		if sp.HeaderRows == 0 {
			sp.HeaderRows = 1
		}
		if sp.HeaderRows < 1 {
			return nil, c.Errorf("header_rows", "must be at least 1")
		}
		var err error
		if s.times, err = newTimeParser(sp.TimeFormat, sp.TimeZone); err != nil {
			return nil, c.Errorf("time_zone", "%v", err)
		}
		return s, nil
	})
}

func isDimension(d string) bool {
	for _, x := range record.Dimensions {
		if x == d {
			return true
		}
	}
	return false
}

func (s *surveyCSV) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	return collectFiles(ctx, raw, s.spec.Path, b, func(path string, data []byte, start fileMark, next *fileMark) error {
		return readCSV(path, data, start, next, s.spec.HeaderRows, ',', 0, s.columns(), func(r row) error {
			if resp, ok := s.response(r, b); ok {
				b.Surveys = append(b.Surveys, resp)
			}
			return nil
		}, func(pos string, err error) { b.Reject("bad_row", pos, err) })
	})
}

// Check fails when an existing export lacks a configured column, as
// ticketsFile.Check.
func (s *surveyCSV) Check(c *config.Collector) error {
	if err := checkCSVHeaders(s.spec.Path, ',', 0, s.columns()); err != nil {
		return c.Errorf("mapping", "%v", err)
	}
	return nil
}

// columns are the configured columns with the field each feeds, which
// the header must have.
func (s *surveyCSV) columns() map[string]string {
	m := s.spec.Mapping
	fields := map[string]string{"id": m.ID, "submitted_at": m.SubmittedAt, "score": m.Score, "ticket_id": m.TicketID, "channel": m.Channel, "queue": m.Queue}
	for i, col := range s.spec.ExpectationColumns {
		fields[fmt.Sprintf("expectation_columns[%d]", i)] = col
	}
	for i, col := range s.spec.PerceptionColumns {
		fields[fmt.Sprintf("perception_columns[%d]", i)] = col
	}
	for dim, col := range s.spec.WeightColumns {
		fields["weight_columns."+dim] = col
	}
	return columnFields(fields)
}

// score parses one answer; blank means not answered.
func (s *surveyCSV) score(r row, col string) (v float64, answered bool, err error) {
	txt, _ := r.get(col)
	if txt == "" {
		return 0, false, nil
	}
	v, perr := parseFinite(txt)
	if perr != nil {
		return 0, false, fmt.Errorf("column %q: %q is not a number", col, txt)
	}
	if v < s.lo || v > s.hi {
		return 0, false, fmt.Errorf("column %q: %q is not a score from %g to %g", col, txt, s.lo, s.hi)
	}
	return v, true, nil
}

func (s *surveyCSV) response(r row, b *collectors.Batch) (record.SurveyResponse, bool) {
	m := s.spec.Mapping
	get := func(col string) string {
		if col == "" {
			return ""
		}
		v, _ := r.get(col)
		return v
	}
	resp := record.SurveyResponse{ID: get(m.ID), Survey: s.spec.Survey, Kind: s.kind,
		TicketID: get(m.TicketID), Channel: get(m.Channel), Queue: get(m.Queue)}
	if resp.ID == "" {
		b.Reject("missing_id", r.pos, fmt.Errorf("column %q (id) is empty", m.ID))
		return resp, false
	}
	at, err := s.times.parse(get(m.SubmittedAt))
	if err != nil {
		b.Reject("bad_time", r.pos, fmt.Errorf("column %q (submitted_at): %q is not a time in format %s", m.SubmittedAt, get(m.SubmittedAt), s.times.format))
		return resp, false
	}
	resp.SubmittedAt = at
	if s.kind != record.KindSERVQUAL {
		v, ok, err := s.score(r, m.Score)
		if err != nil {
			b.Reject("bad_score", r.pos, err)
			return resp, false
		}
		if !ok {
			b.Reject("bad_score", r.pos, fmt.Errorf("column %q: no score", m.Score))
			return resp, false
		}
		resp.Score, resp.HasScore = v, true
		return resp, true
	}
	for i := 0; i < 22; i++ {
		it := record.ServqualItem{Dimension: record.ServqualDimension(i + 1)}
		var err error
		if it.Expectation, it.HasE, err = s.score(r, s.spec.ExpectationColumns[i]); err == nil {
			it.Perception, it.HasP, err = s.score(r, s.spec.PerceptionColumns[i])
		}
		if err != nil {
			b.Reject("bad_score", r.pos, err)
			return resp, false
		}
		if it.HasE || it.HasP {
			resp.Servqual = append(resp.Servqual, it)
		}
	}
	for dim, col := range s.spec.WeightColumns {
		txt := get(col)
		if txt == "" {
			continue
		}
		w, err := parseFinite(txt)
		if err != nil || w < 0 || w > 100 {
			b.Reject("bad_score", r.pos, fmt.Errorf("column %q: weight %q is not 0-100 points", col, txt))
			return resp, false
		}
		if resp.Weights == nil {
			resp.Weights = map[string]float64{}
		}
		resp.Weights[dim] = w
	}
	return resp, true
}
