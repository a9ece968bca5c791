package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/servq/servq/internal/redact"
)

// OpenMetrics writes the samples as one OpenMetrics text file with
// timestamps, the input of `promtool tsdb create-blocks-from openmetrics`.
// OpenMetrics wants each family's samples together, while a replay
// produces them step by step; each family's samples are spooled to a
// temporary file meanwhile, so memory stays bounded by one step.
type OpenMetrics struct {
	dir  string
	fams map[string]*spool
	enc  bytes.Buffer
}

type spool struct {
	head []byte
	f    *os.File
	w    *bufio.Writer
}

// NewOpenMetrics spools into a new temporary directory under dir ("" for
// the system's).
func NewOpenMetrics(dir string) (*OpenMetrics, error) {
	d, err := os.MkdirTemp(dir, "servq-backfill-")
	if err != nil {
		return nil, fmt.Errorf("openmetrics: spool directory: %w", err)
	}
	return &OpenMetrics{dir: d, fams: map[string]*spool{}}, nil
}

// Samples implements Sink.
func (o *OpenMetrics) Samples(_ time.Time, fams []*dto.MetricFamily) error {
	for _, mf := range fams {
		o.enc.Reset()
		if _, err := expfmt.MetricFamilyToOpenMetrics(&o.enc, mf); err != nil {
			return fmt.Errorf("openmetrics: encoding %s: %w", mf.GetName(), err)
		}
		b := o.enc.Bytes()
		n := 0
		for n < len(b) && b[n] == '#' {
			n += bytes.IndexByte(b[n:], '\n') + 1
		}
		s := o.fams[mf.GetName()]
		if s == nil {
			f, err := os.CreateTemp(o.dir, "family-")
			if err != nil {
				return fmt.Errorf("openmetrics: spool: %w", err)
			}
			s = &spool{head: append([]byte(nil), b[:n]...), f: f, w: bufio.NewWriterSize(f, 64<<10)}
			o.fams[mf.GetName()] = s
		}
		if _, err := s.w.Write(b[n:]); err != nil {
			return fmt.Errorf("openmetrics: spool: %w", err)
		}
	}
	return nil
}

// WriteTo writes the whole file (families in name order, then # EOF) and
// removes the spool.
func (o *OpenMetrics) WriteTo(w io.Writer) (int64, error) {
	defer o.Close()
	names := make([]string, 0, len(o.fams))
	for n := range o.fams {
		names = append(names, n)
	}
	sort.Strings(names)
	var total int64
	for _, n := range names {
		s := o.fams[n]
		if err := s.w.Flush(); err != nil {
			return total, fmt.Errorf("openmetrics: spool: %w", err)
		}
		k, err := w.Write(s.head)
		total += int64(k)
		if err != nil {
			return total, err
		}
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return total, err
		}
		c, err := io.Copy(w, s.f)
		total += c
		if err != nil {
			return total, err
		}
	}
	k, err := io.WriteString(w, "# EOF\n")
	return total + int64(k), err
}

// Close removes the spool.
func (o *OpenMetrics) Close() error {
	for _, s := range o.fams {
		s.f.Close()
	}
	o.fams = map[string]*spool{}
	return os.RemoveAll(o.dir)
}

// Import sends the samples to VictoriaMetrics' (or vmagent's)
// /api/v1/import/prometheus in the Prometheus text format with
// timestamps, gzipped, in requests of about BatchBytes.
type Import struct {
	URL     string       // the import endpoint, query (extra_label=...) included
	Headers http.Header  // credentials; never logged
	Client  *http.Client // nil: a client with a 2-minute timeout
	Batch   int          // bytes of text per request; 0: 8 MiB
	Ctx     context.Context
	// Skip: samples at or before it are not sent (an interrupted
	// backfill sent them already; VictoriaMetrics would keep a second
	// copy).
	Skip time.Time
	// Acked, when set, is called after each request the server accepted,
	// with the time through which every sample has been sent: what an
	// interrupted backfill need not send again.
	Acked func(through time.Time) error

	buf  bytes.Buffer
	sent int
	// cur is the time of the latest Samples; complete the latest time
	// whose samples are all in the buffer or sent. A step's births come
	// at its time after its samples, before the next step: a time is
	// complete once a later one begins, and a request is sent only then
	// (a batch is exceeded by up to one step).
	cur, complete time.Time
}

// Samples implements Sink.
func (im *Import) Samples(at time.Time, fams []*dto.MetricFamily) error {
	if at.After(im.cur) {
		// Everything up to cur is buffered or sent: requests end here,
		// so that what the server acknowledged ends at a time.
		im.complete, im.cur = im.cur, at
		batch := im.Batch
		if batch <= 0 {
			batch = 8 << 20
		}
		if im.buf.Len() >= batch {
			if err := im.Flush(); err != nil {
				return err
			}
		}
	}
	if !im.Skip.IsZero() && !at.After(im.Skip) {
		return nil
	}
	for _, mf := range fams {
		// Without HELP/TYPE lines: the import ignores them anyway.
		for _, m := range mf.Metric {
			one := &dto.MetricFamily{Name: mf.Name, Type: mf.Type, Metric: []*dto.Metric{m}}
			var b bytes.Buffer
			if _, err := expfmt.MetricFamilyToText(&b, one); err != nil {
				return fmt.Errorf("import: encoding %s: %w", mf.GetName(), err)
			}
			for _, line := range bytes.SplitAfter(b.Bytes(), []byte("\n")) {
				if len(line) > 0 && line[0] != '#' {
					im.buf.Write(line)
				}
			}
		}
	}
	return nil
}

// Flush sends what is buffered.
func (im *Import) Flush() error {
	if im.buf.Len() == 0 {
		return nil
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(im.buf.Bytes())
	zw.Close()
	ctx := im.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, im.URL, &z)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	for k, vs := range im.Headers {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "text/plain")
	c := im.Client
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Minute}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (the import sends the credentials of the config's push: section; check push.username and push.password, or push.bearer_token)"
		}
		// The body is the remote's text: one line, secrets redacted, bounded.
		return fmt.Errorf("import: %s answered %s%s: %s", req.URL.Redacted(), resp.Status, hint, redact.Text(string(msg), 300))
	}
	im.sent += im.buf.Len()
	im.buf.Reset()
	if im.Acked != nil {
		through := im.complete
		if through.Before(im.Skip) {
			through = im.Skip
		}
		if !through.IsZero() {
			return im.Acked(through)
		}
	}
	return nil
}

// Finish sends what is buffered once the replay is over: every sample is
// then complete.
func (im *Import) Finish() error {
	im.complete = im.cur
	return im.Flush()
}

// Multi sends each step to several sinks.
type Multi []Sink

// Samples implements Sink.
func (ms Multi) Samples(at time.Time, fams []*dto.MetricFamily) error {
	for _, s := range ms {
		if err := s.Samples(at, fams); err != nil {
			return err
		}
	}
	return nil
}
