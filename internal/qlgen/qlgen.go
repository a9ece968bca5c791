// Package qlgen writes a realistic Asterisk queue_log for benchmarks and
// tests: several queues and agents, calls overlapping in time, ring
// attempts, and a mix of answered, transferred, abandoned and timed-out
// calls, with the counts a reader of the log must arrive at.
package qlgen

import (
	"bufio"
	"bytes"
	"container/heap"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// Counts are what the log holds, by call outcome, as a hand count.
type Counts struct {
	Lines       int
	Calls       int // calls that left their queue (all outcomes)
	Answered    int // including transferred
	Transferred int
	Abandoned   int
	Timeout     int // EXITWITHTIMEOUT, EXITWITHKEY, EXITEMPTY
}

// Options shape the log.
type Options struct {
	Lines  int   // lines to write, at least (the last call's lines are whole)
	Start  int64 // epoch of the first line
	Seed   uint64
	Queues int // default 8
	Agents int // default 60
}

type line struct {
	at  int64
	seq int // tie-break: write order within one second
	s   string
}

type lines []line

func (h lines) Len() int { return len(h) }
func (h lines) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h lines) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *lines) Push(x any)   { *h = append(*h, x.(line)) }
func (h *lines) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Write writes the log to w. Calls arrive about every second and last from
// seconds to minutes, so some tens are in flight at any time; lines are in
// time order as Asterisk writes them.
func Write(w io.Writer, o Options) (Counts, error) {
	if o.Queues <= 0 {
		o.Queues = 8
	}
	if o.Agents <= 0 {
		o.Agents = 60
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	bw := bufio.NewWriterSize(w, 1<<20)
	var c Counts
	h := &lines{}
	seq := 0
	emit := func(at int64, s string) {
		heap.Push(h, line{at: at, seq: seq, s: s})
		seq++
	}
	queue := func(i int) string {
		return "q-" + []string{"support", "sales", "billing", "tech", "vip", "returns", "fr", "de"}[i%8] + strconv.Itoa(i/8)
	}
	agent := func(i int) string { return "PJSIP/agent" + strconv.Itoa(100+i) }
	t := o.Start
	for i := 0; i < o.Agents; i++ {
		emit(t, fmt.Sprintf("%d|NONE|%s|%s|ADDMEMBER|", t, queue(i%o.Queues), agent(i)))
	}
	flush := func(before int64) error {
		for h.Len() > 0 && (*h)[0].at < before {
			l := heap.Pop(h).(line)
			if _, err := bw.WriteString(l.s); err != nil {
				return err
			}
			bw.WriteByte('\n')
			c.Lines++
		}
		return nil
	}
	for n := 0; c.Lines+h.Len() < o.Lines; n++ {
		t += int64(rng.IntN(3)) // 0-2 s between arrivals
		if err := flush(t); err != nil {
			return c, err
		}
		id := strconv.FormatInt(t, 10) + "." + strconv.Itoa(n)
		q := queue(rng.IntN(o.Queues))
		ag := agent(rng.IntN(o.Agents))
		emit(t, fmt.Sprintf("%d|%s|%s|NONE|ENTERQUEUE||+4930%07d|%d", t, id, q, rng.IntN(10_000_000), 1+rng.IntN(5)))
		wait := int64(rng.IntN(90))
		rings := rng.IntN(3)
		for r := 0; r < rings; r++ {
			at := t + wait*int64(r+1)/int64(rings+1)
			emit(at, fmt.Sprintf("%d|%s|%s|%s|RINGNOANSWER|%d", at, id, q, agent(rng.IntN(o.Agents)), 1000+rng.IntN(15000)))
		}
		end := t + wait
		c.Calls++
		switch p := rng.IntN(100); {
		case p < 70: // answered
			talk := int64(20 + rng.IntN(600))
			emit(end, fmt.Sprintf("%d|%s|%s|%s|CONNECT|%d|%s.1|%d", end, id, q, ag, wait, id, rng.IntN(20)))
			ev := "COMPLETECALLER"
			if rng.IntN(2) == 0 {
				ev = "COMPLETEAGENT"
			}
			emit(end+talk, fmt.Sprintf("%d|%s|%s|%s|%s|%d|%d|%d", end+talk, id, q, ag, ev, wait, talk, 1+rng.IntN(5)))
			c.Answered++
		case p < 78: // answered, then transferred
			talk := int64(10 + rng.IntN(200))
			emit(end, fmt.Sprintf("%d|%s|%s|%s|CONNECT|%d|%s.1|%d", end, id, q, ag, wait, id, rng.IntN(20)))
			emit(end+talk, fmt.Sprintf("%d|%s|%s|%s|BLINDTRANSFER|%d@from-internal|from-internal|%d|%d|%d", end+talk, id, q, ag, 200+rng.IntN(50), wait, talk, 1+rng.IntN(5)))
			c.Answered++
			c.Transferred++
		case p < 93:
			emit(end, fmt.Sprintf("%d|%s|%s|NONE|ABANDON|%d|%d|%d", end, id, q, 1+rng.IntN(5), 1+rng.IntN(5), wait))
			c.Abandoned++
		case p < 97:
			emit(end, fmt.Sprintf("%d|%s|%s|NONE|EXITWITHTIMEOUT|%d|%d|%d", end, id, q, 1+rng.IntN(5), 1+rng.IntN(5), wait))
			c.Timeout++
		default:
			emit(end, fmt.Sprintf("%d|%s|%s|NONE|EXITWITHKEY|%d|%d|%d|%d", end, id, q, rng.IntN(10), 1+rng.IntN(5), 1+rng.IntN(5), wait))
			c.Timeout++
		}
		if rng.IntN(50) == 0 {
			a := agent(rng.IntN(o.Agents))
			emit(t, fmt.Sprintf("%d|NONE|%s|%s|PAUSE|lunch", t, queue(rng.IntN(o.Queues)), a))
			emit(t+300, fmt.Sprintf("%d|NONE|%s|%s|UNPAUSE|", t+300, queue(rng.IntN(o.Queues)), a))
		}
	}
	if err := flush(1 << 62); err != nil {
		return c, err
	}
	return c, bw.Flush()
}

// Split is the baseline a queue_log reader is compared with: it reads r
// line by line and cuts each line at '|' into fields, and nothing else. It
// returns the lines and fields seen, so that the work cannot be optimised
// away.
func Split(r io.Reader) (lines, fields int, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		l, err := br.ReadSlice('\n')
		if len(l) > 0 {
			lines++
			for {
				i := bytes.IndexByte(l, '|')
				fields++
				if i < 0 {
					break
				}
				l = l[i+1:]
			}
		}
		switch err {
		case nil, bufio.ErrBufferFull:
			continue
		case io.EOF:
			return lines, fields, nil
		default:
			return lines, fields, err
		}
	}
}
