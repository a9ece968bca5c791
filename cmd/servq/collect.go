package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/collectors/state"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// collect runs each collector once from its committed cursor and prints one
// JSON line per collector: the records, the rejections and what they do to
// the metrics. Without commit it is a dry run on a copy of the store.
func collect(configFile, storage string, only []string, commit bool, logger *slog.Logger, stdout, stderr io.Writer) int {
	var cfg *config.Config
	var err error
	if configFile == "" {
		cfg, err = config.Demo()
	} else {
		cfg, err = config.Load(configFile)
	}
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	var store *state.Store
	if commit {
		store, err = state.Open(storage)
	} else {
		store, err = openReadCopy(storage)
	}
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	defer store.Close()
	return collectOnce(cfg, store, only, commit, logger, stdout, stderr)
}

// openReadCopy opens a throwaway copy of the store for a dry run, so that a
// dry run can read cursors while servq itself holds the store's lock, and
// can commit into the copy to show what the records would change.
func openReadCopy(storage string) (*state.Store, error) {
	dir, err := os.MkdirTemp("", "servq-collect-")
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(storage, state.FileName)); err == nil {
		if err := os.WriteFile(filepath.Join(dir, state.FileName), b, 0o600); err != nil {
			return nil, err
		}
	}
	return state.Open(dir)
}

func collectOnce(cfg *config.Config, store *state.Store, only []string, commit bool, logger *slog.Logger, stdout, stderr io.Writer) int {
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	// The effect is read at once: new series are not held back here (the
	// delay only concerns what a scraper sees, not what is committed).
	cfg.Global.NewSeriesDelay = new(config.Duration)
	model, err := quality.New(cfg, store, logger)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(model); err != nil {
		printErr(stderr, err)
		return 1
	}
	code := 0
	for _, c := range cfg.Collectors {
		if c.Disabled || (len(want) > 0 && !want[c.Name]) {
			continue
		}
		src, err := collectors.Build(c, collectors.Env{Logger: logger})
		if err != nil {
			printErr(stderr, err)
			code = 1
			continue
		}
		cursor, err := model.Cursor(c.Name)
		if err != nil {
			printErr(stderr, err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout.D())
		b := &collectors.Batch{Now: time.Now()}
		next, err := src.Collect(ctx, cursor, b)
		cancel()
		if cl, ok := src.(io.Closer); ok {
			cl.Close()
		}
		var line collectLine
		if err != nil {
			line = newCollectLine(c.Name, b)
			line.Error = redact.Text(err.Error(), 0)
			code = 1
		} else {
			// The line is built after the commit: the model screens the
			// batch, moving records it refuses to the rejections, so the
			// output shows what was counted and what was refused.
			before, _ := reg.Gather()
			_, cerr := model.Commit(c.Name, b, next)
			line = newCollectLine(c.Name, b)
			if cerr != nil {
				line.Error = redact.Text(cerr.Error(), 0)
				code = 1
			} else {
				after, _ := reg.Gather()
				line.Effect = metricEffect(before, after)
				line.Committed = commit
			}
		}
		printCollectLine(stdout, line)
	}
	return code
}

// collectLine is the documented output of `servq collect` (README,
// "servq collect"): snake_case keys, RFC 3339 times (absent when
// unknown), durations in seconds.
type collectLine struct {
	Collector string `json:"collector"`
	RunAt     string `json:"run_at"`
	Watermark string `json:"watermark,omitempty"`
	// Committed is true when the records were committed to the store
	// (--commit); a dry run commits them into a copy only.
	Committed bool            `json:"committed"`
	Tickets   []collectTicket `json:"tickets,omitempty"`
	Calls     []collectCall   `json:"calls,omitempty"`
	Surveys   []collectSurvey `json:"surveys,omitempty"`
	Snapshots []collectSnap   `json:"snapshots,omitempty"`
	Rejected  []collectReject `json:"rejected,omitempty"`
	Effect    []collectEffect `json:"effect,omitempty"`
	Error     string          `json:"error,omitempty"`
}

type collectTicket struct {
	ID                        string   `json:"id"`
	Queue                     string   `json:"queue,omitempty"`
	Channel                   string   `json:"channel,omitempty"`
	Priority                  string   `json:"priority,omitempty"`
	Status                    string   `json:"status,omitempty"`
	Tags                      []string `json:"tags,omitempty"`
	CreatedAt                 string   `json:"created_at,omitempty"`
	UpdatedAt                 string   `json:"updated_at,omitempty"`
	FirstReplyAt              string   `json:"first_reply_at,omitempty"`
	SolvedAt                  string   `json:"solved_at,omitempty"`
	Reopens                   int      `json:"reopens"`
	AgentReplies              int      `json:"agent_replies"`
	FirstReplyBusinessSeconds *float64 `json:"first_reply_business_seconds,omitempty"`
	ResolutionBusinessSeconds *float64 `json:"resolution_business_seconds,omitempty"`
	Satisfaction              string   `json:"satisfaction,omitempty"`
	Complaint                 bool     `json:"complaint"`
	SLABreaches               []string `json:"sla_breaches,omitempty"`
	Deleted                   bool     `json:"deleted"`
}

type collectCall struct {
	ID            string  `json:"id"`
	Queue         string  `json:"queue,omitempty"`
	Channel       string  `json:"channel,omitempty"`
	Outcome       string  `json:"outcome"`
	EnqueuedAt    string  `json:"enqueued_at,omitempty"`
	AnsweredAt    string  `json:"answered_at,omitempty"`
	EndedAt       string  `json:"ended_at,omitempty"`
	WaitSeconds   float64 `json:"wait_seconds"`
	TalkSeconds   float64 `json:"talk_seconds"`
	HoldSeconds   float64 `json:"hold_seconds"`
	WrapSeconds   float64 `json:"wrap_seconds"`
	HandleUnknown bool    `json:"handle_unknown"`
}

type collectSurvey struct {
	ID          string                `json:"id"`
	Survey      string                `json:"survey"`
	Kind        string                `json:"kind"`
	Score       *float64              `json:"score,omitempty"`
	Servqual    []record.ServqualItem `json:"servqual,omitempty"`
	Weights     map[string]float64    `json:"weights,omitempty"`
	TicketID    string                `json:"ticket_id,omitempty"`
	Queue       string                `json:"queue,omitempty"`
	Channel     string                `json:"channel,omitempty"`
	SubmittedAt string                `json:"submitted_at,omitempty"`
}

type collectSnap struct {
	Queue              string         `json:"queue"`
	At                 string         `json:"at,omitempty"`
	CallsWaiting       *int           `json:"calls_waiting,omitempty"`
	LongestWaitSeconds *float64       `json:"longest_wait_seconds,omitempty"`
	Agents             map[string]int `json:"agents,omitempty"`
	OpenTickets        map[string]int `json:"open_tickets,omitempty"`
}

type collectReject struct {
	Reason   string `json:"reason"`
	Position string `json:"position"`
	Error    string `json:"error"`
}

// collectEffect is one series the batch changed: the counter's (or a
// histogram's _count and _sum) increase, or a gauge's new value.
type collectEffect struct {
	Series   string   `json:"series"`
	Increase *float64 `json:"increase,omitempty"`
	Value    *float64 `json:"value,omitempty"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func secondsPtr(d time.Duration) *float64 {
	if d == 0 {
		return nil
	}
	v := d.Seconds()
	return &v
}

func newCollectLine(name string, b *collectors.Batch) collectLine {
	l := collectLine{Collector: name, RunAt: rfc3339(b.Now)}
	if !b.Watermark.IsZero() && !b.Watermark.Equal(time.Unix(0, 0)) {
		l.Watermark = rfc3339(b.Watermark)
	}
	for _, t := range b.Tickets {
		l.Tickets = append(l.Tickets, collectTicket{
			ID: t.ID, Queue: t.Queue, Channel: t.Channel, Priority: t.Priority, Status: t.Status, Tags: t.Tags,
			CreatedAt: rfc3339(t.CreatedAt), UpdatedAt: rfc3339(t.UpdatedAt), FirstReplyAt: rfc3339(t.FirstReplyAt), SolvedAt: rfc3339(t.SolvedAt),
			Reopens: t.Reopens, AgentReplies: t.AgentReplies,
			FirstReplyBusinessSeconds: secondsPtr(t.FirstReplyBusiness), ResolutionBusinessSeconds: secondsPtr(t.ResolutionBusiness),
			Satisfaction: t.Satisfaction, Complaint: t.Complaint, SLABreaches: t.SLABreaches, Deleted: t.Deleted,
		})
	}
	for _, c := range b.Calls {
		l.Calls = append(l.Calls, collectCall{
			ID: c.ID, Queue: c.Queue, Channel: c.Channel, Outcome: string(c.Outcome),
			EnqueuedAt: rfc3339(c.EnqueuedAt), AnsweredAt: rfc3339(c.AnsweredAt), EndedAt: rfc3339(c.EndedAt),
			WaitSeconds: c.Wait.Seconds(), TalkSeconds: c.Talk.Seconds(), HoldSeconds: c.Hold.Seconds(), WrapSeconds: c.Wrap.Seconds(),
			HandleUnknown: c.HandleUnknown,
		})
	}
	for _, s := range b.Surveys {
		cs := collectSurvey{ID: s.ID, Survey: s.Survey, Kind: string(s.Kind), Servqual: s.Servqual, Weights: s.Weights,
			TicketID: s.TicketID, Queue: s.Queue, Channel: s.Channel, SubmittedAt: rfc3339(s.SubmittedAt)}
		if s.HasScore {
			v := s.Score
			cs.Score = &v
		}
		l.Surveys = append(l.Surveys, cs)
	}
	for _, s := range b.Snapshots {
		cs := collectSnap{Queue: s.Queue, At: rfc3339(s.At), Agents: s.Agents, OpenTickets: s.OpenTickets}
		if s.HasWait {
			n, w := s.CallsWaiting, s.LongestWait.Seconds()
			if n >= 0 {
				cs.CallsWaiting = &n
			}
			cs.LongestWaitSeconds = &w
		}
		l.Snapshots = append(l.Snapshots, cs)
	}
	for _, r := range b.Rejected {
		msg := ""
		if r.Err != nil {
			msg = r.Err.Error()
		}
		l.Rejected = append(l.Rejected, collectReject{Reason: r.Reason, Position: r.Position, Error: msg})
	}
	return l
}

// printCollectLine writes the line redacted as a whole: records come from
// remote data too, and the JSON-escaped forms of secrets are registered.
func printCollectLine(w io.Writer, l collectLine) {
	b, err := json.Marshal(l)
	if err != nil {
		fmt.Fprintf(w, "{\"collector\":%q,\"error\":%q}\n", l.Collector, redact.Error(err))
		return
	}
	fmt.Fprintln(w, redact.String(string(b)))
}

// metricEffect lists the series whose values differ between two gathers
// of the model, in the exposition's notation, sorted.
func metricEffect(before, after []*dto.MetricFamily) []collectEffect {
	old := flatten(before)
	var out []collectEffect
	for series, v := range flatten(after) {
		o, had := old[series]
		switch {
		case v.gauge && (!had || o.value != v.value):
			val := v.value
			out = append(out, collectEffect{Series: series, Value: &val})
		case !v.gauge && v.value-o.value != 0:
			inc := v.value - o.value
			out = append(out, collectEffect{Series: series, Increase: &inc})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Series < out[j].Series })
	return out
}

type sample struct {
	value float64
	gauge bool
}

func flatten(mfs []*dto.MetricFamily) map[string]sample {
	out := map[string]sample{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			ls := "{" + strings.Join(labels, ",") + "}"
			name := mf.GetName()
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name+ls] = sample{value: m.GetCounter().GetValue()}
			case dto.MetricType_GAUGE:
				if v := m.GetGauge().GetValue(); !math.IsNaN(v) {
					out[name+ls] = sample{value: v, gauge: true}
				}
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+ls] = sample{value: float64(m.GetHistogram().GetSampleCount())}
				out[name+"_sum"+ls] = sample{value: m.GetHistogram().GetSampleSum()}
			}
		}
	}
	return out
}
