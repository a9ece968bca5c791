package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// asteriskCDR reads the call detail records that Asterisk's cdr_csv module
// appends to Master.csv (no header row). Each row of a call into a queue
// becomes one record.Call:
//
//	enqueued = start, answered = answer, ended = end,
//	wait = duration − billsec (= answer − start, immune to DST changes),
//	talk = billsec.
//
// A row is a queue call when its dcontext (else its dst) is a key of
// `queues` (the value names the queue), or, without `queues`, when lastapp
// is Queue (the queue is the first argument in lastdata).
//
// Outcome: ANSWERED with a dstchannel (an agent's channel was bridged) →
// answered; lastapp VoiceMail → voicemail; ANSWERED without dstchannel (the
// dialplan answered for announcements or music on hold and nobody took the
// call) and NO ANSWER (the caller hung up before anyone answered) →
// abandoned; BUSY, FAILED, CONGESTION (the system could not connect the
// call, not the caller's choice) → timeout.
//
// Files are read with filecursor.go: offset and fingerprint per file, a
// rotated or truncated file is read again from the start, a partial last
// line waits for the next run.
type asteriskCDR struct {
	path    string
	queues  map[string]string
	channel string
	loc     *time.Location
	layout  *cdrLayout // nil: detect per row from the number of columns
}

type asteriskCDRSpec struct {
	Path          string            `yaml:"path"`
	Queues        map[string]string `yaml:"queues"`
	Channel       string            `yaml:"channel"`
	TimeZone      string            `yaml:"time_zone"`
	LogUniqueID   *bool             `yaml:"loguniqueid"`
	LogUserField  *bool             `yaml:"loguserfield"`
	NewCDRColumns *bool             `yaml:"newcdrcolumns"`
}

// cdrLayout says which optional columns follow the 16 fixed ones, in
// cdr_csv's order: uniqueid, userfield, then peeraccount, linkedid,
// sequence.
type cdrLayout struct {
	uniqueID, userField, newColumns bool
}

func (l cdrLayout) columns() int {
	n := cdrFixed
	if l.uniqueID {
		n++
	}
	if l.userField {
		n++
	}
	if l.newColumns {
		n += 3
	}
	return n
}

// Column indexes of the fixed part of a cdr_csv row.
const (
	cdrSrc, cdrDst, cdrDcontext             = 1, 2, 3
	cdrDstChannel, cdrLastApp, cdrLastData  = 6, 7, 8
	cdrStart, cdrAnswer, cdrEnd             = 9, 10, 11
	cdrDuration, cdrBillsec, cdrDisposition = 12, 13, 14
	cdrFixed                                = 16
	cdrTimeLayout                           = "2006-01-02 15:04:05"
)

// An Asterisk uniqueid: epoch.sequence, optionally after a system name.
var cdrUniqueIDPattern = regexp.MustCompile(`^([A-Za-z0-9_.-]+-)?[0-9]{9,}\.[0-9]+$`)

func init() {
	collectors.Register("asterisk_cdr", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		spec := asteriskCDRSpec{Channel: "phone", TimeZone: "Local"}
		if err := c.DecodeSpec(&spec); err != nil {
			return nil, err
		}
		if spec.Path == "" {
			return nil, c.Errorf("path", "is required (e.g. /var/log/asterisk/cdr-csv/Master.csv)")
		}
		for k, v := range spec.Queues {
			if k == "" || v == "" {
				return nil, c.Errorf("queues", "maps a dcontext or dst to a queue name; neither may be empty")
			}
		}
		loc, err := time.LoadLocation(spec.TimeZone)
		if err != nil {
			return nil, c.Errorf("time_zone", "unknown time zone %q", spec.TimeZone)
		}
		s := &asteriskCDR{path: spec.Path, queues: spec.Queues, channel: spec.Channel, loc: loc}
		if spec.LogUniqueID != nil || spec.LogUserField != nil || spec.NewCDRColumns != nil {
			s.layout = &cdrLayout{uniqueID: isTrue(spec.LogUniqueID), userField: isTrue(spec.LogUserField), newColumns: isTrue(spec.NewCDRColumns)}
		}
		return s, nil
	})
}

func isTrue(b *bool) bool { return b != nil && *b }

// Rotated files that a glob such as Master.csv* also matches but that are
// compressed: they are skipped, not parsed as garbage.
var cdrCompressed = []string{".gz", ".bz2", ".xz", ".zst", ".zip"}

func (s *asteriskCDR) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	next, err := collectFiles(ctx, raw, s.path, b, func(path string, data []byte, start fileMark, next *fileMark) error {
		for _, ext := range cdrCompressed {
			if strings.HasSuffix(path, ext) {
				return nil
			}
		}
		return s.read(ctx, path, data, start, next, b)
	})
	if err != nil {
		return nil, fmt.Errorf("asterisk_cdr: %w", err)
	}
	return next, nil
}

// read hands every row to call. A malformed row (a stray quote in a
// userfield) costs only its own line: see eachCSVRecord.
func (s *asteriskCDR) read(ctx context.Context, path string, data []byte, start fileMark, next *fileMark, b *collectors.Batch) error {
	n := 0
	stopAt := 0
	if next.more {
		stopAt = next.stopAt
	}
	used, err := eachCSVRecordBefore(data, stopAt, next.full, ',', 0, func(rec []string, line int) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if c, ok := s.call(rec, fmt.Sprintf("%s:%d", path, start.Line+line), b); ok {
			b.Calls = append(b.Calls, c)
		}
		return nil
	}, func(line int, err error) { b.Reject("bad_row", fmt.Sprintf("%s:%d", path, start.Line+line), err) })
	next.used = used
	return err
}

// layoutOf returns the configured layout, or the one the number of columns
// implies: 16 none, 17 uniqueid or userfield (a uniqueid looks like
// 1700000000.42), 18 both, 19 the new columns, 20 one of the two plus the
// new columns, 21 all.
func (s *asteriskCDR) layoutOf(rec []string) (cdrLayout, error) {
	if s.layout != nil {
		if len(rec) != s.layout.columns() {
			return cdrLayout{}, fmt.Errorf("%d columns, the configured loguniqueid/loguserfield/newcdrcolumns give %d", len(rec), s.layout.columns())
		}
		return *s.layout, nil
	}
	switch len(rec) {
	case 16:
		return cdrLayout{}, nil
	case 17:
		return cdrLayout{uniqueID: cdrUniqueIDPattern.MatchString(rec[16]), userField: !cdrUniqueIDPattern.MatchString(rec[16])}, nil
	case 18:
		return cdrLayout{uniqueID: true, userField: true}, nil
	case 19:
		return cdrLayout{newColumns: true}, nil
	case 20:
		u := cdrUniqueIDPattern.MatchString(rec[16])
		return cdrLayout{uniqueID: u, userField: !u, newColumns: true}, nil
	case 21:
		return cdrLayout{uniqueID: true, userField: true, newColumns: true}, nil
	}
	return cdrLayout{}, fmt.Errorf("%d columns, cdr_csv writes 16 to 21", len(rec))
}

// queueOf returns the queue of a row, or "" for a row of another call.
func (s *asteriskCDR) queueOf(rec []string) string {
	if s.queues != nil {
		if q, ok := s.queues[rec[cdrDcontext]]; ok {
			return q
		}
		return s.queues[rec[cdrDst]]
	}
	if !strings.EqualFold(rec[cdrLastApp], "Queue") {
		return ""
	}
	// Queue(queuename,options,…); very old versions separate with |.
	q, _, _ := strings.Cut(rec[cdrLastData], ",")
	q, _, _ = strings.Cut(q, "|")
	return strings.TrimSpace(q)
}

func (s *asteriskCDR) call(rec []string, pos string, b *collectors.Batch) (record.Call, bool) {
	lay, err := s.layoutOf(rec)
	if err != nil {
		b.Reject("bad_columns", pos, err)
		return record.Call{}, false
	}
	queue := s.queueOf(rec)
	if queue == "" {
		if s.queues == nil && strings.EqualFold(rec[cdrLastApp], "Queue") {
			b.Reject("missing_field", pos, errors.New("lastapp Queue without a queue name in lastdata"))
		}
		return record.Call{}, false
	}
	times := [3]time.Time{}
	for i, col := range []int{cdrStart, cdrAnswer, cdrEnd} {
		v := strings.TrimSpace(rec[col])
		if v == "" && col == cdrAnswer {
			continue // never answered
		}
		t, err := time.ParseInLocation(cdrTimeLayout, v, s.loc)
		if err != nil {
			b.Reject("bad_time", pos, fmt.Errorf("column %d (%s) %q is not a time like 2006-01-02 15:04:05", col+1, []string{"start", "answer", "end"}[i], v))
			return record.Call{}, false
		}
		// A PBX clock never set (1970) or far ahead: the row is
		// rejected, as asterisk_queue_log rejects such lines.
		if err := record.CheckTime(t, b.Now); err != nil {
			b.Reject("bad_time", pos, fmt.Errorf("column %d (%s): %w", col+1, []string{"start", "answer", "end"}[i], err))
			return record.Call{}, false
		}
		times[i] = t
	}
	var secs [2]int64
	for i, col := range []int{cdrDuration, cdrBillsec} {
		v, err := strconv.ParseInt(strings.TrimSpace(rec[col]), 10, 64)
		if err != nil || v < 0 || v > cdrMaxSeconds {
			// Above the bound a call is a garbled number, and near
			// 292 years it would overflow time.Duration.
			b.Reject("bad_number", pos, fmt.Errorf("column %d (%s) %q is not a number of seconds from 0 to %d", col+1, []string{"duration", "billsec"}[i], rec[col], cdrMaxSeconds))
			return record.Call{}, false
		}
		secs[i] = v
	}
	duration, billsec := secs[0], secs[1]
	if billsec > duration {
		b.Reject("bad_number", pos, fmt.Errorf("billsec %d exceeds duration %d", billsec, duration))
		return record.Call{}, false
	}
	c := record.Call{ID: cdrID(rec, lay), Queue: queue, Channel: s.channel,
		EnqueuedAt: times[0], AnsweredAt: times[1], EndedAt: times[2]}
	disp := strings.ToUpper(strings.TrimSpace(rec[cdrDisposition]))
	agent := strings.TrimSpace(rec[cdrDstChannel])
	switch {
	case disp == "ANSWERED" && agent != "":
		c.Outcome, c.Agent = record.OutcomeAnswered, agent
		c.Wait, c.Talk = time.Duration(duration-billsec)*time.Second, time.Duration(billsec)*time.Second
	case strings.EqualFold(rec[cdrLastApp], "VoiceMail"):
		c.Outcome = record.OutcomeVoicemail
	case disp == "ANSWERED", disp == "NO ANSWER":
		c.Outcome = record.OutcomeAbandoned
	case disp == "BUSY", disp == "FAILED", disp == "CONGESTION":
		c.Outcome = record.OutcomeTimeout
	default:
		b.Reject("bad_value", pos, fmt.Errorf("disposition %q is not ANSWERED, NO ANSWER, BUSY, FAILED or CONGESTION", rec[cdrDisposition]))
		return record.Call{}, false
	}
	if !c.Outcome.Answered() {
		// The caller's whole time in the system was waiting.
		c.Wait, c.AnsweredAt = time.Duration(duration)*time.Second, time.Time{}
	}
	return c, true
}

// cdrMaxSeconds bounds duration and billsec (record.MaxCallDuration).
const cdrMaxSeconds = int64(record.MaxCallDuration / time.Second)

// cdrID is the row's uniqueid, or a hash of the whole row when cdr_csv does
// not log it (the same row read twice gets the same ID).
func cdrID(rec []string, lay cdrLayout) string {
	if lay.uniqueID {
		if id := strings.TrimSpace(rec[cdrFixed]); id != "" {
			return id
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(rec, "\x1f")))
	return "cdr-" + hex.EncodeToString(sum[:12])
}
