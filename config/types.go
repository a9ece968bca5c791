package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/servq/servq/internal/redact"
)

// Duration is a time.Duration written the Prometheus way: 30s, 5m, 1h30m,
// 7d, 4w.
type Duration time.Duration

// UnmarshalYAML parses a Prometheus-style duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		// A TypeError lets yaml.v3 carry on decoding, so that the other
		// problems of the file are reported too; any other error aborts it.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (use e.g. 30s, 5m, 1h, 7d)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in the same notation.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats the duration as Prometheus does (1h30m, 7d).
func (d Duration) String() string { return model.Duration(d).String() }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Secret is a string that never shows itself: not in logs, errors, dumps of
// the config or the landing page. Every value is registered with package
// redact as it is decoded, read from a file or revealed, so that text
// quoting it from elsewhere (a vendor echoing a request) is redacted where
// servq prints or serves it.
type Secret string

// UnmarshalYAML decodes the value and registers it for redaction.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	redact.Add(v)
	*s = Secret(v)
	return nil
}

const redacted = "<secret>"

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString hides the value from %#v too.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML hides the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Reveal returns the secret for use on the wire. Call it only where the value
// leaves the process towards its owner (an Authorization header).
// It registers the value for redaction too, which covers secrets that
// were not decoded from YAML (flags, environment, tests).
func (s Secret) Reveal() string {
	redact.Add(string(s))
	return string(s)
}

// ResolveSecret returns value, or the content of file when file is set
// (trailing newlines trimmed, as secret files written by editors and
// Kubernetes have them). Setting both is an error.
func ResolveSecret(value Secret, file string) (Secret, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("set either the value or the _file variant, not both")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	redact.Add(v)
	return Secret(v), nil
}

// Config is the whole servq configuration: one file is the source of truth
// for collectors, metrics, SLOs, rules, dashboards and reports.
type Config struct {
	Global        Global          `yaml:"global"`
	Model         Model           `yaml:"model"`
	BusinessHours []BusinessHours `yaml:"business_hours"`
	Collectors    []*Collector    `yaml:"collectors"`
	SLOs          []*SLO          `yaml:"slos"`
	Targets       []*Target       `yaml:"targets"`
	Rules         Rules           `yaml:"rules"`
	Reports       []*Report       `yaml:"reports"`
	Push          *Push           `yaml:"push"`

	// File is the path the config was read from ("<embedded demo>" for the
	// built-in default).
	File string `yaml:"-"`
	pos  positions
}

// Global holds process-wide settings.
type Global struct {
	// LabelLimit caps distinct values per label and collector for labels
	// whose values come from source data; the rest become "other".
	LabelLimit int `yaml:"label_limit"`
	// TimeZone is the default zone for CRON schedules and reports.
	TimeZone string `yaml:"time_zone"`
	// Service names the service in SLO rules (the sloth "service" label).
	Service string `yaml:"service"`
	// CollectorTimeout is the default per-run timeout of collectors.
	CollectorTimeout Duration `yaml:"collector_timeout"`
	// Retention bounds how long dedup keys and open-ticket state are kept.
	Retention Duration `yaml:"retention"`
	// NewSeriesDelay is how long a new counter or histogram series is
	// exposed at zero before its value: rate() and increase() cannot see
	// the increment that creates a series, so every series must be
	// scraped at 0 first. It must cover the scrape interval with margin
	// (default 2m for a 1m scrape). 0 turns the delay off.
	NewSeriesDelay *Duration `yaml:"new_series_delay"`
	// WatermarkWait bounds how long a ticket deadline verdict waits for a
	// collector's completeness watermark once the clock has passed the
	// deadline (a stalled source would otherwise hold verdicts for ever).
	// Collectors may override it.
	WatermarkWait Duration `yaml:"watermark_wait"`
}

// SeriesDelay is NewSeriesDelay with its default.
func (g Global) SeriesDelay() time.Duration {
	if g.NewSeriesDelay == nil {
		return DefaultNewSeriesDelay.D()
	}
	return g.NewSeriesDelay.D()
}

// Model tunes the quality model's industry definitions.
type Model struct {
	// CSATSatisfiedMin: a CSAT score at or above it counts as satisfied
	// (top-2-box on a 1-5 scale by default: 4).
	CSATSatisfiedMin float64 `yaml:"csat_satisfied_min"`
	CSATScaleMax     float64 `yaml:"csat_scale_max"`
	CESScaleMax      float64 `yaml:"ces_scale_max"`
	// ShortAbandon: abandons after waiting less than this are short
	// abandons (calls_abandoned_short_total), excluded from abandonment SLOs.
	ShortAbandon Duration `yaml:"short_abandon"`
	// BusinessHours names the schedule for the _business_seconds histograms.
	BusinessHours string `yaml:"business_hours"`
	// Buckets override the histogram buckets (seconds). SLO thresholds are
	// always added to them.
	Buckets Buckets `yaml:"buckets"`
	// ServqualWeights weigh the dimensions for the weighted SERVQUAL index
	// when respondents did not split 100 points themselves.
	ServqualWeights map[string]float64 `yaml:"servqual_weights"`
}

// Buckets are histogram bucket upper bounds in seconds per histogram.
type Buckets struct {
	FirstReply []float64 `yaml:"first_reply"`
	Resolution []float64 `yaml:"resolution"`
	CallWait   []float64 `yaml:"call_wait"`
	CallHandle []float64 `yaml:"call_handle"`
}

// BusinessHours is a named weekly schedule with holidays in a time zone.
type BusinessHours struct {
	Name     string              `yaml:"name"`
	TimeZone string              `yaml:"time_zone"`
	Weekly   map[string][]string `yaml:"weekly"`   // mon: ["09:00-17:00"]
	Holidays []string            `yaml:"holidays"` // 2026-12-25
}

// Collector is one configured instance of a source plugin. The keys it does
// not know belong to the plugin named by Type, which decodes them itself
// (strictly, with the same located errors) through DecodeSpec.
type Collector struct {
	Name     string   `yaml:"name"`
	Type     string   `yaml:"type"`
	Schedule string   `yaml:"schedule"`
	Timeout  Duration `yaml:"timeout"`
	// Disabled keeps a collector in the file without running it.
	Disabled bool `yaml:"disabled"`
	// StaleAfter: the collector's data is stale when it has not succeeded
	// for this long (default: twice the longest gap of its schedule plus
	// its timeout). Drives the ServqCollectorStale alert.
	StaleAfter Duration `yaml:"stale_after"`
	// WatermarkWait overrides global.watermark_wait for this collector
	// (a daily export needs more than an API polled every minute).
	WatermarkWait Duration `yaml:"watermark_wait"`

	spec *yaml.Node
	file string
	path string
	pos  positions
}

func (*Collector) knownKeys() map[string]bool {
	return map[string]bool{"name": true, "type": true, "schedule": true, "timeout": true, "disabled": true, "stale_after": true, "watermark_wait": true}
}

// UnmarshalYAML decodes the common keys and keeps the rest for the plugin.
func (c *Collector) UnmarshalYAML(n *yaml.Node) error {
	type plain Collector
	var common plain
	spec := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	known := c.knownKeys()
	commonNode := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if known[n.Content[i].Value] {
			commonNode.Content = append(commonNode.Content, n.Content[i], n.Content[i+1])
		} else {
			spec.Content = append(spec.Content, n.Content[i], n.Content[i+1])
		}
	}
	if err := commonNode.Decode(&common); err != nil {
		return err
	}
	*c = Collector(common)
	c.spec = spec
	return nil
}

// DecodeSpec decodes the plugin's own keys into out, strictly: a key that
// out does not declare is an error naming file, line and path.
func (c *Collector) DecodeSpec(out any) error {
	if c.spec == nil {
		c.spec = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	pos := c.pos
	if pos == nil {
		pos = positions{}
	}
	return decodeStrict(c.spec, out, c.file, c.path, pos).Err()
}

// Errorf returns an error located at the plugin field (a yaml key of the
// plugin's section, dotted for nested keys).
func (c *Collector) Errorf(field, format string, args ...any) error {
	p := joinPath(c.path, field)
	line := 0
	if c.pos != nil {
		line = c.pos.line(p)
	}
	return &Error{File: c.file, Line: line, Path: p, Msg: fmt.Sprintf(format, args...)}
}

// SLO is a service level objective over one indicator.
type SLO struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Indicator   string `yaml:"indicator"`
	// Threshold for indicators that have one (first reply within 4h).
	Threshold Duration `yaml:"threshold"`
	// CSATMin overrides model.csat_satisfied_min for the csat indicator.
	CSATMin float64 `yaml:"csat_min"`
	// AbandonPolicy for call_service_level: how abandoned calls count.
	AbandonPolicy string            `yaml:"abandon_policy"`
	BusinessHours string            `yaml:"business_hours"`
	Filters       map[string]string `yaml:"filters"`   // queue, channel, priority, collector
	Objective     float64           `yaml:"objective"` // percent, 0 < x < 100
	Window        Duration          `yaml:"window"`
	Custom        *CustomSLI        `yaml:"custom"`
	// Labels go on every recording and alert of the SLO, as Sloth's SLO
	// labels do (team, tier, owner), so dashboards and routing can
	// select by them.
	Labels   map[string]string `yaml:"labels"`
	Alerting Alerting          `yaml:"alerting"`
	// ErrorBudgetPolicy is what the organisation does when the budget is
	// spent ("freeze changes to queue X"); reports show it then.
	ErrorBudgetPolicy string `yaml:"error_budget_policy"`
}

// CustomSLI is a PromQL indicator: either error and total, or good and total
// (with {{.window}} as the range placeholder).
type CustomSLI struct {
	ErrorQuery string `yaml:"error_query"`
	GoodQuery  string `yaml:"good_query"`
	TotalQuery string `yaml:"total_query"`
}

// Alerting configures the burn-rate alerts of one SLO.
type Alerting struct {
	// Name of the alert (default: the SLO name in CamelCase +
	// "ErrorBudgetBurn").
	Name        string            `yaml:"name"`
	Page        *bool             `yaml:"page"`
	Ticket      *bool             `yaml:"ticket"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	RunbookURL  string            `yaml:"runbook_url"`
	// MinBadEvents: a burn-rate alert also needs at least this many bad
	// events in its long window, so that a low-volume SLO (a few tickets an
	// hour) does not page on a single miss. Default 3; 1 turns it off.
	MinBadEvents int `yaml:"min_bad_events"`
}

// PageEnabled tells whether the fast-burn (page) alert is generated.
func (a Alerting) PageEnabled() bool { return a.Page == nil || *a.Page }

// TicketEnabled tells whether the slow-burn (ticket) alert is generated.
func (a Alerting) TicketEnabled() bool { return a.Ticket == nil || *a.Ticket }

// Target is a KPI that is not an event ratio (NPS, SERVQUAL gap, backlog
// age, calls waiting): a threshold alert, not an error budget.
type Target struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	KPI         string `yaml:"kpi"`
	// Min or Max: the KPI must stay at or above Min, at or below Max.
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
	// Window over which survey KPIs are computed (default 7d).
	Window Duration `yaml:"window"`
	// For: how long the target must be missed before the alert fires.
	For Duration `yaml:"for"`
	// Dimension of servqual_gap (tangibles, reliability, ...).
	Dimension string `yaml:"dimension"`
	// MinResponses: survey KPIs are not judged on fewer responses in the
	// window (default 10).
	MinResponses int               `yaml:"min_responses"`
	Filters      map[string]string `yaml:"filters"`
	// By splits the KPI and its alert per label (queue, channel).
	By          []string          `yaml:"by"`
	Severity    string            `yaml:"severity"` // page or ticket (default)
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	RunbookURL  string            `yaml:"runbook_url"`
}

// Rules configures `servq rules` beyond the SLOs and targets themselves.
type Rules struct {
	// Job is the scrape job of servq, for the servq-down alerts.
	Job string `yaml:"job"`
	// Interval sets the rule groups' evaluation interval (default: the
	// Prometheus global one, but 1m for the SLO steps group, whose
	// recordings count the events of exactly one interval).
	Interval Duration `yaml:"interval"`
	// GrafanaInterval is the evaluation interval of the Grafana-managed
	// alert rules of `servq dashboards` (default: Interval, else 1m).
	// Grafana evaluates rule groups in steps of its base interval (10s),
	// so it must be a multiple of 10s.
	GrafanaInterval Duration `yaml:"grafana_interval"`
	// Labels are added to every generated alert (team, routing keys).
	Labels map[string]string `yaml:"labels"`
	// Operational turns the collector and servq health alerts off when
	// false.
	Operational *bool `yaml:"operational"`
	// RunbookURL is the base of runbook links of the operational alerts.
	RunbookURL string `yaml:"runbook_url"`
}

// GrafanaBaseInterval is Grafana's base evaluation interval ([unified_alerting]
// base_interval, 10s and not meant to be changed): Grafana refuses a rule
// group whose interval is not a multiple of it.
const GrafanaBaseInterval = 10 * time.Second

// GrafanaRuleInterval is the evaluation interval of the Grafana-managed
// alert rules: grafana_interval, else interval, else 1m.
func (r Rules) GrafanaRuleInterval() time.Duration {
	switch {
	case r.GrafanaInterval > 0:
		return r.GrafanaInterval.D()
	case r.Interval > 0:
		return r.Interval.D()
	}
	return time.Minute
}

// Report is an SLO report built on a schedule inside `servq run`.
type Report struct {
	Name string `yaml:"name"`
	// Schedule is a cron spec (CRON_TZ= allowed), in global.time_zone.
	Schedule string `yaml:"schedule"`
	// Period: month, week or quarter: the last complete one when the
	// schedule fires.
	Period string `yaml:"period"`
	// PrometheusURL is the Prometheus-compatible API to read
	// (Prometheus, VictoriaMetrics, Thanos Query, Mimir with /prometheus).
	PrometheusURL   string `yaml:"prometheus_url"`
	BearerToken     Secret `yaml:"bearer_token"`
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Formats to write (html, md, json, csv); default all.
	Formats []string `yaml:"formats"`
	// Directory the files go to, named <name>-<period>.<format>.
	Directory string `yaml:"directory"`
	// WebhookURL receives a POST with the summary (chat tools); it often
	// holds a token, so it is a secret.
	WebhookURL     Secret `yaml:"webhook_url"`
	WebhookURLFile string `yaml:"webhook_url_file"`
	// TimeZone of the periods; default global.time_zone.
	TimeZone string `yaml:"time_zone"`
}

// Push sends the gathered metrics to VictoriaMetrics or vmagent.
type Push struct {
	URL             string            `yaml:"url"`
	Interval        Duration          `yaml:"interval"`
	ExtraLabels     map[string]string `yaml:"extra_labels"`
	Username        string            `yaml:"username"`
	Password        Secret            `yaml:"password"`
	PasswordFile    string            `yaml:"password_file"`
	BearerToken     Secret            `yaml:"bearer_token"`
	BearerTokenFile string            `yaml:"bearer_token_file"`
}

// Authorization is the Authorization header value for the push target
// (bearer token first, else basic auth; "" when neither is configured),
// with the secrets read from their files. Push and backfill imports send
// credentials only in this header, never in the URL, so no log line can
// show them.
func (p *Push) Authorization() (string, error) {
	pass, err := ResolveSecret(p.Password, p.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("push.password_file: %w", err)
	}
	token, err := ResolveSecret(p.BearerToken, p.BearerTokenFile)
	if err != nil {
		return "", fmt.Errorf("push.bearer_token_file: %w", err)
	}
	switch {
	case token != "":
		return "Bearer " + token.Reveal(), nil
	case p.Username != "":
		return redact.BasicAuth(p.Username, pass.Reveal()), nil
	}
	return "", nil
}
