package sources

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// Export files (ticket exports, survey downloads) are either appended to or
// rewritten whole by the system that writes them. filesCursor remembers, per
// file, how far it was read and a fingerprint of what was read, so that an
// appended file is read from where it stopped and a rewritten one from the
// start (its records are then re-delivered and the quality model counts
// only what is new in them).
type filesCursor struct {
	Files map[string]*fileMark `json:"files"`
}

type fileMark struct {
	Offset      int64    `json:"offset"`
	Line        int      `json:"line"`
	Fingerprint string   `json:"fp"`
	Header      []string `json:"header,omitempty"` // CSV header, needed to resume mid-file

	// Of the read that made this mark (not stored): the file's
	// modification time when it was opened, and whether an unterminated
	// last line was left for the next run (the writer was mid-write).
	modTime time.Time
	partial bool
	// Of a segment (collectFiles): more segments of the file follow;
	// records must start before stopAt in the segment; the reader sets
	// used to how much of the segment it consumed.
	more   bool
	stopAt int
	used   int
	// full reports that the batch holds a chunk: a reader stops before
	// its next record (and sets used) so that it can be flushed.
	full func() bool
}

// fingerprintLen is how much of a file's start identifies its content.
const fingerprintLen = 4096

func fingerprint(data []byte) string {
	sum := sha256.Sum256(data[:min(len(data), fingerprintLen)])
	return hex.EncodeToString(sum[:8])
}

func loadFilesCursor(raw []byte) (*filesCursor, error) {
	c := &filesCursor{Files: map[string]*fileMark{}}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, c); err != nil {
			return nil, fmt.Errorf("bad cursor: %w", err)
		}
	}
	if c.Files == nil {
		c.Files = map[string]*fileMark{}
	}
	return c, nil
}

// globFiles lists the files matching pattern in name order; a pattern that
// matches nothing is an error only when it has no glob characters.
func globFiles(pattern string) ([]string, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("bad path pattern %q: %w", pattern, err)
	}
	if len(files) == 0 && !strings.ContainsAny(pattern, "*?[") {
		return nil, fmt.Errorf("%s: no such file", pattern)
	}
	sort.Strings(files)
	return files, nil
}

// fileSegmentSize is how much of a file is read at once: a first sync of
// a multi-gigabyte export holds one segment and one chunk of records in
// memory, not the file.
var fileSegmentSize = 1 << 20 // a variable for tests

// collectFiles reads every file matching pattern from where the cursor
// left it and returns the cursor to commit once all files were read. Each
// file's unread complete lines are handed to read in segments of about
// fileSegmentSize; when b is full after a segment, the records so far are
// flushed with the cursor that ends them (collectors.Batch.Flush), so that
// an interrupted run resumes after the last chunk. Only the fingerprinted
// head and the unread tail are read: an export that grows by a few rows
// costs a few rows of I/O. A trailing line without newline is left for
// the next run.
//
// read gets a segment's lines, where they start (offset and line number)
// and the mark to store once they are committed. A segment that does not
// end the file has next.more set: a reader whose records may span lines
// (CSV) reads only records that start before next.stopAt and sets
// next.used to where it stopped; the rest comes again in the next segment.
func collectFiles(ctx context.Context, raw []byte, pattern string, b *collectors.Batch, read func(path string, data []byte, start fileMark, next *fileMark) error) ([]byte, error) {
	cur, err := loadFilesCursor(raw)
	if err != nil {
		return nil, err
	}
	files, err := globFiles(pattern)
	if err != nil {
		return nil, err
	}
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := readSegments(path, cur.Files[path], b.Full, func(data []byte, start fileMark, next *fileMark) error {
			return read(path, data, start, next)
		}, func(next *fileMark) error {
			cur.Files[path] = next
			if b.Full() {
				c, err := json.Marshal(cur)
				if err != nil {
					return err
				}
				return b.Flush(ctx, c)
			}
			return ctx.Err()
		})
		if err != nil {
			return nil, err
		}
	}
	return json.Marshal(cur)
}

// readSegments hands the complete lines of path not read yet to fn, in
// segments, each with where it starts and the mark that will end it; done
// gets each segment's finished mark.
func readSegments(path string, prev *fileMark, full func() bool, fn func(data []byte, start fileMark, next *fileMark) error, done func(next *fileMark) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	head := make([]byte, min(fi.Size(), fingerprintLen))
	if _, err := io.ReadFull(f, head); err != nil {
		return err
	}
	var start fileMark
	if prev != nil && fi.Size() >= prev.Offset && fingerprint(head[:min(int64(len(head)), prev.Offset)]) == prev.Fingerprint {
		start = *prev
	}
	size := int64(fileSegmentSize)
	var buf []byte
	for {
		want := min(size, fi.Size()-start.Offset)
		if int64(cap(buf)) < want {
			buf = make([]byte, want)
		}
		tail := buf[:want]
		if _, err := f.ReadAt(tail, start.Offset); err != nil && err != io.EOF {
			return err
		}
		last := start.Offset+want == fi.Size()
		data := tail[:bytes.LastIndexByte(tail, '\n')+1]
		next := &fileMark{Header: start.Header, modTime: fi.ModTime(), used: len(data), full: full}
		if !last {
			next.more = true
			// A CSV record is at most csvMaxRecord: one that starts
			// before stopAt ends inside data, or is broken either way.
			next.stopAt = len(data) - csvMaxRecord - 1
		} else {
			next.partial = len(data) < len(tail)
		}
		if !last && next.stopAt <= 0 {
			size *= 2 // a line or record longer than a segment: read more at once
			continue
		}
		if err := fn(data, start, next); err != nil {
			return err
		}
		if next.used <= 0 && !last {
			size *= 2
			continue
		}
		// A reader that stopped early (the batch is full) leaves the
		// rest of the window for the next one.
		last = last && next.used == len(data)
		data = data[:next.used]
		end := start.Offset + int64(len(data))
		// The fingerprint covers what was read, up to fingerprintLen bytes.
		next.Offset, next.Line = end, start.Line+bytes.Count(data, []byte{'\n'})
		next.Fingerprint = fingerprint(head[:min(int64(len(head)), end)])
		if err := done(next); err != nil {
			return err
		}
		if last {
			return nil
		}
		start = *next
		start.more, start.stopAt, start.used, start.full = false, 0, 0, nil
		size = int64(fileSegmentSize)
	}
}

// row is one input record with its position, whatever the file format.
type row struct {
	pos   string
	get   func(key string) (string, bool)
	bound func() []string // the available keys, for error messages
}

// readCSV calls fn for every data row of data. headerRows is the number of
// header rows at the start of a file (the first names the columns; the
// others, as in Qualtrics exports, are skipped). Resumed reads use the
// header stored in the mark. columns maps every configured column name to
// the field it feeds: a column the header lacks fails the read (see
// checkHeader), rather than leaving that field empty in every row.
func readCSV(path string, data []byte, start fileMark, next *fileMark, headerRows int, delim rune, comment rune, columns map[string]string, fn func(row) error, reject func(pos string, err error)) error {
	header := start.Header
	skip := 0
	if start.Offset == 0 {
		header, skip = nil, headerRows
	}
	index := map[string]int{}
	for i, h := range header {
		index[strings.TrimSpace(h)] = i
	}
	if header != nil {
		if err := checkHeader(path, header, columns); err != nil {
			return err
		}
	}
	stopAt := 0
	if next.more {
		stopAt = next.stopAt
	}
	used, err := eachCSVRecordBefore(data, stopAt, next.full, delim, comment, func(rec []string, line int) error {
		pos := fmt.Sprintf("%s:%d", path, start.Line+line)
		if header == nil {
			header = append([]string(nil), rec...)
			if len(header) > 0 {
				header[0] = strings.TrimPrefix(header[0], "\ufeff") // BOM from spreadsheet exports
			}
			for i, h := range header {
				index[strings.TrimSpace(h)] = i
			}
			skip--
			return checkHeader(path, header, columns)
		}
		if skip > 0 {
			skip--
			return nil
		}
		return fn(row{pos: pos, get: func(k string) (string, bool) {
			i, ok := index[k]
			if !ok || i >= len(rec) {
				return "", false
			}
			return strings.TrimSpace(rec[i]), true
		}, bound: func() []string { return header }})
	}, func(line int, err error) { reject(fmt.Sprintf("%s:%d", path, start.Line+line), err) })
	if err != nil {
		return err
	}
	next.Header, next.used = header, used
	return nil
}

// checkCSVHeaders checks the header of every existing file matching
// pattern against columns (for `servq check`); a pattern matching nothing
// passes, as the files may live on another machine.
func checkCSVHeaders(pattern string, delim, comment rune, columns map[string]string) error {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return fmt.Errorf("bad path pattern %q: %w", pattern, err)
	}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			continue // unreadable here; the runs will say so
		}
		head := make([]byte, csvMaxRecord)
		n, _ := io.ReadFull(f, head)
		f.Close()
		head = head[:bytes.LastIndexByte(head[:n], '\n')+1]
		var header []string
		eachCSVRecord(head, delim, comment, func(rec []string, _ int) error {
			header = rec
			return errStop
		}, func(int, error) {})
		if header == nil {
			continue // empty, or no complete header line yet
		}
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
		if err := checkHeader(path, header, columns); err != nil {
			return err
		}
	}
	return nil
}

// errStop ends an eachCSVRecord loop early.
var errStop = errors.New("stop")

// csvMaxRecord bounds one CSV record. A quoted field may hold newlines, so
// an unterminated quote is indistinguishable from a long multi-line field
// until its closing quote (or the end of the file): without a bound, one
// stray quote swallows every row after it. A record longer than this is
// treated as broken: its first line is rejected and reading resumes at the
// next line.
const csvMaxRecord = 64 << 10

// eachCSVRecord calls fn for every record of data with the line it starts
// on (1-based within data). A malformed record (an unterminated or stray
// quote) or one longer than csvMaxRecord costs exactly its first physical
// line: that line is rejected and parsing starts again at the line after
// it, so the rows a broken quote ran into are read as what they are. Blank
// and comment lines are skipped; every other line is part of a record
// handed to fn or of a rejected one.
func eachCSVRecord(data []byte, delim, comment rune, fn func(rec []string, line int) error, reject func(line int, err error)) error {
	_, err := eachCSVRecordBefore(data, 0, nil, delim, comment, fn, reject)
	return err
}

// eachCSVRecordBefore is eachCSVRecord for a segment of a longer input
// (collectFiles): with stopAt > 0 it stops at the first record starting at
// or after offset stopAt, and returns where that record starts (or
// len(data)). A record starting before stopAt ends before len(data) when
// stopAt leaves csvMaxRecord after it, so every record is read exactly as
// in one pass over the whole input.
func eachCSVRecordBefore(data []byte, stopAt int, full func() bool, delim, comment rune, fn func(rec []string, line int) error, reject func(line int, err error)) (int, error) {
	base, baseLine := 0, 0 // where the current reader starts, and the lines before it
	for base < len(data) {
		r := csv.NewReader(bytes.NewReader(data[base:]))
		r.FieldsPerRecord = -1
		if delim != 0 {
			r.Comma = delim
		}
		r.Comment = comment
		resume := 0 // the reader's line after which to restart, 0: at its end
		for resume == 0 {
			from := r.InputOffset()
			if (stopAt > 0 && base+int(from) >= stopAt) || (full != nil && full()) {
				return base + int(from), nil
			}
			rec, err := r.Read()
			if err == io.EOF {
				return len(data), nil
			}
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				reject(baseLine+perr.StartLine, fmt.Errorf("malformed CSV record: %v (noticed on line %d); this line is skipped, reading resumes at the next", perr.Err, baseLine+perr.Line))
				if perr.Line != perr.StartLine {
					// The reader went past the record's first line: restart
					// right after it. Otherwise it already stands there.
					resume = perr.StartLine
				}
				continue
			}
			if err != nil {
				return 0, err // a bad delimiter: a configuration error
			}
			line, _ := r.FieldPos(0)
			if r.InputOffset()-from > csvMaxRecord {
				reject(baseLine+line, fmt.Errorf("CSV record longer than %d KiB (an unterminated quote?); this line is skipped, reading resumes at the next", csvMaxRecord>>10))
				resume = line
				continue
			}
			if err := fn(rec, baseLine+line); err != nil {
				return 0, err
			}
		}
		rest := data[base:]
		for i := 0; i < resume; i++ {
			nl := bytes.IndexByte(rest, '\n')
			if nl < 0 {
				return len(data), nil
			}
			rest = rest[nl+1:]
		}
		base, baseLine = len(data)-len(rest), baseLine+resume
	}
	return len(data), nil
}

// checkHeader fails when the header lacks a configured column: a
// misspelled mapping would otherwise leave that field empty in every row
// (every ticket "never replied") without a single rejection. Column names
// match exactly; a name the header has in another case or spacing is
// named as a hint but not accepted, since guessing could pick the wrong
// one of two similar columns and would hide the typo from the config.
func checkHeader(path string, header []string, columns map[string]string) error {
	have := map[string]bool{}
	for _, h := range header {
		have[strings.TrimSpace(h)] = true
	}
	var missing []string
	for _, col := range sortedKeys(columns) {
		if have[col] {
			continue
		}
		msg := fmt.Sprintf("%q (%s)", col, columns[col])
		if near := closestColumn(col, header); near != "" {
			msg += fmt.Sprintf(", did you mean %q?", near)
		}
		missing = append(missing, msg)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s: the header lacks the configured column(s) %s (column names are case-sensitive; fix the mapping)", path, strings.Join(missing, "; "))
}

// closestColumn is the header column that col probably meant: the same
// name in another case or spacing, else one within a few typos.
func closestColumn(col string, header []string) string {
	fold := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
	best, bestDist := "", len(col)/3+1
	for _, h := range header {
		h = strings.TrimSpace(h)
		if fold(h) == fold(col) {
			return h
		}
		if d := editDistance(fold(h), fold(col)); d < bestDist {
			best, bestDist = h, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}

// readJSONL calls fn for every object line; a key may be dotted to reach
// into nested objects (metrics.reopens).
func readJSONL(path string, data []byte, start fileMark, next *fileMark, fn func(row) error, reject func(pos string, err error)) error {
	line := start.Line
	all := len(data)
	for len(data) > 0 {
		if next.full != nil && next.full() {
			break
		}
		i := bytes.IndexByte(data, '\n')
		text := data[:i]
		data = data[i+1:]
		line++
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		pos := fmt.Sprintf("%s:%d", path, line)
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			reject(pos, fmt.Errorf("not a JSON object: %v", err))
			continue
		}
		if err := fn(row{pos: pos, get: func(k string) (string, bool) { return lookup(obj, k) }}); err != nil {
			return err
		}
	}
	next.used = all - len(data)
	return nil
}

func lookup(obj map[string]any, key string) (string, bool) {
	var cur any = obj
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[part]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case nil:
		return "", true
	case string:
		return strings.TrimSpace(v), true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	b, _ := json.Marshal(cur)
	return string(b), true
}

// timeParser parses times in the configured format: rfc3339 (default),
// unix, unix_ms, or a Go layout in the configured zone.
type timeParser struct {
	format string
	loc    *time.Location
}

func newTimeParser(format, zone string) (timeParser, error) {
	if format == "" {
		format = "rfc3339"
	}
	loc := time.UTC
	if zone != "" {
		l, err := time.LoadLocation(zone)
		if err != nil {
			return timeParser{}, fmt.Errorf("unknown time zone %q", zone)
		}
		loc = l
	}
	return timeParser{format: format, loc: loc}, nil
}

func (p timeParser) parse(s string) (time.Time, error) {
	switch p.format {
	case "rfc3339":
		return time.Parse(time.RFC3339Nano, s)
	case "unix", "unix_ms":
		f, err := parseFinite(s)
		if err != nil {
			return time.Time{}, err
		}
		secs := f
		if p.format == "unix_ms" {
			secs = f / 1000
		}
		if math.Abs(secs) > 9e9 {
			// Beyond the year 2255 the nanoseconds overflow an int64.
			return time.Time{}, fmt.Errorf("%q is out of range", s)
		}
		if p.format == "unix_ms" {
			return time.UnixMilli(int64(f)).UTC(), nil
		}
		return time.Unix(0, int64(f*1e9)).UTC(), nil
	}
	return time.ParseInLocation(p.format, s, p.loc)
}

// parseFinite parses a number, refusing NaN and ±Inf: strconv.ParseFloat
// accepts them, NaN compares false with every bound so it would pass any
// range check, and either poisons every sum it enters.
func parseFinite(s string) (float64, error) {
	x, err := strconv.ParseFloat(s, 64)
	if err == nil && (math.IsNaN(x) || math.IsInf(x, 0)) {
		err = fmt.Errorf("%q is not a finite number", s)
	}
	return x, err
}

// maxRecordSeconds bounds any number of seconds read from input (ten
// years, record.MaxTicketDuration): beyond it a value is broken, and near
// 292 years time.Duration overflows. Call durations have the tighter
// record.MaxCallDuration.
const maxRecordSeconds = int64(record.MaxTicketDuration / time.Second)

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
