// Package calendar does business-time arithmetic: how much of an interval
// falls inside weekly opening hours, minus holidays, in a time zone.
package calendar

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// FieldError is a problem with one field of a schedule definition.
type FieldError struct {
	Field string // weekly.mon[0], holidays[2], time_zone
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// span is an opening range within a day, in minutes after local midnight.
type span struct{ from, to int }

// Calendar is a compiled business-hours schedule.
type Calendar struct {
	Name     string
	loc      *time.Location
	week     [7][]span // by time.Weekday
	holidays map[string]bool
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// New compiles a schedule. weekly maps mon..sun to "HH:MM-HH:MM" ranges in
// local wall-clock time; holidays are YYYY-MM-DD dates closed all day.
func New(name, tz string, weekly map[string][]string, holidays []string) (*Calendar, error) {
	if tz == "" {
		return nil, &FieldError{Field: "time_zone", Msg: "is required (e.g. Europe/Berlin)"}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, &FieldError{Field: "time_zone", Msg: fmt.Sprintf("unknown time zone %q", tz)}
	}
	c := &Calendar{Name: name, loc: loc, holidays: map[string]bool{}}
	days := make([]string, 0, len(weekly))
	for d := range weekly {
		days = append(days, d)
	}
	sort.Strings(days)
	open := false
	for _, d := range days {
		wd, ok := dayNames[strings.ToLower(d)]
		if !ok {
			return nil, &FieldError{Field: "weekly." + d, Msg: fmt.Sprintf("unknown day %q (mon, tue, wed, thu, fri, sat, sun)", d)}
		}
		var spans []span
		for i, r := range weekly[d] {
			s, err := parseRange(r)
			if err != nil {
				return nil, &FieldError{Field: fmt.Sprintf("weekly.%s[%d]", d, i), Msg: err.Error()}
			}
			spans = append(spans, s)
		}
		sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
		for i := 1; i < len(spans); i++ {
			if spans[i].from < spans[i-1].to {
				return nil, &FieldError{Field: "weekly." + d, Msg: "opening ranges overlap"}
			}
		}
		c.week[wd] = spans
		open = open || len(spans) > 0
	}
	if !open {
		return nil, &FieldError{Field: "weekly", Msg: "no opening hours: at least one day needs a range such as \"09:00-17:00\""}
	}
	for i, h := range holidays {
		if _, err := time.Parse("2006-01-02", h); err != nil {
			return nil, &FieldError{Field: fmt.Sprintf("holidays[%d]", i), Msg: fmt.Sprintf("%q is not a date (YYYY-MM-DD)", h)}
		}
		c.holidays[h] = true
	}
	return c, nil
}

func parseRange(r string) (span, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(r), "-")
	if !ok {
		return span{}, fmt.Errorf("%q is not a range HH:MM-HH:MM", r)
	}
	from, err1 := parseClock(a)
	to, err2 := parseClock(b)
	if err1 != nil || err2 != nil {
		return span{}, fmt.Errorf("%q is not a range HH:MM-HH:MM", r)
	}
	if from >= to {
		return span{}, fmt.Errorf("%q ends before it starts", r)
	}
	return span{from, to}, nil
}

func parseClock(s string) (int, error) {
	var h, m int
	if n, err := fmt.Sscanf(strings.TrimSpace(s), "%d:%d", &h, &m); n != 2 || err != nil {
		return 0, fmt.Errorf("bad clock")
	}
	if h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("bad clock")
	}
	return h*60 + m, nil
}

// Location is the schedule's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// intervals returns the opening intervals of the local day that starts at
// midnight (a time.Date in c.loc), as real instants: wall-clock ranges are
// converted with time.Date, so DST days are handled by the zone database.
func (c *Calendar) intervals(day time.Time) [][2]time.Time {
	if c.holidays[day.Format("2006-01-02")] {
		return nil
	}
	var out [][2]time.Time
	y, mo, d := day.Date()
	for _, s := range c.week[day.Weekday()] {
		from := time.Date(y, mo, d, s.from/60, s.from%60, 0, 0, c.loc)
		to := time.Date(y, mo, d, s.to/60, s.to%60, 0, 0, c.loc)
		if to.After(from) {
			out = append(out, [2]time.Time{from, to})
		}
	}
	return out
}

func (c *Calendar) midnight(t time.Time) time.Time {
	l := t.In(c.loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, c.loc)
}

func nextDay(day time.Time) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, day.Location())
}

// Open reports whether t is inside business hours.
func (c *Calendar) Open(t time.Time) bool {
	for _, iv := range c.intervals(c.midnight(t)) {
		if !t.Before(iv[0]) && t.Before(iv[1]) {
			return true
		}
	}
	return false
}

// Between is the business time inside [a, b).
func (c *Calendar) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	var total time.Duration
	for day := c.midnight(a); day.Before(b); day = nextDay(day) {
		for _, iv := range c.intervals(day) {
			from, to := iv[0], iv[1]
			if from.Before(a) {
				from = a
			}
			if to.After(b) {
				to = b
			}
			if to.After(from) {
				total += to.Sub(from)
			}
		}
	}
	return total
}

// maxSearchDays bounds Add on a schedule that is closed for a very long
// stretch (e.g. a year of holidays).
const maxSearchDays = 3660

// Add returns the instant at which d of business time has elapsed after t:
// the deadline of an SLO with threshold d for a ticket created at t.
func (c *Calendar) Add(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return t
	}
	day := c.midnight(t)
	for i := 0; i < maxSearchDays; i++ {
		for _, iv := range c.intervals(day) {
			from, to := iv[0], iv[1]
			if !to.After(t) {
				continue
			}
			if from.Before(t) {
				from = t
			}
			if avail := to.Sub(from); avail >= d {
				return from.Add(d)
			} else {
				d -= avail
			}
		}
		day = nextDay(day)
	}
	return t.Add(d)
}
