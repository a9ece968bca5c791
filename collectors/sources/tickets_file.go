package sources

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// ticketsFile reads tickets from CSV or JSON Lines exports with a column
// mapping. Exports re-list tickets as they change; each listing is
// delivered and the quality model counts every event once.
type ticketsFile struct {
	path      string
	format    string
	mapping   map[string]string
	times     timeParser
	statusMap map[string]string
	delim     rune
	comment   rune
}

type ticketsFileSpec struct {
	Path       string            `yaml:"path"`
	Format     string            `yaml:"format"`
	Mapping    map[string]string `yaml:"mapping"`
	TimeFormat string            `yaml:"time_format"`
	TimeZone   string            `yaml:"time_zone"`
	StatusMap  map[string]string `yaml:"status_map"`
	CSV        struct {
		Delimiter string `yaml:"delimiter"`
		Comment   string `yaml:"comment"`
	} `yaml:"csv"`
}

// ticketFields are the record fields a mapping can name.
var ticketFields = map[string]bool{"id": true, "queue": true, "channel": true, "priority": true, "status": true, "tags": true,
	"created_at": true, "updated_at": true, "first_reply_at": true, "solved_at": true, "reopens": true, "agent_replies": true,
	"first_reply_business_seconds": true, "resolution_business_seconds": true, "satisfaction": true, "complaint": true}

func init() {
	collectors.Register("tickets_file", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		var spec ticketsFileSpec
		if err := c.DecodeSpec(&spec); err != nil {
			return nil, err
		}
		if spec.Path == "" {
			return nil, c.Errorf("path", "is required (a file or a glob such as /exports/tickets-*.csv)")
		}
		format, err := fileFormat(spec.Format, spec.Path)
		if err != nil {
			return nil, c.Errorf("format", "%v", err)
		}
		for _, k := range sortedKeys(spec.Mapping) {
			if !ticketFields[k] {
				return nil, c.Errorf("mapping."+k, "unknown ticket field %q (known: %s)", k, strings.Join(sortedKeys(ticketFields), ", "))
			}
		}
		for _, req := range []string{"id", "created_at"} {
			if spec.Mapping[req] == "" {
				return nil, c.Errorf("mapping", "mapping.%s is required", req)
			}
		}
		tp, err := newTimeParser(spec.TimeFormat, spec.TimeZone)
		if err != nil {
			return nil, c.Errorf("time_zone", "%v", err)
		}
		t := &ticketsFile{path: spec.Path, format: format, mapping: spec.Mapping, times: tp, statusMap: spec.StatusMap}
		if t.delim, err = oneRune(spec.CSV.Delimiter, ','); err != nil {
			return nil, c.Errorf("csv.delimiter", "%v", err)
		}
		if t.comment, err = oneRune(spec.CSV.Comment, 0); err != nil {
			return nil, c.Errorf("csv.comment", "%v", err)
		}
		return t, nil
	})
}

// Check fails when an existing export lacks a mapped column (see
// checkHeader), so that `servq check` catches a misspelt mapping before the
// first run does.
func (t *ticketsFile) Check(c *config.Collector) error {
	if t.format != "csv" {
		return nil
	}
	if err := checkCSVHeaders(t.path, t.delim, t.comment, columnFields(t.mapping)); err != nil {
		return c.Errorf("mapping", "%v", err)
	}
	return nil
}

// columnFields inverts a field → column mapping for checkHeader: each
// column with the field(s) it feeds.
func columnFields(mapping map[string]string) map[string]string {
	out := map[string]string{}
	for _, field := range sortedKeys(mapping) {
		col := mapping[field]
		if col == "" {
			continue
		}
		if out[col] != "" {
			out[col] += ", "
		}
		out[col] += field
	}
	return out
}

func fileFormat(format, path string) (string, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".jsonl", ".ndjson":
			return "jsonl", nil
		}
		return "csv", nil
	}
	if format != "csv" && format != "jsonl" {
		return "", fmt.Errorf("unknown format %q (csv or jsonl)", format)
	}
	return format, nil
}

func oneRune(s string, def rune) (rune, error) {
	switch r := []rune(s); len(r) {
	case 0:
		return def, nil
	case 1:
		return r[0], nil
	}
	if s == `\t` {
		return '\t', nil
	}
	return 0, fmt.Errorf("%q must be a single character", s)
}

func (t *ticketsFile) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	reject := func(pos string, err error) { b.Reject("bad_row", pos, err) }
	each := func(r row) error {
		if tk, ok := t.ticket(r, b); ok {
			b.Tickets = append(b.Tickets, tk)
		}
		return nil
	}
	// The completeness watermark is when the newest export was written
	// (its modification time): it lists every change made before then. An
	// export caught mid-write vouches for nothing yet. A daily export thus
	// holds deadline verdicts until the next one (up to watermark_wait).
	var written time.Time
	next, err := collectFiles(ctx, raw, t.path, b, func(path string, data []byte, start fileMark, next *fileMark) error {
		if !next.more && !next.partial && next.modTime.After(written) {
			written = next.modTime
		}
		if t.format == "jsonl" {
			return readJSONL(path, data, start, next, each, reject)
		}
		return readCSV(path, data, start, next, 1, t.delim, t.comment, columnFields(t.mapping), each, reject)
	})
	if written.IsZero() {
		written = time.Unix(0, 0) // no claim: the collector keeps its watermark
	}
	b.Watermark = written
	return next, err
}

// maxTicketCount bounds a ticket's replies and reopens: beyond a million
// the export is broken (and a float may overflow int), not the ticket.
const maxTicketCount = 1e6

// ticket maps one row; a bad value rejects the row with its position and
// column, never the run.
func (t *ticketsFile) ticket(r row, b *collectors.Batch) (record.Ticket, bool) {
	var tk record.Ticket
	ok := true
	str := func(field string) string {
		col, mapped := t.mapping[field]
		if !mapped {
			return ""
		}
		v, _ := r.get(col)
		return v
	}
	bad := func(reason, field, format string, args ...any) {
		if ok {
			b.Reject(reason, r.pos, fmt.Errorf("column %q (%s): %s", t.mapping[field], field, fmt.Sprintf(format, args...)))
		}
		ok = false
	}
	tm := func(field string) time.Time {
		v := str(field)
		if v == "" {
			return time.Time{}
		}
		x, err := t.times.parse(v)
		if err != nil {
			bad("bad_time", field, "%q is not a time in format %s", v, t.times.format)
			return x
		}
		// The quality model's bounds, checked here to name row and column.
		if err := record.CheckTime(x, b.Now); err != nil {
			bad("bad_time", field, "%v", err)
		}
		return x
	}
	// num parses a count or a number of seconds up to max.
	num := func(field string, max float64) float64 {
		v := str(field)
		if v == "" {
			return 0
		}
		x, err := parseFinite(v)
		if err != nil || x < 0 || x > max {
			bad("bad_number", field, "%q is not a number from 0 to %.0f", v, max)
			return 0
		}
		return x
	}
	tk.ID = str("id")
	if tk.ID == "" {
		bad("missing_id", "id", "is empty")
		return tk, false
	}
	tk.Queue, tk.Channel, tk.Priority = str("queue"), str("channel"), str("priority")
	tk.Status = strings.ToLower(str("status"))
	if m, okm := t.statusMap[tk.Status]; okm {
		tk.Status = m
	}
	if tags := str("tags"); tags != "" {
		tk.Tags = strings.FieldsFunc(tags, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
	}
	tk.CreatedAt = tm("created_at")
	if tk.CreatedAt.IsZero() && ok {
		bad("bad_time", "created_at", "is empty")
	}
	tk.UpdatedAt, tk.FirstReplyAt, tk.SolvedAt = tm("updated_at"), tm("first_reply_at"), tm("solved_at")
	tk.Reopens, tk.AgentReplies = int(num("reopens", maxTicketCount)), int(num("agent_replies", maxTicketCount))
	tk.FirstReplyBusiness = time.Duration(num("first_reply_business_seconds", float64(maxRecordSeconds)) * float64(time.Second))
	tk.ResolutionBusiness = time.Duration(num("resolution_business_seconds", float64(maxRecordSeconds)) * float64(time.Second))
	tk.Satisfaction = strings.ToLower(str("satisfaction"))
	switch tk.Satisfaction {
	case "", "good", "bad", "offered", "unoffered":
	default:
		// A number is a score on the CSAT scale (the model counts 1 to
		// csat_scale_max); anything else would silently be no response.
		if _, err := parseFinite(tk.Satisfaction); err != nil {
			bad("bad_value", "satisfaction", "%q is not good, bad, offered, unoffered or a score", tk.Satisfaction)
		}
	}
	if c := str("complaint"); c != "" {
		v, err := strconv.ParseBool(strings.ToLower(c))
		if err != nil {
			bad("bad_value", "complaint", "%q is not true/false", c)
		}
		tk.Complaint = v
	}
	return tk, ok
}
