package quality

import (
	"bytes"
	"compress/flate"
	"fmt"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// The model only changes at a commit (and when a publication hold ends),
// while Prometheus scrapes it every few seconds: rebuilding 100k const
// metrics, checking them and encoding them at every scrape cost ~0.7 s.
// Instead each family keeps, per collector, its series encoded in the
// formats that were asked for, plus the same bytes deflated, and a commit
// drops only the chunks of the families it changed. A scrape then copies
// bytes.

// Format is an exposition format the model caches.
type Format int

const (
	FormatText        Format = iota // text/plain; version=0.0.4 (and 1.0.0)
	FormatOpenMetrics               // application/openmetrics-text 0.0.1 and 1.0.0
	FormatProtoDelim                // length-delimited io.prometheus.client.MetricFamily
	numFormats
)

// FormatOf maps a negotiated expfmt format to the cached one; ok is false
// for formats served uncached (protobuf text, OpenMetrics 2.0). The
// escaping scheme does not matter here: every catalog name and label name
// is a legacy Prometheus name, which no escaping scheme changes.
func FormatOf(f expfmt.Format) (Format, bool) {
	switch f.FormatType() {
	case expfmt.TypeTextPlain:
		return FormatText, true
	case expfmt.TypeProtoDelim:
		return FormatProtoDelim, true
	case expfmt.TypeOpenMetrics:
		switch f.Version() {
		case expfmt.OpenMetricsVersion_0_0_1, expfmt.OpenMetricsVersion_1_0_0:
			return FormatOpenMetrics, true
		}
	}
	return 0, false
}

// Piece is a part of an exposition: Raw is its bytes, Deflated the same
// compressed by a fresh deflate compressor and ended by a sync flush (no
// final block), so that pieces can be concatenated into one deflate stream
// (see Gzip) without compressing anything at scrape time.
type Piece struct {
	Raw, Deflated []byte
}

// chunk is one collector's series of one family, encoded.
type chunk struct {
	header, body [numFormats]Piece
	has          [numFormats]bool
	// until: the earliest end of a publication hold among the chunk's
	// series when it was encoded; from then on it shows other values and
	// is encoded again. Zero when no hold was pending.
	until time.Time
	n     int // series
}

// familyHead is the HELP/TYPE lines of a family (text, OpenMetrics) or its
// name, help and type fields (protobuf), which never change.
type familyHead [numFormats]*Piece

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// Deflate compresses b into a piece that can be concatenated with others:
// a fresh compressor (no reference to earlier data) ended by a sync flush
// (byte-aligned, not final).
func Deflate(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b)/4 + 64)
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&out)
	w.Write(b) // a bytes.Buffer does not fail
	w.Flush()
	deflaters.Put(w)
	return out.Bytes()
}

// Exposition returns the model's families as served at the model's clock,
// in format ft, as pieces in family order. The pieces stay valid after the
// call (a commit replaces chunks, it never changes their bytes).
func (m *Model) Exposition(ft Format) ([]Piece, error) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	now := m.Clock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Piece
	for _, f := range m.cat.all {
		if len(f.series) == 0 {
			continue
		}
		if err := f.refresh(ft, now); err != nil {
			return nil, err
		}
		cols := make([]string, 0, len(f.chunks))
		size := 0
		for c, ch := range f.chunks {
			if ch.n > 0 {
				cols = append(cols, c)
				size += len(ch.body[ft].Raw)
			}
		}
		if len(cols) == 0 {
			continue
		}
		sort.Strings(cols)
		head, err := f.head(ft, f.chunks[cols[0]], size)
		if err != nil {
			return nil, err
		}
		out = append(out, head)
		for _, c := range cols {
			out = append(out, f.chunks[c].body[ft])
		}
	}
	return out, nil
}

// head is the family's header piece. For protobuf it is the length prefix
// of the whole message and its name, help and type fields: the chunks
// hold its repeated metric fields, which protobuf lets one concatenate.
func (f *family) head(ft Format, first *chunk, bodySize int) (Piece, error) {
	if ft != FormatProtoDelim {
		if f.heads[ft] == nil {
			raw := first.header[ft].Raw
			f.heads[ft] = &Piece{Raw: raw, Deflated: Deflate(raw)}
		}
		return *f.heads[ft], nil
	}
	if f.heads[ft] == nil {
		b, err := proto.Marshal(f.dtoHeader())
		if err != nil {
			return Piece{}, fmt.Errorf("encoding family %s: %w", f.name, err)
		}
		f.heads[ft] = &Piece{Raw: b}
	}
	raw := appendUvarint(nil, uint64(len(f.heads[ft].Raw)+bodySize))
	raw = append(raw, f.heads[ft].Raw...)
	return Piece{Raw: raw, Deflated: storedBlock(raw)}, nil
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// storedBlock is b as uncompressed, non-final deflate blocks: for the few
// bytes that change at every scrape, not worth a compressor.
func storedBlock(b []byte) []byte {
	out := make([]byte, 0, len(b)+5*(len(b)/65535+1))
	for {
		n := min(len(b), 65535)
		out = append(out, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		out = append(out, b[:n]...)
		b = b[n:]
		if len(b) == 0 {
			return out
		}
	}
}

// StoredBlock exposes storedBlock for the handler's own small pieces.
func StoredBlock(b []byte) []byte { return storedBlock(b) }

// refresh encodes in ft every chunk of f that a commit dropped, that was
// never encoded in ft, or whose hold ended. Called with m.cacheMu and
// m.mu (read) held. An unchanged family costs two comparisons.
func (f *family) refresh(ft Format, now time.Time) error {
	if f.fresh[ft] && (f.until.IsZero() || now.Before(f.until)) {
		return nil
	}
	stale := map[string][]*series{}
	for c, ch := range f.chunks {
		if !ch.has[ft] || (!ch.until.IsZero() && !now.Before(ch.until)) {
			stale[c] = nil
		}
	}
	for _, s := range f.series {
		c := s.labels[0]
		if ss, ok := stale[c]; ok || f.chunks[c] == nil {
			stale[c] = append(ss, s)
		}
	}
	for c, ss := range stale {
		ch := f.chunks[c]
		if len(ss) == 0 {
			delete(f.chunks, c)
			continue
		}
		if ch == nil || (!ch.until.IsZero() && !now.Before(ch.until)) {
			// New values to show: every format is encoded again.
			ch = &chunk{}
			f.chunks[c] = ch
			f.fresh = [numFormats]bool{}
		}
		if err := f.encode(ch, ss, ft, now); err != nil {
			return err
		}
	}
	f.until = time.Time{}
	for _, ch := range f.chunks {
		if !ch.until.IsZero() && (f.until.IsZero() || ch.until.Before(f.until)) {
			f.until = ch.until
		}
	}
	f.fresh[ft] = true
	return nil
}

// encode fills ch's piece of format ft from ss (one collector's series).
func (f *family) encode(ch *chunk, ss []*series, ft Format, now time.Time) error {
	sort.Slice(ss, func(i, j int) bool { return lessLabels(ss[i].labels, ss[j].labels) })
	ch.n = len(ss)
	ch.until = time.Time{}
	mf := f.dtoHeader()
	mf.Metric = make([]*dto.Metric, len(ss))
	for i, s := range ss {
		for _, h := range s.holds {
			if now.Before(h.until) && (ch.until.IsZero() || h.until.Before(ch.until)) {
				ch.until = h.until
			}
		}
		mf.Metric[i] = f.dtoMetric(s.servedAt(now))
	}
	var head, body []byte
	switch ft {
	case FormatProtoDelim:
		// The metrics alone: repeated field 2 of MetricFamily.
		b, err := proto.Marshal(&dto.MetricFamily{Metric: mf.Metric})
		if err != nil {
			return fmt.Errorf("encoding family %s: %w", f.name, err)
		}
		body = b
	default:
		var buf bytes.Buffer
		var err error
		if ft == FormatText {
			_, err = expfmt.MetricFamilyToText(&buf, mf)
		} else {
			_, err = expfmt.MetricFamilyToOpenMetrics(&buf, mf)
		}
		if err != nil {
			return fmt.Errorf("encoding family %s: %w", f.name, err)
		}
		// The encoders write the # HELP/# TYPE lines first; sample lines
		// never start with '#'. The family writes them once.
		b := buf.Bytes()
		n := 0
		for n < len(b) && b[n] == '#' {
			n += bytes.IndexByte(b[n:], '\n') + 1
		}
		head, body = b[:n], b[n:]
	}
	ch.header[ft] = Piece{Raw: head}
	ch.body[ft] = Piece{Raw: body, Deflated: Deflate(body)}
	ch.has[ft] = true
	return nil
}

func lessLabels(a, b []string) bool {
	for i := range a {
		if i >= len(b) {
			return false
		}
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func (f *family) dtoHeader() *dto.MetricFamily {
	t := dto.MetricType_COUNTER
	switch f.kind {
	case kindGauge:
		t = dto.MetricType_GAUGE
	case kindHistogram:
		t = dto.MetricType_HISTOGRAM
	}
	return &dto.MetricFamily{Name: proto.String(f.name), Help: proto.String(f.help), Type: &t}
}

// dtoMetric is the series as client_golang's const metrics render it:
// label pairs sorted by name, cumulative buckets without +Inf.
func (f *family) dtoMetric(s *series) *dto.Metric {
	m := &dto.Metric{Label: make([]*dto.LabelPair, len(f.labels))}
	for i, n := range f.labels {
		m.Label[i] = &dto.LabelPair{Name: proto.String(n), Value: proto.String(s.labels[i])}
	}
	sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
	switch f.kind {
	case kindCounter:
		m.Counter = &dto.Counter{Value: proto.Float64(s.value)}
	case kindGauge:
		m.Gauge = &dto.Gauge{Value: proto.Float64(s.value)}
	default:
		h := &dto.Histogram{SampleCount: proto.Uint64(s.count), SampleSum: proto.Float64(s.sum),
			Bucket: make([]*dto.Bucket, len(f.buckets))}
		var run uint64
		for i, ub := range f.buckets {
			if i < len(s.counts) {
				run += s.counts[i]
			}
			h.Bucket[i] = &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(run)}
		}
		m.Histogram = h
	}
	return m
}

// invalidate drops the encoded chunk of a collector's series of f. Called
// with m.mu held for writing.
func (f *family) invalidate(collector string) {
	delete(f.chunks, collector)
	f.fresh = [numFormats]bool{}
}

// Gather returns the named families as served now (names the model does
// not have are ignored), sorted by name: what the status page and the SLO
// status need, without building every series of every family.
func (m *Model) Gather(names ...string) []*dto.MetricFamily {
	now := m.Clock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*dto.MetricFamily
	seen := map[string]bool{}
	for _, n := range names {
		f := m.byName[n]
		if f == nil || seen[n] || len(f.series) == 0 {
			continue
		}
		seen[n] = true
		mf := f.dtoHeader()
		ss := make([]*series, 0, len(f.series))
		for _, s := range f.series {
			ss = append(ss, s)
		}
		sort.Slice(ss, func(i, j int) bool { return lessLabels(ss[i].labels, ss[j].labels) })
		for _, s := range ss {
			mf.Metric = append(mf.Metric, f.dtoMetric(s.servedAt(now)))
		}
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}
