package grafana

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/servq/servq/config"
)

const testToken = "glsa_TESTtoken_0123456789abcdef"

func testOptions(f *fakeGrafana) Options {
	return Options{
		URL: f.URL(), Token: config.Secret(testToken),
		FolderUID: "servq", FolderTitle: "servq",
		RuleGroup: "servq", Interval: time.Minute,
	}
}

func dash(uid, title string, extra string) Dashboard {
	return Dashboard{UID: uid, Title: title, JSON: []byte(fmt.Sprintf(
		`{"uid":%q,"title":%q,"schemaVersion":39,"tags":["servq"],"panels":[{"id":1,"type":"timeseries","title":"p","targets":[{"expr":"servq_up","refId":"A"}]}]%s}`,
		uid, title, extra))}
}

func rule(uid, title, threshold string) AlertRule {
	return AlertRule{
		UID: uid, Title: title, Condition: "C",
		Data: []AlertQuery{
			{RefID: "A", RelativeTimeRange: RelativeTimeRange{From: 600}, DatasourceUID: "prom",
				Model: json.RawMessage(`{"expr":"servq_queue_waiting","refId":"A"}`)},
			{RefID: "B", DatasourceUID: "__expr__", Model: json.RawMessage(`{"type":"reduce","expression":"A","reducer":"last","refId":"B"}`)},
			{RefID: "C", DatasourceUID: "__expr__", Model: json.RawMessage(`{"type":"threshold","expression":"B","conditions":[{"evaluator":{"type":"gt","params":[` + threshold + `]}}],"refId":"C"}`)},
		},
		For:         model.Duration(5 * time.Minute),
		Labels:      map[string]string{"severity": "page"},
		Annotations: map[string]string{"summary": title},
	}
}

func input() ([]Dashboard, []AlertRule) {
	return []Dashboard{dash("servq-overview", "servq overview", ""), dash("servq-queues", "servq queues", "")},
		[]AlertRule{rule("servq-waiting", "Callers waiting", "10"), rule("servq-slo", "SLO burn", "14.4"), rule("servq-stale", "Stale source", "1")}
}

func sorted(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }

func keysOf(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// TestFirstRunCreatesEverything: folder, dashboards and rules are created in
// the right folder and group, with documented request shapes and headers.
func TestFirstRunCreatesEverything(t *testing.T) {
	f := newFake(t, testToken)
	ds, rs := input()
	res, err := Provision(context.Background(), testOptions(f), ds, rs)
	if err != nil {
		t.Fatal(err)
	}
	if !res.FolderCreated || len(res.DashboardsCreated) != 2 || len(res.RulesCreated) != 3 ||
		len(res.DashboardsUpdated)+len(res.RulesUpdated)+len(res.RulesDeleted) != 0 || !res.Changed() {
		t.Errorf("result %+v", res)
	}

	// Stored state.
	if fo := f.folders["servq"]; fo == nil || fo.Title != "servq" {
		t.Fatalf("folder %+v", fo)
	}
	for _, d := range ds {
		got := f.dashes[d.UID]
		if got == nil || got.FolderUID != "servq" || got.Version != 1 || got.Model["title"] != d.Title {
			t.Errorf("dashboard %s stored as %+v", d.UID, got)
		}
	}
	for _, r := range rs {
		got := f.rules[r.UID]
		if got == nil || got["folderUID"] != "servq" || got["ruleGroup"] != "servq" || got["title"] != r.Title || got["provenance"] != "api" {
			t.Errorf("rule %s stored as %v", r.UID, got)
		}
	}
	// Created with Grafana's default interval, then set to ours.
	if iv := f.groupInterval([2]string{"servq", "servq"}); iv != 60 {
		t.Errorf("group interval %d", iv)
	}

	// Request shapes.
	var posts = map[string]int{}
	for _, r := range f.takeRequests() {
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, got)
		}
		if _, sent := r.Header["X-Disable-Provenance"]; sent {
			t.Errorf("%s %s: X-Disable-Provenance sent", r.Method, r.Path)
		}
		if r.Method == http.MethodGet {
			continue
		}
		posts[r.Method+" "+r.Path]++
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", r.Method, r.Path, ct)
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("%s %s: body %s", r.Method, r.Path, r.Body)
		}
		switch r.Path {
		case "/api/folders":
			if body["uid"] != "servq" || body["title"] != "servq" {
				t.Errorf("folder body %s", r.Body)
			}
		case "/api/dashboards/db":
			if k := keysOf(body); !slices.Equal(k, []string{"dashboard", "folderUid", "message", "overwrite"}) {
				t.Errorf("dashboard body keys %v", k)
			}
			d := body["dashboard"].(map[string]any)
			if body["folderUid"] != "servq" || body["overwrite"] != false || body["message"] != "servq dashboards" ||
				d["uid"] == nil || d["title"] == nil || d["id"] != nil || d["version"] != nil {
				t.Errorf("dashboard body %s", r.Body)
			}
		case "/api/v1/provisioning/alert-rules":
			want := []string{"annotations", "condition", "data", "execErrState", "folderUID", "for", "isPaused",
				"labels", "noDataState", "orgID", "ruleGroup", "title", "uid"}
			if k := keysOf(body); !slices.Equal(k, want) {
				t.Errorf("rule body keys %v", k)
			}
			q := body["data"].([]any)[0].(map[string]any)
			if k := keysOf(q); !slices.Equal(k, []string{"datasourceUid", "model", "queryType", "refId", "relativeTimeRange"}) {
				t.Errorf("query keys %v", k)
			}
			if body["for"] != "5m" || body["noDataState"] != "NoData" || body["execErrState"] != "Error" {
				t.Errorf("rule body %s", r.Body)
			}
		default:
			t.Errorf("unexpected write %s %s", r.Method, r.Path)
		}
	}
	if want := map[string]int{"POST /api/folders": 1, "POST /api/dashboards/db": 2, "POST /api/v1/provisioning/alert-rules": 3}; fmt.Sprint(posts) != fmt.Sprint(want) {
		t.Errorf("writes %v, want %v", posts, want)
	}
}

// TestSecondRunWritesNothing: with the same input, only GETs are made and
// versions stay as they are.
func TestSecondRunWritesNothing(t *testing.T) {
	f := newFake(t, testToken)
	opt := testOptions(f)
	opt.Interval = 2 * time.Minute // not Grafana's default: set on the first run
	ds, rs := input()
	res, err := Provision(context.Background(), opt, ds, rs)
	if err != nil {
		t.Fatal(err)
	}
	if !res.RuleGroupUpdated || f.groupInterval([2]string{"servq", "servq"}) != 120 || len(f.rules) != 3 {
		t.Fatalf("first run: %+v, %d rules", res, len(f.rules))
	}
	f.takeRequests()

	res, err = Provision(context.Background(), opt, ds, rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.takeRequests() {
		if r.Method != http.MethodGet {
			t.Errorf("second run wrote: %s %s %s", r.Method, r.Path, r.Body)
		}
	}
	if res.Changed() || len(res.DashboardsUnchanged) != 2 || len(res.RulesUnchanged) != 3 {
		t.Errorf("second run result %+v", res)
	}
	for _, d := range ds {
		if v := f.dashes[d.UID].Version; v != 1 {
			t.Errorf("%s version %d after the second run", d.UID, v)
		}
	}
}

// TestChangesAreApplied: a changed dashboard is reposted (version bumps),
// a changed rule is updated, a rule servq no longer generates is deleted,
// a user's rule in the same group and the unchanged ones are left alone,
// a folder renamed in the UI gets servq's title back.
func TestChangesAreApplied(t *testing.T) {
	f := newFake(t, testToken)
	opt := testOptions(f)
	ds, rs := input()
	if _, err := Provision(context.Background(), opt, ds, rs); err != nil {
		t.Fatal(err)
	}
	// A user's rule in servq's folder (in a group of the user's), and a
	// folder renamed in the UI.
	f.addUserRule("user-own", "servq", "mine", 60)
	f.mu.Lock()
	f.folders["servq"].Title = "renamed"
	f.mu.Unlock()

	ds[1] = dash("servq-queues", "servq queues", `,"refresh":"30s"`)
	rs[0] = rule("servq-waiting", "Callers waiting", "20")
	rs = rs[:2] // servq-stale is gone
	opt.Interval = 30 * time.Second
	f.takeRequests()
	res, err := Provision(context.Background(), opt, ds, rs)
	if err != nil {
		t.Fatal(err)
	}
	if !res.FolderRenamed || f.folders["servq"].Title != "servq" {
		t.Errorf("folder not renamed back: %+v", res)
	}
	if !slices.Equal(res.DashboardsUpdated, []string{"servq-queues"}) || !slices.Equal(res.DashboardsUnchanged, []string{"servq-overview"}) {
		t.Errorf("dashboards %+v", res)
	}
	if v := f.dashes["servq-queues"].Version; v != 2 {
		t.Errorf("changed dashboard version %d, want 2", v)
	}
	if v := f.dashes["servq-overview"].Version; v != 1 {
		t.Errorf("unchanged dashboard version %d, want 1", v)
	}
	if f.dashes["servq-queues"].Model["refresh"] != "30s" {
		t.Errorf("changed dashboard not stored: %v", f.dashes["servq-queues"].Model)
	}
	if !slices.Equal(res.RulesUpdated, []string{"servq-waiting"}) || !slices.Equal(res.RulesUnchanged, []string{"servq-slo"}) ||
		!slices.Equal(res.RulesDeleted, []string{"servq-stale"}) || len(res.RulesCreated) != 0 {
		t.Errorf("rules %+v", res)
	}
	if _, ok := f.rules["servq-stale"]; ok {
		t.Error("servq-stale not deleted")
	}
	if u, ok := f.rules["user-own"]; !ok || u["provenance"] != "" || u["ruleGroup"] != "mine" {
		t.Errorf("the user's rule was touched: %v", u)
	}
	got, _ := json.Marshal(f.rules["servq-waiting"]["data"])
	if !strings.Contains(string(got), `"params":[20]`) {
		t.Errorf("rule not updated: %s", got)
	}
	if !res.RuleGroupUpdated || f.groupInterval([2]string{"servq", "servq"}) != 30 || len(f.rules) != 3 {
		t.Errorf("group: %+v, %d rules", res, len(f.rules))
	}
	if iv := f.groupInterval([2]string{"servq", "mine"}); iv != 60 {
		t.Errorf("the user's group interval became %d", iv)
	}
	// The dashboard update carried the version it replaced.
	for _, r := range f.takeRequests() {
		if r.Method == http.MethodPost && r.Path == "/api/dashboards/db" {
			var body struct{ Dashboard map[string]any }
			json.Unmarshal(r.Body, &body)
			if body.Dashboard["version"] != float64(1) {
				t.Errorf("update posted version %v, want 1", body.Dashboard["version"])
			}
		}
		if r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/rule-groups/servq") {
			var body map[string]any
			json.Unmarshal(r.Body, &body)
			if k := keysOf(body); !slices.Equal(k, []string{"folderUid", "interval", "rules", "title"}) || body["interval"] != float64(30) {
				t.Errorf("group PUT body %s", r.Body)
			}
		}
	}
	// And the run after converges.
	res, err = Provision(context.Background(), opt, ds, rs)
	if err != nil || res.Changed() {
		t.Errorf("third run: %+v, %v", res, err)
	}
}

// TestDashboardMovedBackAndUIKeysKept: a dashboard moved to another folder
// is posted back into servq's; keys Grafana added are no reason to post.
func TestDashboardMovedBackAndUIKeysKept(t *testing.T) {
	f := newFake(t, testToken)
	opt := testOptions(f)
	ds := []Dashboard{dash("servq-overview", "servq overview", "")}
	if _, err := Provision(context.Background(), opt, ds, nil); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.dashes["servq-overview"].Model["weekStart"] = ""                                                 // added by Grafana
	f.dashes["servq-overview"].Model["panels"].([]any)[0].(map[string]any)["pluginVersion"] = "10.4.0" // idem, nested
	f.mu.Unlock()
	res, err := Provision(context.Background(), opt, ds, nil)
	if err != nil || res.Changed() {
		t.Fatalf("added keys caused a write: %+v %v", res, err)
	}
	f.mu.Lock()
	f.folders["other"] = &fakeFolder{ID: 99, UID: "other", Title: "other", Version: 1}
	f.dashes["servq-overview"].FolderUID = "other"
	f.mu.Unlock()
	res, err = Provision(context.Background(), opt, ds, nil)
	if err != nil || !slices.Equal(res.DashboardsUpdated, []string{"servq-overview"}) || f.dashes["servq-overview"].FolderUID != "servq" {
		t.Fatalf("not moved back: %+v %v", res, err)
	}
}

// TestWrongToken: 401 becomes an error with the status, Grafana's message
// and the permissions hint, and without the token.
func TestWrongToken(t *testing.T) {
	f := newFake(t, "the-right-one")
	ds, rs := input()
	_, err := Provision(context.Background(), testOptions(f), ds, rs)
	if err == nil {
		t.Fatal("no error")
	}
	s := err.Error()
	for _, want := range []string{"GET /api/access-control/user/permissions", "401", "Invalid API key", "Editor for the folder", "Admin on Grafana 10.x"} {
		if !strings.Contains(s, want) {
			t.Errorf("error %q lacks %q", s, want)
		}
	}
	if strings.Contains(s, testToken) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), testToken) {
		t.Errorf("error shows the token: %s", s)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Errorf("not an APIError: %T", err)
	}
	// The health check (unauthenticated) and the refused request: nothing
	// is tried after a refusal.
	if n := len(f.takeRequests()); n != 2 {
		t.Errorf("%d requests after a 401", n)
	}
}

// TestTokenNeverLeaks: a proxy echoing the request into its error page, and
// a redirect to another host: the token is in neither the error nor the
// request to the other host.
func TestTokenNeverLeaks(t *testing.T) {
	f := newFake(t, testToken)
	other := newFake(t, "nope")
	f.setHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.URL.Path == "/api/folders/servq" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "<html>denied for %s</html>", r.Header.Get("Authorization"))
			return true
		}
		return false
	})
	_, err := Provision(context.Background(), testOptions(f), nil, nil)
	if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "403") ||
		!strings.Contains(err.Error(), "[redacted]") || !strings.Contains(err.Error(), "Editor for the folder") {
		t.Errorf("echoed token: %v", err)
	}

	f.setHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		http.Redirect(w, r, other.URL()+r.URL.Path, http.StatusFound)
		return true
	})
	_, err = Provision(context.Background(), testOptions(f), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("redirected: %v", err)
	}
	for _, r := range other.takeRequests() {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("token sent to another host: %s %s", r.Method, r.Path)
		}
	}
}

// TestDashboardConflicts: 412 name-exists (another dashboard of the folder
// has the title) and version-mismatch (saved by someone else in between)
// become clear errors with Grafana's message.
func TestDashboardConflicts(t *testing.T) {
	f := newFake(t, testToken)
	opt := testOptions(f)
	f.folders["servq"] = &fakeFolder{ID: 2, UID: "servq", Title: "servq", Version: 1}
	f.dashes["hand-made"] = &fakeDash{ID: 3, Version: 4, FolderUID: "servq",
		Model: map[string]any{"uid": "hand-made", "title": "servq overview", "id": 3, "version": 4}}
	_, err := Provision(context.Background(), opt, []Dashboard{dash("servq-overview", "servq overview", "")}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	s := err.Error()
	for _, want := range []string{`dashboard "servq overview" (servq-overview)`, "POST /api/dashboards/db", "412",
		"name-exists", "A dashboard with the same name in the folder already exists", "rename, move or delete"} {
		if !strings.Contains(s, want) {
			t.Errorf("error %q lacks %q", s, want)
		}
	}
	if f.dashes["hand-made"].Version != 4 || f.dashes["hand-made"].Model["uid"] != "hand-made" {
		t.Error("the other dashboard was touched")
	}

	// version-mismatch: someone saves between servq's GET and POST.
	delete(f.dashes, "hand-made")
	ds := []Dashboard{dash("servq-overview", "servq overview", "")}
	if _, err := Provision(context.Background(), opt, ds, nil); err != nil {
		t.Fatal(err)
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/api/dashboards/db" {
			f.mu.Lock()
			d := f.dashes["servq-overview"]
			d.Version++
			d.Model["version"] = d.Version
			f.mu.Unlock()
		}
		return false
	})
	ds[0] = dash("servq-overview", "servq overview", `,"refresh":"1m"`)
	_, err = Provision(context.Background(), opt, ds, nil)
	if err == nil || !strings.Contains(err.Error(), "412") || !strings.Contains(err.Error(), "version-mismatch") ||
		!strings.Contains(err.Error(), "The dashboard has been changed by someone else") || !strings.Contains(err.Error(), "run servq again") {
		t.Errorf("version mismatch: %v", err)
	}
	f.setHook(nil)
	if res, err := Provision(context.Background(), opt, ds, nil); err != nil || !slices.Equal(res.DashboardsUpdated, []string{"servq-overview"}) {
		t.Errorf("rerun: %+v %v", res, err)
	}
}

// TestInputIsChecked: bad options and inputs are refused before any
// request.
func TestInputIsChecked(t *testing.T) {
	f := newFake(t, testToken)
	ok := testOptions(f)
	ds, rs := input()
	cases := map[string]func(*Options, *[]Dashboard, *[]AlertRule){
		"no token":       func(o *Options, _ *[]Dashboard, _ *[]AlertRule) { o.Token = "" },
		"url with user":  func(o *Options, _ *[]Dashboard, _ *[]AlertRule) { o.URL = "http://admin:pw@host" },
		"bad folder uid": func(o *Options, _ *[]Dashboard, _ *[]AlertRule) { o.FolderUID = "a/b" },
		"interval":       func(o *Options, _ *[]Dashboard, _ *[]AlertRule) { o.Interval = 1500 * time.Millisecond },
		"dash uid mismatch": func(_ *Options, d *[]Dashboard, _ *[]AlertRule) {
			*d = []Dashboard{{UID: "a", Title: "t", JSON: []byte(`{"uid":"b","title":"t"}`)}}
		},
		"dash not json": func(_ *Options, d *[]Dashboard, _ *[]AlertRule) {
			*d = []Dashboard{{UID: "a", Title: "t", JSON: []byte(`[`)}}
		},
		"dup dash":       func(_ *Options, d *[]Dashboard, _ *[]AlertRule) { *d = append(*d, (*d)[0]) },
		"rule prefix":    func(_ *Options, _ *[]Dashboard, r *[]AlertRule) { (*r)[0].UID = "waiting" },
		"rule elsewhere": func(_ *Options, _ *[]Dashboard, r *[]AlertRule) { (*r)[0].RuleGroup = "other" },
		"dup rule":       func(_ *Options, _ *[]Dashboard, r *[]AlertRule) { *r = append(*r, (*r)[0]) },
	}
	for name, mutate := range cases {
		o, d, r := ok, slices.Clone(ds), slices.Clone(rs)
		mutate(&o, &d, &r)
		_, err := Provision(context.Background(), o, d, r)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: error shows the URL's password: %v", name, err)
		}
	}
	if n := len(f.takeRequests()); n != 0 {
		t.Errorf("%d requests for bad input", n)
	}
}

// The rules' data source is checked before anything is written: an
// unknown uid or a data source that does not speak PromQL fails with the
// flag to use; a token that may not read data sources skips the check.
func TestDatasourceIsChecked(t *testing.T) {
	for _, c := range []struct {
		name        string
		datasources map[string]string
		want        string // in the error; "" for success
	}{
		{"unknown uid", map[string]string{"prometheus": "prometheus"}, `data source with uid "prom", which this Grafana does not have: pass your Prometheus data source's uid with --grafana.datasource-uid`},
		{"not PromQL", map[string]string{"prom": "loki"}, `is of type "loki"`},
		{"VictoriaMetrics", map[string]string{"prom": "victoriametrics-metrics-datasource"}, ""},
		{"no permission to read", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, testToken)
			f.datasources = c.datasources
			ds, rs := input()
			_, err := Provision(context.Background(), testOptions(f), ds, rs)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Provision: %v", err)
				}
				if len(f.rules) != len(rs) {
					t.Errorf("%d rules provisioned, want %d", len(f.rules), len(rs))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			for _, r := range f.takeRequests() {
				if r.Method != http.MethodGet {
					t.Errorf("%s %s before the data source check failed", r.Method, r.Path)
				}
			}
		})
	}
}
