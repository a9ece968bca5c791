package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/servq/servq/collectors/state"
)

// Resuming the reading. Reading is what costs: a help desk's two years of
// tickets behind a rate-limited API are hours of request budget, while
// playing the spilled events is local. With Options.ReadDir the spill is
// kept in that directory with a manifest, so that a replay interrupted
// (Ctrl-C, a failed source, kill -9) reads only what it had not read yet:
//
//   - After each chunk a source hands over, the spill's buffer is written
//     to a run file and fsynced, and only then does the manifest (written
//     to a temporary file, fsynced, renamed) name the run and the chunk's
//     cursor. A run file no manifest names (a crash in between) is deleted
//     when the reading resumes, and its chunk is read again.
//   - A compaction's inputs are deleted only once a manifest naming its
//     output instead is written: the manifest on disk always names run
//     files that exist and hold exactly the events read up to its cursors.
//   - The manifest keeps the spill's sequence counter: events read again
//     after a resume get the numbers they would have had, so the merge
//     (by time, then sequence) gives the order of an uninterrupted replay.
//
// A finished collector is not read again; the others continue from their
// cursor, as after a Retry-After: a new run from the last chunk's cursor.
// The run files are global, not per collector: a compaction merges the
// runs of every collector, and a change of collectors discards the whole
// reading anyway (Options.ReadKey).

// readingVersion changes when the manifest or the run files change form.
const readingVersion = 1

// manifestFile is the manifest's name in the read directory.
const manifestFile = "manifest.json"

// Reading is the manifest of a kept reading (Options.ReadDir).
type Reading struct {
	Version int `json:"version"`
	// Key is Options.ReadKey of the replay that read it.
	Key string `json:"key"`
	// From and To are the replay's range: a command resolving its start
	// from now (servq backfill --since) resumes with the first one's; a
	// range ending now resumes up to the new now (To only grows).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Seq is the number of events spilled: the next one's sequence.
	Seq uint64 `json:"seq"`
	// Runs are the run files holding those events.
	Runs       []ReadRun          `json:"runs"`
	Collectors []CollectorReading `json:"collectors"`
}

// ReadRun is a run file of the reading (spill.go).
type ReadRun struct {
	File  string `json:"file"` // in the read directory
	Level int    `json:"level"`
}

// CollectorReading is where one collector's reading stands.
type CollectorReading struct {
	Name string `json:"name"`
	// Finished: the source read everything; Cursor is then the one it
	// returned last (committed for servq run), Watermark its last run's.
	Finished bool `json:"finished"`
	// Chunks is the number of chunks spilled, over every attempt.
	Chunks int `json:"chunks"`
	// Cursor is where the reading continues: the cursor of the last
	// chunk spilled (nil: from the start).
	Cursor    []byte    `json:"cursor,omitempty"`
	Watermark time.Time `json:"watermark,omitzero"`
	Records   int       `json:"records"`
	Rejected  int       `json:"rejected"`
}

// LoadReading is the manifest kept in dir, nil when there is none.
func LoadReading(dir string) (*Reading, error) {
	p := filepath.Join(dir, manifestFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Reading
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if r.Version != readingVersion {
		return nil, fmt.Errorf("%s: version %d, this servq writes %d", p, r.Version, readingVersion)
	}
	return &r, nil
}

// kept is the reading of a replay with Options.ReadDir.
type kept struct {
	dir string
	r   Reading
	// beforeManifest, in tests, fails a checkpoint after its run file
	// was written and before the manifest names it (a crash there).
	beforeManifest func() error
}

// openKept opens the reading in o.ReadDir: the interrupted one if it is
// of the same replay (key, range and collectors), else a new one in an
// emptied directory. The spill continues the kept one.
func openKept(o Options, cols []Collector, limit, fanout int) (*kept, *spill, error) {
	k := &kept{dir: o.ReadDir, beforeManifest: o.beforeManifest}
	sp := newSpill("", limit, fanout)
	sp.dir, sp.kept = o.ReadDir, true
	r, err := LoadReading(o.ReadDir)
	if err == nil && r != nil && k.same(r, o, cols) {
		k.r = *r
		named := map[string]bool{manifestFile: true}
		for _, run := range r.Runs {
			named[run.File] = true
			var n int
			if _, err := fmt.Sscanf(run.File, "run-%d", &n); err != nil || strings.ContainsRune(run.File, os.PathSeparator) {
				return nil, nil, fmt.Errorf("replay: %s names run file %q: delete %s to read everything again", filepath.Join(o.ReadDir, manifestFile), run.File, o.ReadDir)
			}
			sp.n = max(sp.n, n)
			sp.runs = append(sp.runs, runFile{path: filepath.Join(o.ReadDir, run.File), level: run.Level})
		}
		// What a crash left unnamed: a run written after the last
		// manifest, a compaction's output or inputs, a manifest's
		// temporary file.
		entries, err := os.ReadDir(o.ReadDir)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			if !named[e.Name()] {
				if err := os.RemoveAll(filepath.Join(o.ReadDir, e.Name())); err != nil {
					return nil, nil, err
				}
			}
		}
		for _, run := range sp.runs {
			if _, err := os.Stat(run.path); err != nil {
				return nil, nil, fmt.Errorf("replay: the kept reading lost a run file (%v): delete %s to read everything again", err, o.ReadDir)
			}
		}
		sp.seq = r.Seq
		if !k.r.To.Equal(o.To) {
			k.r.To = o.To.UTC()
			if err := k.save(); err != nil {
				return nil, nil, err
			}
		}
		return k, sp, nil
	}
	if err := os.RemoveAll(o.ReadDir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(o.ReadDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("replay: read directory: %w", err)
	}
	k.r = Reading{Version: readingVersion, Key: o.ReadKey, From: o.From.UTC(), To: o.To.UTC(), Collectors: make([]CollectorReading, len(cols))}
	for i, c := range cols {
		k.r.Collectors[i].Name = c.Name
	}
	if err := k.save(); err != nil {
		return nil, nil, err
	}
	return k, sp, nil
}

func (k *kept) same(r *Reading, o Options, cols []Collector) bool {
	// A later end is the same reading continued: what was read stops at
	// the earlier end (the sources' clock, Batch.Now, was that end), and
	// the collectors still reading read on up to the new one.
	if r.Key != o.ReadKey || !r.From.Equal(o.From) || o.To.Before(r.To) || len(r.Collectors) != len(cols) {
		return false
	}
	for i, c := range cols {
		if r.Collectors[i].Name != c.Name {
			return false
		}
	}
	return true
}

// checkpoint makes what was spilled durable with collector i's new state:
// the buffer goes to a synced run file, then the manifest names it with
// the state, then the compactions' inputs are deleted.
func (k *kept) checkpoint(sp *spill, i int, st CollectorReading) error {
	if err := sp.writeRun(); err != nil {
		return err
	}
	if k.beforeManifest != nil {
		if err := k.beforeManifest(); err != nil {
			return err
		}
	}
	k.r.Collectors[i] = st
	k.r.Seq = sp.seq
	k.r.Runs = k.r.Runs[:0]
	for _, run := range sp.runs {
		k.r.Runs = append(k.r.Runs, ReadRun{File: filepath.Base(run.path), Level: run.level})
	}
	if err := k.save(); err != nil {
		return err
	}
	for _, p := range sp.obsolete {
		os.Remove(p)
	}
	sp.obsolete = sp.obsolete[:0]
	return nil
}

// save writes the manifest atomically and durably: a temporary file,
// fsynced, renamed, and the directory fsynced (the rename, and the run
// files created since the last save, survive a power loss too). 0600:
// cursors may name what a vendor's API returned.
func (k *kept) save() error {
	b, err := json.MarshalIndent(&k.r, "", "  ")
	if err != nil {
		return err
	}
	if err := state.WriteFileAtomic(filepath.Join(k.dir, manifestFile), b); err != nil {
		return fmt.Errorf("replay: manifest in %s: %w", k.dir, err)
	}
	return nil
}
