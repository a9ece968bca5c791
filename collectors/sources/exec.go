//go:build unix

package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// execSource runs a command that prints records as JSON lines: the way in
// for systems no plugin reads (a SQL query through psql, a vendor CLI, a
// script). The command gets its own cursor back on the next run.
type execSource struct {
	spec    execSpec
	timeout time.Duration
	mappers map[string]*hjMapper
}

type execSpec struct {
	// Command is the argv, run without a shell.
	Command []string `yaml:"command"`
	// Env is added to a minimal environment (PATH, HOME, LANG, LC_ALL,
	// TZ, TMPDIR of servq); values are kept secret.
	Env map[string]config.Secret `yaml:"env"`
	Dir string                   `yaml:"dir"`
	// CommandTimeout bounds one run of the command (default 1m; the
	// collector's timeout bounds it too).
	CommandTimeout config.Duration `yaml:"command_timeout"`
	// Since is how far back SERVQ_SINCE points on the first run (30d).
	Since config.Duration `yaml:"since"`
}

const (
	execDefaultTimeout = time.Minute
	execMaxStdout      = 256 << 20
	execStderrTail     = 4 << 10
	// execWaitDelay is how long a killed command's pipes may stay open
	// (a daemonized grandchild) before the run gives up on them.
	execWaitDelay = 2 * time.Second
)

// execInherit are the variables of servq's environment a command sees;
// anything else (tokens of other integrations) is not passed on.
var execInherit = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

func init() {
	collectors.Register("exec", func(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
		s := &execSource{}
		if err := c.DecodeSpec(&s.spec); err != nil {
			return nil, err
		}
		sp := &s.spec
		if len(sp.Command) == 0 || sp.Command[0] == "" {
			return nil, c.Errorf("command", "is required: the program and its arguments as a list, e.g. [/usr/local/bin/export-calls, --json]")
		}
		if len(sp.Command) == 1 && strings.ContainsAny(sp.Command[0], " \t|;&$<>") {
			return nil, c.Errorf("command", "is an argument list, not a shell line; for a shell use [/bin/sh, -c, \"...\"]")
		}
		for _, k := range sortedKeys(sp.Env) {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return nil, c.Errorf("env."+k, "is not a variable name")
			}
			if strings.HasPrefix(k, "SERVQ_") {
				return nil, c.Errorf("env."+k, "SERVQ_ variables are set by servq")
			}
		}
		switch {
		case sp.CommandTimeout < 0:
			return nil, c.Errorf("command_timeout", "must not be negative")
		case sp.Since < 0:
			return nil, c.Errorf("since", "must not be negative")
		}
		s.timeout = sp.CommandTimeout.D()
		if s.timeout == 0 {
			s.timeout = execDefaultTimeout
		}
		if sp.Since == 0 {
			sp.Since = config.Duration(defaultSince)
		}
		rfc, _ := newTimeParser("rfc3339", "")
		s.mappers = map[string]*hjMapper{}
		for _, rec := range []string{"ticket", "call", "survey"} {
			m := &hjMapper{record: rec, mapping: map[string]string{}, times: rfc}
			for f := range hjFields(rec) {
				m.mapping[f] = f
			}
			s.mappers[rec] = m
		}
		return s, nil
	})
}

// execCursor is what exec remembers: the command's own cursor and the
// time of the last successful run.
type execCursor struct {
	Cursor string `json:"cursor,omitempty"`
	Since  string `json:"since,omitempty"`
}

func (s *execSource) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	var cur execCursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return nil, fmt.Errorf("bad cursor: %w", err)
		}
	}
	since := b.Now.Add(-s.spec.Since.D()).UTC().Format(time.RFC3339)
	if cur.Since != "" {
		since = cur.Since
	}
	out, err := s.run(ctx, cur.Cursor, since)
	if err != nil {
		return nil, err
	}
	next := execCursor{Cursor: cur.Cursor, Since: b.Now.UTC().Format(time.RFC3339)}
	// The completeness watermark: a command reads what is new since
	// SERVQ_SINCE, which the next run sets to this run's start, so by
	// default it vouches for everything up to then. A command that knows
	// better (an export written earlier, a vendor API that stopped early)
	// prints a watermark line; see parse.
	b.Watermark = b.Now
	if c, ok := s.parse(out, b); ok {
		next.Cursor = c
	}
	return json.Marshal(next)
}

// run starts the command in its own process group and returns its stdout.
// A non-zero exit or a timeout is an error quoting the end of stderr.
// errExecTimeout is the cause of a command's context when command_timeout
// ended it.
var errExecTimeout = errors.New("command_timeout")

func (s *execSource) run(ctx context.Context, cursor, since string) ([]byte, error) {
	sp := &s.spec
	// The cause tells this command's own timeout from the run's deadline
	// or servq's shutdown (comparing elapsed time with the timeout did not:
	// the deadline is counted from before the command starts).
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errExecTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sp.Command[0], sp.Command[1:]...)
	cmd.Dir = sp.Dir
	for _, k := range execInherit {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for _, k := range sortedKeys(sp.Env) {
		cmd.Env = append(cmd.Env, k+"="+sp.Env[k].Reveal())
	}
	cmd.Env = append(cmd.Env, "SERVQ_CURSOR="+cursor, "SERVQ_SINCE="+since)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group: a shell script's children die with it.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = execWaitDelay
	stdout := &execLimited{max: execMaxStdout}
	stderr := &execTail{max: execStderrTail}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	name := filepath.Base(sp.Command[0])
	err := cmd.Run()
	if cmd.Process != nil {
		// Whatever the command left behind in its group goes too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	withStderr := func(msg string) error {
		if t := strings.TrimSpace(stderr.String()); t != "" {
			msg += "; stderr: " + t
		}
		return errors.New(msg)
	}
	switch {
	case context.Cause(ctx) == errExecTimeout:
		return nil, withStderr(fmt.Sprintf("command %s timed out after %s and was killed", name, s.timeout))
	case ctx.Err() != nil:
		return nil, withStderr(fmt.Sprintf("command %s stopped: %v", name, ctx.Err()))
	case stdout.over:
		return nil, withStderr(fmt.Sprintf("command %s printed more than %d MiB", name, execMaxStdout>>20))
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, withStderr(fmt.Sprintf("command %s failed: %v", name, ee.ProcessState))
		}
		return nil, withStderr(fmt.Sprintf("command %s: %v", name, err))
	}
	return stdout.buf.Bytes(), nil
}

// parse turns the output lines into records; a bad line is rejected with
// its number. It returns the last cursor line's value. The last watermark
// line sets b.Watermark, as the last cursor line sets the cursor; an
// unreadable one claims nothing (it meant to say less than "complete").
func (s *execSource) parse(out []byte, b *collectors.Batch) (cursor string, hasCursor bool) {
	for n := 1; len(out) > 0; n++ {
		line := out
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			line, out = out[:i], out[i+1:]
		} else {
			out = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		pos := fmt.Sprintf("stdout:%d", n)
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil || dec.More() {
			if err == nil {
				err = errors.New("more than one value on the line")
			}
			b.Reject("bad_json", pos, fmt.Errorf("not a JSON object: %v", err))
			continue
		}
		typ, _ := obj["type"].(string)
		switch typ {
		case "cursor":
			c, ok := obj["cursor"].(string)
			if !ok {
				b.Reject("bad_json", pos, errors.New(`a cursor line needs "cursor" as a string`))
				continue
			}
			cursor, hasCursor = c, true
		case "watermark":
			w, ok := obj["watermark"].(string)
			at, err := time.Parse(time.RFC3339Nano, w)
			if !ok || err != nil || len(obj) != 2 {
				b.Reject("bad_json", pos, errors.New(`a watermark line needs "watermark" as an RFC 3339 time, and nothing else`))
				b.Watermark = time.Unix(0, 0)
				continue
			}
			// A command's clock may run ahead of servq's; it cannot have
			// printed changes made after the run started.
			b.Watermark = at
			if at.After(b.Now) {
				b.Watermark = b.Now
			}
		case "ticket", "call", "survey":
			m := s.mappers[typ]
			if k := execUnknownKey(obj, m.mapping); k != "" {
				b.Reject("bad_json", pos, fmt.Errorf("unknown %s field %q (see the exec README for the schema)", typ, k))
				continue
			}
			m.add(obj, pos, b)
		case "snapshot":
			if snap, err := execSnapshot(line, b.Now); err != nil {
				b.Reject("bad_json", pos, err)
			} else {
				b.Snapshots = append(b.Snapshots, snap)
			}
		default:
			b.Reject("bad_json", pos, fmt.Errorf("type %q is not ticket, call, survey, snapshot, cursor or watermark", typ))
		}
	}
	return cursor, hasCursor
}

func execUnknownKey(obj map[string]any, fields map[string]string) string {
	for _, k := range sortedKeys(obj) {
		if _, ok := fields[k]; !ok && k != "type" {
			return k
		}
	}
	return ""
}

func execSnapshot(line []byte, now time.Time) (record.Snapshot, error) {
	var v struct {
		Type               string         `json:"type"`
		Queue              string         `json:"queue"`
		At                 *time.Time     `json:"at"`
		CallsWaiting       *int           `json:"calls_waiting"`
		LongestWaitSeconds *float64       `json:"longest_wait_seconds"`
		Agents             map[string]int `json:"agents"`
		OpenTickets        map[string]int `json:"open_tickets"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return record.Snapshot{}, fmt.Errorf("snapshot: %v", err)
	}
	if v.Queue == "" {
		return record.Snapshot{}, errors.New(`snapshot: "queue" is required`)
	}
	s := record.Snapshot{Queue: v.Queue, At: now, CallsWaiting: -1, Agents: v.Agents, OpenTickets: v.OpenTickets}
	if v.At != nil {
		s.At = *v.At
	}
	if v.CallsWaiting != nil {
		if *v.CallsWaiting < 0 {
			return record.Snapshot{}, errors.New("snapshot: calls_waiting is negative")
		}
		s.CallsWaiting, s.HasWait = *v.CallsWaiting, true
	}
	if v.LongestWaitSeconds != nil {
		if *v.LongestWaitSeconds < 0 {
			return record.Snapshot{}, errors.New("snapshot: longest_wait_seconds is negative")
		}
		s.LongestWait, s.HasWait = time.Duration(*v.LongestWaitSeconds*float64(time.Second)), true
		if v.CallsWaiting == nil {
			s.CallsWaiting = 0
		}
	}
	return s, nil
}

// execLimited keeps up to max bytes and notes an overflow.
type execLimited struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	max  int
	over bool
}

func (w *execLimited) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.over || w.buf.Len()+len(p) > w.max {
		// Keep draining, so that the command is not blocked on a full
		// pipe; the run fails once it has ended.
		w.over = true
		return len(p), nil
	}
	return w.buf.Write(p)
}

// execTail keeps the last max bytes written.
type execTail struct {
	mu  sync.Mutex
	buf []byte
	max int
	cut bool
}

func (w *execTail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
		w.cut = true
	}
	return len(p), nil
}

func (w *execTail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.ToValidUTF8(string(w.buf), "")
	if w.cut {
		s = "…" + s
	}
	return s
}
