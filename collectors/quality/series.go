package quality

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// kind is the Prometheus type of a family.
type kind uint8

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

// family is one metric of the catalog. Its series are keyed by their label
// values joined with sep; the collector label is always the first label, so
// that every series belongs to exactly one collector and is only ever
// changed by that collector's commits.
type family struct {
	name    string
	help    string
	kind    kind
	labels  []string // including "collector" first
	buckets []float64
	desc    *prometheus.Desc
	series  map[string]*series

	// The encoded exposition (see expo.go): chunks by collector, guarded
	// by Model.cacheMu with Model.mu read-locked, or by Model.mu alone
	// write-locked (a commit's publish dropping chunks).
	chunks map[string]*chunk
	heads  familyHead
	fresh  [numFormats]bool // every chunk is encoded in this format
	until  time.Time        // earliest hold end among the chunks
}

const sep = "\xff"

// series is the committed value of one labelled series.
type series struct {
	labels []string
	value  float64  // counter or gauge
	count  uint64   // histogram
	sum    float64  // histogram
	counts []uint64 // histogram, per bucket (not cumulative); len(buckets)+1 with +Inf last
	// holds are older values still being served while a publication of
	// the collector is held back (see run.publish): until holds[i].until,
	// /metrics serves holds[i].shown. Ascending by until; usually empty.
	holds []hold
}

// hold is a value served until a time.
type hold struct {
	until time.Time
	shown *series
}

// servedAt is the value /metrics serves at now.
func (s *series) servedAt(now time.Time) *series {
	for i := range s.holds {
		if now.Before(s.holds[i].until) {
			return s.holds[i].shown
		}
	}
	return s
}

// pending returns the holds of s still in force at now (a new slice).
func (s *series) pending(now time.Time) []hold {
	var out []hold
	for _, h := range s.holds {
		if now.Before(h.until) {
			out = append(out, h)
		}
	}
	return out
}

// holdUntil returns the holds of s still in force at now plus one that
// serves shown until until.
func (s *series) holdUntil(now, until time.Time, shown *series) []hold {
	out := s.pending(now)
	if n := len(out); n > 0 && !out[n-1].until.Before(until) {
		return out // an older value is already served until then
	}
	return append(out, hold{until: until, shown: shown})
}

func newFamily(name, help string, k kind, buckets []float64, labels ...string) *family {
	ls := append([]string{"collector"}, labels...)
	return &family{
		name: name, help: help, kind: k, labels: ls, buckets: buckets,
		desc:   prometheus.NewDesc(name, help, ls, nil),
		series: map[string]*series{}, chunks: map[string]*chunk{},
	}
}

func seriesKey(values []string) string { return strings.Join(values, sep) }

// delta is what one run adds to one series.
type delta struct {
	fam    *family
	labels []string
	value  float64 // counter increment, or gauge value when set
	set    bool    // gauge: value replaces
	drop   bool    // gauge: the series goes away
	count  uint64
	sum    float64
	counts []uint64
}

func (d *delta) observe(v float64) {
	if d.counts == nil {
		d.counts = make([]uint64, len(d.fam.buckets)+1)
	}
	d.count++
	d.sum += v
	d.counts[bucketIndex(d.fam.buckets, v)]++
}

// bucketIndex is the first bucket whose upper bound is >= v (le semantics).
func bucketIndex(bounds []float64, v float64) int {
	return sort.SearchFloat64s(bounds, v)
}

// apply returns the series after adding d to old (old may be nil).
func (d *delta) apply(old *series) *series {
	s := &series{labels: d.labels}
	if old != nil {
		*s = *old
		s.counts = append([]uint64(nil), old.counts...)
	}
	switch d.fam.kind {
	case kindCounter:
		s.value += d.value
	case kindGauge:
		if d.set {
			s.value = d.value
		} else {
			s.value += d.value
		}
	case kindHistogram:
		if len(s.counts) != len(d.fam.buckets)+1 {
			s.counts = make([]uint64, len(d.fam.buckets)+1)
		}
		s.count += d.count
		s.sum += d.sum
		for i, c := range d.counts {
			s.counts[i] += c
		}
	}
	return s
}

// Encoding of a series in the store: the bucket bounds are stored with a
// histogram so that a config change of buckets is detected on load (the
// series then restarts from zero, which Prometheus treats as a counter
// reset, instead of silently mixing two bucket layouts).
//
//	value: 8 bytes float64
//	histogram: count uvarint, sum float64, nbounds uvarint, bounds float64..., counts uvarint...
func (s *series) encode(k kind, bounds []float64) []byte {
	if k != kindHistogram {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, math.Float64bits(s.value))
		return b
	}
	b := make([]byte, 0, 16+len(bounds)*10)
	b = binary.AppendUvarint(b, s.count)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.sum))
	b = binary.AppendUvarint(b, uint64(len(bounds)))
	for _, f := range bounds {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	for _, c := range s.counts {
		b = binary.AppendUvarint(b, c)
	}
	return b
}

var errBucketsChanged = errors.New("histogram buckets changed")

func decodeSeries(b []byte, k kind, bounds []float64, labels []string) (*series, error) {
	s := &series{labels: labels}
	if k != kindHistogram {
		if len(b) != 8 {
			return nil, errors.New("bad value length")
		}
		s.value = math.Float64frombits(binary.LittleEndian.Uint64(b))
		return s, nil
	}
	var n int
	next := func() uint64 {
		v, w := binary.Uvarint(b)
		if w <= 0 {
			n = -1
			return 0
		}
		b = b[w:]
		return v
	}
	f64 := func() float64 {
		if len(b) < 8 {
			n = -1
			return 0
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(b))
		b = b[8:]
		return v
	}
	s.count = next()
	s.sum = f64()
	nb := int(next())
	if n < 0 || nb > 1<<16 {
		return nil, errors.New("corrupt histogram")
	}
	same := nb == len(bounds)
	for i := 0; i < nb; i++ {
		if f := f64(); same && f != bounds[i] {
			same = false
		}
	}
	s.counts = make([]uint64, nb+1)
	for i := range s.counts {
		s.counts[i] = next()
	}
	if n < 0 {
		return nil, errors.New("corrupt histogram")
	}
	if !same {
		return nil, errBucketsChanged
	}
	return s, nil
}

// metric renders the series for client_golang.
func (f *family) metric(s *series) prometheus.Metric {
	switch f.kind {
	case kindCounter:
		return prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, s.value, s.labels...)
	case kindGauge:
		return prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, s.value, s.labels...)
	}
	cum := make(map[float64]uint64, len(f.buckets))
	var run uint64
	for i, ub := range f.buckets {
		if i < len(s.counts) {
			run += s.counts[i]
		}
		cum[ub] = run
	}
	return prometheus.MustNewConstHistogram(f.desc, s.count, s.sum, cum, s.labels...)
}
