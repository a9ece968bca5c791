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

	"github.com/prometheus/prometheus/promql/parser"
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

// MinEvery is the shortest @every interval a schedule may have. The
// scheduler counts whole seconds (robfig/cron rounds anything shorter up
// to 1s, and a negative interval too), so a shorter one would silently run
// at another rate than written.
const MinEvery = time.Second

// scheduleCheckFrom is where CheckSchedule looks for a schedule's first
// run. Cron specs have no year, so a spec that fires at all fires within
// the five years robfig/cron searches from any start (two leap days
// included); a fixed start keeps the check independent of the clock.
var scheduleCheckFrom = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// CheckSchedule parses a cron spec as the scheduler will and rejects what
// would run otherwise than written: an @every interval under MinEvery or
// not a whole number of seconds, and a spec that never fires (30
// February).
func CheckSchedule(spec string) error {
	sched, err := CronParser.Parse(spec)
	if err != nil {
		return fmt.Errorf("invalid cron schedule %q: %v", spec, err)
	}
	fields := strings.Fields(spec)
	for i, f := range fields {
		if f != "@every" || i+1 >= len(fields) {
			continue
		}
		d, err := time.ParseDuration(fields[i+1])
		switch {
		case err != nil:
		case d < MinEvery:
			return fmt.Errorf("invalid cron schedule %q: @every needs at least %s, got %s", spec, MinEvery, d)
		case d%time.Second != 0:
			return fmt.Errorf("invalid cron schedule %q: @every needs whole seconds, got %s (it would run every %s)", spec, d, d.Truncate(time.Second))
		}
	}
	if sched.Next(scheduleCheckFrom).IsZero() {
		return fmt.Errorf("cron schedule %q never fires (no such date)", spec)
	}
	return nil
}

// Parse decodes and validates a config. The error, if any, is an Errors
// with every problem found, each located by file:line and field path.
func Parse(data []byte, file string) (*Config, error) {
	cfg, err := parse(data, file)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadForCheck is Load for `servq check`: with problems, it also returns
// what could be decoded (nil when the file is not YAML at all), so that the
// plugin sections can be checked in the same run and every problem of the
// file reported at once. Such a config must never run.
func LoadForCheck(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(data, path)
}

func parse(data []byte, file string) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: file, Line: 1, Msg: "config is empty"}}
		}
		errs := decodeErrors(err, file, positions{}, nil, "")
		for _, e := range errs {
			if e.Line == 0 {
				e.Line, e.Msg = locate(data, e.Msg)
			}
		}
		return nil, errs
	}
	var errs Errors
	expandEnv(&doc, file, "", &errs)
	checkTags(&doc, file, "", &errs)
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
		// Validating half-decoded values would add errors that are
		// only echoes of these. The plugin sections can still be
		// checked (LoadForCheck), located like those of a valid config.
		for i, col := range cfg.Collectors {
			if col != nil {
				col.locate(cfg, i)
			}
		}
		return cfg, errs.Err()
	}
	cfg.setDefaults()
	cfg.validate(&errs)
	if err := errs.Err(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// locate tells a collector where its section is, for the errors of its
// plugin keys.
func (col *Collector) locate(c *Config, i int) {
	col.file, col.path, col.pos = c.File, fmt.Sprintf("collectors[%d]", i), c.pos
}

func (c *Config) errorAt(errs *Errors, path, format string, args ...any) {
	*errs = append(*errs, &Error{File: c.File, Line: c.pos.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Defaults, chosen to match common contact-centre practice.
const (
	DefaultLabelLimit       = 100
	DefaultCollectorTimeout = Duration(5 * time.Minute)
	DefaultRetention        = Duration(90 * 24 * time.Hour)
	DefaultNewSeriesDelay   = Duration(2 * time.Minute)
	DefaultWatermarkWait    = Duration(time.Hour)
	DefaultCSATSatisfiedMin = 4 // top-2-box on 1-5
	DefaultCSATScaleMax     = 5
	DefaultCESScaleMax      = 7
	DefaultShortAbandon     = Duration(5 * time.Second)
	DefaultPushInterval     = Duration(30 * time.Second)
	DefaultSLOWindow        = Duration(28 * 24 * time.Hour)
	DefaultService          = "customer-service"
	DefaultMinBadEvents     = 3
	DefaultJob              = "servq"
	DefaultTargetWindow     = Duration(7 * 24 * time.Hour)
	DefaultTargetForSurvey  = Duration(time.Hour)
	DefaultTargetForGauge   = Duration(5 * time.Minute)
	DefaultMinResponses     = 10
)

// Alert severities: page wakes someone up, ticket goes to a queue.
const (
	SeverityPage   = "page"
	SeverityTicket = "ticket"
)

// KPIs lists the target KPIs and the labels each can be filtered or split
// by (the labels its metrics carry).
var KPIs = map[string]struct {
	Survey bool // computed from responses over a window
	Labels []string
}{
	"nps":                    {true, []string{"collector", "survey", "queue", "channel"}},
	"csat_average":           {true, []string{"collector", "survey", "queue", "channel"}},
	"csat_satisfied":         {true, []string{"collector", "survey", "queue", "channel"}},
	"ces_average":            {true, []string{"collector", "survey", "queue", "channel"}},
	"servqual_gap":           {true, []string{"collector", "survey"}},
	"servqual_weighted_gap":  {true, []string{"collector", "survey"}},
	"open_tickets":           {false, []string{"collector", "queue"}},
	"oldest_open_ticket_age": {false, []string{"collector", "queue"}},
	"calls_waiting":          {false, []string{"collector", "queue"}},
	"longest_wait":           {false, []string{"collector", "queue"}},
}

// windowRE finds the range placeholder of custom SLI queries.
var windowRE = regexp.MustCompile(`\{\{\s*\.window\s*\}\}`)

// sameWidthRange is as wide as "{{.window}}", so that the columns of PromQL
// parse errors point into the query as written.
const sameWidthRange = "1000000000s"

// ExpandWindow substitutes the range placeholder of a custom SLI query.
func ExpandWindow(query, window string) string { return windowRE.ReplaceAllString(query, window) }

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
	if g.NewSeriesDelay == nil {
		d := DefaultNewSeriesDelay
		g.NewSeriesDelay = &d
	}
	if g.WatermarkWait == 0 {
		g.WatermarkWait = DefaultWatermarkWait
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
		if col.WatermarkWait == 0 {
			col.WatermarkWait = g.WatermarkWait
		}
		col.locate(c, i)
	}
	for _, s := range c.SLOs {
		if s != nil && s.Alerting.MinBadEvents == 0 {
			s.Alerting.MinBadEvents = DefaultMinBadEvents
		}
		if s != nil && s.Window == 0 {
			s.Window = DefaultSLOWindow
		}
		if s != nil && s.Indicator == "call_service_level" && s.AbandonPolicy == "" {
			s.AbandonPolicy = AbandonCountAsBad
		}
	}
	for _, t := range c.Targets {
		if t == nil {
			continue
		}
		k := KPIs[t.KPI]
		if t.Window == 0 && k.Survey {
			t.Window = DefaultTargetWindow
		}
		if t.For == 0 {
			t.For = DefaultTargetForGauge
			if k.Survey {
				t.For = DefaultTargetForSurvey
			}
		}
		if t.MinResponses == 0 && k.Survey {
			t.MinResponses = DefaultMinResponses
		}
		if t.Severity == "" {
			t.Severity = SeverityTicket
		}
	}
	if c.Rules.Job == "" {
		c.Rules.Job = DefaultJob
	}
	for _, r := range c.Reports {
		if r == nil {
			continue
		}
		if len(r.Formats) == 0 {
			r.Formats = []string{"html", "md", "json", "csv"}
		}
		if r.TimeZone == "" {
			r.TimeZone = g.TimeZone
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
	if d := g.SeriesDelay(); d < 0 || d > time.Hour {
		c.errorAt(errs, "global.new_series_delay", "must be between 0 and 1h (it must cover the scrape interval), got %s", Duration(d))
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
		} else if err := CheckSchedule(col.Schedule); err != nil {
			c.errorAt(errs, p+".schedule", "%v", err)
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

	targets := map[string]bool{}
	for i, t := range c.Targets {
		p := fmt.Sprintf("targets[%d]", i)
		if t == nil {
			c.errorAt(errs, p, "target is empty")
			continue
		}
		c.validateTarget(errs, p, t)
		if t.Name != "" && targets[t.Name] {
			c.errorAt(errs, p+".name", "target %q is defined twice", t.Name)
		}
		targets[t.Name] = true
	}
	if !labelNameRE.MatchString(c.Rules.Job) && c.Rules.Job != "" {
		// Any string is a valid job label value; this only rejects quotes
		// and newlines that would break the generated selector.
		if strings.ContainsAny(c.Rules.Job, "\"\\\n") {
			c.errorAt(errs, "rules.job", "must not contain quotes, backslashes or newlines")
		}
	}
	if c.Rules.Interval < 0 {
		c.errorAt(errs, "rules.interval", "must not be negative")
	}
	c.validateGrafanaInterval(errs)
	for _, k := range sortedKeys(c.Rules.Labels) {
		if !labelNameRE.MatchString(k) {
			c.errorAt(errs, "rules.labels."+k, "%q is not a valid label name", k)
		}
	}
	reports := map[string]bool{}
	for i, r := range c.Reports {
		p := fmt.Sprintf("reports[%d]", i)
		if r == nil {
			c.errorAt(errs, p, "report is empty")
			continue
		}
		c.validateReport(errs, p, r)
		if r.Name != "" && reports[r.Name] {
			c.errorAt(errs, p+".name", "report %q is defined twice", r.Name)
		}
		reports[r.Name] = true
	}
	for i, col := range c.Collectors {
		if col != nil && col.StaleAfter < 0 {
			c.errorAt(errs, fmt.Sprintf("collectors[%d].stale_after", i), "must not be negative")
		}
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
		c.oneSecret(errs, "push", "password", pu.Password, pu.PasswordFile)
		c.oneSecret(errs, "push", "bearer_token", pu.BearerToken, pu.BearerTokenFile)
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
	case s.Objective > 0 && s.Objective < 1:
		// A ratio where a percentage belongs (0.85 for 85 %): an
		// objective under 1 % promises nothing (99 % of events may fail),
		// so it is far likelier a ratio than a wish.
		c.errorAt(errs, p+".objective", "objectives are percentages: did you mean %g? (%g is %g %%)", s.Objective*100, s.Objective, s.Objective)
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
		default:
			for field, q := range map[string]string{"total_query": cu.TotalQuery, "error_query": cu.ErrorQuery, "good_query": cu.GoodQuery} {
				if q == "" {
					continue
				}
				if !windowRE.MatchString(q) {
					c.errorAt(errs, p+".custom."+field, "must use {{.window}} as the range of its rate()/increase(), e.g. sum(rate(http_requests_total[{{.window}}]))")
				} else if _, err := parser.ParseExpr(ExpandWindow(q, sameWidthRange)); err != nil {
					c.errorAt(errs, p+".custom."+field, "invalid PromQL: %v", err)
				}
			}
		}
	} else if s.Custom != nil {
		c.errorAt(errs, p+".custom", "only the custom indicator takes queries")
	}
	for _, k := range sortedKeys(s.Labels) {
		switch {
		case !labelNameRE.MatchString(k):
			c.errorAt(errs, p+".labels."+k, "%q is not a valid label name", k)
		case strings.HasPrefix(k, "sloth_") || strings.HasPrefix(k, "servq_") || k == "severity":
			c.errorAt(errs, p+".labels."+k, "%q is set by servq itself (sloth_*, servq_* and severity are reserved)", k)
		}
	}
	for _, k := range sortedKeys(s.Alerting.Labels) {
		if !labelNameRE.MatchString(k) {
			c.errorAt(errs, p+".alerting.labels."+k, "%q is not a valid label name", k)
		}
	}
	if s.Alerting.Name != "" && !labelNameRE.MatchString(s.Alerting.Name) {
		c.errorAt(errs, p+".alerting.name", "%q is not a valid alert name (letters, digits and _)", s.Alerting.Name)
	}
	if s.Alerting.MinBadEvents < 0 {
		c.errorAt(errs, p+".alerting.min_bad_events", "must not be negative")
	}
}

// oneSecret reports a secret set both inline and as a file.
func (c *Config) oneSecret(errs *Errors, p, key string, value Secret, file string) {
	if value != "" && file != "" {
		c.errorAt(errs, p+"."+key+"_file", "set either %s or %s_file, not both", key, key)
	}
}

// validateGrafanaInterval: Grafana refuses (400) a rule group whose
// interval is not a multiple of its 10s base interval, and servq would only
// learn it after creating the rules; say it here instead, at the key that
// sets the interval of the Grafana-managed rules.
func (c *Config) validateGrafanaInterval(errs *Errors) {
	base := Duration(GrafanaBaseInterval)
	up := func(d Duration) Duration { return (d + base - 1) / base * base }
	switch gi, iv := c.Rules.GrafanaInterval, c.Rules.Interval; {
	case gi < 0:
		c.errorAt(errs, "rules.grafana_interval", "must not be negative")
	case gi > 0 && gi%base != 0:
		c.errorAt(errs, "rules.grafana_interval", "%s is not a multiple of 10s: Grafana evaluates rule groups in steps of 10s and refuses other intervals; use %s", gi, up(gi))
	case gi == 0 && iv > 0 && iv%base != 0:
		c.errorAt(errs, "rules.interval", "%s is not a multiple of 10s, which Grafana-managed alert rules (servq dashboards) need: set rules.grafana_interval to one for them (e.g. %s), or make rules.interval one", iv, up(iv))
	}
}

func (c *Config) validateReport(errs *Errors, p string, r *Report) {
	if r.Name == "" {
		c.errorAt(errs, p+".name", "is required")
	} else if !nameRE.MatchString(r.Name) {
		c.errorAt(errs, p+".name", "%q is not a valid name (letters, digits, _ and -)", r.Name)
	}
	if r.Schedule == "" {
		c.errorAt(errs, p+".schedule", "is required (e.g. \"0 8 1 * *\": 08:00 on the 1st of each month)")
	} else if err := CheckSchedule(r.Schedule); err != nil {
		c.errorAt(errs, p+".schedule", "%v", err)
	}
	switch r.Period {
	case "month", "week", "quarter":
	default:
		c.errorAt(errs, p+".period", "must be month, week or quarter (the last complete one when the report runs), got %q", r.Period)
	}
	if !strings.HasPrefix(r.PrometheusURL, "http://") && !strings.HasPrefix(r.PrometheusURL, "https://") {
		c.errorAt(errs, p+".prometheus_url", "is required: the http(s) URL of a Prometheus-compatible API")
	}
	c.oneSecret(errs, p, "bearer_token", r.BearerToken, r.BearerTokenFile)
	c.oneSecret(errs, p, "webhook_url", r.WebhookURL, r.WebhookURLFile)
	if w := string(r.WebhookURL); w != "" && !strings.HasPrefix(w, "http://") && !strings.HasPrefix(w, "https://") {
		c.errorAt(errs, p+".webhook_url", "must be an http(s) URL")
	}
	for i, f := range r.Formats {
		switch f {
		case "html", "md", "json", "csv":
		default:
			c.errorAt(errs, fmt.Sprintf("%s.formats[%d]", p, i), "unknown format %q (html, md, json, csv)", f)
		}
	}
	if r.Directory == "" {
		c.errorAt(errs, p+".directory", "is required: where the report files are written")
	}
	if _, err := time.LoadLocation(r.TimeZone); err != nil {
		c.errorAt(errs, p+".time_zone", "unknown time zone %q", r.TimeZone)
	}
}

func (c *Config) validateTarget(errs *Errors, p string, t *Target) {
	if t.Name == "" {
		c.errorAt(errs, p+".name", "is required")
	} else if !nameRE.MatchString(t.Name) {
		c.errorAt(errs, p+".name", "%q is not a valid name (letters, digits, _ and -)", t.Name)
	}
	k, ok := KPIs[t.KPI]
	switch {
	case t.KPI == "":
		c.errorAt(errs, p+".kpi", "is required (one of %s)", strings.Join(sortedKeys(KPIs), ", "))
	case !ok:
		c.errorAt(errs, p+".kpi", "unknown KPI %q (one of %s)", t.KPI, strings.Join(sortedKeys(KPIs), ", "))
	}
	switch {
	case (t.Min == nil) == (t.Max == nil):
		c.errorAt(errs, p, "set exactly one of min and max")
	case t.Min != nil && (math.IsNaN(*t.Min) || math.IsInf(*t.Min, 0)):
		c.errorAt(errs, p+".min", "must be a finite number")
	case t.Max != nil && (math.IsNaN(*t.Max) || math.IsInf(*t.Max, 0)):
		c.errorAt(errs, p+".max", "must be a finite number")
	}
	if t.KPI == "servqual_gap" {
		if !isDimension(t.Dimension) {
			c.errorAt(errs, p+".dimension", "servqual_gap needs a dimension (tangibles, reliability, responsiveness, assurance, empathy), got %q", t.Dimension)
		}
	} else if t.Dimension != "" {
		c.errorAt(errs, p+".dimension", "only servqual_gap has a dimension")
	}
	if ok && !k.Survey {
		if t.Window != 0 {
			c.errorAt(errs, p+".window", "%s is a reading of now; it has no window", t.KPI)
		}
		if t.MinResponses != 0 {
			c.errorAt(errs, p+".min_responses", "only survey KPIs have responses")
		}
	}
	if ok && k.Survey && t.Window < Duration(time.Hour) {
		c.errorAt(errs, p+".window", "must be at least 1h, got %s", t.Window)
	}
	if t.MinResponses < 0 {
		c.errorAt(errs, p+".min_responses", "must not be negative")
	}
	if t.For < 0 {
		c.errorAt(errs, p+".for", "must not be negative")
	}
	allowed := map[string]bool{}
	for _, l := range k.Labels {
		allowed[l] = true
	}
	for _, l := range sortedKeys(t.Filters) {
		if ok && !allowed[l] {
			c.errorAt(errs, p+".filters."+l, "%s cannot be filtered on %q (%s)", t.KPI, l, strings.Join(k.Labels, ", "))
		}
	}
	for i, l := range t.By {
		if ok && !allowed[l] {
			c.errorAt(errs, fmt.Sprintf("%s.by[%d]", p, i), "%s cannot be split by %q (%s)", t.KPI, l, strings.Join(k.Labels, ", "))
		}
	}
	if t.Severity != SeverityPage && t.Severity != SeverityTicket {
		c.errorAt(errs, p+".severity", "must be page or ticket, got %q", t.Severity)
	}
	for _, l := range sortedKeys(t.Labels) {
		if !labelNameRE.MatchString(l) {
			c.errorAt(errs, p+".labels."+l, "%q is not a valid label name", l)
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

// ReferencedEnv lists the environment variables a config file refers to
// (outside comments), for tools and tests that need them set.
func ReferencedEnv(data []byte) []string {
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		line = stripComment(line)
		for _, m := range envRef.FindAllStringSubmatch(line, -1) {
			if m[1] != "" && !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1])
			}
		}
	}
	sort.Strings(out)
	return out
}

// stripComment cuts a YAML comment: a # at the line start or after a blank,
// outside quotes.
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i]
		}
	}
	return line
}
