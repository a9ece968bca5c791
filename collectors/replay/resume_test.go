package replay

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
)

// asking records the cursors its source is asked from.
type asking struct {
	collectors.Source
	asked []string
	nows  []time.Time // the run's clock (Batch.Now) of each ask
}

func (a *asking) Collect(ctx context.Context, cursor []byte, b *collectors.Batch) ([]byte, error) {
	a.nows = append(a.nows, b.Now)
	if cursor == nil {
		a.asked = append(a.asked, "start")
	} else {
		a.asked = append(a.asked, string(cursor))
	}
	return a.Source.Collect(ctx, cursor, b)
}

// keptReplay replays zd and pbx (paged sources, as replayTo does) with
// their reading kept in dir, through cancel: it is called after each
// chunk is spilled and returns true to interrupt there (as Ctrl-C does).
// It returns the output, the result, the replay's error and the cursors
// each source was asked from.
func keptReplay(t *testing.T, dir string, o Options, cancel func(ReadProgress) bool) ([]byte, Result, error, map[string][]string) {
	t.Helper()
	m, st := newModel(t, t.TempDir())
	if err := st.SetNoSync(true); err != nil {
		t.Fatal(err)
	}
	om, err := NewOpenMetrics(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	to := o.To
	o.From, o.To, o.Step, o.CommitCursors = mon(9, 0), tue(13, 0), 15*time.Minute, true
	if !to.IsZero() {
		o.To = to
	}
	o.Labels = map[string]string{"job": "servq"}
	o.ReadDir, o.ChunkSize, o.spillEvents, o.runFanout = dir, 40, 30, 3
	if o.ReadKey == "" {
		o.ReadKey = "k"
	}
	o.ReadProgress = func(p ReadProgress) {
		if cancel != nil && cancel(p) {
			stop()
		}
	}
	zd, pbx := &asking{Source: pagedHistory(23)}, &asking{Source: pagedHistory(1000)}
	res, err := Run(ctx, m, []Collector{{"zd", zd}, {"pbx", pbx}}, om, o)
	var out bytes.Buffer
	if err == nil {
		if _, err := om.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes(), res, err, map[string][]string{"zd": zd.asked, "pbx": pbx.asked}
}

func sameReplay(t *testing.T, what string, got []byte, res Result, want []byte, wantRes Result) {
	t.Helper()
	// Rejected is left out: the paged source rejects once per run, and
	// a resumed reading has its runs end elsewhere.
	if res.Events != wantRes.Events || res.Samples != wantRes.Samples || res.Steps != wantRes.Steps ||
		res.Records["zd"] != wantRes.Records["zd"] || res.Records["pbx"] != wantRes.Records["pbx"] {
		t.Errorf("%s: result %+v, want %+v", what, res, wantRes)
	}
	if !bytes.Equal(got, want) {
		a, b := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := 0; i < len(a) && i < len(b); i++ {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("%s: output differs at line %d:\n got %s\nwant %s", what, i+1, a[i], b[i])
			}
		}
		t.Fatalf("%s: output has %d lines, want %d", what, len(a), len(b))
	}
}

// TestKeptReadingResumesWhereItStopped: a replay interrupted after zd's
// 4th chunk, then again after pbx's 3rd, then run to the end, asks each
// source only for what it had not spilled (zd continues from its 7th
// chunk's cursor, and is not asked at all by the third replay), and
// writes byte for byte what a replay never interrupted writes.
func TestKeptReadingResumesWhereItStopped(t *testing.T) {
	want, wantRes := replayTo(t, readInMemory, Options{})
	dir := filepath.Join(t.TempDir(), "read")
	_, _, err, asked := keptReplay(t, dir, Options{}, func(p ReadProgress) bool { return p.Collector == "zd" && p.Chunks == 4 })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first replay: %v, want it interrupted", err)
	}
	if len(asked["pbx"]) != 0 {
		t.Fatalf("pbx asked %q before zd was read", asked["pbx"])
	}
	r, err := LoadReading(dir)
	if err != nil || r == nil {
		t.Fatalf("no kept reading: %v", err)
	}
	zd := r.Collectors[0]
	if zd.Finished || zd.Chunks != 4 || len(zd.Cursor) == 0 || r.Seq == 0 || len(r.Runs) == 0 {
		t.Fatalf("kept reading after 4 chunks of zd: %+v", r)
	}
	_, _, err, asked = keptReplay(t, dir, Options{}, func(p ReadProgress) bool { return p.Collector == "pbx" && p.Chunks == 3 })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("second replay: %v, want it interrupted", err)
	}
	if asked["zd"][0] != string(zd.Cursor) {
		t.Errorf("the second replay asked zd from %q, want its 4th chunk's cursor %q", asked["zd"], zd.Cursor)
	}
	r, _ = LoadReading(dir)
	if !r.Collectors[0].Finished || r.Collectors[1].Chunks != 3 {
		t.Fatalf("kept reading after 3 chunks of pbx: %+v", r.Collectors)
	}
	got, res, err, asked := keptReplay(t, dir, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked["zd"]) != 0 || asked["pbx"][0] != string(r.Collectors[1].Cursor) {
		t.Errorf("the third replay asked zd from %q and pbx from %q, want nothing and %q", asked["zd"], asked["pbx"], r.Collectors[1].Cursor)
	}
	sameReplay(t, "resumed twice", got, res, want, wantRes)
	if _, err := os.Stat(filepath.Join(dir, manifestFile)); err != nil {
		t.Errorf("Run removed the read directory, which is the caller's: %v", err)
	}
	// Everything read: a fourth replay asks nothing and plays the same.
	got, res, err, asked = keptReplay(t, dir, Options{}, nil)
	if err != nil || len(asked["zd"])+len(asked["pbx"]) != 0 {
		t.Fatalf("a finished reading replayed again: %v, asked %q", err, asked)
	}
	sameReplay(t, "read once, played again", got, res, want, wantRes)
}

// TestKeptReadingSurvivesACrashBeforeItsManifest: a crash after a run
// file was written and before the manifest named it (kill -9 there)
// leaves run files the manifest does not name, some holding events the
// manifest's cursors will read again, and compactions' outputs and
// inputs. The resumed replay deletes them and counts nothing twice, at
// any such point.
func TestKeptReadingSurvivesACrashBeforeItsManifest(t *testing.T) {
	want, wantRes := replayTo(t, readInMemory, Options{})
	crash := errors.New("crash")
	for _, at := range []int{1, 6, 19, 30} {
		dir := filepath.Join(t.TempDir(), "read")
		n := 0
		_, _, err, _ := keptReplay(t, dir, Options{beforeManifest: func() error {
			if n++; n == at {
				return crash
			}
			return nil
		}}, nil)
		if !errors.Is(err, crash) {
			t.Fatalf("crash at checkpoint %d: %v", at, err)
		}
		r, err := LoadReading(dir)
		if err != nil || r == nil {
			t.Fatalf("crash at checkpoint %d: no kept reading (%v)", at, err)
		}
		named := map[string]bool{manifestFile: true}
		for _, run := range r.Runs {
			named[run.File] = true
		}
		entries, _ := os.ReadDir(dir)
		unnamed := 0
		for _, e := range entries {
			if !named[e.Name()] {
				unnamed++
			}
		}
		if unnamed == 0 {
			t.Fatalf("crash at checkpoint %d: no run file beyond the manifest's: the crash point is not between them", at)
		}
		got, res, err, _ := keptReplay(t, dir, Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameReplay(t, "crash at checkpoint "+strconv.Itoa(at), got, res, want, wantRes)
	}
}

// TestKeptReadingOfAnotherReplayIsDiscarded: a reading kept by a replay
// with another key, range or collectors is not resumed: the sources are
// read from the start, and what is played is only what they read.
func TestKeptReadingOfAnotherReplayIsDiscarded(t *testing.T) {
	want, wantRes := replayTo(t, readInMemory, Options{})
	dir := filepath.Join(t.TempDir(), "read")
	_, _, err, _ := keptReplay(t, dir, Options{}, func(p ReadProgress) bool { return p.Collector == "pbx" && p.Chunks == 2 })
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	r, _ := LoadReading(dir)
	got, res, err, asked := keptReplay(t, dir, Options{ReadKey: "other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if asked["zd"][0] != "start" || asked["pbx"][0] != "start" {
		t.Errorf("a reading of another key resumed: asked %q", asked)
	}
	sameReplay(t, "another key", got, res, want, wantRes)
	if r2, _ := LoadReading(dir); r2.Key != "other" {
		t.Errorf("manifest key %q, want the new replay's", r2.Key)
	}
	// Another range or other collectors: the same, decided on the
	// manifest (the output would differ anyway).
	o := Options{ReadDir: dir, ReadKey: r.Key, From: r.From, To: r.To}
	cols := []Collector{{"zd", nil}, {"pbx", nil}}
	k := &kept{}
	if !k.same(r, o, cols) {
		t.Fatal("the same replay is not recognised")
	}
	for name, c := range map[string]func(){
		"from":       func() { o.From = o.From.Add(-time.Hour) },
		"earlier to": func() { o.To = o.To.Add(-time.Hour) },
		"collectors": func() { cols = cols[:1] },
		"order":      func() { cols = []Collector{{"pbx", nil}, {"zd", nil}} },
	} {
		o, cols = Options{ReadDir: dir, ReadKey: r.Key, From: r.From, To: r.To}, []Collector{{"zd", nil}, {"pbx", nil}}
		c()
		if k.same(r, o, cols) {
			t.Errorf("another %s resumes", name)
		}
	}
}

// TestKeptReadingEndsLater: a range that ends now is resumed up to the new
// now. The collector still reading reads on with the new end as its clock
// (a source rejects what is ahead of its clock: a queue_log line written
// after the first end would be lost), continuing from its kept cursor; the
// manifest then holds the new end.
func TestKeptReadingEndsLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "read")
	_, _, err, _ := keptReplay(t, dir, Options{}, func(p ReadProgress) bool { return p.Collector == "zd" && p.Chunks == 4 })
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	r, _ := LoadReading(dir)
	later := r.To.Add(2 * time.Hour)
	m, st := newModel(t, t.TempDir())
	if err := st.SetNoSync(true); err != nil {
		t.Fatal(err)
	}
	o := Options{From: r.From, To: later, Step: 15 * time.Minute, ReadDir: dir, ReadKey: r.Key, ChunkSize: 40, spillEvents: 30, runFanout: 3}
	zd, pbx := &asking{Source: pagedHistory(23)}, &asking{Source: pagedHistory(1000)}
	om, err := NewOpenMetrics(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), m, []Collector{{"zd", zd}, {"pbx", pbx}}, om, o); err != nil {
		t.Fatal(err)
	}
	if len(zd.asked) == 0 || zd.asked[0] != string(r.Collectors[0].Cursor) {
		t.Errorf("zd asked from %q, want its 4th chunk's cursor %q (resumed, not read again)", zd.asked, r.Collectors[0].Cursor)
	}
	for _, a := range [][]time.Time{zd.nows, pbx.nows} {
		for _, now := range a {
			if !now.Equal(later) {
				t.Fatalf("a source read with its clock at %s, want the new end %s", now, later)
			}
		}
	}
	if r2, _ := LoadReading(dir); r2 == nil || !r2.To.Equal(later) {
		t.Errorf("the kept reading's end is %v, want %s", r2, later)
	}
}
