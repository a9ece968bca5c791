package quality

import (
	"encoding/binary"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/servq/servq/collectors/state"
)

// NextDeadline is the earliest ticket SLO deadline of the collector still
// waiting for a verdict (ok false: none). An event-time replay (servq
// backfill) commits at a step where no record happened only when a
// deadline falls in it, so that the breach is counted at its own time.
func (m *Model) NextDeadline(collector string) (at time.Time, ok bool, err error) {
	err = m.store.View(collector, func(tx *state.Tx) error {
		k := tx.First(state.SpaceDeadlines, nil)
		if len(k) >= 8 {
			at, ok = time.Unix(int64(binary.BigEndian.Uint64(k[:8])), 0), true
		}
		return nil
	})
	return at, ok, err
}

// GatherAll returns every family of the model as served at the model's
// clock, sorted by name: the same series as /metrics, for a replay that
// samples them at simulated times.
func (m *Model) GatherAll() []*dto.MetricFamily {
	names := make([]string, 0, len(m.cat.all))
	for _, f := range m.cat.all {
		names = append(names, f.name)
	}
	return m.Gather(names...)
}
