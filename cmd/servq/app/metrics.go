package app

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/config"
	"github.com/servq/servq/slo/sli"
)

// metricsHandler serves the exposition: servq's own live metrics (Go,
// process, runner, build info, web server) gathered at each scrape, then
// the quality model's families from their encoded cache, which changes
// only at commits. With gzip the cached pieces are already deflated and
// are only concatenated into one gzip member. Formats the cache does not
// keep (protobuf text, OpenMetrics 2.0) and name[] filters take the
// uncached path, client_golang's handler over both registries.
func (s *Service) metricsHandler() http.Handler {
	opts := promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slogAdapter{s},
		ErrorHandling:     promhttp.ContinueOnError,
	}
	uncached := promhttp.HandlerFor(prometheus.GathererFunc(s.gatherAll), opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
		ft, ok := quality.FormatOf(ct)
		if !ok || r.URL.Query().Has("name[]") {
			uncached.ServeHTTP(w, r)
			return
		}
		live, err := s.reg.Gather()
		if err != nil {
			s.log.Error("metrics handler", "err", "error gathering metrics: "+err.Error())
			if len(live) == 0 {
				http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		var head bytes.Buffer
		enc := expfmt.NewEncoder(&head, ct)
		for _, mf := range live {
			if err := enc.Encode(mf); err != nil {
				s.log.Error("metrics handler", "err", "error encoding metric family: "+err.Error())
			}
		}
		pieces, err := s.currentModel().Exposition(ft)
		if err != nil {
			s.log.Error("metrics handler", "err", err)
			http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
			return
		}
		pieces = append([]quality.Piece{{Raw: head.Bytes()}}, pieces...)
		if ft == quality.FormatOpenMetrics {
			pieces = append(pieces, quality.Piece{Raw: []byte("# EOF\n")})
		}
		h := w.Header()
		h.Add("Vary", "Accept")
		h.Add("Vary", "Accept-Encoding")
		h.Set("Content-Type", string(ct))
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			// The first and last pieces change at each scrape: the
			// live part is compressed now, the rest is stored.
			pieces[0].Deflated = quality.Deflate(pieces[0].Raw)
			if last := &pieces[len(pieces)-1]; last.Deflated == nil {
				last.Deflated = quality.StoredBlock(last.Raw)
			}
			h.Set("Content-Encoding", "gzip")
			writeGzip(w, pieces)
			return
		}
		n := 0
		for _, p := range pieces {
			n += len(p.Raw)
		}
		h.Set("Content-Length", strconv.Itoa(n))
		for _, p := range pieces {
			if _, err := w.Write(p.Raw); err != nil {
				return // the scraper went away
			}
		}
	})
}

// gzipHeader: no name, no time, unknown OS (RFC 1952).
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// finalBlock is an empty final deflate block (fixed Huffman, end of block).
var finalBlock = []byte{3, 0}

// writeGzip writes pieces as one gzip member: its deflate stream is the
// pieces' sync-flushed streams in a row and an empty final block; the
// trailer is the CRC-32 and the size of the uncompressed bytes.
func writeGzip(w http.ResponseWriter, pieces []quality.Piece) {
	crc := uint32(0)
	size := len(gzipHeader) + len(finalBlock) + 8
	raw := 0
	for _, p := range pieces {
		crc = crc32.Update(crc, crc32.IEEETable, p.Raw)
		size += len(p.Deflated)
		raw += len(p.Raw)
	}
	w.Header().Set("Content-Length", strconv.Itoa(size))
	trailer := binary.LittleEndian.AppendUint32(nil, crc)
	trailer = binary.LittleEndian.AppendUint32(trailer, uint32(raw))
	if _, err := w.Write(gzipHeader); err != nil {
		return
	}
	for _, p := range pieces {
		if _, err := w.Write(p.Deflated); err != nil {
			return
		}
	}
	w.Write(finalBlock)
	w.Write(trailer)
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (a
// listed gzip or * without q=0).
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}

func (s *Service) currentModel() *quality.Model {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.model
}

// gatherAll is every family servq serves, built the uncached way: for the
// formats the cache does not keep, and for the push of metrics.
func (s *Service) gatherAll() ([]*dto.MetricFamily, error) {
	s.mu.RLock()
	mreg := s.modelReg
	s.mu.RUnlock()
	return prometheus.Gatherers{s.reg, mreg}.Gather()
}

// gatherFor is the families the SLO status and the KPI targets of cfg read:
// the model's by name, and the live registry's of those names.
func (s *Service) gatherFor(cfg *config.Config) []*dto.MetricFamily {
	names := map[string]bool{}
	for _, o := range cfg.SLOs {
		c, err := sli.CountsFor(cfg, o)
		if err != nil || c == nil {
			continue
		}
		for _, terms := range [][]sli.Term{c.Bad, c.Total} {
			for _, t := range terms {
				names[t.Metric] = true
				names[strings.TrimSuffix(t.Metric, "_bucket")] = true
				names[strings.TrimSuffix(t.Metric, "_count")] = true
			}
		}
	}
	for _, t := range cfg.Targets {
		if g, ok := gaugeKPIs[t.KPI]; ok {
			names[g.metric] = true
		}
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	fams := s.currentModel().Gather(list...)
	live, _ := s.reg.Gather()
	for _, mf := range live {
		if names[mf.GetName()] {
			fams = append(fams, mf)
		}
	}
	return fams
}
