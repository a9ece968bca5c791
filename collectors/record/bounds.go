package record

import (
	"fmt"
	"math"
	"time"
)

// Bounds on the numbers and times of every record. Sources reject input
// outside them where they parse it (naming file, line and field); the
// quality model refuses any record that still carries one, so that no
// source can commit a negative wait, an overflowed duration or a time
// that makes a call wait or a collector lag for ever.
var (
	// MinTime is the earliest instant a record may carry: anything
	// before 2000-01-01 is an unset or garbled clock (epoch 0, a
	// two-digit year), not customer service data.
	MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	// MaxClockSkew is how far ahead of the run's clock a record's time
	// may be: the source's clock may run a little fast. Further ahead is
	// a wrong clock or a garbled value.
	MaxClockSkew = time.Hour
	// MaxCallDuration bounds a call's wait, talk, hold and wrap-up
	// times: no queue call lasts a week; a larger value is a garbled
	// number (and near 292 years it overflows time.Duration).
	MaxCallDuration = 7 * 24 * time.Hour
	// MaxTicketDuration bounds a ticket's business times (ten years).
	MaxTicketDuration = 10 * 365 * 24 * time.Hour
)

// CheckTime reports why t, a record time read at now, is out of bounds;
// nil when it is in bounds or zero (unknown). A zero now (no run clock)
// bounds only the past.
func CheckTime(t, now time.Time) error {
	switch {
	case t.IsZero():
		return nil
	case t.Before(MinTime):
		return fmt.Errorf("%s is before %s", t.UTC().Format(time.RFC3339), MinTime.Format("2006-01-02"))
	case !now.IsZero() && t.After(now.Add(MaxClockSkew)):
		return fmt.Errorf("%s is more than %s ahead of the run's clock %s", t.UTC().Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckDuration reports why d is outside [0, limit]; nil when inside.
func CheckDuration(d, limit time.Duration) error {
	if d < 0 || d > limit {
		return fmt.Errorf("%s is outside [0, %s]", d, limit)
	}
	return nil
}

// Seconds converts a number of seconds read from input to a Duration,
// refusing NaN, infinities, negatives and values above limit (which
// would otherwise overflow or wrap).
func Seconds(x float64, limit time.Duration) (time.Duration, error) {
	if math.IsNaN(x) || x < 0 || x > limit.Seconds() {
		return 0, fmt.Errorf("%v is not a number of seconds from 0 to %.0f", x, limit.Seconds())
	}
	return time.Duration(x * float64(time.Second)), nil
}
