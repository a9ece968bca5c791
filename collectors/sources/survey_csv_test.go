package sources

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors/record"
)

// The fixture is a Qualtrics export (three header rows) of the 22-item
// SERVQUAL instrument with a 100-point importance split; see the comments
// on each respondent below for the hand-computed means.
func TestSurveyCSVQualtricsServqual(t *testing.T) {
	e, p := make([]string, 22), make([]string, 22)
	for i := range e {
		e[i], p[i] = fmt.Sprint("E", i+1), fmt.Sprint("P", i+1)
	}
	s := buildSource(t, `collectors:
  - name: sq
    type: survey_csv
    schedule: "@daily"
    path: testdata/survey_csv/qualtrics_servqual.csv
    survey: annual
    kind: servqual
    header_rows: 3
    time_format: "2006-01-02 15:04:05"
    mapping: {id: ResponseId, submitted_at: EndDate, channel: Q_channel}
    expectation_columns: [`+strings.Join(e, ", ")+`]
    perception_columns: [`+strings.Join(p, ", ")+`]
    weight_columns: {tangibles: W_tan, reliability: W_rel, responsiveness: W_res, assurance: W_ass, empathy: W_emp}
`)
	b, _ := collectOnce(t, s, nil, time.Now())
	if len(b.Rejected) != 0 || len(b.Surveys) != 3 {
		t.Fatalf("responses %d, rejected %+v", len(b.Surveys), b.Rejected)
	}
	sums := map[string][2]float64{} // dimension -> sum E, sum P
	counts := map[string][2]int{}
	for _, r := range b.Surveys {
		for _, it := range r.Servqual {
			s, c := sums[it.Dimension], counts[it.Dimension]
			if it.HasE {
				s[0] += it.Expectation
				c[0]++
			}
			if it.HasP {
				s[1] += it.Perception
				c[1]++
			}
			sums[it.Dimension], counts[it.Dimension] = s, c
		}
	}
	gap := func(d string) float64 {
		return sums[d][1]/float64(counts[d][1]) - sums[d][0]/float64(counts[d][0])
	}
	// Tangibles (items 1-4): E = 7,6,5 -> mean 6; P = 5,6,6 -> mean 17/3.
	// gap = 17/3 - 6 = -1/3.
	if g := gap(record.Tangibles); g > -1.0/3+1e-9 || g < -1.0/3-1e-9 {
		t.Errorf("tangibles gap = %g, want -1/3", g)
	}
	// Reliability (5-9): E = 7,6,7 -> 20/3; P: R1 5, R2 6, R3 blank -> 5.5.
	if g, want := gap(record.Reliability), 5.5-20.0/3; g-want > 1e-9 || want-g > 1e-9 {
		t.Errorf("reliability gap = %g, want %g", g, want)
	}
	if counts[record.Reliability][1] != 10 { // 5 items x 2 respondents
		t.Errorf("reliability perception answers = %d, want 10 (R3 left them blank)", counts[record.Reliability][1])
	}
	// Empathy (18-22): E 7,6,7 -> 20/3; P 6,6,4 -> 16/3; gap -4/3.
	if g, want := gap(record.Empathy), 16.0/3-20.0/3; g-want > 1e-9 || want-g > 1e-9 {
		t.Errorf("empathy gap = %g, want %g", g, want)
	}
	r1 := b.Surveys[0]
	if r1.ID != "R_1" || r1.Channel != "email" || r1.Weights[record.Reliability] != 30 || r1.SubmittedAt != time.Date(2026, 10, 5, 9, 12, 0, 0, time.UTC) {
		t.Errorf("first response = %+v", r1)
	}
	if b.Surveys[1].Weights != nil {
		t.Errorf("R_2 gave no split, weights = %v", b.Surveys[1].Weights)
	}
}

func TestSurveyCSVScoresAndRejections(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nps.csv")
	os.WriteFile(path, []byte("id,when,score,queue\n1,2026-11-01T10:00:00Z,10,a\n2,2026-11-01T11:00:00Z,11,a\n3,2026-11-01T12:00:00Z,,a\n4,noon,7,a\n5,2026-11-01T13:00:00Z,0,b\n"), 0o644)
	s := buildSource(t, "collectors:\n  - name: n\n    type: survey_csv\n    schedule: \"@daily\"\n    path: "+path+"\n    survey: rel\n    kind: nps\n    mapping: {id: id, submitted_at: when, score: score, queue: queue}\n")
	b, _ := collectOnce(t, s, nil, time.Now())
	if len(b.Surveys) != 2 || b.Surveys[0].Score != 10 || b.Surveys[1].Score != 0 || b.Surveys[1].Queue != "b" {
		t.Errorf("responses = %+v", b.Surveys)
	}
	var got []string
	for _, r := range b.Rejected {
		got = append(got, r.Reason+" "+filepath.Base(r.Position)+": "+r.Err.Error())
	}
	want := []string{
		`bad_score nps.csv:3: column "score": "11" is not a score from 0 to 10`,
		`bad_score nps.csv:4: column "score": no score`,
		`bad_time nps.csv:5: column "when" (submitted_at): "noon" is not a time in format rfc3339`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rejections:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSurveyCSVConfigErrors(t *testing.T) {
	base := "collectors:\n  - name: n\n    type: survey_csv\n    schedule: \"@daily\"\n    path: x.csv\n    survey: s\n"
	for spec, want := range map[string]string{
		"    kind: stars\n    mapping: {id: a, submitted_at: b, score: c}\n":                           `test.yml:7: collectors[0].kind: unknown kind "stars" (csat, nps, ces, servqual)`,
		"    kind: csat\n    mapping: {id: a, submitted_at: b}\n":                                      "mapping.score is required for kind csat",
		"    kind: servqual\n    mapping: {id: a, submitted_at: b}\n    expectation_columns: [a, b]\n": "needs the 22 item columns in instrument order, got 2",
	} {
		expectConfigError(t, base, spec, want)
	}
}
