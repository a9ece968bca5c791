//go:build servqtest

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
)

// In a binary built with -tags servqtest, SERVQ_TEST_HOLD_AFTER_CHUNK=N
// makes every collector's run stop for good right after its Nth chunk is
// committed (servq backfill: spilled and named by the kept reading's
// manifest, counting the chunks of interrupted backfills), saying so on
// stderr: the crash tests kill -9 servq at that exact point instead of
// after a guessed sleep.
func init() {
	n, err := strconv.Atoi(os.Getenv("SERVQ_TEST_HOLD_AFTER_CHUNK"))
	if err != nil || n <= 0 {
		return
	}
	testAfterChunk = func(ctx context.Context, collector string, chunk int) {
		if chunk != n {
			return
		}
		fmt.Fprintf(os.Stderr, "servq-test: holding %s after chunk %d\n", collector, chunk)
		<-ctx.Done()
	}
}
