package sources

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
)

// chunkOut is what one chunk (or a run's last commit) held.
type chunkOut struct {
	b      collectors.Batch // records copied out of the batch
	cursor []byte
}

func copyBatch(b *collectors.Batch) collectors.Batch {
	var c collectors.Batch
	c.Tickets = append(c.Tickets, b.Tickets...)
	c.Calls = append(c.Calls, b.Calls...)
	c.Surveys = append(c.Surveys, b.Surveys...)
	c.Snapshots = append(c.Snapshots, b.Snapshots...)
	c.Rejected = append(c.Rejected, b.Rejected...)
	return c
}

// collectChunks runs s once with a chunk hook of size records, as the
// runner does, and returns each chunk, then the run's remainder with its
// final cursor.
func collectChunks(t *testing.T, s collectors.Source, cursor []byte, now time.Time, size int) []chunkOut {
	t.Helper()
	var out []chunkOut
	b := &collectors.Batch{Now: now}
	b.SetChunks(size, func(_ context.Context, b *collectors.Batch, cursor []byte) error {
		out = append(out, chunkOut{copyBatch(b), append([]byte(nil), cursor...)})
		return nil
	})
	next, err := s.Collect(context.Background(), cursor, b)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, chunkOut{copyBatch(b), next})
}

// joined appends the records of chunks in order; rejections are compared
// by position and reason.
func joined(chunks []chunkOut) (collectors.Batch, []string) {
	var all collectors.Batch
	var rej []string
	for _, c := range chunks {
		all.Tickets = append(all.Tickets, c.b.Tickets...)
		all.Calls = append(all.Calls, c.b.Calls...)
		all.Surveys = append(all.Surveys, c.b.Surveys...)
		for _, r := range c.b.Rejected {
			rej = append(rej, r.Reason+" "+r.Position)
		}
	}
	return all, rej
}

func sameRecords(t *testing.T, what string, got, want collectors.Batch) {
	t.Helper()
	if !reflect.DeepEqual(got.Tickets, want.Tickets) || !reflect.DeepEqual(got.Calls, want.Calls) || !reflect.DeepEqual(got.Surveys, want.Surveys) {
		t.Fatalf("%s: %d tickets, %d calls, %d surveys; want %d, %d, %d (or different records)", what,
			len(got.Tickets), len(got.Calls), len(got.Surveys), len(want.Tickets), len(want.Calls), len(want.Surveys))
	}
}

// TestFileSourcesChunked reads files far larger than a segment, with
// multi-line CSV records and rejected rows throughout, in chunks: the
// chunks together hold exactly what one unchunked run reads, and a run
// resumed from any chunk's cursor reads exactly the chunks after it. So a
// run interrupted after any chunk loses and doubles nothing.
func TestFileSourcesChunked(t *testing.T) {
	defer func(n int) { fileSegmentSize = n }(fileSegmentSize)
	fileSegmentSize = csvMaxRecord + 16<<10 // many segments, records across their ends

	dir := t.TempDir()
	ticketsHeader := "Ticket ID,Group,Via,Priority,Status,Created,First reply,Solved,Replies,Reopens,Complaint,Tags\n"
	var tickets, jsonl, cdr bytes.Buffer
	tickets.WriteString(ticketsHeader)
	master, err := os.ReadFile("testdata/asterisk_cdr/Master.csv")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6000; i++ {
		fmt.Fprintf(&tickets, "%d,Billing,email,high,closed,2026-11-02 09:00,2026-11-02 09:45,2026-11-02 12:00,1,0,false,vip\n", i)
		fmt.Fprintf(&tickets, "%d,Support,\"web\nform, %d\",low,pending,2026-11-02 10:30,2026-11-02 11:00,,2,1,true,\n", i, i)
		fmt.Fprintf(&tickets, "%d,Support,email,low,open,yesterday,,,0,0,false,\n", i)
		fmt.Fprintf(&jsonl, `{"id": "%d", "created": "2026-11-02T09:00:00Z", "queue": "q%d"}`+"\n", i, i%7)
		fmt.Fprintf(&jsonl, `{"id": "%d", "created": "2026-11-02T09:00:00Z", "queue": "q%d"}`+"\n", i, i%5)
		if i%50 == 0 {
			jsonl.WriteString("not json\n")
		}
		if i%4 == 0 {
			cdr.Write(master)
		}
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		src  collectors.Source
	}{
		{"tickets_file csv", ticketsSource(t, write("tickets.csv", tickets.Bytes()), ticketsCSVConfig)},
		{"tickets_file jsonl", ticketsSource(t, write("tickets.jsonl", jsonl.Bytes()),
			"    path: %s\n    mapping: {id: id, created_at: created, queue: queue}\n")},
		{"asterisk_cdr", cdrSource(t, write("Master.csv", cdr.Bytes()), "")},
	} {
		t.Run(tc.name, func(t *testing.T) { checkChunks(t, tc.src, now, 500, 5) })
	}
}

// checkChunks collects from s once unchunked and once in chunks of size
// records (the runner's hook): the chunks together hold exactly what the
// unchunked run reads, in order, with the same rejections and the same
// final cursor; and a run resumed from any chunk's cursor reads exactly
// the chunks after it.
func checkChunks(t *testing.T, s collectors.Source, now time.Time, size, minChunks int) {
	t.Helper()
	whole, wholeCursor := collectOnce(t, s, nil, now)
	chunks := collectChunks(t, s, nil, now, size)
	if len(chunks) < minChunks {
		t.Fatalf("only %d chunks: the test reads too little", len(chunks))
	}
	all, rej := joined(chunks)
	sameRecords(t, "chunks joined", all, *whole)
	_, wantRej := joined([]chunkOut{{b: *whole}})
	if strings.Join(rej, "\n") != strings.Join(wantRej, "\n") {
		t.Fatalf("chunks rejected %d rows, one run %d", len(rej), len(wantRej))
	}
	if last := chunks[len(chunks)-1]; !bytes.Equal(last.cursor, wholeCursor) {
		t.Fatalf("final cursor %s, one run's %s", last.cursor, wholeCursor)
	}
	for i := range chunks[:len(chunks)-1] {
		rest, _ := collectOnce(t, s, chunks[i].cursor, now)
		want, _ := joined(chunks[i+1:])
		sameRecords(t, fmt.Sprintf("resumed after chunk %d", i+1), *rest, want)
	}
}

// commitChunked runs s from the model's cursor with a chunk hook of size
// records that commits each chunk to m as the runner does, then commits
// the rest; it returns the number of chunks flushed.
func commitChunked(t *testing.T, s collectors.Source, m *quality.Model, name string, now time.Time, size int) int {
	t.Helper()
	cursor, err := m.Cursor(name)
	if err != nil {
		t.Fatal(err)
	}
	b := &collectors.Batch{Now: now}
	b.SetChunks(size, func(ctx context.Context, b *collectors.Batch, cursor []byte) error {
		_, err := m.CommitChunk(ctx, name, b, cursor)
		return err
	})
	next, err := s.Collect(context.Background(), cursor, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Commit(name, b, next); err != nil {
		t.Fatal(err)
	}
	return b.Chunks()
}
