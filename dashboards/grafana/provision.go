package grafana

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/grafana-tools/sdk"

	"github.com/servq/servq/config"
)

// commitMessage is the version message of every dashboard servq saves.
const commitMessage = "servq dashboards"

// uidRE is what Grafana accepts as a uid (at most 40 characters); checking
// it here also keeps uids safe to put in a path unescaped, as the sdk does.
var uidRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)

// Provision makes Grafana hold exactly these dashboards (in the folder) and
// these alert rules (in the folder's rule group). See the package comment.
// On error, the Result says what was done before it.
func Provision(ctx context.Context, opt Options, dashboards []Dashboard, rules []AlertRule) (Result, error) {
	var res Result
	p, err := newProvisioner(opt)
	if err != nil {
		return res, err
	}
	ds, err := prepareDashboards(dashboards)
	if err != nil {
		return res, err
	}
	rs, err := p.prepareRules(rules)
	if err != nil {
		return res, err
	}
	// Everything is read and checked first, so that a token, a Grafana or
	// a state servq cannot work with fails the run before it writes.
	version := p.grafanaVersion(ctx)
	if err := p.checkPermissions(ctx, version, len(rs) > 0); err != nil {
		return res, err
	}
	if err := p.checkDatasources(ctx, rs); err != nil {
		return res, err
	}
	have := make([]dashboardState, len(ds))
	for i, d := range ds {
		if have[i], err = p.readDashboard(ctx, d); err != nil {
			return res, err
		}
	}
	st, err := p.readRules(ctx, rs)
	if err != nil {
		return res, err
	}

	if err := p.folder(ctx, &res); err != nil {
		return res, err
	}
	for i, d := range ds {
		if err := p.dashboard(ctx, d, have[i], &res); err != nil {
			return res, err
		}
	}
	if err := p.rules(ctx, rs, st, &res); err != nil {
		return res, err
	}
	return res, nil
}

type provisioner struct {
	opt Options
	c   *client
	sdk *sdk.Client
}

func newProvisioner(opt Options) (*provisioner, error) {
	base, err := url.Parse(opt.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		// url.Parse's error would quote the URL; it holds no token, but
		// may hold a password the user put there by mistake.
		return nil, errors.New("grafana: the URL must be http(s)://host[:port][/path], without user, query or fragment")
	}
	if opt.Token.Reveal() == "" {
		return nil, errors.New("grafana: no token (a service-account token is needed)")
	}
	if !uidRE.MatchString(opt.FolderUID) {
		return nil, fmt.Errorf("grafana: folder uid %q: want 1 to 40 of A-Z a-z 0-9 _ -", opt.FolderUID)
	}
	if strings.TrimSpace(opt.FolderTitle) == "" {
		return nil, errors.New("grafana: no folder title")
	}
	if opt.RuleGroup == "" {
		opt.RuleGroup = "servq"
	}
	if opt.Interval == 0 {
		opt.Interval = time.Minute
	}
	// Grafana refuses (400) a group interval that is not a multiple of its
	// 10s base interval; refusing here keeps a run from creating the rules
	// and then failing on the group.
	if opt.Interval <= 0 || opt.Interval%config.GrafanaBaseInterval != 0 {
		return nil, fmt.Errorf("grafana: rule group interval %s: Grafana evaluates rule groups in steps of 10s and refuses other intervals; use a multiple of 10s (rules.grafana_interval)", opt.Interval)
	}

	hc := &http.Client{}
	if opt.HTTPClient != nil {
		*hc = *opt.HTTPClient
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = &transport{base: rt, scheme: base.Scheme, host: base.Host, token: opt.Token.Reveal()}

	c := &client{http: hc, base: base, token: opt.Token.Reveal()}
	// The sdk gets no key: it would send "Bearer <key>" itself, but treat a
	// key holding ':' as user:password and put it into the URL. Our
	// transport sets the header instead, for Grafana's host only.
	sc, err := sdk.NewClient(base.String(), "", hc)
	if err != nil {
		return nil, fmt.Errorf("grafana: %w", err)
	}
	return &provisioner{opt: opt, c: c, sdk: sc}, nil
}

// folder makes the folder exist with its title.
//
// The sdk fits here: GET/POST /api/folders and PUT /api/folders/:uid are
// what Grafana 10 documents. Its POST and PUT bodies carry every field of
// sdk.Folder (id, url, hasAcl, ...) besides the documented uid, title,
// version and overwrite; Grafana ignores the others.
func (p *provisioner) folder(ctx context.Context, res *Result) error {
	uid, title := p.opt.FolderUID, p.opt.FolderTitle
	path := "/api/folders/" + uid
	var f sdk.Folder
	err := p.c.sdkCall(ctx, http.MethodGet, path, func(ctx context.Context) (err error) {
		f, err = p.sdk.GetFolderByUID(ctx, uid)
		return err
	})
	switch {
	case isStatus(err, http.StatusNotFound):
		err = p.c.sdkCall(ctx, http.MethodPost, "/api/folders", func(ctx context.Context) error {
			_, err := p.sdk.CreateFolder(ctx, sdk.Folder{UID: uid, Title: title})
			return err
		})
		if err != nil {
			return fmt.Errorf("grafana: creating folder %q (%s): %w%s", title, uid, err, folderHint(err, title))
		}
		res.FolderCreated = true
		return nil
	case err != nil:
		return fmt.Errorf("grafana: reading folder %s: %w", uid, err)
	case f.Title == title:
		return nil
	}
	err = p.c.sdkCall(ctx, http.MethodPut, path, func(ctx context.Context) error {
		_, err := p.sdk.UpdateFolderByUID(ctx, sdk.Folder{UID: uid, Title: title, Version: f.Version, Overwrite: true})
		return err
	})
	if err != nil {
		return fmt.Errorf("grafana: renaming folder %s from %q to %q: %w%s", uid, f.Title, title, err, folderHint(err, title))
	}
	res.FolderRenamed = true
	return nil
}

// folderHint explains Grafana's refusal of a folder title that another
// folder has: up to 11.2 titles are unique (409), from 11.3 they need not
// be. The folder is servq's first write, so nothing was written.
func folderHint(err error, title string) string {
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict || strings.Contains(ae.Message, "same uid") {
		return ""
	}
	return fmt.Sprintf(" (up to Grafana 11.2 folder titles are unique and another folder is titled %q: pass another --grafana.folder-title, "+
		"or rename that folder; servq wrote nothing)", title)
}

type preparedDashboard struct {
	uid, title string
	model      map[string]any
}

func prepareDashboards(in []Dashboard) ([]preparedDashboard, error) {
	seen := map[string]bool{}
	out := make([]preparedDashboard, 0, len(in))
	for _, d := range in {
		if !uidRE.MatchString(d.UID) {
			return nil, fmt.Errorf("grafana: dashboard uid %q: want 1 to 40 of A-Z a-z 0-9 _ -", d.UID)
		}
		if seen[d.UID] {
			return nil, fmt.Errorf("grafana: dashboard uid %s given twice", d.UID)
		}
		seen[d.UID] = true
		v, err := decodeJSON(d.JSON)
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			return nil, fmt.Errorf("grafana: dashboard %s: its JSON is not an object: %v", d.UID, err)
		}
		if u, _ := m["uid"].(string); u != d.UID {
			return nil, fmt.Errorf("grafana: dashboard %s: its JSON has uid %q", d.UID, u)
		}
		if t, _ := m["title"].(string); t != d.Title || t == "" {
			return nil, fmt.Errorf("grafana: dashboard %s: its JSON has title %q, want %q", d.UID, t, d.Title)
		}
		// Grafana's bookkeeping, not ours: an id would make Grafana look
		// the dashboard up by id, a version is set below from Grafana's.
		delete(m, "id")
		delete(m, "version")
		out = append(out, preparedDashboard{uid: d.UID, title: d.Title, model: m})
	}
	return out, nil
}

// dashboardState is a dashboard as Grafana holds it.
type dashboardState struct {
	exists bool
	got    struct {
		Dashboard json.RawMessage `json:"dashboard"`
		Meta      struct {
			FolderUID             string `json:"folderUid"`
			Version               int64  `json:"version"`
			Provisioned           bool   `json:"provisioned"`
			ProvisionedExternalID string `json:"provisionedExternalId"`
		} `json:"meta"`
	}
}

// readDashboard reads one dashboard, and refuses one that Grafana's file
// provisioning holds (Grafana would refuse to save it).
func (p *provisioner) readDashboard(ctx context.Context, d preparedDashboard) (dashboardState, error) {
	var st dashboardState
	err := p.c.do(ctx, http.MethodGet, "/api/dashboards/uid/"+d.uid, nil, &st.got)
	st.exists = err == nil
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return st, fmt.Errorf("grafana: reading dashboard %q (%s): %w", d.title, d.uid, err)
	}
	if st.exists && st.got.Meta.Provisioned {
		return st, fileProvisionedDashboard(fmt.Sprintf("dashboard %q (%s)", d.title, d.uid), st.got.Meta.ProvisionedExternalID)
	}
	return st, nil
}

// dashboard creates or updates one dashboard when needed.
//
// Plain net/http, not the sdk: its BoardProperties lacks meta.folderUid
// (only the deprecated numeric folderId), and its RawBoardRequest can send
// neither folderUid nor message (its parameters go out as "FolderID" and
// "Overwrite"); Grafana documents that an update without folderUid moves
// the dashboard to the root. It also dereferences a missing "message" of
// an error answer.
func (p *provisioner) dashboard(ctx context.Context, d preparedDashboard, st dashboardState, res *Result) error {
	what := fmt.Sprintf("dashboard %q (%s)", d.title, d.uid)
	exists, got := st.exists, st.got
	if exists && got.Meta.FolderUID == p.opt.FolderUID && dashboardCovered(d.model, got.Dashboard) {
		res.DashboardsUnchanged = append(res.DashboardsUnchanged, d.uid)
		return nil
	}

	model := d.model
	if exists {
		// The version just read: Grafana refuses the save (412
		// version-mismatch) if someone saved in between.
		model = make(map[string]any, len(d.model)+1)
		for k, v := range d.model {
			model[k] = v
		}
		model["version"] = currentVersion(got.Dashboard, got.Meta.Version)
	}
	body := map[string]any{
		"dashboard": model,
		"folderUid": p.opt.FolderUID,
		// Never true: with it, Grafana up to 11.2 takes over another
		// dashboard of the folder whose title has the same slug (and
		// ignores a concurrent save).
		"overwrite": false,
		"message":   commitMessage,
	}
	err := p.c.do(ctx, http.MethodPost, "/api/dashboards/db", body, nil)
	if err != nil {
		return fmt.Errorf("grafana: saving %s: %w%s", what, err, writeHint(err))
	}
	if exists {
		res.DashboardsUpdated = append(res.DashboardsUpdated, d.uid)
	} else {
		res.DashboardsCreated = append(res.DashboardsCreated, d.uid)
	}
	return nil
}

// currentVersion is meta's version, or the dashboard's "version" (the
// two are the same in Grafana).
func currentVersion(dash json.RawMessage, meta int64) any {
	if meta > 0 {
		return meta
	}
	var v struct {
		Version json.Number `json:"version"`
	}
	if json.Unmarshal(dash, &v) == nil && v.Version != "" {
		return v.Version
	}
	return 0
}

// conflictHint explains Grafana's 412s on a dashboard save.
func conflictHint(err error) string {
	var ae *APIError
	if !errors.As(err, &ae) || (ae.StatusCode != http.StatusPreconditionFailed && ae.StatusCode != http.StatusConflict &&
		ae.StatusCode != http.StatusBadRequest) {
		return ""
	}
	switch ae.Status {
	case "name-match":
		// Also only up to 11.2: folders and dashboards shared one table,
		// and a dashboard's slug could not be any folder's.
		return " (up to Grafana 11.2 a dashboard's title may not have the slug of any folder's title in the organisation: " +
			"rename that folder)"
	case "version-mismatch":
		return " (someone saved this dashboard while servq was updating it; run servq again)"
	case "name-exists":
		// Grafana 11.3 and later allow equal titles and never say this.
		return " (up to Grafana 11.2 a title is unique in its folder by its slug, so \"servq Overview\" and \"servq-overview\" clash: " +
			"another dashboard of the folder is in the way; rename, move or delete it)"
	case "plugin-dashboard":
		return " (a plugin owns this dashboard uid)"
	}
	return ""
}

func (p *provisioner) prepareRules(in []AlertRule) ([]AlertRule, error) {
	seen := map[string]bool{}
	out := make([]AlertRule, 0, len(in))
	for _, r := range in {
		if !strings.HasPrefix(r.UID, RulePrefix) || !uidRE.MatchString(r.UID) {
			return nil, fmt.Errorf("grafana: alert rule uid %q: want %q and then A-Z a-z 0-9 _ -, 40 at most", r.UID, RulePrefix)
		}
		if seen[r.UID] {
			return nil, fmt.Errorf("grafana: alert rule uid %s given twice", r.UID)
		}
		seen[r.UID] = true
		if r.FolderUID == "" {
			r.FolderUID = p.opt.FolderUID
		}
		if r.RuleGroup == "" {
			r.RuleGroup = p.opt.RuleGroup
		}
		if r.FolderUID != p.opt.FolderUID || r.RuleGroup != p.opt.RuleGroup {
			return nil, fmt.Errorf("grafana: alert rule %s: folder %q group %q, want folder %q group %q",
				r.UID, r.FolderUID, r.RuleGroup, p.opt.FolderUID, p.opt.RuleGroup)
		}
		if r.NoDataState == "" {
			r.NoDataState = "NoData"
		}
		if r.ExecErrState == "" {
			r.ExecErrState = "Error"
		}
		out = append(out, r)
	}
	return out, nil
}

// ruleGroup is the provisioning API's AlertRuleGroup. Rules stay raw so
// that a PUT of the group sends back every field Grafana gave (the PUT
// replaces the group's rules with the ones it carries).
type ruleGroup struct {
	Title     string            `json:"title"`
	FolderUID string            `json:"folderUid"`
	Interval  int64             `json:"interval"` // seconds
	Rules     []json.RawMessage `json:"rules"`
}

const rulesPath = "/api/v1/provisioning/alert-rules"

// rules creates, updates and deletes alert rules, then sets the group's
// interval. st is what readRules found: the group holds no rule that servq
// did not create (or servq has no rules).
//
// Plain net/http: the sdk has no alerting provisioning API. No
// X-Disable-Provenance header is sent: servq owns these rules, so they keep
// the "api" provenance and the UI shows them as provisioned, not editable.
func (p *provisioner) rules(ctx context.Context, want []AlertRule, st *groupState, res *Result) error {
	wrote, moved := false, false
	for _, r := range want {
		path := rulesPath + "/" + r.UID
		have, ok := st.rules[r.UID]
		if !ok {
			// Maybe elsewhere (another group or folder): the PUT moves it,
			// and it keeps the interval of the group it leaves.
			have, ok = st.elsewhere[r.UID]
			moved = moved || ok
			if !ok {
				if err := p.c.do(ctx, http.MethodPost, rulesPath, r, nil); err != nil {
					return fmt.Errorf("grafana: creating alert rule %q (%s): %w", r.Title, r.UID, err)
				}
				res.RulesCreated = append(res.RulesCreated, r.UID)
				wrote = true
				continue
			}
		}
		if ruleCovered(r, have) {
			res.RulesUnchanged = append(res.RulesUnchanged, r.UID)
			continue
		}
		if r.OrgID == 0 {
			r.OrgID = have.OrgID
		}
		if err := p.c.do(ctx, http.MethodPut, path, r, nil); err != nil {
			return fmt.Errorf("grafana: updating alert rule %q (%s): %w%s", r.Title, r.UID, err, writeHint(err))
		}
		res.RulesUpdated = append(res.RulesUpdated, r.UID)
		wrote = true
	}

	keep := map[string]bool{}
	for _, r := range want {
		keep[r.UID] = true
	}
	var stale []string
	for uid := range st.rules {
		// Only servq's own: a rule servq did not create is never touched.
		if !keep[uid] && strings.HasPrefix(uid, RulePrefix) {
			stale = append(stale, uid)
		}
	}
	sort.Strings(stale)
	for _, uid := range stale {
		// Grafana answers 204 for a rule that is already gone.
		err := p.c.do(ctx, http.MethodDelete, rulesPath+"/"+uid, nil, nil)
		if err != nil && !isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("grafana: deleting alert rule %q (%s), which servq no longer generates: %w", st.rules[uid].Title, uid, err)
		}
		res.RulesDeleted = append(res.RulesDeleted, uid)
		wrote = true
	}

	if len(want) == 0 {
		return nil // no group of servq's to set an interval on
	}
	group := st.group
	if wrote || !st.found {
		var err error
		if group, _, err = p.readGroup(ctx, p.groupPath()); err != nil {
			return err
		}
	}
	interval := int64(p.opt.Interval / time.Second)
	// Grafana keeps the interval on each rule and answers the first one's
	// as the group's: a rule moved in by its own PUT keeps its old group's
	// interval, and new rules take the group's or the 60s default, so after
	// a move the group may hold several. The group PUT then sets it on every
	// rule whose interval differs (and on those only).
	if group.Interval == interval && !moved {
		return nil
	}
	// The PUT replaces the whole group and stamps every rule it changes
	// (all of them: the interval is part of each rule) with provenance
	// "api": it must carry servq's rules only. A rule someone added since
	// readRules stops the run instead.
	for _, raw := range group.Rules {
		var r AlertRule
		if err := json.Unmarshal(raw, &r); err != nil || !strings.HasPrefix(r.UID, RulePrefix) {
			return fmt.Errorf("grafana: rule group %q gained rule %q, which servq did not create, during this run: not setting its interval, which would make that rule provisioned; run servq again", p.opt.RuleGroup, r.UID)
		}
	}
	group.Title, group.FolderUID, group.Interval = p.opt.RuleGroup, p.opt.FolderUID, interval
	if group.Rules == nil {
		group.Rules = []json.RawMessage{}
	}
	if err := p.c.do(ctx, http.MethodPut, p.groupPath(), group, nil); err != nil {
		return fmt.Errorf("grafana: setting the interval of rule group %q to %s: %w%s", p.opt.RuleGroup, p.opt.Interval, err, writeHint(err))
	}
	res.RuleGroupUpdated = true
	return nil
}

// readGroup reads the rule group; a missing one is empty.
func (p *provisioner) readGroup(ctx context.Context, path string) (ruleGroup, bool, error) {
	var g ruleGroup
	err := p.c.do(ctx, http.MethodGet, path, nil, &g)
	switch {
	case isStatus(err, http.StatusNotFound):
		return ruleGroup{}, false, nil
	case err != nil:
		return g, false, fmt.Errorf("grafana: reading rule group %q: %w", p.opt.RuleGroup, err)
	}
	return g, true, nil
}

// checkDatasources fails before anything is written when a rule queries a
// data source uid this Grafana does not have, or one that does not speak
// PromQL: the rules would be created and then only ever evaluate to
// errors. A token that may not read data sources (Grafana grants
// datasources:read to admins only by default) skips the check.
func (p *provisioner) checkDatasources(ctx context.Context, rs []AlertRule) error {
	seen := map[string]bool{}
	for _, r := range rs {
		for _, q := range r.Data {
			uid := q.DatasourceUID
			if uid == "" || uid == "__expr__" || seen[uid] {
				continue
			}
			seen[uid] = true
			var ds struct {
				Name string `json:"name"`
				Type string `json:"type"`
			}
			err := p.c.do(ctx, http.MethodGet, "/api/datasources/uid/"+url.PathEscape(uid), nil, &ds)
			switch {
			case isStatus(err, http.StatusNotFound):
				return fmt.Errorf("the alert rules query the data source with uid %q, which this Grafana does not have: pass your Prometheus data source's uid with --grafana.datasource-uid (Connections → Data sources → open it; the uid ends its URL)", uid)
			case isStatus(err, http.StatusForbidden):
				continue
			case err != nil:
				return err
			case !strings.Contains(ds.Type, "prometheus") && !strings.Contains(ds.Type, "victoriametrics"):
				return fmt.Errorf("the data source with uid %q (%s) is of type %q: the alert rules are PromQL and need a Prometheus-compatible data source; pass its uid with --grafana.datasource-uid", uid, ds.Name, ds.Type)
			}
		}
	}
	return nil
}
