//go:build servqtest

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
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
	if n, err := strconv.Atoi(os.Getenv("SERVQ_TEST_IMPORT_BATCH")); err == nil && n > 0 {
		testImportBatch = n
	}
}
