// Package calendar does business-time arithmetic: how much of an interval
// falls inside weekly opening hours, minus holidays, in a time zone.
//
// Opening hours are wall-clock readings. A reading names the first instant
// at which the zone's clocks show that reading or a later one, so on a
// spring-forward day a skipped reading means the moment of the jump, and on
// a fall-back day a repeated reading means its first occurrence. This keeps
// the mapping from readings to instants monotonic: ranges that do not
// overlap on the clock never overlap in real time, and a range spanning the
// change holds one hour less (spring) or more (fall) of real time.
package calendar

import (
	"fmt"
	"sort"
	"time"
	// Zone rules even on hosts without a zoneinfo database (scratch or
	// distroless containers), where every time_zone would be "unknown".
	_ "time/tzdata"
)

// FieldError is a problem with one field of a schedule definition.
type FieldError struct {
	Field string // weekly.mon[0], holidays[2], time_zone
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// span is an opening range within a day, in minutes after local midnight.
type span struct{ from, to int }

// day is a civil date, in days since 1970-01-01. Loops step over civil
// dates rather than over local midnights because midnight itself does not
// exist on some DST days (America/Santiago, America/Havana), where
// time.Date may hand back 23:00 of the previous day.
type day int64

const secondsPerDay = 24 * 60 * 60

func dayOf(y int, m time.Month, d int) day {
	return day(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / secondsPerDay)
}

func (n day) date() (int, time.Month, int) {
	return time.Unix(int64(n)*secondsPerDay, 0).UTC().Date()
}

func (n day) weekday() time.Weekday {
	// 1970-01-01 was a Thursday; the double modulo handles earlier dates.
	return time.Weekday((int64(n)%7 + 7 + int64(time.Thursday)) % 7)
}

// Calendar is a compiled business-hours schedule. It is immutable and safe
// for concurrent use.
type Calendar struct {
	Name     string
	loc      *time.Location
	week     [7][]span // by time.Weekday
	holidays map[day]bool
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// New compiles a schedule. weekly maps mon..sun to "HH:MM-HH:MM" ranges in
// local wall-clock time of tz (end 24:00 allowed, no overlaps; a day not
// listed or listed empty is closed); holidays are YYYY-MM-DD dates in tz
// closed all day. Every error is a *FieldError.
func New(name, tz string, weekly map[string][]string, holidays []string) (*Calendar, error) {
	loc, err := loadZone(tz)
	if err != nil {
		return nil, err
	}
	c := &Calendar{Name: name, loc: loc, holidays: map[day]bool{}}
	if err := c.compileWeek(weekly); err != nil {
		return nil, err
	}
	for i, h := range holidays {
		d, err := time.Parse(time.DateOnly, h)
		if err != nil {
			return nil, &FieldError{Field: fmt.Sprintf("holidays[%d]", i), Msg: fmt.Sprintf("%q is not a date (YYYY-MM-DD)", h)}
		}
		c.holidays[dayOf(d.Date())] = true
	}
	return c, nil
}

func loadZone(tz string) (*time.Location, error) {
	if tz == "" {
		return nil, &FieldError{Field: "time_zone", Msg: "is required (e.g. Europe/Berlin)"}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, &FieldError{Field: "time_zone", Msg: fmt.Sprintf("unknown time zone %q", tz)}
	}
	return loc, nil
}

func (c *Calendar) compileWeek(weekly map[string][]string) error {
	// Sorted so that a schedule with several mistakes always reports the
	// same one first.
	names := make([]string, 0, len(weekly))
	for d := range weekly {
		names = append(names, d)
	}
	sort.Strings(names)
	open := false
	for _, d := range names {
		wd, ok := dayNames[d]
		if !ok {
			return &FieldError{Field: "weekly." + d, Msg: fmt.Sprintf("unknown day %q (mon, tue, wed, thu, fri, sat, sun)", d)}
		}
		spans, err := compileDay(d, weekly[d])
		if err != nil {
			return err
		}
		c.week[wd] = spans
		open = open || len(spans) > 0
	}
	if !open {
		return &FieldError{Field: "weekly", Msg: `no opening hours: at least one day needs a range such as "09:00-17:00"`}
	}
	return nil
}

// compileDay parses one day's ranges and sorts them by start.
func compileDay(name string, ranges []string) ([]span, error) {
	type indexed struct {
		span
		i int
	}
	var all []indexed
	for i, r := range ranges {
		s, err := parseRange(r)
		if err != nil {
			return nil, &FieldError{Field: fmt.Sprintf("weekly.%s[%d]", name, i), Msg: err.Error()}
		}
		all = append(all, indexed{s, i})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].from < all[j].from })
	spans := make([]span, len(all))
	for k, s := range all {
		if k > 0 && s.from < all[k-1].to {
			prev := all[k-1]
			return nil, &FieldError{Field: fmt.Sprintf("weekly.%s[%d]", name, s.i),
				Msg: fmt.Sprintf("%q overlaps %q (weekly.%s[%d])", ranges[s.i], ranges[prev.i], name, prev.i)}
		}
		spans[k] = s.span
	}
	return spans, nil
}

func parseRange(r string) (span, error) {
	bad := fmt.Errorf("%q is not a range HH:MM-HH:MM", r)
	if len(r) != len("HH:MM-HH:MM") || r[5] != '-' {
		return span{}, bad
	}
	from, ok1 := parseClock(r[:5])
	to, ok2 := parseClock(r[6:])
	if !ok1 || !ok2 {
		return span{}, bad
	}
	if from == to {
		return span{}, fmt.Errorf("%q is empty (it ends when it starts)", r)
	}
	if from > to {
		return span{}, fmt.Errorf("%q ends before it starts", r)
	}
	return span{from, to}, nil
}

// parseClock reads exactly HH:MM, 00:00 to 24:00, as minutes.
func parseClock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	digits := [4]int{}
	for k, p := range [4]int{0, 1, 3, 4} {
		if s[p] < '0' || s[p] > '9' {
			return 0, false
		}
		digits[k] = int(s[p] - '0')
	}
	h, m := digits[0]*10+digits[1], digits[2]*10+digits[3]
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

// Location is the schedule's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// dayAt is the civil date of t in the schedule's zone.
func (c *Calendar) dayAt(t time.Time) day { return dayOf(t.In(c.loc).Date()) }

// at is the first instant at which the zone's clocks read minute m of day n
// or later (m may be 24*60, the next midnight, for a "24:00" end). time.Date alone
// leaves skipped and repeated readings unspecified; in practice it moves a
// skipped reading forward in Berlin but backward in New York, either of
// which would let adjacent ranges overlap or invert.
func (c *Calendar) at(n day, m int) time.Time {
	y, mo, d := n.date()
	want := time.Date(y, mo, d, 0, m, 0, 0, time.UTC)
	t := time.Date(y, mo, d, 0, m, 0, 0, c.loc)
	got := wall(t)
	switch {
	case got.Equal(want):
		return firstOccurrence(t)
	case got.After(want): // skipped, and time.Date went past the jump
		start, _ := t.ZoneBounds()
		return start
	default: // skipped, and time.Date stayed before the jump
		_, end := t.ZoneBounds()
		return end
	}
}

// wall is t's local reading, as a UTC time so that readings compare.
func wall(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.UTC)
}

// firstOccurrence moves t to the earlier of the two instants that share
// its reading when clocks were set back just before t's zone period began.
func firstOccurrence(t time.Time) time.Time {
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return t
	}
	_, off := t.Zone()
	_, prevOff := start.Add(-time.Nanosecond).Zone()
	if e := t.Add(time.Duration(off-prevOff) * time.Second); e.Before(start) && wall(e).Equal(wall(t)) {
		return e
	}
	return t
}

// interval is a stretch of opening time as real instants, [from, to).
type interval struct{ from, to time.Time }

// intervals appends the opening intervals of day n to buf, in order.
func (c *Calendar) intervals(buf []interval, n day) []interval {
	if c.holidays[n] {
		return buf
	}
	for _, s := range c.week[n.weekday()] {
		from, to := c.at(n, s.from), c.at(n, s.to)
		if to.After(from) { // a range inside a skipped hour holds no time
			buf = append(buf, interval{from, to})
		}
	}
	return buf
}

// Open reports whether t is inside business hours. It is defined through
// Between so that the two can never disagree about a boundary.
func (c *Calendar) Open(t time.Time) bool { return c.Between(t, t.Add(1)) > 0 }

// Between is the business time inside [a, b); 0 if b is not after a.
func (c *Calendar) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	var total time.Duration
	var buf [8]interval
	// No interval of an earlier day ends after a (readings map
	// monotonically to instants), and none of a day starting at or after b
	// begins before b.
	for n := c.dayAt(a); c.at(n, 0).Before(b); n++ {
		for _, iv := range c.intervals(buf[:0], n) {
			from, to := later(iv.from, a), earlier(iv.to, b)
			if to.After(from) {
				total += to.Sub(from)
			}
		}
	}
	return total
}

// horizonDays bounds Add: a deadline more than a century of calendar days
// away is as good as never, and a schedule closed that long (all holidays)
// must not loop forever.
const horizonDays = 36525

// Add returns the instant at which d of business time has elapsed after t:
// the deadline of an SLO with threshold d for a ticket created at t. When t
// is outside business hours counting starts at the next opening; a result
// that ends an opening range is that range's closing instant. d <= 0
// returns t unchanged. If d is not reached within horizonDays the result
// is the horizon plus the time still missing, a lower bound.
func (c *Calendar) Add(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return t
	}
	var buf [8]interval
	first := c.dayAt(t)
	for n := first; n < first+horizonDays; n++ {
		for _, iv := range c.intervals(buf[:0], n) {
			if !iv.to.After(t) {
				continue
			}
			from := later(iv.from, t)
			avail := iv.to.Sub(from)
			if avail >= d {
				return from.Add(d)
			}
			d -= avail
		}
	}
	return later(c.at(first+horizonDays, 0), t).Add(d)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
