// Package dashboards generates servq's Grafana dashboards from the config:
// the same SLOs, thresholds and metric names as the rules, so a panel can
// never disagree with an alert. Boards are built on the
// github.com/grafana-tools/sdk model and then brought up to what Grafana 10
// and later expect (schemaVersion, gridPos, datasource by uid, field
// config), which that library predates.
package dashboards

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/grafana-tools/sdk"
)

// SchemaVersion is the dashboard schema written: Grafana 10.4/11 level.
const SchemaVersion = 39

// Editable is both the dashboards' "editable" and the file provider's
// allowUiUpdates. The dashboards are generated from the config: an edit
// made in Grafana would be overwritten by the next provisioning (and with
// allowUiUpdates false, Grafana refuses to save it), so the UI offers none.
// Change the config, or "Save as" a copy.
const Editable = false

// datasourceRef points panels and queries at the ${datasource} variable.
var datasourceRef = map[string]string{"type": "prometheus", "uid": "${datasource}"}

// Target is one query of a panel.
type Target struct {
	Expr   string
	Legend string
	// Instant queries evaluate once (stat, gauge, table of now).
	Instant bool
	// MayBeEmpty says why this query may rightly return nothing (no
	// alert firing, no label overflow); the query test requires data from
	// every other query.
	MayBeEmpty string
}

// Threshold is a colour step: from Value (nil: the base) on.
type Threshold struct {
	Value *float64
	Color string
}

func v(f float64) *float64 { return &f }

// Panel is a panel before it becomes Grafana JSON.
type Panel struct {
	Type        string // timeseries, stat, gauge, bargauge, table, row
	Title       string
	Description string
	Unit        string
	W, H        int
	Targets     []Target
	Min, Max    *float64
	Decimals    *int
	Thresholds  []Threshold
	// Options are the panel type's "options" (merged over the defaults).
	Options map[string]any
	// Overrides are fieldConfig overrides.
	Overrides []any
	// Stack stacks the series of a time series panel.
	Stack bool
}

// Board is a dashboard being built.
type Board struct {
	UID, Title, Description string
	Tags                    []string
	vars                    []sdk.TemplateVar
	panels                  []Panel
	links                   []sdk.Link
	time                    string
}

func newBoard(uid, title, description string, tags ...string) *Board {
	return &Board{UID: uid, Title: title, Description: description, Tags: append([]string{"servq"}, tags...), time: "now-24h"}
}

// add appends panels; the layout flows left to right in rows of 24.
func (b *Board) add(ps ...Panel) { b.panels = append(b.panels, ps...) }

// row starts a new titled row.
func (b *Board) row(title string) {
	b.panels = append(b.panels, Panel{Type: "row", Title: title, W: 24, H: 1})
}

// Panels returns the panels as built (tests read the queries).
func (b *Board) Panels() []Panel { return b.panels }

// queryVar is a template variable filled from label values, multi-select
// with "All" as the regex .*, refreshed when the time range changes.
func queryVar(name, label, query string) sdk.TemplateVar {
	refresh := int64(2)
	return sdk.TemplateVar{
		Name: name, Label: label, Type: "query", Datasource: datasourceRef,
		Query:   map[string]any{"query": query, "refId": "servq-" + name},
		Refresh: sdk.BoolInt{Flag: true, Value: &refresh}, Multi: true, IncludeAll: true, AllValue: ".*", Sort: 1,
	}
}

func datasourceVar() sdk.TemplateVar {
	return sdk.TemplateVar{Name: "datasource", Label: "Data Source", Type: "datasource", Query: "prometheus"}
}

// jobInstance filters a variable's query to the selected servq instances.
const jobInstance = `job=~"$job",instance=~"$instance"`

// jobInstanceVars are the data source and the job and instance variables
// every board starts with (the conventions of grafana/dashboard-linter).
// "All" is .+: both labels are always set on scraped series. The job
// variable offers the jobs that scrape a servq (every one exposes
// servq_build_info), not every job of the Prometheus.
func jobInstanceVars() []sdk.TemplateVar {
	job := queryVar("job", "job", "label_values(servq_build_info, job)")
	instance := queryVar("instance", "instance", `label_values(servq_build_info{job=~"$job"}, instance)`)
	job.AllValue, instance.AllValue = ".+", ".+"
	return []sdk.TemplateVar{datasourceVar(), job, instance}
}

func collectorVar() sdk.TemplateVar {
	return queryVar("collector", "Collector", "label_values(servq_collector_up{"+jobInstance+"}, collector)")
}

// commonVars are the variables of the operational boards.
func commonVars() []sdk.TemplateVar {
	return append(jobInstanceVars(),
		collectorVar(),
		queryVar("queue", "Queue", `label_values({__name__=~"servq_(tickets_created_total|calls_offered_total|survey_responses_total|tickets_open|queue_calls_waiting)",`+jobInstance+`,collector=~"$collector"}, queue)`),
		queryVar("channel", "Channel", `label_values({__name__=~"servq_(tickets_created_total|calls_offered_total|survey_responses_total)",`+jobInstance+`,collector=~"$collector"}, channel)`),
	)
}

// JSON renders the dashboard model for Grafana's API and file provisioning.
func (b *Board) JSON() ([]byte, error) {
	sb := &sdk.Board{
		UID: b.UID, Title: b.Title, Tags: b.Tags, Timezone: "browser", Editable: Editable,
		Templating: sdk.Templating{List: b.vars},
		Time:       sdk.Time{From: b.time, To: "now"},
		Timepicker: sdk.Timepicker{RefreshIntervals: []string{"30s", "1m", "5m", "15m", "1h"}},
		Links:      b.links, SchemaVersion: SchemaVersion, GraphTooltip: 1,
		Refresh: &sdk.BoolString{Flag: true, Value: "1m"},
	}
	sb.Annotations.List = []sdk.Annotation{}
	x, y, rowH := 0, 0, 0
	for i, p := range b.panels {
		w, h := p.W, p.H
		if w == 0 {
			w = 8
		}
		if h == 0 {
			h = 8
		}
		if p.Type == "row" || x+w > 24 {
			x, y, rowH = 0, y+rowH, 0
		}
		sp, err := p.sdkPanel(uint(i+1), x, y, w, h)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s, panel %q: %w", b.UID, p.Title, err)
		}
		sb.Panels = append(sb.Panels, sp)
		x += w
		rowH = max(rowH, h)
		if p.Type == "row" {
			x, y, rowH = 0, y+h, 0
		}
	}
	raw, err := json.Marshal(sb)
	if err != nil {
		return nil, err
	}
	return modernize(raw, b.Description)
}

func (p Panel) sdkPanel(id uint, x, y, w, h int) (*sdk.Panel, error) {
	sp := &sdk.Panel{CommonPanel: sdk.CommonPanel{OfType: sdk.CustomType, ID: id, Title: p.Title, Type: p.Type}, CustomPanel: &sdk.CustomPanel{}}
	sp.GridPos.X, sp.GridPos.Y, sp.GridPos.W, sp.GridPos.H = &x, &y, &w, &h
	if p.Type == "row" {
		(*sp.CustomPanel)["collapsed"] = false
		(*sp.CustomPanel)["panels"] = []any{}
		return sp, nil
	}
	if p.Description == "" || p.Unit == "" {
		return nil, fmt.Errorf("every panel needs a description and a unit")
	}
	desc := p.Description
	sp.Description = &desc
	sp.Datasource = datasourceRef
	var targets []map[string]any
	for i, t := range p.Targets {
		targets = append(targets, map[string]any{
			"refId": string(rune('A' + i)), "datasource": datasourceRef, "expr": t.Expr,
			"legendFormat": legend(t.Legend), "instant": t.Instant, "range": !t.Instant,
			"format": map[bool]string{true: "table", false: "time_series"}[p.Type == "table"],
		})
	}
	steps := []map[string]any{}
	for _, th := range p.Thresholds {
		steps = append(steps, map[string]any{"color": th.Color, "value": th.Value})
	}
	if len(steps) == 0 {
		steps = append(steps, map[string]any{"color": "green", "value": nil})
	}
	defaults := map[string]any{"unit": p.Unit, "thresholds": map[string]any{"mode": "absolute", "steps": steps}}
	if p.Min != nil {
		defaults["min"] = *p.Min
	}
	if p.Max != nil {
		defaults["max"] = *p.Max
	}
	if p.Decimals != nil {
		defaults["decimals"] = *p.Decimals
	}
	options := map[string]any{}
	switch p.Type {
	case "timeseries":
		defaults["color"] = map[string]any{"mode": "palette-classic"}
		custom := map[string]any{"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false}
		if p.Stack {
			custom["stacking"] = map[string]any{"mode": "normal", "group": "A"}
		}
		if len(p.Thresholds) > 1 {
			custom["thresholdsStyle"] = map[string]any{"mode": "dashed"}
		}
		defaults["custom"] = custom
		options["legend"] = map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": []string{}}
		options["tooltip"] = map[string]any{"mode": "multi", "sort": "desc"}
	case "stat":
		defaults["color"] = map[string]any{"mode": "thresholds"}
		options = map[string]any{"colorMode": "background", "graphMode": "area", "justifyMode": "auto", "textMode": "auto",
			"orientation": "auto", "wideLayout": true, "showPercentChange": false, "percentChangeColorMode": "standard",
			"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false}}
	case "gauge":
		defaults["color"] = map[string]any{"mode": "thresholds"}
		options = map[string]any{"showThresholdMarkers": true, "showThresholdLabels": false,
			"orientation": "auto", "sizing": "auto", "minVizWidth": 75, "minVizHeight": 75,
			"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false}}
	case "bargauge":
		defaults["color"] = map[string]any{"mode": "thresholds"}
		options = map[string]any{"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": true,
			"valueMode": "color", "namePlacement": "auto", "sizing": "auto", "minVizWidth": 8, "minVizHeight": 16, "maxVizHeight": 300,
			"legend":        map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": false, "calcs": []string{}},
			"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false}}
	case "table":
		defaults["custom"] = map[string]any{"align": "auto", "cellOptions": map[string]any{"type": "auto"}, "inspect": false}
		options = map[string]any{"showHeader": true, "cellHeight": "sm", "frameIndex": 0}
	default:
		return nil, fmt.Errorf("unknown panel type %q", p.Type)
	}
	for k, val := range p.Options {
		options[k] = val
	}
	overrides := p.Overrides
	if overrides == nil {
		overrides = []any{}
	}
	(*sp.CustomPanel)["targets"] = targets
	(*sp.CustomPanel)["fieldConfig"] = map[string]any{"defaults": defaults, "overrides": overrides}
	(*sp.CustomPanel)["options"] = options
	return sp, nil
}

func legend(l string) string {
	if l == "" {
		return "__auto"
	}
	return l
}

// legacyBoardKeys and legacyPanelKeys are what the sdk writes for old
// Grafana versions; Grafana 10 ignores or migrates them, we drop them so
// the JSON is what Grafana itself would save.
var (
	legacyBoardKeys = []string{"id", "rows", "slug", "originalTitle", "style", "hideControls", "sharedCrosshair", "version"}
	legacyPanelKeys = []string{"span", "isNew", "error", "editable", "renderer", "transparent"}
	legacyVarKeys   = []string{"allFormat", "multiFormat", "options", "current", "regex"}
)

func modernize(raw []byte, description string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for _, k := range legacyBoardKeys {
		delete(m, k)
	}
	if description != "" {
		m["description"] = description
	}
	// time_options is the quick-range list of Grafana before 7; the
	// schema no longer has it.
	if tp, ok := m["timepicker"].(map[string]any); ok {
		delete(tp, "time_options")
	}
	for _, l := range m["links"].([]any) {
		if lm := l.(map[string]any); lm["tags"] == nil {
			lm["tags"] = []string{}
		}
	}
	m["fiscalYearStartMonth"] = 0
	m["liveNow"] = false
	m["weekStart"] = ""
	if panels, ok := m["panels"].([]any); ok {
		for _, p := range panels {
			pm := p.(map[string]any)
			for _, k := range legacyPanelKeys {
				delete(pm, k)
			}
		}
	}
	if t, ok := m["templating"].(map[string]any); ok {
		if list, ok := t["list"].([]any); ok {
			for _, item := range list {
				vm := item.(map[string]any)
				for _, k := range legacyVarKeys {
					delete(vm, k)
				}
				if vm["type"] == "datasource" {
					for _, k := range []string{"multi", "includeAll", "allValue", "datasource", "refresh", "sort", "auto"} {
						delete(vm, k)
					}
					// Nothing selected: Grafana selects the default
					// Prometheus data source.
					vm["current"] = map[string]any{"text": "", "value": ""}
				} else {
					vm["current"] = map[string]any{"selected": true, "text": []string{"All"}, "value": []string{"$__all"}}
					vm["options"] = []any{}
				}
			}
		}
	}
	return json.MarshalIndent(m, "", "  ")
}

// quote escapes a value for a PromQL string.
func quote(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
