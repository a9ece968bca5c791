package grafana

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGrafana follows Grafana 10's documented HTTP API for the endpoints
// servq uses: folders, dashboards by uid, alert-rule provisioning.
type fakeGrafana struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu      sync.Mutex
	nextID  int64
	folders map[string]*fakeFolder
	dashes  map[string]*fakeDash
	rules   map[string]map[string]any // uid → stored ProvisionedAlertRule
	groups  map[[2]string]int64       // folder uid, group → interval (s)
	// datasources by uid → type; nil answers 403 as for a token without
	// datasources:read.
	datasources map[string]string
	requests    []fakeRequest

	// hook, when set, may answer a request itself (faults, races).
	hook func(w http.ResponseWriter, r *http.Request, body []byte) bool
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
}

type fakeRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newFake(t *testing.T, token string) *fakeGrafana {
	f := &fakeGrafana{
		t: t, token: token, nextID: 1,
		folders: map[string]*fakeFolder{}, dashes: map[string]*fakeDash{},
		rules:       map[string]map[string]any{},
		groups:      map[[2]string]int64{},
		datasources: map[string]string{"prometheus": "prometheus", "prom": "prometheus"},
	}
	mux := http.NewServeMux()
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

// Folders.

func (f *fakeGrafana) folderJSON(fo *fakeFolder) map[string]any {
	return map[string]any{"id": fo.ID, "uid": fo.UID, "title": fo.Title, "url": "/dashboards/f/" + fo.UID + "/",
		"hasAcl": false, "canSave": true, "canEdit": true, "canAdmin": true, "version": fo.Version,
		"created": time.Now().UTC().Format(time.RFC3339), "updated": time.Now().UTC().Format(time.RFC3339)}
}

// getDatasource answers as Grafana's GET /api/datasources/uid/:uid.
func (f *fakeGrafana) getDatasource(w http.ResponseWriter, r *http.Request) {
	if f.datasources == nil {
		msg(w, http.StatusForbidden, "You'll need additional permissions to perform this action. Permissions needed: datasources:read")
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
	fo, ok := f.folders[r.PathValue("uid")]
	if !ok {
		msg(w, http.StatusNotFound, "folder not found")
		return
	}
	writeJSON(w, http.StatusOK, f.folderJSON(fo))
}

func (f *fakeGrafana) postFolder(w http.ResponseWriter, r *http.Request) {
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
	fo := &fakeFolder{ID: f.id(), UID: in.UID, Title: in.Title, Version: 1}
	f.folders[in.UID] = fo
	writeJSON(w, http.StatusOK, f.folderJSON(fo))
}

func (f *fakeGrafana) putFolder(w http.ResponseWriter, r *http.Request) {
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
	fo.Title = in.Title
	fo.Version++
	writeJSON(w, http.StatusOK, f.folderJSON(fo))
}

// Dashboards.

func (f *fakeGrafana) getDash(w http.ResponseWriter, r *http.Request) {
	d, ok := f.dashes[r.PathValue("uid")]
	if !ok {
		msg(w, http.StatusNotFound, "Dashboard not found")
		return
	}
	meta := map[string]any{"type": "db", "canSave": true, "canEdit": true, "slug": "x", "url": "/d/" + r.PathValue("uid") + "/x",
		"version": d.Version, "folderUid": d.FolderUID, "provisioned": false}
	if fo, ok := f.folders[d.FolderUID]; ok {
		meta["folderId"], meta["folderTitle"] = fo.ID, fo.Title
	}
	writeJSON(w, http.StatusOK, map[string]any{"dashboard": d.Model, "meta": meta})
}

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
	if in.Overwrite {
		// Grafana would then take another dashboard of the same title
		// over; servq never asks for it, so the fake does not model it.
		msg(w, http.StatusBadRequest, "fake: overwrite=true is not modelled")
		return
	}
	if in.FolderUID != "" {
		if _, ok := f.folders[in.FolderUID]; !ok {
			msg(w, http.StatusBadRequest, "folder not found")
			return
		}
	}
	uid, _ := in.Dashboard["uid"].(string)
	title, _ := in.Dashboard["title"].(string)
	if title == "" {
		msg(w, http.StatusBadRequest, "Dashboard title cannot be empty")
		return
	}
	for ouid, o := range f.dashes {
		if ouid != uid && o.FolderUID == in.FolderUID && o.Model["title"] == title {
			writeJSON(w, http.StatusPreconditionFailed, map[string]any{"status": "name-exists",
				"message": "A dashboard with the same name in the folder already exists"})
			return
		}
	}
	d, exists := f.dashes[uid]
	var posted int64
	if v, ok := in.Dashboard["version"].(json.Number); ok {
		posted, _ = v.Int64()
	}
	if exists && posted != d.Version {
		writeJSON(w, http.StatusPreconditionFailed, map[string]any{"status": "version-mismatch",
			"message": "The dashboard has been changed by someone else"})
		return
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
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "uid": uid, "url": "/d/" + uid + "/x",
		"status": "success", "version": d.Version, "slug": "x"})
}

// Alert rules.

var ruleRequired = []string{"folderUID", "ruleGroup", "title", "condition", "data", "noDataState", "execErrState", "for"}

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

func (f *fakeGrafana) storeRule(r *http.Request, rule map[string]any, id any) {
	uid := rule["uid"].(string)
	rule["id"] = id
	rule["orgID"] = json.Number("1")
	rule["updated"] = time.Now().UTC().Format(time.RFC3339)
	rule["notification_settings"] = nil
	prov := "api"
	if r.Header.Get("X-Disable-Provenance") != "" {
		prov = ""
	}
	rule["provenance"] = prov
	f.rules[uid] = rule
	key := [2]string{rule["folderUID"].(string), rule["ruleGroup"].(string)}
	if _, ok := f.groups[key]; !ok {
		f.groups[key] = 60 // Grafana's default interval for a new group
	}
	f.dropEmptyGroups()
}

func (f *fakeGrafana) dropEmptyGroups() {
	for key := range f.groups {
		if len(f.groupRules(key)) == 0 {
			delete(f.groups, key)
		}
	}
}

func (f *fakeGrafana) groupRules(key [2]string) []map[string]any {
	var out []map[string]any
	for _, r := range f.rules {
		if r["folderUID"] == key[0] && r["ruleGroup"] == key[1] {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeGrafana) getRule(w http.ResponseWriter, r *http.Request) {
	rule, ok := f.rules[r.PathValue("uid")]
	if !ok {
		msg(w, http.StatusNotFound, "rule not found")
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (f *fakeGrafana) postRule(w http.ResponseWriter, r *http.Request) {
	var rule map[string]any
	if !decodeBody(w, r, &rule) || !f.validRule(w, rule) {
		return
	}
	uid, _ := rule["uid"].(string)
	if _, ok := f.rules[uid]; ok || uid == "" {
		msg(w, http.StatusConflict, "a rule with this uid already exists")
		return
	}
	f.storeRule(r, rule, f.id())
	writeJSON(w, http.StatusCreated, rule)
}

func (f *fakeGrafana) putRule(w http.ResponseWriter, r *http.Request) {
	old, ok := f.rules[r.PathValue("uid")]
	if !ok {
		msg(w, http.StatusNotFound, "rule not found")
		return
	}
	var rule map[string]any
	if !decodeBody(w, r, &rule) || !f.validRule(w, rule) {
		return
	}
	rule["uid"] = r.PathValue("uid")
	f.storeRule(r, rule, old["id"])
	writeJSON(w, http.StatusOK, rule)
}

func (f *fakeGrafana) deleteRule(w http.ResponseWriter, r *http.Request) {
	if _, ok := f.rules[r.PathValue("uid")]; !ok {
		msg(w, http.StatusNotFound, "rule not found")
		return
	}
	delete(f.rules, r.PathValue("uid"))
	f.dropEmptyGroups()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeGrafana) getGroup(w http.ResponseWriter, r *http.Request) {
	key := [2]string{r.PathValue("folder"), r.PathValue("group")}
	interval, ok := f.groups[key]
	if !ok {
		msg(w, http.StatusNotFound, "rule group not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"title": key[1], "folderUid": key[0], "interval": interval, "rules": f.groupRules(key)})
}

// putGroup replaces the group: its interval, and its rules with the ones
// in the body (rules left out are deleted), as Grafana 10+ does.
func (f *fakeGrafana) putGroup(w http.ResponseWriter, r *http.Request) {
	key := [2]string{r.PathValue("folder"), r.PathValue("group")}
	var in struct {
		Title     string           `json:"title"`
		FolderUID string           `json:"folderUid"`
		Interval  int64            `json:"interval"`
		Rules     []map[string]any `json:"rules"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Interval <= 0 || in.Interval%10 != 0 {
		msg(w, http.StatusBadRequest, fmt.Sprintf("invalid interval %d: must be a positive multiple of 10s", in.Interval))
		return
	}
	if len(in.Rules) == 0 {
		msg(w, http.StatusBadRequest, "rule group has no rules")
		return
	}
	for _, old := range f.groupRules(key) {
		delete(f.rules, old["uid"].(string))
	}
	for _, rule := range in.Rules {
		rule["folderUID"], rule["ruleGroup"] = key[0], key[1]
		f.storeRule(r, rule, rule["id"])
	}
	f.groups[key] = in.Interval
	writeJSON(w, http.StatusOK, map[string]any{"title": key[1], "folderUid": key[0], "interval": in.Interval, "rules": f.groupRules(key)})
}
