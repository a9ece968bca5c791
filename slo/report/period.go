// Package report builds SLO reports for leadership from a
// Prometheus-compatible HTTP API, with exact counts over calendar periods.
package report

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Period is a reporting period [Start, End) in a time zone.
type Period struct {
	// Name is how the period is written: 2026-10, 2026-W43, 2026-Q3,
	// 2026-10-01..2026-10-15.
	Name       string
	Kind       string // month, week, quarter, range
	Start, End time.Time
}

var (
	monthRE   = regexp.MustCompile(`^(\d{4})-(\d{2})$`)
	weekRE    = regexp.MustCompile(`^(\d{4})-W(\d{2})$`)
	quarterRE = regexp.MustCompile(`^(\d{4})-Q([1-4])$`)
	rangeRE   = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$`)
)

// ParsePeriod reads a period in loc:
//
//	2026-10                 a calendar month
//	2026-W43                an ISO 8601 week (Monday to Monday)
//	2026-Q3                 a quarter
//	2026-10-01..2026-10-15  whole days, both included
//	month, week, quarter    the last complete one before now
func ParsePeriod(spec string, loc *time.Location, now time.Time) (Period, error) {
	now = now.In(loc)
	switch spec {
	case "month":
		p := monthPeriod(now.Year(), now.Month(), loc)
		return p.Previous(), nil
	case "week":
		y, w := now.ISOWeek()
		p, _ := weekPeriod(y, w, loc)
		return p.Previous(), nil
	case "quarter":
		p := quarterPeriod(now.Year(), (int(now.Month())-1)/3+1, loc)
		return p.Previous(), nil
	}
	if m := monthRE.FindStringSubmatch(spec); m != nil {
		y, _ := strconv.Atoi(m[1])
		mo, _ := strconv.Atoi(m[2])
		if mo < 1 || mo > 12 {
			return Period{}, fmt.Errorf("period %q: month %d does not exist", spec, mo)
		}
		return monthPeriod(y, time.Month(mo), loc), nil
	}
	if m := weekRE.FindStringSubmatch(spec); m != nil {
		y, _ := strconv.Atoi(m[1])
		w, _ := strconv.Atoi(m[2])
		p, ok := weekPeriod(y, w, loc)
		if !ok {
			return Period{}, fmt.Errorf("period %q: %d has no ISO week %d", spec, y, w)
		}
		return p, nil
	}
	if m := quarterRE.FindStringSubmatch(spec); m != nil {
		y, _ := strconv.Atoi(m[1])
		q, _ := strconv.Atoi(m[2])
		return quarterPeriod(y, q, loc), nil
	}
	if m := rangeRE.FindStringSubmatch(spec); m != nil {
		from, err1 := time.ParseInLocation("2006-01-02", m[1], loc)
		to, err2 := time.ParseInLocation("2006-01-02", m[2], loc)
		if err1 != nil || err2 != nil {
			return Period{}, fmt.Errorf("period %q: not valid dates", spec)
		}
		if to.Before(from) {
			return Period{}, fmt.Errorf("period %q: ends before it starts", spec)
		}
		return Period{Name: spec, Kind: "range", Start: from, End: to.AddDate(0, 0, 1)}, nil
	}
	return Period{}, fmt.Errorf("period %q: use 2026-10 (month), 2026-W43 (ISO week), 2026-Q3 (quarter), 2026-10-01..2026-10-15 (days), or month, week, quarter (the last complete one)", spec)
}

func monthPeriod(y int, m time.Month, loc *time.Location) Period {
	start := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	return Period{Name: start.Format("2006-01"), Kind: "month", Start: start, End: start.AddDate(0, 1, 0)}
}

func quarterPeriod(y, q int, loc *time.Location) Period {
	start := time.Date(y, time.Month(3*(q-1)+1), 1, 0, 0, 0, 0, loc)
	return Period{Name: fmt.Sprintf("%d-Q%d", y, q), Kind: "quarter", Start: start, End: start.AddDate(0, 3, 0)}
}

// weekPeriod is ISO week w of ISO year y: it starts on the Monday of the
// week holding 4 January.
func weekPeriod(y, w int, loc *time.Location) (Period, bool) {
	jan4 := time.Date(y, 1, 4, 0, 0, 0, 0, loc)
	monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	start := monday.AddDate(0, 0, 7*(w-1))
	if yy, ww := start.ISOWeek(); yy != y || ww != w || w < 1 {
		return Period{}, false
	}
	return Period{Name: fmt.Sprintf("%d-W%02d", y, w), Kind: "week", Start: start, End: start.AddDate(0, 0, 7)}, true
}

// Previous is the period before p of the same kind: the previous month,
// week or quarter, or the range of the same number of days just before.
func (p Period) Previous() Period {
	loc := p.Start.Location()
	switch p.Kind {
	case "month":
		s := p.Start.AddDate(0, -1, 0)
		return monthPeriod(s.Year(), s.Month(), loc)
	case "quarter":
		s := p.Start.AddDate(0, -3, 0)
		return quarterPeriod(s.Year(), (int(s.Month())-1)/3+1, loc)
	case "week":
		y, w := p.Start.AddDate(0, 0, -7).ISOWeek()
		prev, _ := weekPeriod(y, w, loc)
		return prev
	}
	days := int(p.End.Sub(p.Start).Hours()/24 + 0.5)
	start := p.Start.AddDate(0, 0, -days)
	last := p.Start.AddDate(0, 0, -1)
	return Period{Name: start.Format("2006-01-02") + ".." + last.Format("2006-01-02"), Kind: "range", Start: start, End: p.Start}
}

// Duration is the period's length (DST changes included).
func (p Period) Duration() time.Duration { return p.End.Sub(p.Start) }

// maxSteps bounds the points of a period's hour grid: Prometheus answers
// at most 11,000 points per range query.
const maxSteps = 10000

// hourGrid is the end of every hour of p, p.End last: whole hours after
// the start, which are the hours of the period's zone (a DST day has 23
// or 25 of them) wherever offsets change by whole hours. A period longer
// than maxSteps hours gets steps of several hours. If p.End is not on
// the grid (a zone whose offset changed by half an hour), its last
// interval is shorter.
func hourGrid(p Period) ([]time.Time, time.Duration) {
	step := time.Hour
	if n := int64(p.Duration() / time.Hour); n > maxSteps {
		step *= time.Duration((n + maxSteps - 1) / maxSteps)
	}
	var out []time.Time
	for t := p.Start.Add(step); t.Before(p.End); t = t.Add(step) {
		out = append(out, t)
	}
	return append(out, p.End), step
}

// dayEnds is the end of every calendar day of p in its zone (local
// midnights), p.End last.
func dayEnds(p Period) []time.Time {
	var out []time.Time
	for d := p.Start; ; {
		d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, d.Location())
		if !d.Before(p.End) {
			return append(out, p.End)
		}
		out = append(out, d)
	}
}
