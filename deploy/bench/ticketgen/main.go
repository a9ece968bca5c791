// Command ticketgen writes a help-desk ticket export for the tickets_file
// benchmark (deploy/bench/tickets.sh): n tickets, each listed three times
// as exports re-list changed tickets (created, first reply, solved), in the
// order a daily export appends them. Output is deterministic for a given n.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	n := flag.Int("tickets", 100000, "number of tickets")
	out := flag.String("o", "tickets.csv", "output file")
	ids := flag.String("ids", "sequential", "ticket ids: sequential (Zendesk, Freshdesk, Request Tracker number tickets in creation order) or scattered (uuid-like keys from a custom system: a permutation of the 32-bit space)")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "id,queue,channel,priority,status,created_at,first_reply_at,solved_at,reopens,agent_replies")
	queues := []string{"billing", "support", "sales", "returns", "tech"}
	channels := []string{"email", "chat", "phone", "web"}
	prios := []string{"low", "normal", "high", "urgent"}
	start := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	ts := func(t time.Time) string { return t.Format(time.RFC3339) }
	// Tickets are created every ~30 s over the period; each version is
	// written in a batch 1000 tickets later, so the three versions of a
	// ticket are far apart in the file, as in a real incremental export.
	const lag = 1000
	row := func(i, v int) {
		created := start.Add(time.Duration(i) * 30 * time.Second)
		reply := created.Add(time.Duration(5+(i*7919)%480) * time.Minute)
		solved := reply.Add(time.Duration(30+(i*104729)%2880) * time.Minute)
		q, ch, pr := queues[i%len(queues)], channels[(i/5)%len(channels)], prios[(i/3)%len(prios)]
		id := uint32(1000000 + i)
		if *ids == "scattered" {
			// An odd multiplier permutes the 32-bit space.
			id = uint32(i) * 2654435761
		}
		switch v {
		case 0:
			fmt.Fprintf(w, "%d,%s,%s,%s,open,%s,,,0,0\n", id, q, ch, pr, ts(created))
		case 1:
			fmt.Fprintf(w, "%d,%s,%s,%s,pending,%s,%s,,0,1\n", id, q, ch, pr, ts(created), ts(reply))
		case 2:
			fmt.Fprintf(w, "%d,%s,%s,%s,solved,%s,%s,%s,%d,%d\n", id, q, ch, pr, ts(created), ts(reply), ts(solved), i%11/10, 1+i%3)
		}
	}
	for i := 0; i < *n+2*lag; i++ {
		for v := 0; v < 3; v++ {
			if j := i - v*lag; j >= 0 && j < *n {
				row(j, v)
			}
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
