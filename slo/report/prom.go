package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// API is a Prometheus-compatible query API: Prometheus, VictoriaMetrics,
// Thanos Query, Mimir (with its /prometheus prefix in URL).
type API struct {
	URL         string
	BearerToken config.Secret
	Client      *http.Client
}

// Sample is one series of an instant result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates expr at t.
func (a *API) Query(ctx context.Context, expr string, t time.Time) ([]Sample, error) {
	v := url.Values{"query": {expr}, "time": {strconv.FormatInt(t.Unix(), 10)}}
	var res struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := a.get(ctx, "/api/v1/query", v, &res); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	if res.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %q, want vector", expr, res.ResultType)
	}
	out := make([]Sample, 0, len(res.Result))
	for _, r := range res.Result {
		s, _ := r.Value[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %q", expr, s)
		}
		out = append(out, Sample{Labels: r.Metric, Value: f})
	}
	return out, nil
}

// Point is one value of a range result.
type Point struct {
	T time.Time
	V float64
}

// Series is one series of a range or matrix result.
type Series struct {
	Labels map[string]string
	Points []Point
}

// QueryRange evaluates expr from start to end every step, every series of
// the result.
func (a *API) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	v := url.Values{"query": {expr}, "start": {strconv.FormatInt(start.Unix(), 10)},
		"end": {strconv.FormatInt(end.Unix(), 10)}, "step": {strconv.FormatInt(int64(step/time.Second), 10)}}
	out, err := a.matrix(ctx, "/api/v1/query_range", v)
	if err != nil {
		return nil, fmt.Errorf("range query %s: %w", expr, err)
	}
	return out, nil
}

// Samples evaluates a range-vector expression (a selector with a range,
// such as x[30d] @ t) at t: the raw samples Prometheus stored, which
// counting across a counter reset needs.
func (a *API) Samples(ctx context.Context, expr string, t time.Time) ([]Series, error) {
	v := url.Values{"query": {expr}, "time": {strconv.FormatInt(t.Unix(), 10)}}
	out, err := a.matrix(ctx, "/api/v1/query", v)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	return out, nil
}

func (a *API) matrix(ctx context.Context, path string, v url.Values) ([]Series, error) {
	var res struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := a.get(ctx, path, v, &res); err != nil {
		return nil, err
	}
	if res.ResultType != "matrix" {
		return nil, fmt.Errorf("result type %q, want matrix", res.ResultType)
	}
	out := make([]Series, 0, len(res.Result))
	for _, r := range res.Result {
		s := Series{Labels: r.Metric, Points: make([]Point, 0, len(r.Values))}
		for _, p := range r.Values {
			ts, _ := p[0].(float64)
			str, _ := p[1].(string)
			f, err := strconv.ParseFloat(str, 64)
			if err != nil {
				return nil, fmt.Errorf("value %q", str)
			}
			// Timestamps are seconds with millisecond decimals; rounding
			// to the millisecond keeps raw sample times exact.
			s.Points = append(s.Points, Point{T: time.UnixMilli(int64(math.Round(ts * 1000))), V: f})
		}
		out = append(out, s)
	}
	return out, nil
}

func (a *API) get(ctx context.Context, path string, v url.Values, out any) error {
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	// POST form, as Prometheus allows: long queries do not hit URL limits.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(a.URL, "/")+path, strings.NewReader(v.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if a.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+a.BearerToken.Reveal())
	}
	resp, err := client.Do(req)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: HTTP %d, not the Prometheus API's JSON", path, resp.StatusCode)
	}
	if env.Status != "success" {
		// The API's text is quoted bounded, printable and redacted (a
		// proxy in front of it may echo the bearer token).
		return fmt.Errorf("%s: %s: %s", path, redact.Text(env.ErrorType, 100), redact.Text(env.Error, 300))
	}
	return json.Unmarshal(env.Data, out)
}
