//go:build servqtest

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// In a binary built with -tags servqtest, SERVQ_TEST_HOLD_BACKFILL_AFTER_STEP=N
// makes `servq backfill` stop right after its Nth step is written, saying
// so on stderr, until it is interrupted; SERVQ_TEST_IMPORT_BATCH=BYTES
// makes the VictoriaMetrics import send requests that small, so that
// samples were sent by then. The resume test signals servq at that exact
// point instead of after a guessed sleep.
func init() {
	if n, err := strconv.Atoi(os.Getenv("SERVQ_TEST_HOLD_BACKFILL_AFTER_STEP")); err == nil && n > 0 {
		testAfterStep = func(ctx context.Context, step int) {
			if step != n {
				return
			}
			fmt.Fprintf(os.Stderr, "servq-test: holding backfill after step %d\n", step)
			<-ctx.Done()
		}
	}
	// SERVQ_TEST_STUCK_BACKFILL_AFTER_STEP=N: the Nth step never ends,
	// interrupted or not (a source or server ignoring cancellation), and
	// SERVQ_TEST_BACKFILL_STOP_WAIT bounds the wait for it.
	if n, err := strconv.Atoi(os.Getenv("SERVQ_TEST_STUCK_BACKFILL_AFTER_STEP")); err == nil && n > 0 {
		testAfterStep = func(ctx context.Context, step int) {
			if step != n {
				return
			}
			fmt.Fprintf(os.Stderr, "servq-test: stuck in backfill step %d\n", step)
			select {}
		}
	}
	if d, err := time.ParseDuration(os.Getenv("SERVQ_TEST_BACKFILL_STOP_WAIT")); err == nil && d > 0 {
		backfillStopWait = d
	}
	if n, err := strconv.Atoi(os.Getenv("SERVQ_TEST_IMPORT_BATCH")); err == nil && n > 0 {
		testImportBatch = n
	}
	// SERVQ_TEST_BACKFILL_CHUNK=N: sources hand over chunks of N records,
	// so that a small history is read in several (SERVQ_TEST_HOLD_AFTER_CHUNK,
	// testhook_servqtest.go, holds the reading after one).
	if n, err := strconv.Atoi(os.Getenv("SERVQ_TEST_BACKFILL_CHUNK")); err == nil && n > 0 {
		testBackfillChunk = n
	}
}
