package grafana

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Contract tests: servq against the behaviour of each Grafana version it
// supports (see grafanaVersion), one subtest per version.
func forEachVersion(t *testing.T, fn func(t *testing.T, v grafanaVersion)) {
	for _, v := range allVersions {
		t.Run(v.Version, func(t *testing.T) { fn(t, v) })
	}
}

// writes are the non-GET requests seen so far.
func writes(f *fakeGrafana) []string {
	var out []string
	for _, r := range f.takeRequests() {
		if r.Method != http.MethodGet {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// Issue 16, point 1: which role may provision depends on the version; a
// token that may not is refused before anything is written, with the
// requirement of that version.
func TestContractPermissions(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		for _, role := range []string{"Viewer", "Editor", "Admin"} {
			t.Run(role, func(t *testing.T) {
				f := newFakeVersion(t, testToken, v, role)
				ds, rs := input()
				res, err := Provision(context.Background(), testOptions(f), ds, rs)
				ok := role == "Admin" || role == "Editor" && v.EditorProvisions
				if ok {
					if err != nil {
						t.Fatalf("Provision: %v", err)
					}
					if len(res.RulesCreated) != 3 || len(res.DashboardsCreated) != 2 {
						t.Errorf("result %+v", res)
					}
					return
				}
				if err == nil {
					t.Fatal("no error")
				}
				if w := writes(f); len(w) > 0 {
					t.Errorf("wrote before failing: %v", w)
				}
				s := err.Error()
				want := []string{"Grafana " + v.Version, "servq wrote nothing"}
				switch {
				case role == "Viewer":
					want = append(want, "dashboards:create", "Editor role")
				case majorVersion(v.Version) == 10:
					want = append(want, "alert.provisioning:read, alert.provisioning:write", "Admin role on Grafana 10.x",
						"give the service account the Admin role, or upgrade Grafana to 11.0 or later")
				}
				for _, w := range want {
					if !strings.Contains(s, w) {
						t.Errorf("error %q lacks %q", s, w)
					}
				}
				if role == "Viewer" && v.EditorProvisions && strings.Contains(s, "Admin role, or upgrade") {
					t.Errorf("error asks for an upgrade on %s: %s", v.Version, s)
				}
			})
		}
		// Without rules the provisioning API is not needed: an Editor
		// provisions the dashboards on every version.
		t.Run("Editor without rules", func(t *testing.T) {
			f := newFakeVersion(t, testToken, v, "Editor")
			ds, _ := input()
			if _, err := Provision(context.Background(), testOptions(f), ds, nil); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// A Grafana that does not tell the permissions (the endpoint refused):
// the writes decide, and the 403 carries the per-version hint.
func TestContractPermissionsUnknown(t *testing.T) {
	f := newFakeVersion(t, testToken, grafana10, "Editor")
	f.setHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.URL.Path == "/api/access-control/user/permissions" {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		return false
	})
	ds, rs := input()
	_, err := Provision(context.Background(), testOptions(f), ds, rs)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "alert.provisioning:read") ||
		!strings.Contains(err.Error(), "Admin on Grafana 10.x") {
		t.Errorf("error %v", err)
	}
}

// Issue 16, point 2: servq's rules live in a group of their own; runs that
// change the interval leave a user's rule in the same folder as it was:
// provenance none, editable in the UI. servq's own group is provisioned,
// so the UI refuses to edit it.
func TestContractUserRuleStaysEditable(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		f.mu.Lock()
		f.folders["servq"] = &fakeFolder{ID: 2, UID: "servq", Title: "servq", Version: 1}
		f.mu.Unlock()
		f.addUserRule("user-own", "servq", "mine", 60)
		opt := testOptions(f)
		ds, rs := input()
		for _, iv := range []time.Duration{time.Minute, 30 * time.Second, 2 * time.Minute} {
			opt.Interval = iv
			if _, err := Provision(context.Background(), opt, ds, rs); err != nil {
				t.Fatalf("interval %s: %v", iv, err)
			}
			f.mu.Lock()
			u, servqIV := f.rules["user-own"], f.groupInterval([2]string{"servq", "servq"})
			f.mu.Unlock()
			if u["provenance"] != "" || u["ruleGroup"] != "mine" {
				t.Errorf("interval %s: the user's rule became %v", iv, u)
			}
			if servqIV != int64(iv/time.Second) {
				t.Errorf("servq's group interval %d, want %s", servqIV, iv)
			}
			if err := f.uiEditRule("user-own", "mine, edited at "+iv.String()); err != nil {
				t.Errorf("interval %s: the user cannot edit their rule: %v", iv, err)
			}
		}
		for _, r := range f.takeRequests() {
			if strings.Contains(r.Path, "/rule-groups/") && r.Path != "/api/v1/provisioning/folder/servq/rule-groups/servq" {
				t.Errorf("servq requested another group: %s %s", r.Method, r.Path)
			}
			if _, sent := r.Header["X-Disable-Provenance"]; sent {
				t.Errorf("%s %s sent X-Disable-Provenance", r.Method, r.Path)
			}
		}
		f.mu.Lock()
		for _, r := range rs {
			if p := f.rules[r.UID]["provenance"]; p != "api" {
				t.Errorf("servq's rule %s has provenance %v, want api", r.UID, p)
			}
		}
		f.mu.Unlock()
		err := f.uiEditRule(rs[0].UID, "edited")
		if err == nil || !strings.Contains(err.Error(), "request affects resources created via provisioning API") {
			t.Errorf("the UI edited servq's provisioned rule: %v", err)
		}
	})
}

// A rule servq did not create inside servq's group: servq refuses before
// writing (a group PUT would stamp it), names it, and --grafana.rule-group
// moves servq's rules to a group of their own, after which the user's
// rule is editable again.
func TestContractForeignRuleInServqGroup(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		opt := testOptions(f)
		ds, rs := input()
		if _, err := Provision(context.Background(), opt, ds, rs); err != nil {
			t.Fatal(err)
		}
		f.addUserRule("user-own", "servq", "servq", 60) // e.g. through the API
		f.takeRequests()
		opt.Interval = 30 * time.Second
		_, err := Provision(context.Background(), opt, ds, rs)
		if err == nil || !strings.Contains(err.Error(), "servq did not create (user-own)") || !strings.Contains(err.Error(), "--grafana.rule-group") {
			t.Fatalf("error %v", err)
		}
		if w := writes(f); len(w) > 0 {
			t.Errorf("wrote: %v", w)
		}
		if p := f.rules["user-own"]["provenance"]; p != "" {
			t.Errorf("user's rule provenance %v", p)
		}

		opt.RuleGroup = "servq-alerts"
		for i := range rs {
			rs[i].RuleGroup = ""
		}
		res, err := Provision(context.Background(), opt, ds, rs)
		if err != nil || len(res.RulesUpdated) != 3 || !res.RuleGroupUpdated {
			t.Fatalf("move: %+v %v", res, err)
		}
		f.mu.Lock()
		left := f.groupRules([2]string{"servq", "servq"})
		moved := f.groupRules([2]string{"servq", "servq-alerts"})
		iv := f.groupInterval([2]string{"servq", "servq-alerts"})
		f.mu.Unlock()
		if len(left) != 1 || left[0]["uid"] != "user-own" || len(moved) != 3 || iv != 30 {
			t.Errorf("after the move: old group %v, new group %d rules at %ds", left, len(moved), iv)
		}
		if err := f.uiEditRule("user-own", "mine again"); err != nil {
			t.Errorf("the user's rule is not editable after servq left the group: %v", err)
		}
		if res, err := Provision(context.Background(), opt, ds, rs); err != nil || res.Changed() {
			t.Errorf("next run: %+v %v", res, err)
		}
	})
}

// Issue 16, point 3: an interval Grafana refuses is refused before any
// request; Grafana's own refusal (the fake's) is the one Grafana words.
func TestContractIntervalNotMultipleOf10s(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		opt := testOptions(f)
		opt.Interval = 15 * time.Second
		ds, rs := input()
		_, err := Provision(context.Background(), opt, ds, rs)
		if err == nil || !strings.Contains(err.Error(), "multiple of 10s") {
			t.Fatalf("error %v", err)
		}
		if n := len(f.takeRequests()); n != 0 {
			t.Errorf("%d requests", n)
		}
		// What servq avoids: Grafana's 400 on the group.
		opt.Interval = time.Minute
		if _, err := Provision(context.Background(), opt, ds, rs); err != nil {
			t.Fatal(err)
		}
		g := getJSON(t, f, "/api/v1/provisioning/folder/servq/rule-groups/servq")
		g["interval"] = 15
		code, body := send(t, f, http.MethodPut, "/api/v1/provisioning/folder/servq/rule-groups/servq", g, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, "interval (15s) should be non-zero and divided exactly by scheduler interval: 10") {
			t.Errorf("group PUT at 15s: %d %s", code, body)
		}
	})
}

// Issue 16, point 4: up to 11.2 a dashboard whose title has the same slug
// as another's in the folder is refused (412 name-exists) and the other is
// left alone; from 11.3 both exist.
func TestContractTitleClash(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		f.mu.Lock()
		f.folders["servq"] = &fakeFolder{ID: 2, UID: "servq", Title: "servq", Version: 1}
		f.dashes["hand-made"] = &fakeDash{ID: 3, Version: 4, FolderUID: "servq",
			Model: map[string]any{"uid": "hand-made", "title": "Servq: Overview", "id": 3, "version": 4}}
		f.mu.Unlock()
		_, err := Provision(context.Background(), testOptions(f), []Dashboard{dash("servq-overview", "servq overview", "")}, nil)
		if v.UniqueSlugs {
			if err == nil || !strings.Contains(err.Error(), "412") || !strings.Contains(err.Error(), "name-exists") ||
				!strings.Contains(err.Error(), "up to Grafana 11.2 a title is unique in its folder by its slug") {
				t.Fatalf("error %v", err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if d := f.dashes["hand-made"]; d == nil || d.Version != 4 || d.Model["title"] != "Servq: Overview" {
			t.Errorf("the other dashboard was touched: %+v", d)
		}
		if _, ok := f.dashes["servq-overview"]; ok == v.UniqueSlugs {
			t.Errorf("servq-overview stored: %v", ok)
		}
	})
}

// Issue 16, point 5: dashboards and rules held by file provisioning are
// found before anything is written, and the error says how to switch.
func TestContractFileProvisioned(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		ds, rs := input()
		t.Run("dashboard", func(t *testing.T) {
			f := newFakeVersion(t, testToken, v, "Admin")
			f.mu.Lock()
			f.folders["servq"] = &fakeFolder{ID: 2, UID: "servq", Title: "servq", Version: 1}
			f.dashes["servq-queues"] = &fakeDash{ID: 3, Version: 1, FolderUID: "servq", Provisioned: "/var/lib/grafana/dashboards/servq/servq-queues.json",
				Model: map[string]any{"uid": "servq-queues", "title": "servq queues", "id": 3, "version": 1}}
			f.mu.Unlock()
			_, err := Provision(context.Background(), testOptions(f), ds, rs)
			if err == nil || !strings.Contains(err.Error(), "servq-queues.json") || !strings.Contains(err.Error(), "Cannot save provisioned dashboard") ||
				!strings.Contains(err.Error(), "provisioning/dashboards/servq.yaml") {
				t.Fatalf("error %v", err)
			}
			if w := writes(f); len(w) > 0 {
				t.Errorf("wrote: %v", w)
			}
			// What servq avoids: Grafana's refusal.
			code, body := send(t, f, http.MethodPost, "/api/dashboards/db", map[string]any{"dashboard": map[string]any{"uid": "servq-queues", "title": "servq queues", "version": 1}, "folderUid": "servq"}, nil)
			if code != http.StatusBadRequest || !strings.Contains(body, "Cannot save provisioned dashboard") {
				t.Errorf("save: %d %s", code, body)
			}
		})
		t.Run("rule", func(t *testing.T) {
			f := newFakeVersion(t, testToken, v, "Admin")
			f.mu.Lock()
			f.folders["servq"] = &fakeFolder{ID: 2, UID: "servq", Title: "servq", Version: 1}
			f.mu.Unlock()
			f.addUserRule("servq-slo", "servq", "servq", 60)
			f.mu.Lock()
			f.rules["servq-slo"]["provenance"] = "file"
			f.mu.Unlock()
			_, err := Provision(context.Background(), testOptions(f), ds, rs)
			if err == nil || !strings.Contains(err.Error(), `provenance "file"`) || !strings.Contains(err.Error(), "deleteRules") {
				t.Fatalf("error %v", err)
			}
			if w := writes(f); len(w) > 0 {
				t.Errorf("wrote: %v", w)
			}
			code, body := send(t, f, http.MethodPut, rulesPath+"/servq-slo", f.ruleCopy("servq-slo"), nil)
			if code != http.StatusInternalServerError || !strings.Contains(body, "cannot change provenance from 'file' to 'api'") {
				t.Errorf("PUT: %d %s", code, body)
			}
		})
	})
}

// Issue 16, points 6 and 7: the fake answers as Grafana does where servq
// relies on it, on every version; and a second run writes nothing.
func TestContractFakeFaithful(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		ds, rs := input()
		if _, err := Provision(context.Background(), testOptions(f), ds, rs); err != nil {
			t.Fatal(err)
		}
		f.takeRequests()
		if res, err := Provision(context.Background(), testOptions(f), ds, rs); err != nil || res.Changed() {
			t.Errorf("second run: %+v %v", res, err)
		}
		if w := writes(f); len(w) > 0 {
			t.Errorf("second run wrote %v", w)
		}
		if code, body := send(t, f, http.MethodGet, rulesPath+"/nope", nil, nil); code != http.StatusNotFound || body != "" {
			t.Errorf("GET of a missing rule: %d %q", code, body)
		}
		if code, _ := send(t, f, http.MethodDelete, rulesPath+"/nope", nil, nil); code != http.StatusNoContent {
			t.Errorf("DELETE of a missing rule: %d", code)
		}
		// Provenance is told by the single-rule GET only: the group GET
		// builds the group without it.
		if p := getJSON(t, f, rulesPath+"/servq-slo")["provenance"]; p != "api" {
			t.Errorf("rule GET: provenance %v", p)
		}
		for _, r := range getJSON(t, f, "/api/v1/provisioning/folder/servq/rule-groups/servq")["rules"].([]any) {
			if p, ok := r.(map[string]any)["provenance"]; ok {
				t.Errorf("group GET: a rule with provenance %v", p)
			}
		}
		// Provenance "api" cannot be dropped by a later PUT of the single
		// rule with X-Disable-Provenance (a group PUT can: see
		// TestContractGroupPutProvenance).
		code, body := send(t, f, http.MethodPut, rulesPath+"/servq-slo", f.ruleCopy("servq-slo"), map[string]string{"X-Disable-Provenance": "true"})
		if code != http.StatusInternalServerError || !strings.Contains(body, "cannot change provenance from 'api' to ''") {
			t.Errorf("PUT without provenance: %d %s", code, body)
		}
		// A group PUT with no rules deletes them all.
		g := getJSON(t, f, "/api/v1/provisioning/folder/servq/rule-groups/servq")
		g["rules"] = []any{}
		if code, body := send(t, f, http.MethodPut, "/api/v1/provisioning/folder/servq/rule-groups/servq", g, nil); code != http.StatusOK {
			t.Fatalf("empty group PUT: %d %s", code, body)
		}
		if n := len(f.rules); n != 0 {
			t.Errorf("%d rules left after an empty group PUT", n)
		}
	})
}

func send(t *testing.T, f *fakeGrafana, method, path string, body any, header map[string]string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		f.mu.Lock()
		b, err := json.Marshal(body)
		f.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, f.URL()+path, r)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func getJSON(t *testing.T, f *fakeGrafana, path string) map[string]any {
	t.Helper()
	code, body := send(t, f, http.MethodGet, path, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// ruleCopy is a stored rule, copied under the lock.
func (f *fakeGrafana) ruleCopy(uid string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.rules[uid])
}

// groupAt fails unless every rule of the group is evaluated at the
// interval (Grafana keeps it per rule).
func groupAt(t *testing.T, f *fakeGrafana, key [2]string, want time.Duration) {
	t.Helper()
	f.mu.Lock()
	got := f.groupIntervals(key)
	f.mu.Unlock()
	if len(got) != 1 || !got[int64(want/time.Second)] {
		t.Errorf("group %v: rules at intervals %v (s), want all at %s", key, got, want)
	}
}

// Moving servq's rules to another group (--grafana.rule-group) moves them
// one by one, and each keeps its old group's interval; a rule created in
// the same run takes the 60s default. servq sets the interval on all of
// them even when the group's (its first rule's) already matches.
func TestContractMovedRulesTakeTheInterval(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		opt := testOptions(f)
		opt.Interval = 30 * time.Second
		ds, rs := input()
		if _, err := Provision(context.Background(), opt, ds, rs); err != nil {
			t.Fatal(err)
		}
		groupAt(t, f, [2]string{"servq", "servq"}, 30*time.Second)

		opt.RuleGroup, opt.Interval = "servq-alerts", time.Minute
		for i := range rs {
			rs[i].RuleGroup = ""
		}
		// New, and first by uid: the group's interval reads 60s.
		rs = append([]AlertRule{rule("servq-aaa", "New", "1")}, rs...)
		res, err := Provision(context.Background(), opt, ds, rs)
		if err != nil || len(res.RulesCreated) != 1 || len(res.RulesUpdated) != 3 || !res.RuleGroupUpdated {
			t.Fatalf("move: %+v %v", res, err)
		}
		groupAt(t, f, [2]string{"servq", "servq-alerts"}, time.Minute)
		if res, err := Provision(context.Background(), opt, ds, rs); err != nil || res.Changed() {
			t.Errorf("next run: %+v %v", res, err)
		}
	})
}

// Why servq's group must hold servq's rules only: a group PUT that
// changes the interval writes every rule of the group, a body without
// "rules" included, and stamps each with the request's provenance; the
// user's rule is then provisioned and its group no longer editable in the
// UI. A group PUT with X-Disable-Provenance resets "api" to none for the
// rules it writes (the way to make servq's rules editable, until servq
// writes them again), while the single-rule PUT refuses to.
func TestContractGroupPutProvenance(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		ds, rs := input()
		if _, err := Provision(context.Background(), testOptions(f), ds, rs); err != nil {
			t.Fatal(err)
		}
		f.addUserRule("user-own", "servq", "mine", 60)
		const mine = "/api/v1/provisioning/folder/servq/rule-groups/mine"
		if err := f.uiEditRule("user-own", "renamed"); err != nil {
			t.Fatalf("UI edit before: %v", err)
		}
		if code, body := send(t, f, http.MethodPut, mine, map[string]any{"interval": 120}, nil); code != http.StatusOK {
			t.Fatalf("interval-only PUT: %d %s", code, body)
		}
		if u := f.ruleCopy("user-own"); u["provenance"] != "api" || u["title"] != "renamed" {
			t.Errorf("after an interval-only PUT the user's rule is %v", u)
		}
		if err := f.uiEditRule("user-own", "again"); err == nil || !strings.Contains(err.Error(), "provisioning API") {
			t.Errorf("UI edit of a stamped rule: %v", err)
		}

		// Reset through the group, with the header: only rules written.
		const servq = "/api/v1/provisioning/folder/servq/rule-groups/servq"
		g := getJSON(t, f, servq)
		g["interval"] = 120
		if code, body := send(t, f, http.MethodPut, servq, g, map[string]string{"X-Disable-Provenance": "true"}); code != http.StatusOK {
			t.Fatalf("group PUT without provenance: %d %s", code, body)
		}
		for _, r := range rs {
			if p := f.ruleCopy(r.UID)["provenance"]; p != "" {
				t.Errorf("%s: provenance %v after the reset", r.UID, p)
			}
		}
		if err := f.uiEditRule(rs[0].UID, "edited in the UI"); err != nil {
			t.Errorf("UI edit after the reset: %v", err)
		}
		// servq's next run writes its rules (title, interval) back as
		// provisioned.
		res, err := Provision(context.Background(), testOptions(f), ds, rs)
		if err != nil || !res.RuleGroupUpdated {
			t.Fatalf("run after the reset: %+v %v", res, err)
		}
		for _, r := range rs {
			if p := f.ruleCopy(r.UID)["provenance"]; p != "api" {
				t.Errorf("%s: provenance %v after servq's run", r.UID, p)
			}
		}
		groupAt(t, f, [2]string{"servq", "servq"}, time.Minute)

		// File provenance stays refused by the group PUT.
		f.mu.Lock()
		f.rules[rs[0].UID]["provenance"] = "file"
		f.mu.Unlock()
		g = getJSON(t, f, servq)
		g["interval"] = 180
		if code, body := send(t, f, http.MethodPut, servq, g, nil); code != http.StatusInternalServerError ||
			!strings.Contains(body, "cannot update with provided provenance 'api', needs 'file'") {
			t.Errorf("group PUT over a file-provisioned rule: %d %s", code, body)
		}
	})
}

// The UI's save of a provisioned group that changes nothing is accepted
// (Grafana computes the changes first); a missing rule's PUT is 404 with
// an empty body.
func TestContractFakeNoOps(t *testing.T) {
	f := newFakeVersion(t, testToken, grafana12, "Admin")
	ds, rs := input()
	if _, err := Provision(context.Background(), testOptions(f), ds, rs); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	title := f.rules[rs[0].UID]["title"].(string)
	f.mu.Unlock()
	if err := f.uiEditRule(rs[0].UID, title); err != nil {
		t.Errorf("UI save without changes: %v", err)
	}
	if code, body := send(t, f, http.MethodPut, rulesPath+"/nope", f.ruleCopy(rs[0].UID), nil); code != http.StatusNotFound || body != "" {
		t.Errorf("PUT of a missing rule: %d %q", code, body)
	}
	// Grafana looks for the header, not at its value.
	r := f.ruleCopy(rs[0].UID)
	r["uid"] = "user-posted"
	if code, body := send(t, f, http.MethodPost, rulesPath, r, map[string]string{"X-Disable-Provenance": "false"}); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	if p := f.ruleCopy("user-posted")["provenance"]; p != "" {
		t.Errorf("POST with X-Disable-Provenance: false stored provenance %v", p)
	}
}

// Up to 11.2 a dashboard's slug may not be any folder's (400 name-match,
// with a hint); from 11.3 it may. With overwrite (which servq never
// sends) Grafana up to 11.2 saves over the dashboard whose title clashes,
// under that dashboard's uid.
func TestContractTitleClashWithFolderAndTakeover(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		f.mu.Lock()
		f.folders["other"] = &fakeFolder{ID: 9, UID: "other", Title: "Servq: overview", Version: 1}
		f.mu.Unlock()
		_, err := Provision(context.Background(), testOptions(f), []Dashboard{dash("servq-overview", "servq overview", "")}, nil)
		if !v.UniqueSlugs {
			if err != nil {
				t.Fatal(err)
			}
		} else if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "name-match") ||
			!strings.Contains(err.Error(), "may not have the slug of any folder's title") {
			t.Fatalf("error %v", err)
		}

		f.mu.Lock()
		f.dashes["hand-made"] = &fakeDash{ID: 3, Version: 4, FolderUID: "servq",
			Model: map[string]any{"uid": "hand-made", "title": "servq: queues", "id": 3, "version": 4}}
		f.mu.Unlock()
		code, body := send(t, f, http.MethodPost, "/api/dashboards/db", map[string]any{"dashboard": map[string]any{"uid": "servq-queues", "title": "servq queues"},
			"folderUid": "servq", "overwrite": true}, nil)
		if code != http.StatusOK {
			t.Fatalf("save with overwrite: %d %s", code, body)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		_, created := f.dashes["servq-queues"]
		took := f.dashes["hand-made"].Model["title"] == "servq queues"
		if created == v.UniqueSlugs || took != v.UniqueSlugs {
			t.Errorf("overwrite: servq-queues created %v, hand-made taken over %v", created, took)
		}
	})
}

// A dashboard whose file provider allows UI updates can be saved through
// the API, but servq still refuses to share it with a file.
func TestContractFileProvisionedAllowUIUpdates(t *testing.T) {
	f := newFakeVersion(t, testToken, grafana12, "Admin")
	f.mu.Lock()
	f.folders["servq"] = &fakeFolder{ID: 2, UID: "servq", Title: "servq", Version: 1}
	f.dashes["servq-queues"] = &fakeDash{ID: 3, Version: 1, FolderUID: "servq", Provisioned: "servq-queues.json", AllowUIUpdates: true,
		Model: map[string]any{"uid": "servq-queues", "title": "servq queues", "id": 3, "version": 1}}
	f.mu.Unlock()
	ds, _ := input()
	_, err := Provision(context.Background(), testOptions(f), ds, nil)
	if err == nil || !strings.Contains(err.Error(), "unless the provider allows UI updates") {
		t.Fatalf("error %v", err)
	}
	if code, body := send(t, f, http.MethodPost, "/api/dashboards/db", map[string]any{"dashboard": map[string]any{"uid": "servq-queues", "title": "servq queues", "version": 1},
		"folderUid": "servq"}, nil); code != http.StatusOK {
		t.Errorf("save of a dashboard whose provider allows UI updates: %d %s", code, body)
	}
}

// Rules provisioned otherwise than through the API: another provenance
// than "file" gets advice that fits it, and a rule stamped "file" between
// servq's reads and its group PUT fails the PUT with Grafana's group
// message and servq's hint.
func TestContractOtherProvenance(t *testing.T) {
	fastBackoff(t) // Grafana answers the refusal with 500, which is retried
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		ds, rs := input()
		if _, err := Provision(context.Background(), testOptions(f), ds, rs); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.rules["servq-slo"]["provenance"] = "converted_prometheus"
		f.mu.Unlock()
		_, err := Provision(context.Background(), testOptions(f), ds, rs)
		if err == nil || !strings.Contains(err.Error(), `provenance "converted_prometheus" (provisioned by something other than the API)`) ||
			strings.Contains(err.Error(), "deleteRules") {
			t.Fatalf("error %v", err)
		}
		f.mu.Lock()
		f.rules["servq-slo"]["provenance"] = "api"
		f.mu.Unlock()

		f.setHook(func(_ http.ResponseWriter, r *http.Request, _ []byte) bool {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/rule-groups/") {
				f.mu.Lock()
				f.rules["servq-slo"]["provenance"] = "file"
				f.mu.Unlock()
			}
			return false
		})
		opt := testOptions(f)
		opt.Interval = 2 * time.Minute
		_, err = Provision(context.Background(), opt, ds, rs)
		if err == nil || !strings.Contains(err.Error(), "cannot update with provided provenance 'api', needs 'file'") ||
			!strings.Contains(err.Error(), "Switching from file provisioning") {
			t.Fatalf("error %v", err)
		}
	})
}

// Up to 11.2 another folder with servq's folder title refuses servq's
// folder (409, with a hint naming the flag); from 11.3 both exist.
func TestContractFolderTitleClash(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v grafanaVersion) {
		f := newFakeVersion(t, testToken, v, "Admin")
		f.mu.Lock()
		f.folders["hand-made"] = &fakeFolder{ID: 5, UID: "hand-made", Title: "servq", Version: 1}
		f.mu.Unlock()
		ds, rs := input()
		_, err := Provision(context.Background(), testOptions(f), ds, rs)
		if !v.UniqueSlugs {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "--grafana.folder-title") {
			t.Fatalf("error %v", err)
		}
		if w := writes(f); len(w) != 1 || w[0] != "POST /api/folders" {
			t.Errorf("writes %v", w)
		}
		opt := testOptions(f)
		opt.FolderTitle = "servq alerts and dashboards"
		if _, err := Provision(context.Background(), opt, ds, rs); err != nil {
			t.Fatal(err)
		}
	})
}

// An Editor on 11 or later whose organisation took
// alert.provisioning.provenance:write from the role (#85022 made it
// removable): the message names that action, not a role the account has.
func TestContractPermissionsProvenanceRevoked(t *testing.T) {
	for _, v := range []grafanaVersion{grafana11, grafana12} {
		t.Run(v.Version, func(t *testing.T) {
			f := newFakeVersion(t, testToken, v, "Editor")
			f.revoked = []string{"alert.provisioning.provenance:write"}
			ds, rs := input()
			_, err := Provision(context.Background(), testOptions(f), ds, rs)
			if err == nil || !strings.Contains(err.Error(), "lacks alert.provisioning.provenance:write on Grafana "+v.Version) ||
				!strings.Contains(err.Error(), "grant it") {
				t.Fatalf("error %v", err)
			}
			if w := writes(f); len(w) > 0 {
				t.Errorf("wrote %v", w)
			}
		})
	}
}
