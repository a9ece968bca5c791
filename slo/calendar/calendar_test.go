package calendar

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

var weekdays9to17 = map[string][]string{
	"mon": {"09:00-17:00"}, "tue": {"09:00-17:00"}, "wed": {"09:00-17:00"}, "thu": {"09:00-17:00"}, "fri": {"09:00-17:00"},
}

func mustNew(t testing.TB, tz string, weekly map[string][]string, holidays ...string) *Calendar {
	t.Helper()
	c, err := New("test", tz, weekly, holidays)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func berlin(t testing.TB, y int, m time.Month, d, h, min int) time.Time {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return time.Date(y, m, d, h, min, 0, 0, loc)
}

func TestBetween(t *testing.T) {
	c := mustNew(t, "Europe/Berlin", weekdays9to17, "2026-12-25")
	lunch := mustNew(t, "Europe/Berlin", map[string][]string{"mon": {"08:00-12:00", "13:00-17:00"}})
	late := mustNew(t, "Europe/Berlin", map[string][]string{"sat": {"20:00-24:00"}, "sun": {"01:00-04:00"}})
	h := time.Hour
	for _, tc := range []struct {
		name string
		c    *Calendar
		a, b time.Time
		want time.Duration
	}{
		// Monday 2026-11-02 10:00 -> 12:30, inside hours.
		{"inside", c, berlin(t, 2026, 11, 2, 10, 0), berlin(t, 2026, 11, 2, 12, 30), 2*h + 30*time.Minute},
		// Monday 16:00 -> Tuesday 10:00: 1h Monday + 1h Tuesday.
		{"overnight", c, berlin(t, 2026, 11, 2, 16, 0), berlin(t, 2026, 11, 3, 10, 0), 2 * h},
		// Friday 16:00 -> Monday 10:00: 1h + 1h, the weekend is closed.
		{"weekend", c, berlin(t, 2026, 11, 6, 16, 0), berlin(t, 2026, 11, 9, 10, 0), 2 * h},
		// Thursday 24 Dec 16:00 -> Monday 28 Dec 10:00: 1h Thu, Fri 25th is
		// a holiday, 1h Mon.
		{"holiday", c, berlin(t, 2026, 12, 24, 16, 0), berlin(t, 2026, 12, 28, 10, 0), 2 * h},
		// Saturday to Sunday, closed.
		{"closed", c, berlin(t, 2026, 11, 7, 9, 0), berlin(t, 2026, 11, 8, 18, 0), 0},
		// Lunch break: 11:00 -> 14:00 counts 11-12 and 13-14.
		{"lunch", lunch, berlin(t, 2026, 11, 2, 11, 0), berlin(t, 2026, 11, 2, 14, 0), 2 * h},
		// 24:00 end: Saturday 22:00 -> Sunday 02:00 = 2h + 1h.
		{"midnight end", late, berlin(t, 2026, 11, 7, 22, 0), berlin(t, 2026, 11, 8, 2, 0), 3 * h},
		// Instants in UTC: 08:00Z = 09:00 CET on Monday, 10:00Z = 11:00 CET.
		{"utc input", c, time.Date(2026, 11, 2, 7, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), 2 * h},
		// Spring forward (Sunday 2026-03-29, 02:00 -> 03:00): a 01:00-04:00
		// range holds only 2 real hours.
		{"dst spring", late, berlin(t, 2026, 3, 29, 0, 0), berlin(t, 2026, 3, 29, 12, 0), 2 * h},
		// Fall back (Sunday 2026-10-25, 03:00 -> 02:00): 01:00-04:00 holds
		// 4 real hours.
		{"dst fall", late, berlin(t, 2026, 10, 25, 0, 0), berlin(t, 2026, 10, 25, 12, 0), 4 * h},
		// A weekday on the DST boundary week: Monday 30 March 09-17 is 8h.
		{"day after dst", c, berlin(t, 2026, 3, 30, 0, 0), berlin(t, 2026, 3, 31, 0, 0), 8 * h},
		{"reversed", c, berlin(t, 2026, 11, 3, 0, 0), berlin(t, 2026, 11, 2, 0, 0), 0},
	} {
		if got := tc.c.Between(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Between = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestAdd(t *testing.T) {
	c := mustNew(t, "Europe/Berlin", weekdays9to17, "2026-12-25")
	h := time.Hour
	for _, tc := range []struct {
		name  string
		start time.Time
		d     time.Duration
		want  time.Time
	}{
		{"same day", berlin(t, 2026, 11, 2, 10, 0), 4 * h, berlin(t, 2026, 11, 2, 14, 0)},
		// Ends exactly at closing: the closing instant, not next morning.
		{"at closing", berlin(t, 2026, 11, 2, 13, 0), 4 * h, berlin(t, 2026, 11, 2, 17, 0)},
		// Friday 15:00 + 4h: 2h Friday, 2h Monday -> Monday 11:00.
		{"over weekend", berlin(t, 2026, 11, 6, 15, 0), 4 * h, berlin(t, 2026, 11, 9, 11, 0)},
		// Created Saturday night: counting starts Monday 09:00.
		{"from closed", berlin(t, 2026, 11, 7, 23, 0), 30 * time.Minute, berlin(t, 2026, 11, 9, 9, 30)},
		// Thursday 24 Dec 16:00 + 2h: 1h Thu, Friday holiday, 1h Monday.
		{"holiday", berlin(t, 2026, 12, 24, 16, 0), 2 * h, berlin(t, 2026, 12, 28, 10, 0)},
		{"zero", berlin(t, 2026, 11, 7, 23, 0), 0, berlin(t, 2026, 11, 7, 23, 0)},
	} {
		if got := c.Add(tc.start, tc.d); !got.Equal(tc.want) {
			t.Errorf("%s: Add = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// Between(t, Add(t, d)) == d for any start and duration.
func TestAddBetweenRoundTrip(t *testing.T) {
	c := mustNew(t, "America/New_York", map[string][]string{
		"mon": {"08:30-12:00", "13:00-18:00"}, "wed": {"00:00-24:00"}, "sat": {"10:00-14:00"}}, "2026-07-03")
	r := rand.New(rand.NewPCG(7, 7))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2000; i++ {
		start := base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
		d := time.Duration(r.Int64N(int64(200 * time.Hour)))
		end := c.Add(start, d)
		if got := c.Between(start, end); got != d {
			t.Fatalf("start %s d %s: Add = %s, Between back = %s", start, d, end, got)
		}
		if d > 0 && !c.Open(end.Add(-time.Nanosecond)) {
			t.Fatalf("start %s d %s: deadline %s does not close an open stretch", start, d, end)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		tz       string
		weekly   map[string][]string
		holidays []string
		field    string
		msg      string
	}{
		{"", weekdays9to17, nil, "time_zone", "is required (e.g. Europe/Berlin)"},
		{"Mars/Olympus", weekdays9to17, nil, "time_zone", `unknown time zone "Mars/Olympus"`},
		{"UTC", map[string][]string{"funday": {"09:00-17:00"}}, nil, "weekly.funday", `unknown day "funday" (mon, tue, wed, thu, fri, sat, sun)`},
		{"UTC", map[string][]string{"mon": {"9-5"}}, nil, "weekly.mon[0]", `"9-5" is not a range HH:MM-HH:MM`},
		{"UTC", map[string][]string{"mon": {"09:00-17:00", "17:00-18:00", "18:00-17:30"}}, nil, "weekly.mon[2]", `"18:00-17:30" ends before it starts`},
		{"UTC", map[string][]string{"mon": {"09:00-13:00", "12:00-17:00"}}, nil, "weekly.mon", "opening ranges overlap"},
		{"UTC", map[string][]string{"mon": {"09:00-25:00"}}, nil, "weekly.mon[0]", `"09:00-25:00" is not a range HH:MM-HH:MM`},
		{"UTC", map[string][]string{}, nil, "weekly", `no opening hours: at least one day needs a range such as "09:00-17:00"`},
		{"UTC", weekdays9to17, []string{"2026-12-25", "25.12.2026"}, "holidays[1]", `"25.12.2026" is not a date (YYYY-MM-DD)`},
	} {
		_, err := New("x", tc.tz, tc.weekly, tc.holidays)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Msg != tc.msg {
			t.Errorf("New(%q, %v, %v) = %v, want %s: %s", tc.tz, tc.weekly, tc.holidays, err, tc.field, tc.msg)
		}
	}
}

func BenchmarkBetween(b *testing.B) {
	c := mustNew(b, "Europe/Berlin", weekdays9to17, "2026-12-25")
	a := berlin(b, 2026, 11, 1, 7, 13)
	e := a.Add(30 * 24 * time.Hour)
	for i := 0; i < b.N; i++ {
		c.Between(a, e)
	}
}
