//go:build unix

package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// exScript writes a /bin/sh script to a temp dir and returns its path.
func exScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "export.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func exSource(t *testing.T, script, extra string) collectors.Source {
	t.Helper()
	return buildSource(t, "collectors:\n  - name: api\n    type: exec\n    schedule: \"@every 5m\"\n    command: [/bin/sh, "+script+"]\n"+extra)
}

// The schema of testdata/exec/README.md, line by line: every record type,
// the servq cursor and environment, and rejected lines with their numbers.
func TestExecRecordsCursorEnvAndRejectedLines(t *testing.T) {
	dir := t.TempDir()
	envLog := filepath.Join(dir, "env.log")
	t.Setenv("SERVQ_TEST_OTHER_TOKEN", "must-not-leak")
	script := exScript(t, `printf '%s|%s|%s|%s\n' "$SERVQ_CURSOR" "$SERVQ_SINCE" "$DB_PASSWORD" "$SERVQ_TEST_OTHER_TOKEN" >> "$ENV_LOG"
if [ "$SERVQ_CURSOR" = "42" ]; then
  echo '{"type": "ticket", "id": "T1", "created_at": "2026-11-20T09:00:00Z", "status": "closed", "reopens": 1}'
  echo '{"type": "cursor", "cursor": "43"}'
  exit 0
fi
cat <<'EOF'
{"type": "ticket", "id": "T1", "queue": "billing", "channel": "email", "priority": "high", "status": "solved", "tags": ["vip", "refund"], "created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-20T12:00:00Z", "first_reply_at": "2026-11-20T09:30:00Z", "solved_at": "2026-11-20T12:00:00Z", "agent_replies": 1, "first_reply_business_seconds": 1800, "satisfaction": "good", "complaint": false, "sla_breaches": ["first_reply"]}
{"type": "call", "id": "C1", "queue": "support", "agent": "ann", "channel": "phone", "enqueued_at": "2026-11-20T10:00:00Z", "answered_at": "2026-11-20T10:00:20Z", "ended_at": "2026-11-20T10:05:20Z", "talk_seconds": 270, "hold_seconds": 30, "wrap_seconds": 45.5, "outcome": "answered"}
{"type": "call", "id": "C2", "queue": "support", "enqueued_at": "2026-11-20T10:01:00Z", "ended_at": "2026-11-20T10:01:04Z", "wait_seconds": 4, "outcome": "abandoned"}

{"type": "survey", "id": "S1", "survey": "post-contact", "kind": "nps", "score": 9, "submitted_at": "2026-11-20T13:00:00Z", "ticket_id": "T1", "queue": "billing", "channel": "email"}
{"type": "survey", "id": "S2", "survey": "annual", "kind": "servqual", "submitted_at": "2026-11-21T08:00:00+01:00", "servqual": [{"item": 1, "expectation": 7, "perception": 5}, {"dimension": "empathy", "expectation": 6}], "weights": {"reliability": 40, "empathy": 60}}
{"type": "snapshot", "queue": "support", "at": "2026-11-23T09:59:00Z", "calls_waiting": 3, "longest_wait_seconds": 42.5, "agents": {"available": 2, "busy": 5}}
not json
{"type": "chat", "id": "x"}
{"type": "ticket", "id": "T2", "created": "2026-11-20T09:00:00Z"}
{"type": "ticket", "id": "T3", "created_at": "yesterday"}
{"type": "call", "id": "C3", "enqueued_at": "2026-11-20T10:01:00Z", "outcome": "hung up"}
{"type": "survey", "id": "S3", "survey": "post-contact", "kind": "csat", "score": 6, "submitted_at": "2026-11-20T13:00:00Z"}
{"type": "snapshot", "queue": "support", "colour": "red"}
{"type": "cursor", "cursor": "42"}
EOF
`)
	s := exSource(t, script, "    env: {DB_PASSWORD: pw, ENV_LOG: "+envLog+"}\n")
	b, cur := hjCollect(t, s, nil)

	wantTickets := []record.Ticket{{ID: "T1", Queue: "billing", Channel: "email", Priority: "high", Status: "solved", Tags: []string{"vip", "refund"},
		CreatedAt: mustRFC3339("2026-11-20T09:00:00Z"), UpdatedAt: mustRFC3339("2026-11-20T12:00:00Z"), FirstReplyAt: mustRFC3339("2026-11-20T09:30:00Z"),
		SolvedAt: mustRFC3339("2026-11-20T12:00:00Z"), AgentReplies: 1, FirstReplyBusiness: 30 * time.Minute, Satisfaction: "good", SLABreaches: []string{"first_reply"}}}
	if !reflect.DeepEqual(b.Tickets, wantTickets) {
		t.Errorf("tickets:\n got %+v\nwant %+v", b.Tickets, wantTickets)
	}
	wantCalls := []record.Call{
		{ID: "C1", Queue: "support", Agent: "ann", Channel: "phone", EnqueuedAt: mustRFC3339("2026-11-20T10:00:00Z"), AnsweredAt: mustRFC3339("2026-11-20T10:00:20Z"),
			EndedAt: mustRFC3339("2026-11-20T10:05:20Z"), Wait: 20 * time.Second, Talk: 270 * time.Second, Hold: 30 * time.Second, Wrap: 45500 * time.Millisecond, Outcome: record.OutcomeAnswered},
		{ID: "C2", Queue: "support", EnqueuedAt: mustRFC3339("2026-11-20T10:01:00Z"), EndedAt: mustRFC3339("2026-11-20T10:01:04Z"), Wait: 4 * time.Second, Outcome: record.OutcomeAbandoned},
	}
	if !reflect.DeepEqual(b.Calls, wantCalls) {
		t.Errorf("calls:\n got %+v\nwant %+v", b.Calls, wantCalls)
	}
	sq, _ := time.Parse(time.RFC3339, "2026-11-21T08:00:00+01:00")
	wantSurveys := []record.SurveyResponse{
		{ID: "S1", Survey: "post-contact", Kind: record.KindNPS, Score: 9, HasScore: true, TicketID: "T1", Queue: "billing", Channel: "email", SubmittedAt: mustRFC3339("2026-11-20T13:00:00Z")},
		{ID: "S2", Survey: "annual", Kind: record.KindSERVQUAL, SubmittedAt: sq, Servqual: []record.ServqualItem{
			{Dimension: record.Tangibles, Expectation: 7, Perception: 5, HasE: true, HasP: true},
			{Dimension: record.Empathy, Expectation: 6, HasE: true},
		}, Weights: map[string]float64{record.Reliability: 40, record.Empathy: 60}},
	}
	if !reflect.DeepEqual(b.Surveys, wantSurveys) {
		t.Errorf("surveys:\n got %+v\nwant %+v", b.Surveys, wantSurveys)
	}
	wantSnap := []record.Snapshot{{Queue: "support", At: mustRFC3339("2026-11-23T09:59:00Z"), CallsWaiting: 3, LongestWait: 42500 * time.Millisecond, HasWait: true,
		Agents: map[string]int{"available": 2, "busy": 5}}}
	if !reflect.DeepEqual(b.Snapshots, wantSnap) {
		t.Errorf("snapshots:\n got %+v\nwant %+v", b.Snapshots, wantSnap)
	}
	var rej []string
	for _, r := range b.Rejected {
		rej = append(rej, r.Reason+" "+r.Position+" "+r.Err.Error())
	}
	wantRej := []string{
		"bad_json stdout:8 not a JSON object: invalid character 'o' in literal null (expecting 'u')",
		`bad_json stdout:9 type "chat" is not ticket, call, survey, snapshot, cursor or watermark`,
		`bad_json stdout:10 unknown ticket field "created" (see the exec README for the schema)`,
		`bad_time stdout:11 column "created_at" (created_at): "yesterday" is not a time in format rfc3339`,
		`bad_value stdout:12 "outcome" (outcome): "hung up" is not an outcome (answered, abandoned, timeout, transferred, voicemail; see outcome_map)`,
		`bad_score stdout:13 "score" (score): "6" is not a score from 1 to 5`,
		`bad_json stdout:14 snapshot: json: unknown field "colour"`,
	}
	if !reflect.DeepEqual(rej, wantRej) {
		t.Errorf("rejections:\n got %q\nwant %q", rej, wantRej)
	}
	if string(cur) != `{"cursor":"42","since":"2026-11-23T10:00:00Z"}` {
		t.Errorf("cursor %s", cur)
	}
	// No watermark line: complete up to the run's start, where the next
	// run's SERVQ_SINCE begins.
	if !b.Watermark.Equal(hjNow) {
		t.Errorf("watermark %s, want the run's start %s", b.Watermark, hjNow)
	}

	// Second run, an hour later: the command gets its cursor back and the
	// time of the last run as SERVQ_SINCE.
	b2, cur2 := collectOnce(t, s, cur, hjNow.Add(time.Hour))
	if len(b2.Tickets) != 1 || b2.Tickets[0].Status != "closed" || b2.Tickets[0].Reopens != 1 || string(cur2) != `{"cursor":"43","since":"2026-11-23T11:00:00Z"}` {
		t.Errorf("second run: %+v, cursor %s", b2.Tickets, cur2)
	}
	env, _ := os.ReadFile(envLog)
	wantEnv := "|2026-10-24T10:00:00Z|pw|\n42|2026-11-23T10:00:00Z|pw|\n"
	if string(env) != wantEnv {
		t.Errorf("environment seen by the command:\n%s\nwant (no SERVQ_TEST_OTHER_TOKEN):\n%s", env, wantEnv)
	}
}

// A command that outlives command_timeout is killed with its whole
// process group (here a sleeping child), promptly; the error says so and
// quotes stderr.
func TestExecTimeoutKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := exScript(t, `echo '{"type": "call", "id": "C1", "enqueued_at": "2026-11-20T10:00:00Z", "outcome": "answered"}'
echo "exporting..." >&2
sleep 30 &
echo $! > "$PID_FILE"
wait
`)
	s := exSource(t, script, "    command_timeout: 300ms\n    env: {PID_FILE: "+pidFile+"}\n")
	start := time.Now()
	b := &collectors.Batch{Now: hjNow}
	_, err := s.Collect(context.Background(), nil, b)
	if err == nil || err.Error() != "command sh timed out after 300ms and was killed; stderr: exporting..." {
		t.Errorf("err = %v", err)
	}
	// Not a speed test: without the kill, Collect would wait for the
	// child's 30 s sleep. 20 s leaves a loaded CI machine its slack.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Collect took %s after a 300ms timeout", d)
	}
	raw, _ := os.ReadFile(pidFile)
	var pid int
	for _, c := range strings.TrimSpace(string(raw)) {
		pid = pid*10 + int(c-'0')
	}
	if pid == 0 {
		t.Fatal("the script did not start its child")
	}
	deadline := time.Now().Add(20 * time.Second) // the sleep alone would last 30 s
	// Dead means gone, or a zombie waiting for its new parent to reap it.
	alive := func() bool {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				return false
			}
		}
		return syscall.Kill(pid, 0) == nil
	}
	for alive() {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the child sleep (pid %d) survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A command that prints half its output and exits 1 fails the run
// (nothing committed, stderr in the error). The rerun prints everything;
// with a crash-and-repeat of the same output and a later run, the real
// quality model counts every call exactly once.
func TestExecFailureCommitsNothingAndRerunCountsExactly(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "failed-once")
	script := exScript(t, `emit() { echo "{\"type\": \"call\", \"id\": \"$1\", \"queue\": \"sales\", \"enqueued_at\": \"2026-11-20T10:00:00Z\", \"wait_seconds\": $2, \"talk_seconds\": $3, \"outcome\": \"$4\"}"; }
if [ -z "$SERVQ_CURSOR" ]; then
  emit C1 10 120 answered
  emit C2 40 0 abandoned
  if [ ! -e "$MARKER" ]; then
    touch "$MARKER"
    echo "psql: connection to server lost" >&2
    exit 1
  fi
  emit C3 25 300 answered
  emit C4 300 0 timeout
  echo '{"type": "cursor", "cursor": "c4"}'
else
  emit C4 300 0 timeout
  emit C5 3 0 abandoned
  echo '{"type": "cursor", "cursor": "c5"}'
fi
`)
	s := exSource(t, script, "    env: {MARKER: "+marker+"}\n")
	m := hjModel(t)
	_, err := s.Collect(context.Background(), nil, &collectors.Batch{Now: hjNow})
	if err == nil || err.Error() != "command sh failed: exit status 1; stderr: psql: connection to server lost" {
		t.Fatalf("err = %v", err)
	}
	// Nothing was committed: the next run starts again from the nil
	// cursor. It is fetched twice (a crash before the commit), then once
	// more later on.
	b1, c1 := hjCollect(t, s, nil)
	b1again, _ := hjCollect(t, s, nil)
	if !reflect.DeepEqual(b1, b1again) || len(b1.Calls) != 4 {
		t.Fatalf("rerun: %d calls", len(b1.Calls))
	}
	for _, run := range []struct {
		b   *collectors.Batch
		cur []byte
	}{{b1, c1}, {b1again, c1}} {
		commitRun(t, m, "api", run.b, run.cur)
	}
	b2, c2 := hjCollect(t, s, c1)
	commitRun(t, m, "api", b2, c2)
	for name, want := range map[string]float64{
		"servq_calls_offered_total":   5, // C1-C5, C4 delivered three times
		"servq_calls_answered_total":  2, // C1, C3
		"servq_calls_abandoned_total": 2, // C2, C5
		// Abandoned within model.short_abandon (5s): C5.
		"servq_calls_abandoned_short_total": 1,
		// Handle time of the answered calls: 120 + 300 s, two calls.
		"servq_call_handle_seconds": 2,
	} {
		if got := seriesSum(t, m, name, nil); got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
}

// stderr in the error is bounded to its last 4 KiB.
func TestExecStderrIsBounded(t *testing.T) {
	script := exScript(t, `i=0
while [ $i -lt 200 ]; do echo "noise line $i of a chatty export tool" >&2; i=$((i+1)); done
echo "FATAL: the last words" >&2
exit 3
`)
	_, err := exSource(t, script, "").Collect(context.Background(), nil, &collectors.Batch{Now: hjNow})
	if err == nil || !strings.HasPrefix(err.Error(), "command sh failed: exit status 3; stderr: …") || !strings.HasSuffix(err.Error(), "FATAL: the last words") {
		t.Fatalf("err = %v", err)
	}
	if n := len(err.Error()); n > 4096+100 {
		t.Errorf("error is %d bytes", n)
	}
}

func TestExecConfigErrors(t *testing.T) {
	head := "collectors:\n  - name: x\n    type: exec\n    schedule: \"@every 5m\"\n"
	for spec, want := range map[string]string{
		"    env: {A: b}\n":                                     "test.yml:2: collectors[0].command: is required",
		"    command: \"psql -c 'select 1' | jq\"\n":            "collectors[0].command: cannot unmarshal",
		"    command: [\"psql -c 'select 1' | jq\"]\n":          "test.yml:5: collectors[0].command: is an argument list, not a shell line",
		"    command: [/bin/true]\n    env: {SERVQ_SINCE: x}\n": "test.yml:6: collectors[0].env.SERVQ_SINCE: SERVQ_ variables are set by servq",
		"    command: [/bin/true]\n    command_timeout: -1s\n":  "test.yml:6: collectors[0].command_timeout",
		"    command: [/bin/true]\n    shell: true\n":           `test.yml:6: collectors[0].shell: unknown field "shell"`,
	} {
		expectConfigError(t, head, spec, want)
	}
}

func TestExecExampleBuilds(t *testing.T) {
	t.Setenv("CRM_DB_PASSWORD", "x")
	if _, err := buildSourceErr(exampleYAML(t, "exec")); err != nil {
		t.Error(err)
	}
}

// A command states its completeness watermark with a watermark line; the
// last one printed counts, as the last cursor line does. Without one the
// run is complete up to its start; an unreadable one is rejected and the
// run claims nothing, since the command meant to say less than that.
func TestExecWatermark(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	s := exSource(t, exScript(t, `cat "$OUT"`), "    env: {OUT: "+out+"}\n")
	ticket := `{"type": "ticket", "id": "T1", "created_at": "2026-11-23T08:00:00Z"}` + "\n"
	for _, c := range []struct {
		name, lines string
		want        time.Time
		rejected    int
	}{
		{"none", ticket, hjNow, 0},
		{"one", `{"type": "watermark", "watermark": "2026-11-23T06:00:00+01:00"}` + "\n" + ticket, mustRFC3339("2026-11-23T05:00:00Z"), 0},
		{"the last", `{"type": "watermark", "watermark": "2026-11-23T05:00:00Z"}` + "\n" + ticket +
			`{"type": "watermark", "watermark": "2026-11-23T09:30:00.5Z"}` + "\n", mustRFC3339("2026-11-23T09:30:00.5Z"), 0},
		{"ahead of the run", `{"type": "watermark", "watermark": "2026-11-23T10:00:05Z"}` + "\n", hjNow, 0},
		{"unreadable", ticket + `{"type": "watermark", "watermark": "today"}` + "\n", time.Unix(0, 0), 1},
		{"unknown field", ticket + `{"type": "watermark", "watermark": "2026-11-23T05:00:00Z", "source": "x"}` + "\n", time.Unix(0, 0), 1},
		{"readable after unreadable", `{"type": "watermark", "watermark": 1763880000}` + "\n" +
			`{"type": "watermark", "watermark": "2026-11-23T05:00:00Z"}` + "\n", mustRFC3339("2026-11-23T05:00:00Z"), 1},
	} {
		if err := os.WriteFile(out, []byte(c.lines), 0o644); err != nil {
			t.Fatal(err)
		}
		b, _ := hjCollect(t, s, nil)
		if !b.Watermark.Equal(c.want) || len(b.Rejected) != c.rejected {
			t.Errorf("%s: watermark %s, %d rejected %v; want %s, %d", c.name, b.Watermark, len(b.Rejected), b.Rejected, c.want, c.rejected)
		}
	}
}
