package dashboards

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/servq/servq/config"
	"github.com/servq/servq/dashboards/grafana"
	"github.com/servq/servq/slo/rules"
)

// AlertRule is a Grafana-managed alert rule, in the field names shared by
// Grafana's file provisioning and its provisioning HTTP API.
type AlertRule struct {
	UID          string            `json:"uid" yaml:"uid"`
	Title        string            `json:"title" yaml:"title"`
	Condition    string            `json:"condition" yaml:"condition"`
	Data         []AlertQuery      `json:"data" yaml:"data"`
	NoDataState  string            `json:"noDataState" yaml:"noDataState"`
	ExecErrState string            `json:"execErrState" yaml:"execErrState"`
	For          string            `json:"for" yaml:"for"`
	Labels       map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	IsPaused     bool              `json:"isPaused" yaml:"isPaused"`
}

// AlertQuery is one query or expression of a rule.
type AlertQuery struct {
	RefID             string         `json:"refId" yaml:"refId"`
	RelativeTimeRange TimeRange      `json:"relativeTimeRange" yaml:"relativeTimeRange"`
	DatasourceUID     string         `json:"datasourceUid" yaml:"datasourceUid"`
	Model             map[string]any `json:"model" yaml:"model"`
}

// TimeRange is seconds before now.
type TimeRange struct {
	From int64 `json:"from" yaml:"from"`
	To   int64 `json:"to" yaml:"to"`
}

// AlertRules turns the SLO burn-rate and KPI target alerts of `servq
// rules` into Grafana-managed rules: query A is the Prometheus alert's own
// expression (it reads the recorded SLO series, so the Prometheus rules
// must be loaded), and the condition C = is_number($A) fires one alert
// instance per series A returns, just as Prometheus would. Operational
// alerts stay in Prometheus, next to the scrape they watch.
func AlertRules(cfg *config.Config, datasourceUID, folderUID string) ([]AlertRule, error) {
	f, err := rules.Generate(cfg)
	if err != nil {
		return nil, err
	}
	var out []AlertRule
	for _, g := range f.Groups {
		if g.Name == "servq-operational" {
			continue
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			sev := r.Labels["severity"]
			title := r.Alert
			if sev != "" {
				title += " (" + sev + ")"
			}
			labels := map[string]string{"servq": "true"}
			for k, v := range r.Labels {
				labels[k] = v
			}
			ann := map[string]string{}
			for k, v := range r.Annotations {
				ann[k] = grafanaTemplate(v)
			}
			forDur := r.For
			if forDur == "" {
				forDur = "0s"
			}
			// NoData is OK: a burn alert's query returns series only
			// while it fires. Missing recordings are caught by the rule
			// below instead.
			out = append(out, AlertRule{
				UID: ruleUID(title), Title: title, Condition: "C", For: forDur,
				NoDataState: "OK", ExecErrState: "Error", Labels: labels, Annotations: ann,
				Data: promCondition(r.Expr, datasourceUID),
			})
		}
	}
	if len(cfg.SLOs) > 0 {
		out = append(out, recordingsMissing(cfg, datasourceUID))
	}
	return out, nil
}

// recordingsMissing fires when the data source lacks an SLO's recordings
// (`servq rules` not loaded, another Prometheus, a wrong data source uid):
// the burn alerts read those recordings, and without them they would stay
// silent and OK for ever.
func recordingsMissing(cfg *config.Config, datasourceUID string) AlertRule {
	var parts []string
	for _, s := range cfg.SLOs {
		parts = append(parts, fmt.Sprintf("absent(sloth_slo_info{sloth_id=%q})", rules.ID(cfg, s)))
	}
	const title = "ServqSLORecordingsMissing (ticket)"
	return AlertRule{
		UID: ruleUID(title), Title: title, Condition: "C", For: "15m",
		NoDataState: "OK", ExecErrState: "Error",
		Labels: map[string]string{"servq": "true", "severity": "ticket"},
		Annotations: map[string]string{
			"summary":     "The recording rules of SLO {{ $labels.sloth_id }} are missing from the data source the servq alert rules query.",
			"description": "The burn-rate alerts read servq's SLO recordings: load the file `servq rules` writes into the Prometheus behind this data source (or point --grafana.datasource-uid at the one that has it). Until then the SLO's burn alerts cannot fire.",
		},
		Data: promCondition(strings.Join(parts, " or "), datasourceUID),
	}
}

// promCondition is query A (a PromQL expression, instant) and the
// condition C = is_number($A): one alert instance per series A returns.
func promCondition(expr, datasourceUID string) []AlertQuery {
	return []AlertQuery{
		{RefID: "A", RelativeTimeRange: TimeRange{From: 600}, DatasourceUID: datasourceUID, Model: map[string]any{
			"refId": "A", "expr": expr, "instant": true, "range": false,
			"datasource": map[string]string{"type": "prometheus", "uid": datasourceUID}, "intervalMs": 1000, "maxDataPoints": 43200}},
		{RefID: "C", DatasourceUID: "__expr__", Model: map[string]any{
			"refId": "C", "type": "math", "expression": "is_number($A)",
			"datasource": map[string]string{"type": "__expr__", "uid": "__expr__"}}},
	}
}

// ruleUID is stable and within Grafana's 40-character uid limit.
func ruleUID(title string) string {
	h := fnv.New64a()
	h.Write([]byte(title))
	return fmt.Sprintf("servq-%016x", h.Sum64())
}

// promValue finds Prometheus' {{ $value | fn args }} in annotations;
// Grafana names the value of query A $values.A.Value.
var promValue = regexp.MustCompile(`\{\{\s*\$value\s*(?:\|\s*(\w+)((?:\s+"[^"]*")*))?\s*\}\}`)

func grafanaTemplate(s string) string {
	return promValue.ReplaceAllStringFunc(s, func(m string) string {
		sub := promValue.FindStringSubmatch(m)
		if sub[1] == "" {
			return "{{ $values.A.Value }}"
		}
		return "{{ " + strings.TrimSpace(sub[1]+sub[2]) + " $values.A.Value }}"
	})
}

func alertFile(rs []AlertRule, o FileOptions, interval string) ([]byte, error) {
	if interval == "" || interval == "0s" {
		interval = "1m"
	}
	doc := map[string]any{"apiVersion": 1, "groups": []any{map[string]any{
		"orgId": 1, "name": "servq", "folder": o.FolderTitle, "interval": interval, "rules": rs,
	}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append([]byte(header), b...), nil
}

// APIRules converts the rules for Grafana's provisioning API.
func APIRules(rs []AlertRule) ([]grafana.AlertRule, error) {
	var out []grafana.AlertRule
	for _, r := range rs {
		d, err := model.ParseDuration(r.For)
		if err != nil {
			return nil, fmt.Errorf("rule %s: for %q: %w", r.Title, r.For, err)
		}
		ar := grafana.AlertRule{UID: r.UID, Title: r.Title, Condition: r.Condition, NoDataState: r.NoDataState,
			ExecErrState: r.ExecErrState, For: d, Labels: r.Labels, Annotations: r.Annotations, IsPaused: r.IsPaused}
		for _, q := range r.Data {
			m, err := json.Marshal(q.Model)
			if err != nil {
				return nil, err
			}
			ar.Data = append(ar.Data, grafana.AlertQuery{RefID: q.RefID, DatasourceUID: q.DatasourceUID, Model: m,
				RelativeTimeRange: grafana.RelativeTimeRange{From: q.RelativeTimeRange.From, To: q.RelativeTimeRange.To}})
		}
		out = append(out, ar)
	}
	return out, nil
}
