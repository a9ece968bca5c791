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
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
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

// unread returns the complete lines of path not read yet, where they start
// (offset and line number), and the mark to store once they are committed.
// Only the fingerprinted head and the unread tail are read: an export that
// grows by a few rows costs a few rows of I/O. A trailing line without
// newline is left for the next run.
func unread(path string, prev *fileMark) (data []byte, start fileMark, next *fileMark, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileMark{}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileMark{}, nil, err
	}
	head := make([]byte, min(fi.Size(), fingerprintLen))
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, fileMark{}, nil, err
	}
	if prev != nil && fi.Size() >= prev.Offset && fingerprint(head[:min(int64(len(head)), prev.Offset)]) == prev.Fingerprint {
		start = *prev
	}
	tail := make([]byte, fi.Size()-start.Offset)
	if _, err := f.ReadAt(tail, start.Offset); err != nil && err != io.EOF {
		return nil, fileMark{}, nil, err
	}
	data = tail[:bytes.LastIndexByte(tail, '\n')+1]
	end := start.Offset + int64(len(data))
	// The fingerprint covers what was read, up to fingerprintLen bytes.
	fpData := head[:min(int64(len(head)), end)]
	next = &fileMark{Offset: end, Line: start.Line + bytes.Count(data, []byte{'\n'}), Fingerprint: fingerprint(fpData), Header: start.Header,
		modTime: fi.ModTime(), partial: len(data) < len(tail)}
	return data, start, next, nil
}

// collectFiles reads every file matching pattern from where the cursor
// left it, handing each file's unread complete lines to read, and returns
// the cursor to commit once all files were read.
func collectFiles(ctx context.Context, raw []byte, pattern string, read func(path string, data []byte, start fileMark, next *fileMark) error) ([]byte, error) {
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
		data, start, next, err := unread(path, cur.Files[path])
		if err != nil {
			return nil, err
		}
		if err := read(path, data, start, next); err != nil {
			return nil, err
		}
		cur.Files[path] = next
	}
	return json.Marshal(cur)
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
// header stored in the mark.
func readCSV(path string, data []byte, start fileMark, next *fileMark, headerRows int, delim rune, comment rune, fn func(row) error, reject func(pos string, err error)) error {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	if delim != 0 {
		r.Comma = delim
	}
	r.Comment = comment
	header := start.Header
	skip := 0
	if start.Offset == 0 {
		header, skip = nil, headerRows
	}
	index := map[string]int{}
	for i, h := range header {
		index[h] = i
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		var line int
		var perr *csv.ParseError
		switch {
		case errors.As(err, &perr):
			line = perr.StartLine // FieldPos panics after a parse error
		case err == nil && len(rec) > 0:
			line, _ = r.FieldPos(0)
		}
		pos := fmt.Sprintf("%s:%d", path, start.Line+line)
		if err != nil {
			// A malformed row (an unterminated quote) is rejected; the
			// reader goes on with the next one.
			reject(pos, err)
			continue
		}
		if header == nil {
			header = append([]string(nil), rec...)
			if len(header) > 0 {
				header[0] = strings.TrimPrefix(header[0], "\ufeff") // BOM from spreadsheet exports
			}
			for i, h := range header {
				index[strings.TrimSpace(h)] = i
			}
			skip--
			continue
		}
		if skip > 0 {
			skip--
			continue
		}

		if err := fn(row{pos: pos, get: func(k string) (string, bool) {
			i, ok := index[k]
			if !ok || i >= len(rec) {
				return "", false
			}
			return strings.TrimSpace(rec[i]), true
		}, bound: func() []string { return header }}); err != nil {
			return err
		}
	}
	next.Header = header
	return nil
}

// readJSONL calls fn for every object line; a key may be dotted to reach
// into nested objects (metrics.reopens).
func readJSONL(path string, data []byte, start fileMark, fn func(row) error, reject func(pos string, err error)) error {
	line := start.Line
	for len(data) > 0 {
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
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, err
		}
		if p.format == "unix_ms" {
			return time.UnixMilli(int64(f)).UTC(), nil
		}
		return time.Unix(0, int64(f*1e9)).UTC(), nil
	}
	return time.ParseInLocation(p.format, s, p.loc)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
