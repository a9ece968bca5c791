package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// pusher sends the gathered registry to VictoriaMetrics or vmagent
// (/api/v1/import/prometheus) on an interval, for sites where nothing can
// scrape servq. It uses VictoriaMetrics/metrics' push client, which gzips
// the body and adds the extra labels to every sample.
type pusher struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var pushResults = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "servq_push_total",
	Help: "Pushes of the metrics to the configured push URL, by result.",
}, []string{"result"})

func (s *Service) startPush(p *config.Push) {
	if p == nil {
		return
	}
	opts, err := pushOptions(p)
	if err != nil {
		s.log.Error("push disabled", "err", err)
		return
	}
	if err := s.reg.Register(pushResults); err != nil {
		if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
			s.log.Error("registering push metrics", "err", err)
		}
	}
	// Both results exist at 0 before the first push, so the health
	// dashboard's rate() sees the first failure.
	pushResults.WithLabelValues("error")
	pushResults.WithLabelValues("success")
	ctx, cancel := context.WithCancel(context.Background())
	pu := &pusher{cancel: cancel}
	write := func(w io.Writer) { s.writeText(w) }
	pu.wg.Add(1)
	go func() {
		defer pu.wg.Done()
		t := time.NewTicker(p.Interval.D())
		defer t.Stop()
		for {
			pctx, pcancel := context.WithTimeout(ctx, p.Interval.D())
			err := vm.PushMetricsExt(pctx, p.URL, write, opts)
			pcancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				pushResults.WithLabelValues("error").Inc()
				// The client quotes the target's whole answer: bound it.
				s.log.Warn("push failed", "err", redact.Text(err.Error(), maxPushError))
			default:
				pushResults.WithLabelValues("success").Inc()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	s.push = pu
}

func (s *Service) stopPush() {
	if s.push != nil {
		s.push.cancel()
		s.push.wg.Wait()
		s.push = nil
	}
}

// pushOptions turns the config into the client's options. Credentials go
// into a header, never into the URL, so that no log line can show them.
func pushOptions(p *config.Push) (*vm.PushOptions, error) {
	opts := &vm.PushOptions{Method: http.MethodPost}
	keys := make([]string, 0, len(p.ExtraLabels))
	for k := range p.ExtraLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ls []string
	for _, k := range keys {
		ls = append(ls, fmt.Sprintf("%s=%q", k, p.ExtraLabels[k]))
	}
	opts.ExtraLabels = strings.Join(ls, ",")
	auth, err := p.Authorization()
	if err != nil {
		return nil, err
	}
	if auth != "" {
		opts.Headers = append(opts.Headers, "Authorization: "+auth)
	}
	return opts, nil
}

// writeText writes what /metrics serves, in the Prometheus text format:
// the live registry encoded now, the model from its encoded cache.
func (s *Service) writeText(w io.Writer) {
	mfs, err := s.reg.Gather()
	if err != nil {
		s.log.Warn("gathering metrics for push", "err", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			s.log.Warn("encoding metrics for push", "err", err)
			return
		}
	}
	pieces, err := s.currentModel().Exposition(quality.FormatText)
	if err != nil {
		s.log.Warn("encoding metrics for push", "err", err)
		return
	}
	for _, p := range pieces {
		if _, err := w.Write(p.Raw); err != nil {
			return
		}
	}
}

// maxPushError bounds the push target's answer quoted in the log.
const maxPushError = 500
