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

const h = time.Hour

func mustNew(t testing.TB, tz string, weekly map[string][]string, holidays ...string) *Calendar {
	t.Helper()
	c, err := New("test", tz, weekly, holidays)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func zone(t testing.TB, tz string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// local is a wall-clock reading that exists exactly once in tz.
func local(t testing.TB, tz string, y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, zone(t, tz))
}

func berlin(t testing.TB, y int, m time.Month, d, hh, mm int) time.Time {
	return local(t, "Europe/Berlin", y, m, d, hh, mm)
}

func newYork(t testing.TB, y int, m time.Month, d, hh, mm int) time.Time {
	return local(t, "America/New_York", y, m, d, hh, mm)
}

func utc(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

// Zone changes used below (2026):
//
//	Europe/Berlin    Sun 29 Mar 01:00Z: 02:00 CET  -> 03:00 CEST
//	                 Sun 25 Oct 01:00Z: 03:00 CEST -> 02:00 CET
//	America/New_York Sun  8 Mar 07:00Z: 02:00 EST  -> 03:00 EDT
//	                 Sun  1 Nov 06:00Z: 02:00 EDT  -> 01:00 EST
//	America/Santiago Sun  5 Apr 03:00Z: 00:00 -03  -> Sat 23:00 -04
//	                 Sun  6 Sep 04:00Z: 00:00 -04  -> 01:00 -03
//
// TestZoneFacts pins them so that a tzdata change shows up there, not as a
// puzzling arithmetic failure.
func TestZoneFacts(t *testing.T) {
	for _, tc := range []struct {
		tz      string
		at      time.Time // first instant of the new offset
		before  int       // offset in seconds just before
		after   int
		comment string
	}{
		{"Europe/Berlin", utc(2026, 3, 29, 1, 0), 3600, 7200, "spring"},
		{"Europe/Berlin", utc(2026, 10, 25, 1, 0), 7200, 3600, "fall"},
		{"America/New_York", utc(2026, 3, 8, 7, 0), -5 * 3600, -4 * 3600, "spring"},
		{"America/New_York", utc(2026, 11, 1, 6, 0), -4 * 3600, -5 * 3600, "fall"},
		{"America/Santiago", utc(2026, 4, 5, 3, 0), -3 * 3600, -4 * 3600, "fall"},
		{"America/Santiago", utc(2026, 9, 6, 4, 0), -4 * 3600, -3 * 3600, "spring"},
	} {
		loc := zone(t, tc.tz)
		_, before := tc.at.Add(-time.Nanosecond).In(loc).Zone()
		_, after := tc.at.In(loc).Zone()
		if before != tc.before || after != tc.after {
			t.Errorf("%s %s at %s: offsets %d -> %d, want %d -> %d", tc.tz, tc.comment, tc.at, before, after, tc.before, tc.after)
		}
	}
}

func TestBetween(t *testing.T) {
	c := mustNew(t, "Europe/Berlin", weekdays9to17, "2026-12-25")
	ny := mustNew(t, "America/New_York", weekdays9to17)
	lunch := mustNew(t, "Europe/Berlin", map[string][]string{"mon": {"08:00-12:00", "13:00-17:00"}})
	late := mustNew(t, "Europe/Berlin", map[string][]string{"sat": {"20:00-24:00"}, "sun": {"01:00-04:00"}})
	allDay := mustNew(t, "America/New_York", map[string][]string{"sun": {"00:00-24:00"}})
	for _, tc := range []struct {
		name string
		c    *Calendar
		a, b time.Time
		want time.Duration
	}{
		// Monday 2026-11-02 10:00 -> 12:30, inside hours.
		{"inside", c, berlin(t, 2026, 11, 2, 10, 0), berlin(t, 2026, 11, 2, 12, 30), 2*h + 30*time.Minute},
		// Starts before opening, ends after closing: the whole 09-17 = 8h.
		{"whole day", c, berlin(t, 2026, 11, 2, 6, 0), berlin(t, 2026, 11, 2, 20, 0), 8 * h},
		// Monday 16:00 -> Tuesday 10:00: 1h Monday + 1h Tuesday.
		{"overnight", c, berlin(t, 2026, 11, 2, 16, 0), berlin(t, 2026, 11, 3, 10, 0), 2 * h},
		// Friday 16:00 -> Monday 10:00: 1h + 1h, the weekend is closed.
		{"weekend", c, berlin(t, 2026, 11, 6, 16, 0), berlin(t, 2026, 11, 9, 10, 0), 2 * h},
		// Mon 2 Nov 00:00 -> Mon 9 Nov 00:00: 5 days x 8h.
		{"week", c, berlin(t, 2026, 11, 2, 0, 0), berlin(t, 2026, 11, 9, 0, 0), 40 * h},
		// Thursday 24 Dec 16:00 -> Monday 28 Dec 10:00: 1h Thu, Fri 25th is
		// a holiday, 1h Mon.
		{"holiday", c, berlin(t, 2026, 12, 24, 16, 0), berlin(t, 2026, 12, 28, 10, 0), 2 * h},
		// Inside the holiday itself.
		{"on holiday", c, berlin(t, 2026, 12, 25, 10, 0), berlin(t, 2026, 12, 25, 12, 0), 0},
		// Saturday to Sunday, closed.
		{"closed", c, berlin(t, 2026, 11, 7, 9, 0), berlin(t, 2026, 11, 8, 18, 0), 0},
		// Lunch break: 11:00 -> 14:00 counts 11-12 and 13-14.
		{"lunch", lunch, berlin(t, 2026, 11, 2, 11, 0), berlin(t, 2026, 11, 2, 14, 0), 2 * h},
		// Entirely inside the break.
		{"in lunch", lunch, berlin(t, 2026, 11, 2, 12, 10), berlin(t, 2026, 11, 2, 12, 50), 0},
		// 24:00 end: Saturday 22:00 -> Sunday 02:00 = 2h + 1h.
		{"midnight end", late, berlin(t, 2026, 11, 7, 22, 0), berlin(t, 2026, 11, 8, 2, 0), 3 * h},
		// Instants in UTC: 07:00Z = 08:00 CET (closed until 09:00 CET =
		// 08:00Z), 10:00Z = 11:00 CET: 09:00 -> 11:00 = 2h.
		{"utc input", c, utc(2026, 11, 2, 7, 0), utc(2026, 11, 2, 10, 0), 2 * h},
		// Summer: 09:00 CEST = 07:00Z, so 06:00Z -> 08:00Z holds 1h.
		{"utc input summer", c, utc(2026, 7, 6, 6, 0), utc(2026, 7, 6, 8, 0), h},
		// Same instants, New York schedule: 09:00 EST = 14:00Z; 14:00Z ->
		// 16:30Z = 2h30.
		{"utc input ny", ny, utc(2026, 11, 2, 13, 0), utc(2026, 11, 2, 16, 30), 2*h + 30*time.Minute},
		// Spring forward (Sunday 2026-03-29, 02:00 -> 03:00): 01:00-04:00 is
		// 00:00Z -> 02:00Z, 2 real hours.
		{"dst spring", late, berlin(t, 2026, 3, 29, 0, 0), berlin(t, 2026, 3, 29, 12, 0), 2 * h},
		// Fall back (Sunday 2026-10-25, 03:00 -> 02:00): 01:00 CEST =
		// 23:00Z (24th) -> 04:00 CET = 03:00Z, 4 real hours.
		{"dst fall", late, berlin(t, 2026, 10, 25, 0, 0), berlin(t, 2026, 10, 25, 12, 0), 4 * h},
		// Weekday hours are wall-clock: Fri 27 Mar 12:00 CET -> Mon 30 Mar
		// 12:00 CEST is 5h Friday + 3h Monday = 8h, though only 71h passed.
		{"weekend with dst", c, berlin(t, 2026, 3, 27, 12, 0), berlin(t, 2026, 3, 30, 12, 0), 8 * h},
		// Monday after the change, 09-17 CEST is 8h.
		{"day after dst", c, berlin(t, 2026, 3, 30, 0, 0), berlin(t, 2026, 3, 31, 0, 0), 8 * h},
		// Fall back weekend: Fri 23 Oct 16:00 CEST -> Mon 26 Oct 10:00 CET
		// = 1h + 1h.
		{"weekend with fall dst", c, berlin(t, 2026, 10, 23, 16, 0), berlin(t, 2026, 10, 26, 10, 0), 2 * h},
		// New York, Sat 7 Mar 00:00 EST -> Mon 9 Mar 12:00 EDT: 09-12 = 3h.
		{"ny spring weekend", ny, newYork(t, 2026, 3, 7, 0, 0), newYork(t, 2026, 3, 9, 12, 0), 3 * h},
		// A whole Sunday on the change days: 23h (Mar 8), 25h (Nov 1).
		{"ny 23h day", allDay, newYork(t, 2026, 3, 7, 12, 0), newYork(t, 2026, 3, 9, 12, 0), 23 * h},
		{"ny 25h day", allDay, newYork(t, 2026, 10, 31, 12, 0), newYork(t, 2026, 11, 2, 12, 0), 25 * h},
		// Same day, a normal Sunday: 24h.
		{"ny 24h day", allDay, newYork(t, 2026, 3, 14, 12, 0), newYork(t, 2026, 3, 16, 12, 0), 24 * h},
		{"empty", c, berlin(t, 2026, 11, 2, 10, 0), berlin(t, 2026, 11, 2, 10, 0), 0},
		{"reversed", c, berlin(t, 2026, 11, 3, 0, 0), berlin(t, 2026, 11, 2, 0, 0), 0},
	} {
		if got := tc.c.Between(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Between = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A year of 40h weeks, computed per day rather than per minute.
func TestBetweenYear(t *testing.T) {
	c := mustNew(t, "Europe/Berlin", weekdays9to17, "2026-12-25", "2026-12-26")
	// 2026 has 365 days starting Thursday: 52 weeks + Thu 31 Dec, so 52*5+1
	// = 261 weekdays; 25 Dec is a Friday (-1), 26 Dec a Saturday (no
	// effect): 260 days x 8h = 2080h.
	if got := c.Between(berlin(t, 2026, 1, 1, 0, 0), berlin(t, 2027, 1, 1, 0, 0)); got != 2080*h {
		t.Errorf("Between over 2026 = %s, want 2080h", got)
	}
}

// Ranges whose ends fall into a skipped or repeated hour. A reading stands
// for the first instant the clocks show it or later.
func TestBetweenDSTEdges(t *testing.T) {
	gapB := mustNew(t, "Europe/Berlin", map[string][]string{"sun": {"01:00-02:30", "03:00-05:00"}})
	gapNY := mustNew(t, "America/New_York", map[string][]string{"sun": {"01:00-02:30", "03:00-05:00"}})
	touchB := mustNew(t, "Europe/Berlin", map[string][]string{"sun": {"00:00-02:30", "02:30-04:00"}})
	inGap := mustNew(t, "Europe/Berlin", map[string][]string{"sun": {"02:10-02:50"}, "mon": {"09:00-10:00"}})
	ambNY := mustNew(t, "America/New_York", map[string][]string{"sun": {"01:30-03:00"}})
	chile := mustNew(t, "America/Santiago", map[string][]string{"sat": {"22:00-24:00"}, "sun": {"00:00-02:00"}})
	for _, tc := range []struct {
		name string
		c    *Calendar
		a, b time.Time
		want time.Duration
	}{
		// 01:00 CET = 00:00Z; 02:30 is skipped, so the jump 01:00Z: 1h.
		// 03:00 CEST = 01:00Z -> 05:00 CEST = 03:00Z: 2h. Total 3h, no
		// double counting of 01:00Z-01:30Z.
		{"berlin gap end", gapB, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0), 3 * h},
		// 01:00 EST = 06:00Z; 02:30 skipped -> jump 07:00Z: 1h. 03:00 EDT =
		// 07:00Z -> 05:00 EDT = 09:00Z: 2h. Total 3h (time.Date alone
		// would have cut the first range at 01:30 EST).
		{"ny gap end", gapNY, utc(2026, 3, 8, 0, 0), utc(2026, 3, 9, 0, 0), 3 * h},
		// Fall back: 00:00 CEST = 22:00Z (24th) -> first 02:30 = 00:30Z:
		// 2h30; 00:30Z -> 04:00 CET = 03:00Z: 2h30. 5h in all, the same as
		// one 00:00-04:00 range (4h + the repeated hour).
		{"berlin repeated boundary", touchB, utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 12, 0), 5 * h},
		// The second range alone: 00:30Z -> 03:00Z.
		{"berlin repeated second half", touchB, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 12, 0), 2*h + 30*time.Minute},
		// Spring, same ranges: 00:00 CET = 23:00Z (28th) -> jump 01:00Z:
		// 2h; 01:00Z -> 04:00 CEST = 02:00Z: 1h.
		{"berlin touching in spring", touchB, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0), 3 * h},
		// A range wholly inside the skipped hour holds nothing that Sunday;
		// Monday 09-10 still counts: 1h.
		{"range in gap", inGap, berlin(t, 2026, 3, 28, 12, 0), berlin(t, 2026, 3, 31, 0, 0), h},
		// ...and on a normal Sunday it is 40min (+1h Monday).
		{"range in gap normal week", inGap, berlin(t, 2026, 4, 4, 12, 0), berlin(t, 2026, 4, 7, 0, 0), h + 40*time.Minute},
		// New York fall back: first 01:30 is EDT = 05:30Z; 03:00 EST =
		// 08:00Z: 2h30.
		{"ny repeated start", ambNY, utc(2026, 11, 1, 0, 0), utc(2026, 11, 2, 0, 0), 2*h + 30*time.Minute},
		// Santiago skips Sunday 00:00 (Sep 6, 04:00Z becomes 01:00 -03).
		// Sat 22:00 -04 = 02:00Z -> "24:00" = the jump 04:00Z: 2h. Sun
		// 00:00 = the jump 04:00Z -> 02:00 -03 = 05:00Z: 1h. Total 3h.
		{"santiago midnight gap", chile, utc(2026, 9, 5, 12, 0), utc(2026, 9, 6, 18, 0), 3 * h},
		// Santiago repeats Sat 23:00-24:00 (Apr 5, 03:00Z is 23:00 -04
		// again). Sat 22:00 -03 = 01:00Z -> Sun 00:00 -04 = 04:00Z: 3h.
		// Sun 00:00 -04 = 04:00Z -> 02:00 -04 = 06:00Z: 2h. Total 5h.
		{"santiago midnight repeat", chile, utc(2026, 4, 4, 12, 0), utc(2026, 4, 5, 18, 0), 5 * h},
	} {
		got := within(t, func() time.Duration { return tc.c.Between(tc.a, tc.b) })
		if got != tc.want {
			t.Errorf("%s: Between = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// within fails the test instead of hanging it when f loops forever (as a
// midnight that does not exist once made Between do).
func within(t *testing.T, f func() time.Duration) time.Duration {
	t.Helper()
	done := make(chan time.Duration, 1)
	go func() { done <- f() }()
	select {
	case d := <-done:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("did not return within 5s")
		return 0
	}
}

func TestAdd(t *testing.T) {
	c := mustNew(t, "Europe/Berlin", weekdays9to17, "2026-12-25")
	lunch := mustNew(t, "Europe/Berlin", map[string][]string{"mon": {"08:00-12:00", "13:00-17:00"}})
	late := mustNew(t, "Europe/Berlin", map[string][]string{"sat": {"20:00-24:00"}, "sun": {"01:00-04:00"}})
	ny := mustNew(t, "America/New_York", weekdays9to17)
	chile := mustNew(t, "America/Santiago", map[string][]string{"sat": {"22:00-24:00"}, "sun": {"00:00-02:00"}})
	for _, tc := range []struct {
		name  string
		c     *Calendar
		start time.Time
		d     time.Duration
		want  time.Time
	}{
		{"same day", c, berlin(t, 2026, 11, 2, 10, 0), 4 * h, berlin(t, 2026, 11, 2, 14, 0)},
		// 13:00 + 4h ends exactly at closing: the closing instant, not
		// next morning.
		{"at closing", c, berlin(t, 2026, 11, 2, 13, 0), 4 * h, berlin(t, 2026, 11, 2, 17, 0)},
		// One nanosecond more than is left today: Tuesday 09:00 + 1ns.
		{"just past closing", c, berlin(t, 2026, 11, 2, 13, 0), 4*h + 1, berlin(t, 2026, 11, 3, 9, 0).Add(1)},
		// Monday 16:00 + 3h: 1h Mon, 2h Tue -> Tuesday 11:00.
		{"overnight", c, berlin(t, 2026, 11, 2, 16, 0), 3 * h, berlin(t, 2026, 11, 3, 11, 0)},
		// Friday 15:00 + 4h: 2h Friday, 2h Monday -> Monday 11:00.
		{"over weekend", c, berlin(t, 2026, 11, 6, 15, 0), 4 * h, berlin(t, 2026, 11, 9, 11, 0)},
		// Created Saturday night: counting starts Monday 09:00.
		{"from closed", c, berlin(t, 2026, 11, 7, 23, 0), 30 * time.Minute, berlin(t, 2026, 11, 9, 9, 30)},
		// Created Tuesday 03:00: counting starts 09:00 the same day.
		{"from night", c, berlin(t, 2026, 11, 3, 3, 0), 2 * h, berlin(t, 2026, 11, 3, 11, 0)},
		// Created at opening: 09:00 + 8h = 17:00 the same day.
		{"at opening", c, berlin(t, 2026, 11, 3, 9, 0), 8 * h, berlin(t, 2026, 11, 3, 17, 0)},
		// Created at closing: nothing left that day, Wednesday 09:00 + 1h.
		{"created at closing", c, berlin(t, 2026, 11, 3, 17, 0), h, berlin(t, 2026, 11, 4, 10, 0)},
		// A 40h threshold from Monday 09:00 is Friday 17:00.
		{"a week", c, berlin(t, 2026, 11, 2, 9, 0), 40 * h, berlin(t, 2026, 11, 6, 17, 0)},
		// Thursday 24 Dec 16:00 + 2h: 1h Thu, Friday holiday, 1h Monday.
		{"holiday", c, berlin(t, 2026, 12, 24, 16, 0), 2 * h, berlin(t, 2026, 12, 28, 10, 0)},
		// Lunch: 11:00 + 2h = 1h before the break + 1h after -> 14:00.
		{"lunch", lunch, berlin(t, 2026, 11, 2, 11, 0), 2 * h, berlin(t, 2026, 11, 2, 14, 0)},
		// Ends exactly at the start of the break: 12:00, not 13:00.
		{"lunch closing", lunch, berlin(t, 2026, 11, 2, 11, 0), h, berlin(t, 2026, 11, 2, 12, 0)},
		// Created in the break: counting starts 13:00.
		{"from lunch", lunch, berlin(t, 2026, 11, 2, 12, 30), 30 * time.Minute, berlin(t, 2026, 11, 2, 13, 30)},
		// UTC input: Monday 06:00Z = 07:00 CET, counting from 09:00 CET:
		// + 2h = 11:00 CET = 10:00Z.
		{"utc input", c, utc(2026, 11, 2, 6, 0), 2 * h, utc(2026, 11, 2, 10, 0)},
		// 24:00 end: Saturday 23:00 + 1h = midnight, the close of the range.
		{"midnight end", late, berlin(t, 2026, 11, 7, 23, 0), h, berlin(t, 2026, 11, 8, 0, 0)},
		// Spring: Sunday 29 Mar, counting from 01:00 CET = 00:00Z; 1h30 of
		// real time -> 01:30Z = 03:30 CEST.
		{"dst spring", late, berlin(t, 2026, 3, 29, 0, 0), 90 * time.Minute, berlin(t, 2026, 3, 29, 3, 30)},
		// 2h is the whole range: its close, 04:00 CEST = 02:00Z.
		{"dst spring close", late, berlin(t, 2026, 3, 29, 0, 0), 2 * h, berlin(t, 2026, 3, 29, 4, 0)},
		// 2h30: 2h that Sunday, then Saturday 4 Apr 20:00 CEST + 30min.
		{"dst spring next", late, berlin(t, 2026, 3, 29, 0, 0), 150 * time.Minute, berlin(t, 2026, 4, 4, 20, 30)},
		// Fall: 01:00 CEST = 23:00Z (24th) + 3h30 = 02:30Z = 03:30 CET.
		{"dst fall", late, berlin(t, 2026, 10, 25, 0, 0), 210 * time.Minute, utc(2026, 10, 25, 2, 30)},
		// Friday 27 Mar 16:00 CET + 2h: 1h Friday, Monday 09:00 CEST + 1h.
		{"weekday over dst", c, berlin(t, 2026, 3, 27, 16, 0), 2 * h, berlin(t, 2026, 3, 30, 10, 0)},
		// New York, Friday 30 Oct 16:00 EDT + 2h over the fall-back
		// weekend: 1h Friday, Monday 2 Nov 09:00 EST + 1h = 10:00 EST.
		{"ny fall weekend", ny, newYork(t, 2026, 10, 30, 16, 0), 2 * h, newYork(t, 2026, 11, 2, 10, 0)},
		// Santiago, Sat 5 Sep 22:00 -04 (02:00Z) + 2h = 04:00Z, the jump,
		// shown as 01:00 -03.
		{"santiago gap", chile, utc(2026, 9, 6, 2, 0), 2 * h, utc(2026, 9, 6, 4, 0)},
		// + 2h30: the Sunday range starts at the same jump: 04:30Z.
		{"santiago gap next", chile, utc(2026, 9, 6, 2, 0), 150 * time.Minute, utc(2026, 9, 6, 4, 30)},
		{"zero", c, berlin(t, 2026, 11, 7, 23, 0), 0, berlin(t, 2026, 11, 7, 23, 0)},
		{"negative", c, berlin(t, 2026, 11, 7, 23, 0), -h, berlin(t, 2026, 11, 7, 23, 0)},
	} {
		if got := tc.c.Add(tc.start, tc.d); !got.Equal(tc.want) {
			t.Errorf("%s: Add = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A schedule closed for longer than the horizon returns instead of looping.
func TestAddBeyondHorizon(t *testing.T) {
	c := mustNew(t, "UTC", map[string][]string{"mon": {"09:00-10:00"}})
	for d := dayOf(2026, 1, 1); d < dayOf(2026, 1, 1)+horizonDays+7; d++ {
		c.holidays[d] = true
	}
	start := utc(2026, 1, 1, 0, 0)
	// horizonDays after 1 Jan 2026 00:00 UTC, then the 1h still missing.
	want := start.Add(horizonDays*24*h + h)
	if got := c.Add(start, h); !got.Equal(want) {
		t.Errorf("Add = %s, want %s", got, want)
	}
}

func TestOpen(t *testing.T) {
	c := mustNew(t, "Europe/Berlin", weekdays9to17, "2026-12-25")
	touch := mustNew(t, "Europe/Berlin", map[string][]string{"sun": {"00:00-02:30"}})
	for _, tc := range []struct {
		name string
		c    *Calendar
		at   time.Time
		want bool
	}{
		{"inside", c, berlin(t, 2026, 11, 2, 12, 0), true},
		{"opening is open", c, berlin(t, 2026, 11, 2, 9, 0), true},
		{"before opening", c, berlin(t, 2026, 11, 2, 9, 0).Add(-1), false},
		{"closing is closed", c, berlin(t, 2026, 11, 2, 17, 0), false},
		{"before closing", c, berlin(t, 2026, 11, 2, 17, 0).Add(-1), true},
		{"saturday", c, berlin(t, 2026, 11, 7, 12, 0), false},
		{"holiday", c, berlin(t, 2026, 12, 25, 12, 0), false},
		// 08:30Z = 09:30 CET.
		{"utc open", c, utc(2026, 11, 2, 8, 30), true},
		// 16:30Z = 17:30 CET.
		{"utc closed", c, utc(2026, 11, 2, 16, 30), false},
		// 16:30 New York time = 22:30 in Berlin.
		{"other zone", c, newYork(t, 2026, 11, 2, 16, 30), false},
		// Fall back: 00:15Z = 02:15 CEST, before the first 02:30: open.
		{"first 02:15", touch, utc(2026, 10, 25, 0, 15), true},
		// 01:15Z = 02:15 CET, the second time round: the range closed at
		// the first 02:30 (00:30Z).
		{"second 02:15", touch, utc(2026, 10, 25, 1, 15), false},
	} {
		if got := tc.c.Open(tc.at); got != tc.want {
			t.Errorf("%s: Open(%s) = %v, want %v", tc.name, tc.at, got, tc.want)
		}
	}
}

func TestLocationAndName(t *testing.T) {
	c, err := New("office", "America/New_York", weekdays9to17, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "office" || c.Location().String() != "America/New_York" {
		t.Errorf("Name %q, Location %s", c.Name, c.Location())
	}
}

// propertyCalendars mix lunch breaks, 24:00 ends, ranges touching the
// skipped and repeated hours, holidays and a zone whose midnight is skipped.
func propertyCalendars(t *testing.T) []*Calendar {
	return []*Calendar{
		mustNew(t, "America/New_York", map[string][]string{
			"mon": {"08:30-12:00", "13:00-18:00"}, "wed": {"00:00-24:00"}, "sat": {"10:00-14:00"},
			"sun": {"01:00-02:30", "03:00-05:00"}}, "2026-07-03"),
		mustNew(t, "Europe/Berlin", map[string][]string{
			"tue": {"09:00-17:00"}, "fri": {"22:00-24:00"}, "sat": {"00:00-02:00"},
			"sun": {"00:00-02:30", "02:30-04:00", "23:59-24:00"}}, "2026-12-25", "2026-03-29"),
		mustNew(t, "America/Santiago", map[string][]string{"sat": {"22:00-24:00"}, "sun": {"00:00-02:00"}, "thu": {"07:00-19:00"}}),
	}
}

// randomInstant is somewhere in 2026, half the time on a whole half hour
// so that range boundaries and zone changes are hit exactly.
func randomInstant(r *rand.Rand) time.Time {
	base := utc(2026, 1, 1, 0, 0)
	t := base.Add(time.Duration(r.Int64N(int64(365 * 24 * h))))
	if r.IntN(2) == 0 {
		t = t.Truncate(30 * time.Minute)
	}
	return t
}

// Between(t, Add(t, d)) == d for any start and duration, and the deadline
// ends an open stretch (it is not pushed to the next opening).
func TestAddBetweenRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, c := range propertyCalendars(t) {
		for i := 0; i < 2000; i++ {
			start := randomInstant(r)
			d := time.Duration(r.Int64N(int64(200 * h)))
			if r.IntN(2) == 0 {
				d = d.Truncate(30 * time.Minute)
			}
			end := c.Add(start, d)
			if got := c.Between(start, end); got != d {
				t.Fatalf("%s start %s d %s: Add = %s, Between back = %s", c.loc, start, d, end, got)
			}
			if d > 0 && !c.Open(end.Add(-time.Nanosecond)) {
				t.Fatalf("%s start %s d %s: deadline %s does not close an open stretch", c.loc, start, d, end)
			}
		}
	}
}

// Between is additive and never exceeds the interval.
func TestBetweenAdditive(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 3))
	for _, c := range propertyCalendars(t) {
		for i := 0; i < 2000; i++ {
			a := randomInstant(r)
			b := a.Add(time.Duration(r.Int64N(int64(10 * 24 * h))))
			m := a.Add(time.Duration(r.Int64N(int64(b.Sub(a)) + 1)))
			if ab, am, mb := c.Between(a, b), c.Between(a, m), c.Between(m, b); ab != am+mb {
				t.Fatalf("%s: Between(%s, %s) = %s, but %s + %s via %s", c.loc, a, b, ab, am, mb, m)
			}
			if ab := c.Between(a, b); ab > b.Sub(a) {
				t.Fatalf("%s: Between(%s, %s) = %s exceeds the interval", c.loc, a, b, ab)
			}
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
		// Keys are lower-case only, so "Mon" and "mon" cannot both define Monday.
		{"UTC", map[string][]string{"Mon": {"09:00-17:00"}}, nil, "weekly.Mon", `unknown day "Mon" (mon, tue, wed, thu, fri, sat, sun)`},
		{"UTC", map[string][]string{"mon": {"9-5"}}, nil, "weekly.mon[0]", `"9-5" is not a range HH:MM-HH:MM`},
		{"UTC", map[string][]string{"mon": {"9:00-17:00"}}, nil, "weekly.mon[0]", `"9:00-17:00" is not a range HH:MM-HH:MM`},
		{"UTC", map[string][]string{"mon": {"09:00 - 17:00"}}, nil, "weekly.mon[0]", `"09:00 - 17:00" is not a range HH:MM-HH:MM`},
		{"UTC", map[string][]string{"mon": {"09:60-17:00"}}, nil, "weekly.mon[0]", `"09:60-17:00" is not a range HH:MM-HH:MM`},
		{"UTC", map[string][]string{"mon": {"09:00-25:00"}}, nil, "weekly.mon[0]", `"09:00-25:00" is not a range HH:MM-HH:MM`},
		{"UTC", map[string][]string{"mon": {"09:00-24:30"}}, nil, "weekly.mon[0]", `"09:00-24:30" is not a range HH:MM-HH:MM`},
		{"UTC", map[string][]string{"mon": {"09:00-17:00", "17:00-18:00", "18:00-17:30"}}, nil, "weekly.mon[2]", `"18:00-17:30" ends before it starts`},
		{"UTC", map[string][]string{"tue": {"10:00-10:00"}}, nil, "weekly.tue[0]", `"10:00-10:00" is empty (it ends when it starts)`},
		// The later-starting range is the one reported, with the index it
		// had in the list.
		{"UTC", map[string][]string{"mon": {"12:00-17:00", "09:00-13:00"}}, nil, "weekly.mon[0]", `"12:00-17:00" overlaps "09:00-13:00" (weekly.mon[1])`},
		{"UTC", map[string][]string{"fri": {"08:00-20:00", "09:00-10:00"}}, nil, "weekly.fri[1]", `"09:00-10:00" overlaps "08:00-20:00" (weekly.fri[0])`},
		{"UTC", map[string][]string{}, nil, "weekly", `no opening hours: at least one day needs a range such as "09:00-17:00"`},
		{"UTC", nil, nil, "weekly", `no opening hours: at least one day needs a range such as "09:00-17:00"`},
		{"UTC", map[string][]string{"mon": {}, "tue": nil}, nil, "weekly", `no opening hours: at least one day needs a range such as "09:00-17:00"`},
		{"UTC", weekdays9to17, []string{"2026-12-25", "25.12.2026"}, "holidays[1]", `"25.12.2026" is not a date (YYYY-MM-DD)`},
		{"UTC", weekdays9to17, []string{"2026-02-30"}, "holidays[0]", `"2026-02-30" is not a date (YYYY-MM-DD)`},
	} {
		c, err := New("x", tc.tz, tc.weekly, tc.holidays)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Msg != tc.msg {
			t.Errorf("New(%q, %v, %v) = %v, want %s: %s", tc.tz, tc.weekly, tc.holidays, err, tc.field, tc.msg)
		}
		if c != nil {
			t.Errorf("New(%q, %v, %v) returned a calendar with its error", tc.tz, tc.weekly, tc.holidays)
		}
	}
	// The error text carries the field for callers that only print it.
	_, err := New("x", "UTC", map[string][]string{"mon": {"9-5"}}, nil)
	if err == nil || err.Error() != `weekly.mon[0]: "9-5" is not a range HH:MM-HH:MM` {
		t.Errorf("Error() = %v", err)
	}
}

// Adjacent ranges and 24:00 are accepted.
func TestNewAccepts(t *testing.T) {
	c, err := New("x", "UTC", map[string][]string{"mon": {"12:00-24:00", "00:00-12:00"}}, []string{"2026-01-01"})
	if err != nil {
		t.Fatal(err)
	}
	// Two touching halves make the whole Monday 5 Jan 2026: 24h.
	if got := c.Between(utc(2026, 1, 5, 0, 0), utc(2026, 1, 6, 0, 0)); got != 24*h {
		t.Errorf("Between = %s, want 24h", got)
	}
}

func BenchmarkBetween(b *testing.B) {
	c := mustNew(b, "Europe/Berlin", weekdays9to17, "2026-12-25")
	a := berlin(b, 2026, 11, 1, 7, 13)
	e := a.Add(30 * 24 * h)
	for b.Loop() {
		c.Between(a, e)
	}
}

func BenchmarkAdd(b *testing.B) {
	c := mustNew(b, "Europe/Berlin", weekdays9to17, "2026-12-25")
	a := berlin(b, 2026, 11, 1, 7, 13)
	for b.Loop() {
		c.Add(a, 160*h) // four weeks of 40h
	}
}

func BenchmarkBetweenYear(b *testing.B) {
	c := mustNew(b, "Europe/Berlin", weekdays9to17, "2026-12-25")
	a := berlin(b, 2026, 1, 1, 0, 0)
	e := berlin(b, 2027, 1, 1, 0, 0)
	for b.Loop() {
		c.Between(a, e)
	}
}
