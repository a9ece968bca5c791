// Package collectors runs source plugins on cron schedules and hands what
// they read to the quality model. A plugin is one file under
// collectors/sources that registers a Factory by type name in init();
// adding one touches no other file.
package collectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// Source reads one kind of system. Collect is called by the scheduler, never
// concurrently for one Source.
type Source interface {
	// Collect reads what is new since cursor (nil on the first run) and
	// appends records to b. It returns the cursor that, committed together
	// with b's records, lets the next run continue exactly after them.
	//
	// On error the run commits nothing: the next run starts again from the
	// old cursor, and the quality model's dedup keys make re-read records
	// count once. A source therefore never needs to undo anything.
	//
	// Everything a source must remember between runs (file offset, calls
	// still in a queue, an API cursor) belongs in the cursor, not in the
	// Source value: a restart, or a crash between fetch and commit, must
	// lose nothing.
	Collect(ctx context.Context, cursor []byte, b *Batch) (next []byte, err error)
}

// Receiver is a Source that is also pushed to over HTTP (survey webhooks).
// servq serves its handler at /webhooks/<collector name>. The handler
// stores what it receives durably before answering 2xx; Collect then hands
// the stored records to the quality model under the usual cursor rules.
//
// A Receiver that holds files open must open them lazily (in Handler or
// Collect, not in its Factory: `servq check` and reloads build sources
// while the running ones still hold the files) and implement io.Closer.
type Receiver interface {
	Source
	Handler() http.Handler
}

// Checker is a Source that checks, for `servq check`, what its factory
// cannot: input that already exists, such as the header of an export file
// the mapping names columns of. Check reads only; input that is absent
// (the file is on another machine) passes. c is the collector's config
// section, for error positions.
type Checker interface {
	Source
	Check(c *config.Collector) error
}

// Batch collects the records of one run.
type Batch struct {
	// Now is the run's clock: sources use it instead of time.Now so that
	// tests (and the demo) are deterministic.
	Now time.Time

	// Watermark is the source's completeness watermark: the instant up to
	// which it has delivered every change (the end time of an API export,
	// the moment a complete query was issued, the time an export file was
	// written, the time of a log's last line). Ticket deadline verdicts
	// wait for it: a ticket is judged late only once the watermark has
	// passed its deadline without the reply, so a reply made in time but
	// delivered late counts good. Zero means "complete up to Now", which
	// is true of a source that read everything there was when the run
	// started; a source whose run stops early (request budget) or that
	// reads a snapshot written earlier must set it.
	Watermark time.Time

	Tickets   []record.Ticket
	Calls     []record.Call
	Surveys   []record.SurveyResponse
	Snapshots []record.Snapshot
	Rejected  []Rejection

	// The chunk hook (SetChunks); nil: records accumulate for one commit.
	chunk     FlushFunc
	chunkSize int
	chunks    int // chunks handed over in this run
}

// Streaming commits. A run may gather far more records than fit in memory
// (the first sync of years of history). A source that reads in order can
// hand over what it has gathered so far together with the cursor that ends
// it, and go on reading with an empty batch:
//
//	for page := range pages {
//		... append the page's records to b ...
//		if b.Full() {
//			if err := b.Flush(ctx, cursorAfter(page)); err != nil {
//				return nil, err
//			}
//		}
//	}
//	return cursorAfterAll, nil
//
// The cursor must let a run started from it continue exactly after the
// records flushed (as Collect's returned cursor does for the whole run):
// the runner commits the records and the cursor in one transaction, so a
// run that fails or is killed later resumes from its last chunk. Flush
// only at such points (a page or line boundary), never inside a record
// that spans pages.
//
// Intermediate chunks judge no ticket deadline: verdicts made as "no reply
// by the deadline as far as the source can tell" wait for the run's last
// commit, which carries b.Watermark (see quality.Model.CommitChunk). A
// source therefore sets Watermark as before, for the whole run.
//
// Without a hook (unit tests, `servq collect`) Full is false and Flush does
// nothing: the records accumulate and the run commits once, as before.

// FlushFunc commits the batch's records with cursor; it is set by the
// runner. On success the batch is emptied (records and rejections).
type FlushFunc func(ctx context.Context, b *Batch, cursor []byte) error

// DefaultChunkSize is how many records (and rejections) a chunk holds
// before Full reports true.
const DefaultChunkSize = 10000

// SetChunks makes Flush hand chunks of about size records to fn (size <= 0:
// DefaultChunkSize).
func (b *Batch) SetChunks(size int, fn FlushFunc) {
	if size <= 0 {
		size = DefaultChunkSize
	}
	b.chunk, b.chunkSize = fn, size
}

// Full reports whether the batch holds a chunk's worth of records or
// rejections and a hook takes chunks: the source should Flush at its next
// resumable point.
func (b *Batch) Full() bool {
	return b.chunk != nil && b.Len()+len(b.Rejected) >= b.chunkSize
}

// Flush commits the records gathered so far with cursor (see above) and
// empties the batch. Without a hook it does nothing. An error ends the
// run: the source returns it.
func (b *Batch) Flush(ctx context.Context, cursor []byte) error {
	if b.chunk == nil {
		return nil
	}
	if err := b.chunk(ctx, b, cursor); err != nil {
		return err
	}
	b.chunks++
	b.Reset()
	return nil
}

// Chunks is the number of chunks flushed so far in this run.
func (b *Batch) Chunks() int { return b.chunks }

// Reset empties the records and rejections, keeping the clock, the
// watermark and the hook. The slices' memory is kept for the next chunk;
// their elements are cleared so the strings they held can be freed.
func (b *Batch) Reset() {
	clear(b.Tickets)
	clear(b.Calls)
	clear(b.Surveys)
	clear(b.Snapshots)
	clear(b.Rejected)
	b.Tickets, b.Calls, b.Surveys, b.Snapshots, b.Rejected = b.Tickets[:0], b.Calls[:0], b.Surveys[:0], b.Snapshots[:0], b.Rejected[:0]
}

// Rejection is input a source could not turn into a record. Rejections never
// stop a run; they are counted per collector and reason and logged with
// their position.
type Rejection struct {
	Reason   string // short, fixed vocabulary: bad_time, bad_number, short_line, ...
	Position string // file:line, page URL path, row number; never a secret
	Err      error
}

// Reject records input that could not be used.
func (b *Batch) Reject(reason, position string, err error) {
	b.Rejected = append(b.Rejected, Rejection{Reason: reason, Position: position, Err: err})
}

// Len is the number of records in the batch.
func (b *Batch) Len() int {
	return len(b.Tickets) + len(b.Calls) + len(b.Surveys) + len(b.Snapshots)
}

// Env is what a factory gets besides its config section.
type Env struct {
	Logger *slog.Logger
	// DataDir is a directory the plugin may keep files in (webhook spool).
	DataDir string
}

// Factory builds a Source from a collector's config. It decodes the
// plugin's own keys with c.DecodeSpec and reports bad values with
// c.Errorf, so that `servq check` can locate every problem.
type Factory func(c *config.Collector, env Env) (Source, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a source type available by name. It is called from the
// init function of the plugin's file and panics on a duplicate name, which
// is a programming error.
func Register(typ string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[typ]; dup {
		panic("collectors: source type registered twice: " + typ)
	}
	registry[typ] = f
}

// Types lists the registered source types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Build constructs the Source of one collector.
func Build(c *config.Collector, env Env) (Source, error) {
	registryMu.RLock()
	f, ok := registry[c.Type]
	registryMu.RUnlock()
	if !ok {
		return nil, c.Errorf("type", "unknown collector type %q (known: %v)", c.Type, Types())
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := f(c, env)
	if err != nil {
		if _, located := err.(*config.Error); located {
			return nil, err
		}
		if _, located := err.(config.Errors); located {
			return nil, err
		}
		return nil, c.Errorf("", "%v", err)
	}
	return s, nil
}

// CheckAll builds every collector of cfg to validate the plugin sections,
// closing what it built, and returns all problems found.
func CheckAll(cfg *config.Config, env Env) error {
	var errs config.Errors
	for _, c := range cfg.Collectors {
		if c == nil || c.Type == "" {
			continue // a config with problems (servq check): already reported
		}
		s, err := Build(c, env)
		if err != nil {
			switch e := err.(type) {
			case *config.Error:
				errs = append(errs, e)
			case config.Errors:
				errs = append(errs, e...)
			default:
				errs = append(errs, &config.Error{File: cfg.File, Msg: fmt.Sprintf("collector %s: %v", c.Name, err)})
			}
			continue
		}
		if ch, ok := s.(Checker); ok {
			if err := ch.Check(c); err != nil {
				var e *config.Error
				if !errors.As(err, &e) {
					e = &config.Error{File: cfg.File, Msg: fmt.Sprintf("collector %s: %v", c.Name, err)}
				}
				errs = append(errs, e)
			}
		}
		if cl, ok := s.(io.Closer); ok {
			cl.Close()
		}
	}
	return errs.Err()
}

// MarshalJSON writes the error as text (`servq collect --once` prints
// batches as JSON).
func (r Rejection) MarshalJSON() ([]byte, error) {
	msg := ""
	if r.Err != nil {
		msg = r.Err.Error()
	}
	return json.Marshal(struct {
		Reason   string `json:"reason"`
		Position string `json:"position"`
		Error    string `json:"error"`
	}{r.Reason, r.Position, msg})
}

// BackoffError is returned by a source whose vendor asked it to wait
// (HTTP 429 or 503 with Retry-After) longer than a run waits. The run
// fails and commits nothing; the runner remembers Wait in the store and
// skips the collector's runs until then, across restarts.
type BackoffError struct {
	Wait time.Duration
	Err  error
}

func (e *BackoffError) Error() string { return e.Err.Error() }
func (e *BackoffError) Unwrap() error { return e.Err }
