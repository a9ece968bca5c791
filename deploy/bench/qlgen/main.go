// Command qlgen writes a realistic Asterisk queue_log (see internal/qlgen)
// for deploy/bench/queuelog.sh and prints its hand count to stderr. With
// -split FILE it is the baseline instead: it reads FILE and cuts each line
// at '|' (qlgen.Split), nothing else, and prints the lines and fields.
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
	split := flag.String("split", "", "read this file with the minimal splitter instead")
	flag.Parse()
	if *split != "" {
		f, err := os.Open(*split)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		lines, fields, err := qlgen.Split(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("lines=%d fields=%d\n", lines, fields)
		return
	}
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
