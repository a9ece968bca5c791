package dashboards

import (
	"fmt"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// LintFile is grafana/dashboard-linter's per-directory configuration
// (.lint next to the dashboards): rule exclusions with a reason, each
// entry a dashboard, panel and target index.
type LintFile struct {
	Exclusions map[string]*LintExclusion `yaml:"exclusions"`
}

// LintExclusion excludes a rule where it does not apply.
type LintExclusion struct {
	Reason  string      `yaml:"reason"`
	Entries []LintEntry `yaml:"entries"`
}

// LintEntry names one excluded target.
type LintEntry struct {
	Dashboard string `yaml:"dashboard"`
	Panel     string `yaml:"panel"`
	TargetIdx string `yaml:"targetIdx"`
}

// recordedReason is why a query of recorded series has no job or instance
// matcher.
const recordedReason = "The query reads only series recorded by servq's rules (slo:*, servq:*, sloth_slo_info) or ALERTS: the rules aggregate job and instance away, so a matcher on a selected job would match nothing."

// Lint returns the .lint of the boards: the targets that read recorded
// series only are excluded from target-job-rule and target-instance-rule,
// target by target (every other rule applies everywhere).
func Lint(boards []*Board) (*LintFile, error) {
	var entries []LintEntry
	for _, b := range boards {
		for _, p := range b.panels {
			for i, t := range p.Targets {
				recorded, err := readsOnlyRecorded(t.Expr)
				if err != nil {
					return nil, fmt.Errorf("dashboard %s, panel %q, target %d: %w", b.UID, p.Title, i, err)
				}
				if recorded {
					entries = append(entries, LintEntry{Dashboard: b.Title, Panel: p.Title, TargetIdx: fmt.Sprint(i)})
				}
			}
		}
	}
	return &LintFile{Exclusions: map[string]*LintExclusion{
		"target-job-rule":      {Reason: recordedReason, Entries: entries},
		"target-instance-rule": {Reason: recordedReason, Entries: entries},
	}}, nil
}

// readsOnlyRecorded says whether every selector of a query is of a
// recorded series.
func readsOnlyRecorded(expr string) (bool, error) {
	node, err := parser.ParseExpr(withPlaceholders(expr))
	if err != nil {
		return false, err
	}
	selectors := 0
	raw := false
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			selectors++
			raw = raw || isRawMetric(vs.Name)
		}
		return nil
	})
	return selectors > 0 && !raw, nil
}

func (l *LintFile) marshal() ([]byte, error) {
	b, err := yaml.Marshal(l)
	if err != nil {
		return nil, err
	}
	return append([]byte(header+"# grafana/dashboard-linter exclusions (dashboards/README.md, Conventions).\n"), b...), nil
}
