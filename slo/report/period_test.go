package report

import (
	"testing"
	"time"
)

func TestParsePeriod(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for spec, want := range map[string][3]string{
		// October 2026 in Berlin: CEST until the 25th, 744h long... plus the
		// hour summer time gives back.
		"2026-10": {"2026-10", "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00"},
		// ISO week 1 of 2026 starts on Monday 29 December 2025.
		"2026-W01":               {"2026-W01", "2025-12-29T00:00:00+01:00", "2026-01-05T00:00:00+01:00"},
		"2026-W43":               {"2026-W43", "2026-10-19T00:00:00+02:00", "2026-10-26T00:00:00+01:00"},
		"2026-Q3":                {"2026-Q3", "2026-07-01T00:00:00+02:00", "2026-10-01T00:00:00+02:00"},
		"2026-10-01..2026-10-15": {"2026-10-01..2026-10-15", "2026-10-01T00:00:00+02:00", "2026-10-16T00:00:00+02:00"},
		"month":                  {"2026-10", "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00"},
		"week":                   {"2026-W47", "2026-11-16T00:00:00+01:00", "2026-11-23T00:00:00+01:00"},
		"quarter":                {"2026-Q3", "2026-07-01T00:00:00+02:00", "2026-10-01T00:00:00+02:00"},
	} {
		p, err := ParsePeriod(spec, berlin, now)
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			continue
		}
		if got := [3]string{p.Name, p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339)}; got != want {
			t.Errorf("%s = %v, want %v", spec, got, want)
		}
	}
	if p, _ := ParsePeriod("2026-10", berlin, now); p.Duration() != 745*time.Hour {
		t.Errorf("October 2026 in Berlin lasts %v, want 745h (summer time ends on the 25th)", p.Duration())
	}
	for _, bad := range []string{"2026-13", "2026-W54", "2025-W53", "2026-Q5", "2026-10-15..2026-10-01", "last month", ""} {
		if _, err := ParsePeriod(bad, berlin, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParsePeriod("2026-W53", berlin, now); err != nil {
		t.Errorf("2026 has an ISO week 53: %v", err)
	}
}

func TestPreviousPeriod(t *testing.T) {
	utc := time.UTC
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, utc)
	for spec, want := range map[string]string{
		"2026-01":                "2025-12",
		"2026-Q1":                "2025-Q4",
		"2026-W01":               "2025-W52",
		"2026-W02":               "2026-W01",
		"2026-10-01..2026-10-15": "2026-09-16..2026-09-30",
	} {
		p, err := ParsePeriod(spec, utc, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Previous(); got.Name != want || !got.End.Equal(p.Start) {
			t.Errorf("before %s: %s ending %v, want %s ending at %v", spec, got.Name, got.End, want, p.Start)
		}
	}
}
