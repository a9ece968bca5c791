package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/servq/servq/slo/calendar"
)

//go:embed demo.yml
var demoYAML []byte

// DemoFile is the name the embedded demo config reports in errors and on
// the landing page.
const DemoFile = "<embedded demo>"

// Demo returns the embedded demo configuration: a simulated contact centre
// with example SLOs, so that `servq run` shows live metrics without setup.
func Demo() (*Config, error) { return Parse(demoYAML, DemoFile) }

// DemoYAML returns the embedded demo configuration's text.
func DemoYAML() []byte { return bytes.Clone(demoYAML) }

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// CronParser accepts the standard five fields, descriptors (@hourly,
// @every 30s) and a CRON_TZ= prefix; it is shared with the scheduler so that
// what `servq check` accepts is exactly what runs.
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse decodes and validates a config. The error, if any, is an Errors
// with every problem found, each located by file:line and field path.
func Parse(data []byte, file string) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: file, Line: 1, Msg: "config is empty"}}
		}
		return nil, decodeErrors(err, file, positions{})
	}
	var errs Errors
	expandEnv(&doc, file, "", &errs)
	cfg := &Config{File: file, pos: positions{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		// "---" or "~" alone is as empty as a file of comments.
		return nil, Errors{{File: file, Line: 1, Msg: "config is empty"}}
	}
	errs = append(errs, decodeStrict(root, cfg, file, "", cfg.pos)...)
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	cfg.setDefaults()
	cfg.validate(&errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) errorAt(errs *Errors, path, format string, args ...any) {
	*errs = append(*errs, &Error{File: c.File, Line: c.pos.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Defaults, chosen to match common contact-centre practice.
const (
	DefaultLabelLimit       = 100
	DefaultCollectorTimeout = Duration(5 * time.Minute)
	DefaultRetention        = Duration(90 * 24 * time.Hour)
	DefaultCSATSatisfiedMin = 4 // top-2-box on 1-5
	DefaultCSATScaleMax     = 5
	DefaultCESScaleMax      = 7
	DefaultShortAbandon     = Duration(5 * time.Second)
	DefaultPushInterval     = Duration(30 * time.Second)
	DefaultSLOWindow        = Duration(28 * 24 * time.Hour)
	DefaultService          = "customer-service"
)

// Default histogram buckets in seconds. Ticket times span minutes to weeks;
// call times span seconds to an hour.
var (
	DefaultFirstReplyBuckets = []float64{300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600, 604800}
	DefaultResolutionBuckets = []float64{3600, 14400, 28800, 86400, 172800, 259200, 432000, 604800, 1209600, 2592000}
	DefaultCallWaitBuckets   = []float64{5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600}
	DefaultCallHandleBuckets = []float64{30, 60, 120, 180, 300, 420, 600, 900, 1200, 1800, 3600}
)

func (c *Config) setDefaults() {
	g := &c.Global
	if g.LabelLimit == 0 {
		g.LabelLimit = DefaultLabelLimit
	}
	if g.TimeZone == "" {
		g.TimeZone = "UTC"
	}
	if g.Service == "" {
		g.Service = DefaultService
	}
	if g.CollectorTimeout == 0 {
		g.CollectorTimeout = DefaultCollectorTimeout
	}
	if g.Retention == 0 {
		g.Retention = DefaultRetention
	}
	m := &c.Model
	if m.CSATSatisfiedMin == 0 {
		m.CSATSatisfiedMin = DefaultCSATSatisfiedMin
	}
	if m.CSATScaleMax == 0 {
		m.CSATScaleMax = DefaultCSATScaleMax
	}
	if m.CESScaleMax == 0 {
		m.CESScaleMax = DefaultCESScaleMax
	}
	if m.ShortAbandon == 0 {
		m.ShortAbandon = DefaultShortAbandon
	}
	def := func(b *[]float64, d []float64) {
		if len(*b) == 0 {
			*b = append([]float64(nil), d...)
		}
	}
	def(&m.Buckets.FirstReply, DefaultFirstReplyBuckets)
	def(&m.Buckets.Resolution, DefaultResolutionBuckets)
	def(&m.Buckets.CallWait, DefaultCallWaitBuckets)
	def(&m.Buckets.CallHandle, DefaultCallHandleBuckets)
	for i, col := range c.Collectors {
		if col == nil {
			continue
		}
		if col.Timeout == 0 {
			col.Timeout = g.CollectorTimeout
		}
		col.file = c.File
		col.path = fmt.Sprintf("collectors[%d]", i)
		col.pos = c.pos
	}
	for _, s := range c.SLOs {
		if s != nil && s.Window == 0 {
			s.Window = DefaultSLOWindow
		}
		if s != nil && s.Indicator == "call_service_level" && s.AbandonPolicy == "" {
			s.AbandonPolicy = AbandonCountAsBad
		}
	}
	if c.Push != nil && c.Push.Interval == 0 {
		c.Push.Interval = DefaultPushInterval
	}
}

// Abandon policies of the call_service_level indicator.
const (
	// AbandonCountAsBad: every abandon is a call not answered in time.
	AbandonCountAsBad = "count_as_bad"
	// AbandonExcludeShort: short abandons leave the denominator.
	AbandonExcludeShort = "exclude_short"
	// AbandonExcludeAll: only answered calls count (the ASA-style view).
	AbandonExcludeAll = "exclude_all"
)

// Indicators lists the built-in SLO indicators.
var Indicators = map[string]struct{ NeedsThreshold, Tickets bool }{
	"ticket_first_reply": {true, true},
	"ticket_resolution":  {true, true},
	"ticket_fcr":         {false, true},
	"call_service_level": {true, false},
	"call_abandonment":   {false, false},
	"csat":               {false, false},
	"custom":             {false, false},
}

var (
	nameRE       = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_-]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	filterLabels = map[string]bool{"queue": true, "channel": true, "priority": true, "collector": true}
)

func (c *Config) validate(errs *Errors) {
	g := c.Global
	if g.LabelLimit < 1 {
		c.errorAt(errs, "global.label_limit", "must be at least 1, got %d", g.LabelLimit)
	}
	if _, err := time.LoadLocation(g.TimeZone); err != nil {
		c.errorAt(errs, "global.time_zone", "unknown time zone %q", g.TimeZone)
	}
	if g.CollectorTimeout < 0 {
		c.errorAt(errs, "global.collector_timeout", "must be positive")
	}
	if g.Retention < Duration(24*time.Hour) {
		c.errorAt(errs, "global.retention", "must be at least 1d, got %s", g.Retention)
	}

	m := c.Model
	if m.CSATScaleMax <= 1 {
		c.errorAt(errs, "model.csat_scale_max", "must be greater than 1")
	}
	if m.CSATSatisfiedMin < 1 || m.CSATSatisfiedMin > m.CSATScaleMax {
		c.errorAt(errs, "model.csat_satisfied_min", "must be between 1 and csat_scale_max (%g), got %g", m.CSATScaleMax, m.CSATSatisfiedMin)
	}
	if m.CESScaleMax <= 1 {
		c.errorAt(errs, "model.ces_scale_max", "must be greater than 1")
	}
	if m.ShortAbandon < 0 {
		c.errorAt(errs, "model.short_abandon", "must not be negative")
	}
	for name, b := range map[string][]float64{"first_reply": m.Buckets.FirstReply, "resolution": m.Buckets.Resolution, "call_wait": m.Buckets.CallWait, "call_handle": m.Buckets.CallHandle} {
		for i, v := range b {
			if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				c.errorAt(errs, fmt.Sprintf("model.buckets.%s[%d]", name, i), "bucket bounds must be positive finite seconds, got %g", v)
			} else if i > 0 && v <= b[i-1] {
				c.errorAt(errs, fmt.Sprintf("model.buckets.%s[%d]", name, i), "bucket bounds must increase, %g follows %g", v, b[i-1])
			}
		}
	}
	for dim, w := range m.ServqualWeights {
		if !isDimension(dim) {
			c.errorAt(errs, "model.servqual_weights."+dim, "unknown SERVQUAL dimension %q (tangibles, reliability, responsiveness, assurance, empathy)", dim)
		} else if w < 0 {
			c.errorAt(errs, "model.servqual_weights."+dim, "weight must not be negative")
		}
	}

	hours := map[string]bool{}
	for i, b := range c.BusinessHours {
		p := fmt.Sprintf("business_hours[%d]", i)
		if b.Name == "" {
			c.errorAt(errs, p+".name", "is required")
		} else if hours[b.Name] {
			c.errorAt(errs, p+".name", "business hours %q are defined twice", b.Name)
		}
		hours[b.Name] = true
		if _, err := calendar.New(b.Name, b.TimeZone, b.Weekly, b.Holidays); err != nil {
			var fe *calendar.FieldError
			if errors.As(err, &fe) {
				c.errorAt(errs, joinPath(p, fe.Field), "%s", fe.Msg)
			} else {
				c.errorAt(errs, p, "%v", err)
			}
		}
	}
	if m.BusinessHours != "" && !hours[m.BusinessHours] {
		defined := "none defined"
		if len(hours) > 0 {
			defined = "defined: " + strings.Join(sortedKeys(hours), ", ")
		}
		c.errorAt(errs, "model.business_hours", "unknown business hours %q (%s)", m.BusinessHours, defined)
	}

	names := map[string]bool{}
	for i, col := range c.Collectors {
		p := fmt.Sprintf("collectors[%d]", i)
		if col == nil {
			c.errorAt(errs, p, "collector is empty")
			continue
		}
		switch {
		case col.Name == "":
			c.errorAt(errs, p+".name", "is required")
		case !nameRE.MatchString(col.Name):
			c.errorAt(errs, p+".name", "%q is not a valid name (letters, digits, _ and -, not starting with a digit)", col.Name)
		case names[col.Name]:
			c.errorAt(errs, p+".name", "collector %q is defined twice", col.Name)
		}
		names[col.Name] = true
		if col.Type == "" {
			c.errorAt(errs, p+".type", "is required")
		}
		if col.Schedule == "" {
			c.errorAt(errs, p+".schedule", "is required (a cron spec such as \"*/5 * * * *\" or \"@every 1m\")")
		} else if _, err := CronParser.Parse(col.Schedule); err != nil {
			c.errorAt(errs, p+".schedule", "invalid cron schedule %q: %v", col.Schedule, err)
		}
		if col.Timeout < 0 {
			c.errorAt(errs, p+".timeout", "must be positive")
		}
	}

	slos := map[string]bool{}
	for i, s := range c.SLOs {
		p := fmt.Sprintf("slos[%d]", i)
		if s == nil {
			c.errorAt(errs, p, "SLO is empty")
			continue
		}
		c.validateSLO(errs, p, s, hours)
		if s.Name != "" && slos[s.Name] {
			c.errorAt(errs, p+".name", "SLO %q is defined twice", s.Name)
		}
		slos[s.Name] = true
	}

	if c.Push != nil {
		pu := c.Push
		if pu.URL == "" {
			c.errorAt(errs, "push.url", "is required (e.g. http://victoria-metrics:8428/api/v1/import/prometheus)")
		} else if !strings.HasPrefix(pu.URL, "http://") && !strings.HasPrefix(pu.URL, "https://") {
			c.errorAt(errs, "push.url", "must be an http:// or https:// URL")
		}
		if pu.Interval < Duration(time.Second) {
			c.errorAt(errs, "push.interval", "must be at least 1s")
		}
		if pu.Password != "" && pu.PasswordFile != "" {
			c.errorAt(errs, "push.password_file", "set either password or password_file, not both")
		}
		if pu.BearerToken != "" && pu.BearerTokenFile != "" {
			c.errorAt(errs, "push.bearer_token_file", "set either bearer_token or bearer_token_file, not both")
		}
		for _, k := range sortedKeys(pu.ExtraLabels) {
			if !labelNameRE.MatchString(k) {
				c.errorAt(errs, "push.extra_labels."+k, "%q is not a valid label name", k)
			}
		}
	}
}

func (c *Config) validateSLO(errs *Errors, p string, s *SLO, hours map[string]bool) {
	if s.Name == "" {
		c.errorAt(errs, p+".name", "is required")
	} else if !nameRE.MatchString(s.Name) {
		c.errorAt(errs, p+".name", "%q is not a valid name (letters, digits, _ and -)", s.Name)
	}
	ind, ok := Indicators[s.Indicator]
	switch {
	case s.Indicator == "":
		c.errorAt(errs, p+".indicator", "is required (one of %s)", strings.Join(sortedKeys(Indicators), ", "))
	case !ok:
		c.errorAt(errs, p+".indicator", "unknown indicator %q (one of %s)", s.Indicator, strings.Join(sortedKeys(Indicators), ", "))
	}
	if ind.NeedsThreshold && s.Threshold <= 0 {
		c.errorAt(errs, p+".threshold", "is required for indicator %s (e.g. 4h)", s.Indicator)
	}
	if !ind.NeedsThreshold && ok && s.Threshold != 0 {
		c.errorAt(errs, p+".threshold", "indicator %s has no threshold", s.Indicator)
	}
	if s.BusinessHours != "" {
		if !ind.Tickets || !ind.NeedsThreshold {
			c.errorAt(errs, p+".business_hours", "only ticket_first_reply and ticket_resolution measure in business hours")
		} else if !hours[s.BusinessHours] {
			c.errorAt(errs, p+".business_hours", "unknown business hours %q", s.BusinessHours)
		}
	}
	if s.Indicator == "call_service_level" {
		switch s.AbandonPolicy {
		case AbandonCountAsBad, AbandonExcludeShort, AbandonExcludeAll:
		default:
			c.errorAt(errs, p+".abandon_policy", "unknown policy %q (count_as_bad, exclude_short, exclude_all)", s.AbandonPolicy)
		}
	} else if s.AbandonPolicy != "" {
		c.errorAt(errs, p+".abandon_policy", "only call_service_level has an abandon policy")
	}
	if s.CSATMin != 0 && s.Indicator != "csat" {
		c.errorAt(errs, p+".csat_min", "only the csat indicator has csat_min")
	}
	if s.CSATMin != 0 && (s.CSATMin < 1 || s.CSATMin > c.Model.CSATScaleMax) {
		c.errorAt(errs, p+".csat_min", "must be between 1 and %g", c.Model.CSATScaleMax)
	}
	for _, k := range sortedKeys(s.Filters) {
		if !filterLabels[k] {
			c.errorAt(errs, p+".filters."+k, "cannot filter on %q (queue, channel, priority, collector)", k)
		}
		if k == "priority" && !ind.Tickets && ok {
			c.errorAt(errs, p+".filters.priority", "calls and surveys have no priority")
		}
	}
	switch {
	case s.Objective == 100:
		c.errorAt(errs, p+".objective", "100 leaves no error budget: every single miss would exhaust it; use e.g. 99.9")
	case s.Objective <= 0 || s.Objective > 100:
		c.errorAt(errs, p+".objective", "must be a percentage between 0 and 100 (exclusive), got %g", s.Objective)
	}
	if s.Window < Duration(time.Hour) {
		c.errorAt(errs, p+".window", "must be at least 1h, got %s", s.Window)
	}
	if s.Indicator == "custom" {
		cu := s.Custom
		switch {
		case cu == nil:
			c.errorAt(errs, p+".custom", "is required for indicator custom (total_query and error_query or good_query)")
		case cu.TotalQuery == "":
			c.errorAt(errs, p+".custom.total_query", "is required")
		case (cu.ErrorQuery == "") == (cu.GoodQuery == ""):
			c.errorAt(errs, p+".custom", "set exactly one of error_query and good_query")
		}
	} else if s.Custom != nil {
		c.errorAt(errs, p+".custom", "only the custom indicator takes queries")
	}
	for _, k := range sortedKeys(s.Alerting.Labels) {
		if !labelNameRE.MatchString(k) {
			c.errorAt(errs, p+".alerting.labels."+k, "%q is not a valid label name", k)
		}
	}
}

func isDimension(d string) bool {
	switch d {
	case "tangibles", "reliability", "responsiveness", "assurance", "empathy":
		return true
	}
	return false
}

// Locate returns the line of a field path, for callers that validate
// further (plugins, SLO rule generation).
func (c *Config) Locate(path string) int { return c.pos.line(path) }

// SLOThresholds returns the thresholds (seconds) of SLOs on one indicator,
// sorted, so that histogram buckets always contain them.
func (c *Config) SLOThresholds(indicator string) []float64 {
	var out []float64
	for _, s := range c.SLOs {
		if s.Indicator == indicator && s.Threshold > 0 {
			out = append(out, s.Threshold.D().Seconds())
		}
	}
	sort.Float64s(out)
	return out
}
