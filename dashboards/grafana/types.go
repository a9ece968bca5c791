package grafana

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/common/model"

	"github.com/servq/servq/config"
)

// RulePrefix starts the uid of every alert rule servq generates. Provision
// refuses rules without it and deletes only rules with it.
const RulePrefix = "servq-"

// Dashboard is one generated dashboard: its uid, title and full JSON model
// (the "dashboard" object of Grafana's API, with "uid" and "title" set, no
// "id").
type Dashboard struct {
	UID, Title string
	JSON       []byte
}

// AlertRule is a Grafana-managed alert rule in the shape of the alerting
// provisioning API (ProvisionedAlertRule). Only the fields servq sets are
// here; the read-only ones Grafana adds (id, updated, provenance) are not.
type AlertRule struct {
	UID string `json:"uid"`
	// OrgID is ignored by Grafana on write (the token's organisation
	// counts); 0 means "whatever Grafana says" when comparing.
	OrgID int64 `json:"orgID"`
	// FolderUID and RuleGroup may be left empty: Provision fills them from
	// Options. A rule naming another folder or group is refused.
	FolderUID string `json:"folderUID"`
	RuleGroup string `json:"ruleGroup"`
	Title     string `json:"title"`
	// Condition is the refId of the query or expression that decides.
	Condition string       `json:"condition"`
	Data      []AlertQuery `json:"data"`
	// NoDataState is one of NoData, Alerting, OK (empty: NoData).
	NoDataState string `json:"noDataState"`
	// ExecErrState is one of Error, Alerting, OK (empty: Error).
	ExecErrState string `json:"execErrState"`
	// For is a duration in Prometheus notation on the wire ("5m").
	For         model.Duration    `json:"for"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	IsPaused    bool              `json:"isPaused"`
}

// AlertQuery is one query or expression of an alert rule.
type AlertQuery struct {
	RefID             string            `json:"refId"`
	QueryType         string            `json:"queryType"`
	RelativeTimeRange RelativeTimeRange `json:"relativeTimeRange"`
	// DatasourceUID is the data source's uid, or "__expr__" for a
	// server-side expression.
	DatasourceUID string          `json:"datasourceUid"`
	Model         json.RawMessage `json:"model"`
}

// RelativeTimeRange is the time range a query covers, in seconds before
// the evaluation time (from 600, to 0: the last ten minutes).
type RelativeTimeRange struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// Options for Provision.
type Options struct {
	// URL is Grafana's base URL, e.g. http://grafana:3000 (a sub-path is
	// kept: http://host/grafana).
	URL string
	// Token is a service-account token. It is only ever revealed into the
	// Authorization header of requests to URL's host.
	Token                  config.Secret
	FolderUID, FolderTitle string
	// HTTPClient is optional; its Transport, Timeout, Jar and
	// CheckRedirect are used, the client itself is not modified.
	HTTPClient *http.Client
	// RuleGroup and Interval: the alert rule group name and its evaluation
	// interval (empty: "servq", 0: 1m). Interval must be whole seconds.
	RuleGroup string
	Interval  time.Duration
}

// Result says what Provision changed. The slices hold uids.
type Result struct {
	FolderCreated bool
	// FolderRenamed: the folder existed with another title.
	FolderRenamed bool

	DashboardsCreated, DashboardsUpdated, DashboardsUnchanged []string

	RulesCreated, RulesUpdated, RulesUnchanged, RulesDeleted []string
	// RuleGroupUpdated: the group's evaluation interval was set.
	RuleGroupUpdated bool
}

// Changed reports whether Provision wrote anything.
func (r Result) Changed() bool {
	return r.FolderCreated || r.FolderRenamed || r.RuleGroupUpdated ||
		len(r.DashboardsCreated)+len(r.DashboardsUpdated)+
			len(r.RulesCreated)+len(r.RulesUpdated)+len(r.RulesDeleted) > 0
}
