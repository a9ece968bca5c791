package grafana

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGrafana follows Grafana's HTTP API for the endpoints servq uses
// (folders, dashboards by uid, alert-rule provisioning, the signed-in
// identity's permissions, health) and the UI's rule-group API, with the
// behaviour of one Grafana version (grafanaVersion): who may use the
// provisioning API, how dashboard titles clash, provenance of rules and
// dashboards, and Grafana's own validation of intervals.
type fakeGrafana struct {
	t       *testing.T
	srv     *httptest.Server
	token   string
	version grafanaVersion
	// role is the basic role of the token's service account: Viewer,
	// Editor or Admin (Grafana's default permissions of each).
	role string
	// revoked are actions taken from the role (Enterprise and Cloud can
	// change what a basic role grants).
	revoked []string

	mu        sync.Mutex
	nextID    int64
	folders   map[string]*fakeFolder
	dashes    map[string]*fakeDash
	rules     map[string]map[string]any // uid → stored ProvisionedAlertRule
	intervals map[string]int64          // rule uid → evaluation interval (s)
	// datasources by uid → type; nil answers 403 as for a token without
	// datasources:read.
	datasources map[string]string
	requests    []fakeRequest

	// hook, when set, may answer a request itself (faults, races).
	hook func(w http.ResponseWriter, r *http.Request, body []byte) bool
}

// grafanaVersion is what differs between the Grafana versions servq
// supports, as far as servq's requests are concerned.
type grafanaVersion struct {
	Version string
	// EditorProvisions: from 11.0 (grafana/grafana#77007, #85022) the
	// alert-rule provisioning API accepts alert.rules:* together with
	// alert.provisioning.provenance:write, both granted to Editor, and
	// alert.rules.provisioning:read/write. Before, it needs
	// alert.provisioning:read/write, which only Admin has.
	EditorProvisions bool
	// UniqueSlugs: up to 11.2 a dashboard's title is unique in its folder
	// by slug (412 name-exists, or a takeover with overwrite); 11.3
	// dropped the constraint (grafana/grafana#90687).
	UniqueSlugs bool
}

var (
	grafana10   = grafanaVersion{Version: "10.2.3", EditorProvisions: false, UniqueSlugs: true}
	grafana11   = grafanaVersion{Version: "11.2.0", EditorProvisions: true, UniqueSlugs: true}
	grafana12   = grafanaVersion{Version: "12.1.1", EditorProvisions: true, UniqueSlugs: false}
	allVersions = []grafanaVersion{grafana10, grafana11, grafana12}
)

// rolePermissions are the permissions (action → scopes) Grafana grants a
// basic role by default, limited to the actions servq's requests need.
func rolePermissions(v grafanaVersion, role string) map[string][]string {
	p := map[string][]string{
		"folders:read":     {"folders:*"},
		"dashboards:read":  {"folders:*", "dashboards:*"},
		"alert.rules:read": {"folders:*"},
	}
	if role == "Viewer" {
		return p
	}
	for _, a := range []string{"folders:write", "dashboards:create", "dashboards:write", "dashboards:delete",
		"alert.rules:create", "alert.rules:write", "alert.rules:delete"} {
		p[a] = []string{"folders:*"}
	}
	p["folders:create"] = []string{""}
	if v.EditorProvisions {
		p["alert.provisioning.provenance:write"] = []string{""}
	}
	if role == "Editor" {
		return p
	}
	for _, a := range []string{"alert.provisioning:read", "alert.provisioning:write", "alert.provisioning.secrets:read"} {
		p[a] = []string{""}
	}
	if v.EditorProvisions {
		p["alert.rules.provisioning:read"], p["alert.rules.provisioning:write"] = []string{""}, []string{""}
	}
	p["datasources:read"] = []string{"datasources:*"}
	return p
}

type fakeFolder struct {
	ID         int64
	UID, Title string
	Version    int64
}

type fakeDash struct {
	ID        int64
	Model     map[string]any
	Version   int64
	FolderUID string
	// Provisioned is the file a file provider loaded it from; Grafana
	// then refuses to save it through the API unless the provider has
	// allowUiUpdates (AllowUIUpdates).
	Provisioned    string
	AllowUIUpdates bool
}

type fakeRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// newFake is a Grafana 11.2 and a token with the Admin role.
func newFake(t *testing.T, token string) *fakeGrafana {
	return newFakeVersion(t, token, grafana11, "Admin")
}

func newFakeVersion(t *testing.T, token string, v grafanaVersion, role string) *fakeGrafana {
	f := &fakeGrafana{
		t: t, token: token, nextID: 1, version: v, role: role,
		folders: map[string]*fakeFolder{}, dashes: map[string]*fakeDash{},
		rules:       map[string]map[string]any{},
		intervals:   map[string]int64{},
		datasources: map[string]string{"prometheus": "prometheus", "prom": "prometheus"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/access-control/user/permissions", f.getPermissions)
	mux.HandleFunc("POST /api/ruler/grafana/api/v1/rules/{folder}", f.postRulerGroup)
	mux.HandleFunc("GET /api/folders/{uid}", f.getFolder)
	mux.HandleFunc("GET /api/datasources/uid/{uid}", f.getDatasource)
	mux.HandleFunc("POST /api/folders", f.postFolder)
	mux.HandleFunc("PUT /api/folders/{uid}", f.putFolder)
	mux.HandleFunc("GET /api/dashboards/uid/{uid}", f.getDash)
	mux.HandleFunc("POST /api/dashboards/db", f.postDash)
	mux.HandleFunc("GET /api/v1/provisioning/alert-rules/{uid}", f.getRule)
	mux.HandleFunc("POST /api/v1/provisioning/alert-rules", f.postRule)
	mux.HandleFunc("PUT /api/v1/provisioning/alert-rules/{uid}", f.putRule)
	mux.HandleFunc("DELETE /api/v1/provisioning/alert-rules/{uid}", f.deleteRule)
	mux.HandleFunc("GET /api/v1/provisioning/folder/{folder}/rule-groups/{group}", f.getGroup)
	mux.HandleFunc("PUT /api/v1/provisioning/folder/{folder}/rule-groups/{group}", f.putGroup)

	// Bind to 127.0.0.1 explicitly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, fakeRequest{r.Method, r.URL.Path, r.Header.Clone(), body})
		hook := f.hook
		f.mu.Unlock()
		if hook != nil && hook(w, r, body) {
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/api/health" { // no authentication
			writeJSON(w, http.StatusOK, map[string]any{"commit": "0123abc", "database": "ok", "version": f.version.Version})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Invalid API key"})
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		f.mu.Lock()
		defer f.mu.Unlock()
		mux.ServeHTTP(w, r)
	})}}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGrafana) URL() string { return f.srv.URL }

func (f *fakeGrafana) setHook(h func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

// takeRequests returns and forgets the requests seen so far.
func (f *fakeGrafana) takeRequests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func msg(w http.ResponseWriter, code int, m string) {
	writeJSON(w, code, map[string]any{"message": m})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		msg(w, http.StatusUnsupportedMediaType, "bad content type "+ct)
		return false
	}
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		msg(w, http.StatusBadRequest, "bad request data")
		return false
	}
	return true
}

func (f *fakeGrafana) id() int64 { f.nextID++; return f.nextID }

// Permissions.

func (f *fakeGrafana) perms() map[string][]string {
	p := rolePermissions(f.version, f.role)
	for _, a := range f.revoked {
		delete(p, a)
	}
	return p
}

func (f *fakeGrafana) has(actions ...string) bool {
	p := f.perms()
	for _, a := range actions {
		if _, ok := p[a]; !ok {
			return false
		}
	}
	return true
}

// denied answers 403 as Grafana's access-control middleware does.
func denied(w http.ResponseWriter, needed string) {
	writeJSON(w, http.StatusForbidden, map[string]any{"accessErrorId": "ACE0123456789", "title": "Access denied",
		"message": "You'll need additional permissions to perform this action. Permissions needed: " + needed})
}

// allow writes a 403 unless the token has every action.
func (f *fakeGrafana) allow(w http.ResponseWriter, actions ...string) bool {
	if f.has(actions...) {
		return true
	}
	denied(w, strings.Join(actions, ", "))
	return false
}

// allowRules applies the provisioning API's authorization of the version.
func (f *fakeGrafana) allowRules(w http.ResponseWriter, write bool) bool {
	v := f.version
	switch {
	case !write && (f.has("alert.provisioning:read") || f.has("alert.provisioning.secrets:read")):
		return true
	case write && f.has("alert.provisioning:write"):
		return true
	case v.EditorProvisions && !write && (f.has("alert.rules.provisioning:read") || f.has("alert.rules:read")):
		return true
	case v.EditorProvisions && write && (f.has("alert.rules.provisioning:write") ||
		f.has("alert.rules:create", "alert.rules:write", "alert.rules:delete", "alert.provisioning.provenance:write")):
		return true
	}
	if write {
		denied(w, "alert.provisioning:write")
	} else {
		denied(w, "alert.provisioning:read")
	}
	return false
}

// getPermissions answers GET /api/access-control/user/permissions: the
// signed-in identity's actions with their scopes.
func (f *fakeGrafana) getPermissions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, f.perms())
}

// Folders.

func (f *fakeGrafana) folderJSON(fo *fakeFolder) map[string]any {
	return map[string]any{"id": fo.ID, "uid": fo.UID, "title": fo.Title, "url": "/dashboards/f/" + fo.UID + "/",
		"hasAcl": false, "canSave": true, "canEdit": true, "canAdmin": true, "version": fo.Version,
		"created": time.Now().UTC().Format(time.RFC3339), "updated": time.Now().UTC().Format(time.RFC3339)}
}

// getDatasource answers as Grafana's GET /api/datasources/uid/:uid.
func (f *fakeGrafana) getDatasource(w http.ResponseWriter, r *http.Request) {
	if f.datasources == nil || !f.has("datasources:read") {
		denied(w, "datasources:read")
		return
	}
	uid := r.PathValue("uid")
	typ, ok := f.datasources[uid]
	if !ok {
		msg(w, http.StatusNotFound, "Data source not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": 1, "uid": uid, "orgId": 1, "name": uid + " data source", "type": typ, "access": "proxy", "url": "http://localhost:9090"})
}

func (f *fakeGrafana) getFolder(w http.ResponseWriter, r *http.Request) {
	if !f.allow(w, "folders:read") {
		return
	}
	fo, ok := f.folders[r.PathValue("uid")]
	if !ok {
		msg(w, http.StatusNotFound, "folder not found")
		return
	}
	writeJSON(w, http.StatusOK, f.folderJSON(fo))
}

// folderTitleTaken answers 409 as Grafana up to 11.2 does when another
// folder (the fake's are all at the top level) has the title; 11.3
// dropped the constraint with the dashboards' one (grafana/grafana#90687).
func (f *fakeGrafana) folderTitleTaken(w http.ResponseWriter, uid, title string) bool {
	if !f.version.UniqueSlugs {
		return false
	}
	for _, o := range f.folders {
		if o.UID != uid && slugify(o.Title) == slugify(title) {
			msg(w, http.StatusConflict, "a folder or dashboard in the general folder with the same name already exists")
			return true
		}
	}
	return false
}

func (f *fakeGrafana) postFolder(w http.ResponseWriter, r *http.Request) {
	if !f.allow(w, "folders:create") {
		return
	}
	var in struct{ UID, Title string }
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Title == "" {
		msg(w, http.StatusBadRequest, "folder title cannot be empty")
		return
	}
	if _, ok := f.folders[in.UID]; ok {
		msg(w, http.StatusConflict, "a folder with the same uid already exists")
		return
	}
	if f.folderTitleTaken(w, in.UID, in.Title) {
		return
	}
	fo := &fakeFolder{ID: f.id(), UID: in.UID, Title: in.Title, Version: 1}
	f.folders[in.UID] = fo
	writeJSON(w, http.StatusOK, f.folderJSON(fo))
}

func (f *fakeGrafana) putFolder(w http.ResponseWriter, r *http.Request) {
	if !f.allow(w, "folders:write") {
		return
	}
	fo, ok := f.folders[r.PathValue("uid")]
	if !ok {
		msg(w, http.StatusNotFound, "folder not found")
		return
	}
	var in struct {
		Title     string
		Version   int64
		Overwrite bool
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if !in.Overwrite && in.Version != fo.Version {
		writeJSON(w, http.StatusPreconditionFailed, map[string]any{"message": "the folder has been changed by someone else", "status": "version-mismatch"})
		return
	}
	if f.folderTitleTaken(w, fo.UID, in.Title) {
		return
	}
	fo.Title = in.Title
	fo.Version++
	writeJSON(w, http.StatusOK, f.folderJSON(fo))
}

// Dashboards.

// slugify is Grafana's dashboard slug: lower case, runs of anything but
// a-z and 0-9 made one "-", none at either end.
func slugify(title string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(title) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(c)
			continue
		}
		dash = true
	}
	return b.String()
}

func (f *fakeGrafana) getDash(w http.ResponseWriter, r *http.Request) {
	if !f.allow(w, "dashboards:read") {
		return
	}
	d, ok := f.dashes[r.PathValue("uid")]
	if !ok {
		msg(w, http.StatusNotFound, "Dashboard not found")
		return
	}
	title, _ := d.Model["title"].(string)
	meta := map[string]any{"type": "db", "canSave": true, "canEdit": true, "slug": slugify(title), "url": "/d/" + r.PathValue("uid") + "/" + slugify(title),
		"version": d.Version, "folderUid": d.FolderUID, "provisioned": d.Provisioned != "", "provisionedExternalId": d.Provisioned}
	if fo, ok := f.folders[d.FolderUID]; ok {
		meta["folderId"], meta["folderTitle"] = fo.ID, fo.Title
	}
	writeJSON(w, http.StatusOK, map[string]any{"dashboard": d.Model, "meta": meta})
}

// postDash saves as Grafana's POST /api/dashboards/db does, in its
// order: title, file provisioning (unless its provider allows UI
// updates), then the store's checks by uid (version-mismatch unless
// overwrite) and, up to 11.2, by slug: a folder anywhere in the org with
// the dashboard's slug is 400 name-match, a dashboard of the same folder
// is 412 name-exists, or with overwrite is taken over (the save goes to
// that dashboard, its uid and id; the posted uid is not created).
// Source: grafana/grafana pkg/services/dashboards (errors.go, and
// getExistingDashboardByTitleAndFolder of the database package, which
// matches the slug against every folder and the folder's dashboards),
// and #90687, which dropped that check in 11.3.
func (f *fakeGrafana) postDash(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Dashboard map[string]any `json:"dashboard"`
		FolderUID string         `json:"folderUid"`
		Overwrite bool           `json:"overwrite"`
		Message   string         `json:"message"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	uid, _ := in.Dashboard["uid"].(string)
	d, exists := f.dashes[uid]
	if (!exists && !f.allow(w, "dashboards:create")) || (exists && !f.allow(w, "dashboards:write")) {
		return
	}
	if in.FolderUID != "" {
		if _, ok := f.folders[in.FolderUID]; !ok {
			msg(w, http.StatusBadRequest, "folder not found")
			return
		}
	}
	title, _ := in.Dashboard["title"].(string)
	if title == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"status": "empty-name", "message": "Dashboard title cannot be empty"})
		return
	}
	if exists && d.Provisioned != "" && !d.AllowUIUpdates {
		msg(w, http.StatusBadRequest, "Cannot save provisioned dashboard")
		return
	}
	var posted int64
	if v, ok := in.Dashboard["version"].(json.Number); ok {
		posted, _ = v.Int64()
	}
	if exists && posted != d.Version && !in.Overwrite {
		writeJSON(w, http.StatusPreconditionFailed, map[string]any{"status": "version-mismatch",
			"message": "The dashboard has been changed by someone else"})
		return
	}
	if f.version.UniqueSlugs {
		for _, fo := range f.folders {
			if slugify(fo.Title) == slugify(title) {
				writeJSON(w, http.StatusBadRequest, map[string]any{"status": "name-match", "message": "Dashboard name cannot be the same as folder"})
				return
			}
		}
		for ouid, o := range f.dashes {
			if ouid == uid || o.FolderUID != in.FolderUID || slugify(o.Model["title"].(string)) != slugify(title) {
				continue
			}
			if !in.Overwrite {
				writeJSON(w, http.StatusPreconditionFailed, map[string]any{"status": "name-exists",
					"message": "A dashboard with the same name in the folder already exists"})
				return
			}
			uid, d, exists = ouid, o, true // taken over
			in.Dashboard["uid"] = ouid
			break
		}
	}
	if !exists {
		if _, hasID := in.Dashboard["id"]; hasID && in.Dashboard["id"] != nil {
			msg(w, http.StatusNotFound, "Dashboard not found")
			return
		}
		d = &fakeDash{ID: f.id()}
		f.dashes[uid] = d
	}
	d.Version++
	d.FolderUID = in.FolderUID
	d.Model = in.Dashboard
	d.Model["id"], d.Model["version"] = d.ID, d.Version
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "uid": uid, "url": "/d/" + uid + "/" + slugify(title),
		"status": "success", "version": d.Version, "slug": slugify(title)})
}

// Alert rules.
//
// Grafana keeps the evaluation interval on each rule (a group has no row
// of its own): a group's interval is its first rule's, a group PUT sets it
// on every rule it writes, a rule created by POST takes its group's (or
// the 60s default), and a rule moved by PUT of the single rule keeps the
// interval of the group it came from (grafana/grafana
// pkg/services/ngalert/provisioning/alert_rules.go, CreateAlertRule and
// UpdateAlertRule). The fake keeps them the same way, in intervals.

var ruleRequired = []string{"folderUID", "ruleGroup", "title", "condition", "data", "noDataState", "execErrState", "for"}

// defaultInterval is Grafana's [unified_alerting] default evaluation
// interval, which a rule created in a new group gets.
const defaultInterval = 60

func (f *fakeGrafana) validRule(w http.ResponseWriter, rule map[string]any) bool {
	for _, k := range ruleRequired {
		if _, ok := rule[k]; !ok {
			msg(w, http.StatusBadRequest, "invalid alert rule: "+k+" is missing")
			return false
		}
	}
	if _, ok := f.folders[rule["folderUID"].(string)]; !ok {
		msg(w, http.StatusBadRequest, "invalid alert rule: folder does not exist")
		return false
	}
	return true
}

// provenance is what a provisioning API write stamps: "api", or none
// when the request has the header X-Disable-Provenance, whatever its value
// ("false" too: Grafana's determineProvenance only looks for the header).
func provenance(r *http.Request) string {
	if _, disabled := r.Header[http.CanonicalHeaderKey("X-Disable-Provenance")]; disabled {
		return ""
	}
	return "api"
}

// provenanceChange refuses what Grafana refuses on the single-rule PUT: a
// rule with a provenance can only be written with the same one (a rule
// without can take any). Grafana 10 to 12 answer 500.
func provenanceChange(w http.ResponseWriter, stored, requested string) bool {
	if stored == requested || stored == "" {
		return true
	}
	msg(w, http.StatusInternalServerError, fmt.Sprintf("cannot change provenance from '%s' to '%s'", stored, requested))
	return false
}

// groupProvenanceChange is the rule group PUT's laxer check
// (CanUpdateProvenanceInRuleGroup, since grafana/grafana#63650): as for a
// single rule, and "api" may also be reset to none (X-Disable-Provenance),
// which "calling this endpoint will change provenance for all alert rules
// within the alert group" documents. File provenance stays refused.
func groupProvenanceChange(stored, requested string) bool {
	return stored == requested || stored == "" || requested == "" && stored == "api"
}

func (f *fakeGrafana) storeRule(rule map[string]any, id any, prov string, interval int64) {
	uid := rule["uid"].(string)
	rule["id"] = id
	rule["orgID"] = json.Number("1")
	rule["updated"] = time.Now().UTC().Format(time.RFC3339)
	rule["notification_settings"] = nil
	rule["provenance"] = prov
	f.rules[uid] = rule
	f.intervals[uid] = interval
}

// addUserRule stores a rule as a user creates it in the UI: no
// provenance.
func (f *fakeGrafana) addUserRule(uid, folder, group string, interval int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[uid] = map[string]any{"uid": uid, "folderUID": folder, "ruleGroup": group, "title": "mine " + uid,
		"condition": "A", "data": []any{}, "noDataState": "OK", "execErrState": "OK", "for": "0s", "provenance": ""}
	f.intervals[uid] = interval
}

func (f *fakeGrafana) groupRules(key [2]string) []map[string]any {
	var out []map[string]any
	for _, r := range f.rules {
		if r["folderUID"] == key[0] && r["ruleGroup"] == key[1] {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["uid"].(string) < out[j]["uid"].(string) })
	return out
}

// groupInterval is what Grafana answers as the group's interval: its
// first rule's (0: no such group). Callers hold f.mu.
func (f *fakeGrafana) groupInterval(key [2]string) int64 {
	rules := f.groupRules(key)
	if len(rules) == 0 {
		return 0
	}
	return f.intervals[rules[0]["uid"].(string)]
}

// groupIntervals are the distinct intervals of a group's rules; more than
// one means the group is evaluated at several intervals, which only a
// single-rule move produces. Callers hold f.mu.
func (f *fakeGrafana) groupIntervals(key [2]string) map[int64]bool {
	out := map[int64]bool{}
	for _, r := range f.groupRules(key) {
		out[f.intervals[r["uid"].(string)]] = true
	}
	return out
}

// getRule: Grafana answers a missing rule with 404 and an empty body.
func (f *fakeGrafana) getRule(w http.ResponseWriter, r *http.Request) {
	if !f.allowRules(w, false) {
		return
	}
	rule, ok := f.rules[r.PathValue("uid")]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	out := maps.Clone(rule)
	if provOf(rule) == "" {
		delete(out, "provenance") // omitempty
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *fakeGrafana) postRule(w http.ResponseWriter, r *http.Request) {
	if !f.allowRules(w, true) {
		return
	}
	var rule map[string]any
	if !decodeBody(w, r, &rule) || !f.validRule(w, rule) {
		return
	}
	uid, _ := rule["uid"].(string)
	if _, ok := f.rules[uid]; ok || uid == "" {
		msg(w, http.StatusConflict, "a rule with this uid already exists")
		return
	}
	interval := f.groupInterval([2]string{rule["folderUID"].(string), rule["ruleGroup"].(string)})
	if interval == 0 {
		interval = defaultInterval
	}
	f.storeRule(rule, f.id(), provenance(r), interval)
	writeJSON(w, http.StatusCreated, rule)
}

// putRule updates one rule, possibly moving it to another group or folder;
// it keeps its interval. A missing rule is 404 with an empty body.
func (f *fakeGrafana) putRule(w http.ResponseWriter, r *http.Request) {
	if !f.allowRules(w, true) {
		return
	}
	uid := r.PathValue("uid")
	old, ok := f.rules[uid]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var rule map[string]any
	if !decodeBody(w, r, &rule) || !f.validRule(w, rule) || !provenanceChange(w, provOf(old), provenance(r)) {
		return
	}
	rule["uid"] = uid
	f.storeRule(rule, old["id"], provenance(r), f.intervals[uid])
	writeJSON(w, http.StatusOK, rule)
}

// deleteRule: deleting a rule that does not exist is a success (204).
func (f *fakeGrafana) deleteRule(w http.ResponseWriter, r *http.Request) {
	if !f.allowRules(w, true) {
		return
	}
	uid := r.PathValue("uid")
	if old, ok := f.rules[uid]; ok {
		if stored := provOf(old); stored != "" && stored != provenance(r) {
			writeJSON(w, http.StatusConflict, map[string]any{"messageId": "alerting.provenanceMismatch",
				"message": fmt.Sprintf("cannot delete with provided provenance '%s', needs '%s'", provenance(r), stored)})
			return
		}
		delete(f.rules, uid)
		delete(f.intervals, uid)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeGrafana) getGroup(w http.ResponseWriter, r *http.Request) {
	if !f.allowRules(w, false) {
		return
	}
	key := [2]string{r.PathValue("folder"), r.PathValue("group")}
	rules := f.groupRules(key)
	if len(rules) == 0 {
		msg(w, http.StatusNotFound, "rule group not found")
		return
	}
	// Grafana builds the group without provenance (GetRuleGroup), so its
	// rules carry none, whatever each rule's is.
	out := make([]map[string]any, 0, len(rules))
	for _, rule := range rules {
		c := maps.Clone(rule)
		delete(c, "provenance")
		out = append(out, c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"title": key[1], "folderUid": key[0], "interval": f.groupInterval(key), "rules": out})
}

// ruleChanged: the fields a user or servq sets differ (Grafana's
// bookkeeping aside).
func ruleChanged(old, in map[string]any) bool {
	clean := func(m map[string]any) string {
		c := maps.Clone(m)
		for _, k := range []string{"id", "orgID", "updated", "provenance", "notification_settings"} {
			delete(c, k)
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	return clean(old) != clean(in)
}

// putGroup replaces the group as Grafana's ReplaceRuleGroup does. The
// interval must be a positive multiple of the 10s base interval. The rules
// in the body replace the group's: rules left out are deleted, so an empty
// list deletes them all, while a body without "rules" (or null) keeps them
// and sets the interval only. A rule of another group is moved in. Only
// what changes is written: a new, moved or changed rule, and every rule
// whose interval changes, takes the request's provenance; unchanged rules
// keep theirs. Deletions are checked before updates, as Grafana does.
// Source: grafana/grafana pkg/services/ngalert/provisioning/alert_rules.go
// (ReplaceRuleGroup, calcDelta, persistDelta).
func (f *fakeGrafana) putGroup(w http.ResponseWriter, r *http.Request) {
	if !f.allowRules(w, true) {
		return
	}
	key := [2]string{r.PathValue("folder"), r.PathValue("group")}
	var in struct {
		Title     string            `json:"title"`
		FolderUID string            `json:"folderUid"`
		Interval  int64             `json:"interval"`
		Rules     *[]map[string]any `json:"rules"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Interval <= 0 || in.Interval%10 != 0 {
		msg(w, http.StatusBadRequest, fmt.Sprintf("invalid alert rule: interval (%s) should be non-zero and divided exactly by scheduler interval: 10",
			time.Duration(in.Interval)*time.Second))
		return
	}
	prov := provenance(r)
	old := map[string]map[string]any{}
	for _, o := range f.groupRules(key) {
		old[o["uid"].(string)] = o
	}
	var body []map[string]any
	if in.Rules == nil {
		for _, o := range f.groupRules(key) {
			body = append(body, maps.Clone(o))
		}
	} else {
		body = *in.Rules
	}
	type write struct {
		rule map[string]any
		prov string
	}
	var writes []write
	for _, rule := range body {
		rule["folderUID"], rule["ruleGroup"] = key[0], key[1]
		uid, _ := rule["uid"].(string)
		if uid == "" {
			msg(w, http.StatusBadRequest, "invalid alert rule: uid is missing")
			return
		}
		delete(old, uid)
		o, exists := f.rules[uid] // in this group or, to be moved, in another
		switch {
		case !exists:
			writes = append(writes, write{rule, prov})
		case !ruleChanged(o, rule) && f.intervals[uid] == in.Interval:
			// not part of Grafana's delta: left as it is
		default:
			writes = append(writes, write{rule, provOf(o)})
		}
	}
	for _, o := range old { // deleted by the PUT
		if stored := provOf(o); !groupProvenanceChange(stored, prov) {
			msg(w, http.StatusInternalServerError, fmt.Sprintf("cannot delete with provided provenance '%s', needs '%s'", prov, stored))
			return
		}
	}
	for i, wr := range writes {
		if _, exists := f.rules[wr.rule["uid"].(string)]; exists && !groupProvenanceChange(wr.prov, prov) {
			msg(w, http.StatusInternalServerError, fmt.Sprintf("cannot update with provided provenance '%s', needs '%s'", prov, wr.prov))
			return
		}
		writes[i].prov = prov
	}
	for uid := range old {
		delete(f.rules, uid)
		delete(f.intervals, uid)
	}
	for _, wr := range writes {
		id := wr.rule["id"]
		if o, ok := f.rules[wr.rule["uid"].(string)]; ok {
			id = o["id"]
		}
		if id == nil {
			id = f.id()
		}
		f.storeRule(wr.rule, id, wr.prov, in.Interval)
	}
	in.Title, in.FolderUID = key[1], key[0]
	writeJSON(w, http.StatusOK, in) // Grafana echoes the request
}

// postRulerGroup is the UI's way to save a rule group (the ruler API):
// the body is the whole group, {"name", "interval", "rules":
// [{"grafana_alert": {"uid", "title"}}]}. As in Grafana's ruler, the
// interval is validated first, a save that changes nothing is accepted,
// and one that changes anything in a group holding a rule with a
// provenance is refused (400): the UI cannot edit a provisioned group,
// nor any rule in it.
func (f *fakeGrafana) postRulerGroup(w http.ResponseWriter, r *http.Request) {
	if !f.allow(w, "alert.rules:write") {
		return
	}
	var in struct {
		Name     string `json:"name"`
		Interval string `json:"interval"`
		Rules    []struct {
			GrafanaAlert struct {
				UID   string `json:"uid"`
				Title string `json:"title"`
			} `json:"grafana_alert"`
		} `json:"rules"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	iv, err := time.ParseDuration(in.Interval)
	if err != nil || iv <= 0 || iv%(10*time.Second) != 0 {
		msg(w, http.StatusBadRequest, fmt.Sprintf("rule evaluation interval %d should be multiple of the base interval of 10 seconds", int64(iv/time.Second)))
		return
	}
	key := [2]string{r.PathValue("folder"), in.Name}
	seconds := int64(iv / time.Second)
	keep := map[string]bool{}
	changed := false
	for _, ru := range in.Rules {
		o, ok := f.rules[ru.GrafanaAlert.UID]
		if !ok || o["folderUID"] != key[0] || o["ruleGroup"] != key[1] {
			msg(w, http.StatusNotFound, "failed to update rule group: failed to update rule with UID "+ru.GrafanaAlert.UID+" because could not find alert rule")
			return
		}
		keep[ru.GrafanaAlert.UID] = true
		changed = changed || o["title"] != ru.GrafanaAlert.Title || f.intervals[ru.GrafanaAlert.UID] != seconds
	}
	group := f.groupRules(key)
	changed = changed || len(keep) != len(group)
	if !changed {
		writeJSON(w, http.StatusAccepted, map[string]any{"message": "no changes detected in the rule group"})
		return
	}
	for _, o := range group {
		if provOf(o) != "" {
			msg(w, http.StatusBadRequest, fmt.Sprintf("failed to update rule group: request affects resources created via provisioning API: alert rule group [{orgID: 1, namespaceUID: %s, groupName: %s}]", key[0], key[1]))
			return
		}
	}
	for _, ru := range in.Rules {
		f.rules[ru.GrafanaAlert.UID]["title"] = ru.GrafanaAlert.Title
		f.intervals[ru.GrafanaAlert.UID] = seconds
	}
	for _, o := range group {
		if uid := o["uid"].(string); !keep[uid] {
			delete(f.rules, uid)
			delete(f.intervals, uid)
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"message": "rule group updated successfully"})
}

// uiEditRule renames a rule through the UI's API, as a user would.
func (f *fakeGrafana) uiEditRule(uid, title string) error {
	f.mu.Lock()
	rule := f.rules[uid]
	if rule == nil {
		f.mu.Unlock()
		return fmt.Errorf("no rule %s", uid)
	}
	key := [2]string{rule["folderUID"].(string), rule["ruleGroup"].(string)}
	var rules []map[string]any
	for _, o := range f.groupRules(key) {
		t := o["title"]
		if o["uid"] == uid {
			t = title
		}
		rules = append(rules, map[string]any{"grafana_alert": map[string]any{"uid": o["uid"], "title": t}})
	}
	iv := f.groupInterval(key)
	f.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"name": key[1], "interval": fmt.Sprintf("%ds", iv), "rules": rules})
	req, _ := http.NewRequest(http.MethodPost, f.URL()+"/api/ruler/grafana/api/v1/rules/"+key[0], strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return nil
}

// provOf is a stored rule's provenance ("" for none).
func provOf(rule map[string]any) string {
	p, _ := rule["provenance"].(string)
	return p
}
