// Command qlgen writes a realistic Asterisk queue_log (see internal/qlgen)
// for deploy/bench/queuelog.sh and prints its hand count to stderr.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/servq/servq/internal/qlgen"
)

func main() {
	lines := flag.Int("lines", 5_000_000, "lines to write (at least)")
	start := flag.Int64("start", 1_790_000_000, "epoch of the first line")
	seed := flag.Uint64("seed", 1, "random seed")
	out := flag.String("o", "queue_log", "output file")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := qlgen.Write(f, qlgen.Options{Lines: *lines, Start: *start, Seed: *seed})
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "lines=%d calls=%d answered=%d transferred=%d abandoned=%d timeout=%d\n",
		c.Lines, c.Calls, c.Answered, c.Transferred, c.Abandoned, c.Timeout)
}
