// Package calendar does business-time arithmetic: how much of an interval
// falls inside weekly opening hours, minus holidays, in a time zone.
package calendar

import (
	"fmt"
	"time"
)

// FieldError is a problem with one field of a schedule definition.
type FieldError struct {
	Field string // weekly.mon[0], holidays[2], time_zone
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Calendar is a compiled business-hours schedule. TODO(helper): implement.
type Calendar struct {
	Name string
	loc  *time.Location
}

// New compiles a schedule. weekly maps mon..sun to "HH:MM-HH:MM" ranges;
// holidays are YYYY-MM-DD dates in the schedule's zone.
func New(name, tz string, weekly map[string][]string, holidays []string) (*Calendar, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" {
		return nil, &FieldError{Field: "time_zone", Msg: fmt.Sprintf("unknown time zone %q", tz)}
	}
	return &Calendar{Name: name, loc: loc}, nil
}
