package sources

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
)

// Monday 2026-11-02 10:00 UTC: the receiver's clock in these tests.
var whT0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

const whSecret = "s3cr3t-webhook-key"

func whConfig(name, spec string) string {
	return "collectors:\n  - name: " + name + "\n    type: survey_webhook\n    schedule: \"@every 1m\"\n" + spec
}

// whBuild builds the receiver with its spool in dir and a test clock.
func whBuild(t testing.TB, dir, name, spec string, clock *time.Time) *surveyWebhook {
	t.Helper()
	s := buildCollector(t, testConfig(t, whConfig(name, spec)), collectors.Env{DataDir: dir}).(*surveyWebhook)
	if clock != nil {
		s.now = func() time.Time { return *clock }
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Signatures, computed here from each vendor's documented algorithm.
func signDelighted(key string, body []byte) http.Header {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return http.Header{"X-Delighted-Webhook-Signature": {"sha256=" + hex.EncodeToString(m.Sum(nil))}}
}

func signTypeform(key string, body []byte) http.Header {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return http.Header{"Typeform-Signature": {"sha256=" + base64.StdEncoding.EncodeToString(m.Sum(nil))}}
}

func signSurveyMonkey(apiKey, apiSecret string, body []byte) http.Header {
	m := hmac.New(sha1.New, []byte(apiKey+"&"+apiSecret))
	m.Write(body)
	return http.Header{"Sm-Apikey": {apiKey}, "Sm-Signature": {base64.StdEncoding.EncodeToString(m.Sum(nil))}}
}

func signGeneric(key string, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts + "." + string(body)))
	return http.Header{"X-Servq-Timestamp": {ts}, "X-Servq-Signature": {"sha256=" + hex.EncodeToString(m.Sum(nil))}}
}

func whPost(h http.Handler, body []byte, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/svy", bytes.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// whSend posts a delivery to a receiver listening at url and returns the
// status code; a transport error fails the test.
func whSend(t *testing.T, url string, body []byte, hdr http.Header) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func whMustPost(t *testing.T, h http.Handler, body []byte, hdr http.Header) {
	t.Helper()
	if rec := whPost(h, body, hdr); rec.Code != http.StatusOK {
		t.Fatalf("delivery answered %d %q, want 200", rec.Code, rec.Body.String())
	}
}

func whFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "survey_webhook", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func genericBody(id, kind string, score float64, submitted time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%q,"survey":"post","kind":%q,"score":%g,"submitted_at":%q,"queue":"billing","channel":"email"}`,
		id, kind, score, submitted.Format(time.RFC3339))
}

const whDelightedSpec = "    format: delighted\n    secret: " + whSecret + "\n    survey: relationship\n"

// Delighted sends survey_response.created with the score, then .updated
// when the respondent changes it or adds a comment. Within the settle time
// only the final version is handed over, once.
func TestSurveyWebhookDelightedCreatedThenUpdatedCountsFinalVersionOnce(t *testing.T) {
	clock := whT0
	s := whBuild(t, t.TempDir(), "svy", whDelightedSpec, &clock)
	h := s.Handler()
	created, updated := whFixture(t, "delighted_created.json"), whFixture(t, "delighted_updated.json")
	whMustPost(t, h, created, signDelighted(whSecret, created))
	clock = whT0.Add(2 * time.Minute)
	whMustPost(t, h, updated, signDelighted(whSecret, updated))
	// A retry of the created event arriving late is older (updated_at)
	// than what is stored: acknowledged, not applied.
	clock = whT0.Add(3 * time.Minute)
	whMustPost(t, h, created, signDelighted(whSecret, created))

	b, cur := collectOnce(t, s, nil, whT0.Add(5*time.Minute))
	if len(b.Surveys) != 0 {
		t.Fatalf("before the settle time (10m) %d responses were handed over", len(b.Surveys))
	}
	b, cur = collectOnce(t, s, cur, whT0.Add(13*time.Minute))
	want := record.SurveyResponse{ID: "5435", Survey: "relationship", Kind: record.KindNPS, Score: 9, HasScore: true,
		TicketID: "48213", Queue: "billing", Channel: "email", SubmittedAt: time.Unix(1793613660, 0).UTC()}
	if len(b.Surveys) != 1 || fmt.Sprint(b.Surveys[0]) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant [%+v]", b.Surveys, want)
	}
	if b, _ := collectOnce(t, s, cur, whT0.Add(time.Hour)); len(b.Surveys) != 0 {
		t.Errorf("a second run handed over %d responses again", len(b.Surveys))
	}
	// Types servq does not count are acknowledged and ignored.
	unsub := []byte(`{"event_type":"unsubscribe.created","event_id":"x","event_data":{"person":{"id":"1"}}}`)
	whMustPost(t, h, unsub, signDelighted(whSecret, unsub))
	if b, _ := collectOnce(t, s, cur, whT0.Add(time.Hour)); len(b.Surveys) != 0 {
		t.Errorf("an unsubscribe event became %d responses", len(b.Surveys))
	}
}

// Every signature scheme: valid, invalid (tampered body), missing, signed
// with another secret; the generic one also rejects replays.
func TestSurveyWebhookSignatures(t *testing.T) {
	generic := genericBody("r1", "csat", 4, whT0)
	delighted := whFixture(t, "delighted_created.json")
	typeform := whFixture(t, "typeform_form_response.json")
	tfFields := "    fields:\n      recommend: {kind: nps}\n"
	cases := []struct {
		name, spec string
		body       []byte
		sign       func(secret string, body []byte) http.Header
	}{
		{"delighted", whDelightedSpec, delighted, signDelighted},
		{"typeform", "    format: typeform\n    secret: " + whSecret + "\n    survey: post\n" + tfFields, typeform, signTypeform},
		{"surveymonkey", "    format: generic\n    signature: surveymonkey\n    api_key: app-client-id\n    secret: " + whSecret + "\n    survey: post\n", generic,
			func(secret string, body []byte) http.Header { return signSurveyMonkey("app-client-id", secret, body) }},
		{"generic_hmac_sha256", "    format: generic\n    secret: " + whSecret + "\n", generic,
			func(secret string, body []byte) http.Header { return signGeneric(secret, whT0.Add(-time.Minute), body) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := whT0
			s := whBuild(t, t.TempDir(), "svy", c.spec, &clock)
			h := s.Handler()
			tampered := bytes.Replace(c.body, []byte(`4`), []byte(`5`), 1)
			if bytes.Equal(tampered, c.body) {
				t.Fatal("test body has nothing to tamper with")
			}
			checks := []struct {
				what string
				body []byte
				hdr  http.Header
				code int
			}{
				{"valid", c.body, c.sign(whSecret, c.body), 200},
				{"tampered body", tampered, c.sign(whSecret, c.body), 401},
				{"missing signature", c.body, http.Header{}, 401},
				{"wrong secret", c.body, c.sign("another-secret", c.body), 401},
				{"garbage signature", c.body, garble(c.sign(whSecret, c.body)), 401},
			}
			switch c.name {
			case "generic_hmac_sha256":
				checks = append(checks,
					struct {
						what string
						body []byte
						hdr  http.Header
						code int
					}{"replayed (6 minutes old)", c.body, signGeneric(whSecret, whT0.Add(-6*time.Minute), c.body), 401},
					struct {
						what string
						body []byte
						hdr  http.Header
						code int
					}{"from the future", c.body, signGeneric(whSecret, whT0.Add(6*time.Minute), c.body), 401},
					struct {
						what string
						body []byte
						hdr  http.Header
						code int
					}{"timestamp swapped after signing", c.body, swapTS(signGeneric(whSecret, whT0, c.body)), 401})
			case "surveymonkey":
				hdr := signSurveyMonkey("app-client-id", whSecret, c.body)
				hdr.Set("Sm-Apikey", "other-app")
				checks = append(checks, struct {
					what string
					body []byte
					hdr  http.Header
					code int
				}{"another app's API key", c.body, hdr, 401})
			}
			for _, ck := range checks {
				rec := whPost(h, ck.body, ck.hdr)
				if rec.Code != ck.code {
					t.Errorf("%s: %d %q, want %d", ck.what, rec.Code, rec.Body.String(), ck.code)
				}
				if ck.code == 401 && rec.Body.String() != "bad signature\n" {
					t.Errorf("%s: answer %q, want \"bad signature\"", ck.what, rec.Body.String())
				}
				if strings.Contains(rec.Body.String(), whSecret) {
					t.Errorf("%s: the answer shows the secret", ck.what)
				}
			}
			b, _ := collectOnce(t, s, nil, whT0.Add(time.Hour))
			if len(b.Surveys) == 0 {
				t.Error("the validly signed delivery was not stored")
			}
			bad := 0
			for _, r := range b.Rejected {
				if r.Reason == "bad_signature" {
					bad++
				}
				if strings.Contains(r.Err.Error()+r.Position, whSecret) {
					t.Error("a rejection shows the secret")
				}
			}
			if want := len(checks) - 1; bad != want {
				t.Errorf("%d bad_signature rejections reported, want %d", bad, want)
			}
		})
	}
}

func garble(h http.Header) http.Header {
	out := h.Clone()
	for k, v := range out {
		if strings.Contains(strings.ToLower(k), "signature") {
			out[k] = []string{v[0][:len(v[0])-4] + "!!!!"}
		}
	}
	return out
}

func swapTS(h http.Header) http.Header {
	out := h.Clone()
	out.Set("X-Servq-Timestamp", strconv.FormatInt(whT0.Unix()+1, 10))
	return out
}

func TestSurveyWebhookLimits(t *testing.T) {
	clock := whT0
	s := whBuild(t, t.TempDir(), "svy", "    format: generic\n    secret: "+whSecret+"\n    survey: post\n    max_body_bytes: 1024\n    rate_limit: 1\n", &clock)
	h := s.Handler()
	big := []byte(`{"id":"x","kind":"csat","score":4,"submitted_at":"2026-11-02T10:00:00Z","queue":"` + strings.Repeat("q", 2000) + `"}`)
	if rec := whPost(h, big, signGeneric(whSecret, clock, big)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 kB body with a 1 kB limit: %d, want 413", rec.Code)
	}
	// Without Content-Length (chunked) the limit holds too.
	req := httptest.NewRequest(http.MethodPost, "/webhooks/svy", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	for k, v := range signGeneric(whSecret, clock, big) {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a chunked 2 kB body: %d, want 413", rec.Code)
	}
	if rec := whPost(h, nil, nil); rec.Code != 401 {
		t.Errorf("empty unsigned delivery: %d, want 401", rec.Code)
	}
	get := httptest.NewRecorder()
	h.ServeHTTP(get, httptest.NewRequest(http.MethodGet, "/webhooks/svy", nil))
	if get.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", get.Code)
	}
	// rate_limit 1/s with a burst of 10: the 3 POSTs above spent 3 tokens
	// (GET is refused before the limiter).
	ok := 0
	for i := range 10 {
		body := genericBody(fmt.Sprint("r", i), "csat", 4, whT0)
		rec := whPost(h, body, signGeneric(whSecret, clock, body))
		if rec.Code == 200 {
			ok++
			continue
		}
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
			t.Fatalf("delivery %d: %d, Retry-After %q; want 200 or 429 with Retry-After 1", i, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
	if ok != 7 {
		t.Errorf("%d deliveries passed a burst of 10 of which 3 were spent, want 7", ok)
	}
	clock = clock.Add(time.Second)
	body := genericBody("later", "csat", 4, whT0)
	if rec := whPost(h, body, signGeneric(whSecret, clock, body)); rec.Code != 200 {
		t.Errorf("a second later: %d, want 200", rec.Code)
	}
	// Bad payloads name the field; they are counted as rejections.
	for _, c := range []struct{ body, field string }{
		{`{"kind":"csat","score":4,"submitted_at":"2026-11-02T10:00:00Z"}`, "id"},
		{`{"id":"a","kind":"csat","score":9,"submitted_at":"2026-11-02T10:00:00Z"}`, "score"},
		{`{"id":"a","kind":"csat","score":4,"submitted_at":"yesterday"}`, "submitted_at"},
		{`{"id":"a","kind":"stars","score":4,"submitted_at":"2026-11-02T10:00:00Z"}`, "kind"},
		{`{"id":"a","kind":"csat","score":"4","submitted_at":"2026-11-02T10:00:00Z"}`, "score"},
		{`{"id":"a","kind":"servqual","servqual":{"E23":4},"submitted_at":"2026-11-02T10:00:00Z"}`, "servqual.E23"},
		{`not json`, "not JSON"},
	} {
		clock = clock.Add(time.Second)
		rec := whPost(h, []byte(c.body), signGeneric(whSecret, clock, []byte(c.body)))
		if rec.Code != 400 || rec.Body.String() != "bad payload: "+c.field+"\n" {
			t.Errorf("%s: %d %q, want 400 bad payload: %s", c.body, rec.Code, rec.Body.String(), c.field)
		}
	}
}

// The spool is opened lazily, survives a restart, and is held by one
// source at a time: a second open fails fast with a clear error, and a
// closed source answers 503 without reopening the file.
func TestSurveyWebhookSpoolSurvivesRestartAndIsOpenedLazily(t *testing.T) {
	dir := t.TempDir()
	spec := "    format: generic\n    secret: " + whSecret + "\n    settle: 0s\n"
	s1 := whBuild(t, dir, "svy", spec, nil)
	if _, err := os.Stat(filepath.Join(dir, "webhook-svy.spool")); !os.IsNotExist(err) {
		t.Fatalf("building the source touched the spool (err %v); it must open on first use", err)
	}
	srv := httptest.NewServer(s1.Handler())
	defer srv.Close()
	now := time.Now()
	for i, sc := range []float64{5, 3} {
		body := genericBody(fmt.Sprint("r", i), "csat", sc, now)
		if code := whSend(t, srv.URL, body, signGeneric(whSecret, now, body)); code != 200 {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}
	// A second source on the same spool (a reload building the new one
	// while the old still runs) fails fast, naming the lock.
	s2 := whBuild(t, dir, "svy", spec, nil)
	start := time.Now()
	_, err := s2.Collect(context.Background(), nil, &collectors.Batch{Now: now})
	if err == nil || !strings.Contains(err.Error(), "locked") || time.Since(start) > 20*time.Second {
		t.Fatalf("second open: %v after %s; want a quick 'locked' error", err, time.Since(start))
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	body := genericBody("r9", "csat", 4, now)
	if rec := whPost(s1.Handler(), body, signGeneric(whSecret, now, body)); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("closed source: %d, want 503 with Retry-After", rec.Code)
	}
	s3 := whBuild(t, dir, "svy", spec, nil)
	b, cur := collectOnce(t, s3, nil, now.Add(time.Second))
	if len(b.Surveys) != 2 || b.Surveys[0].ID != "r0" || b.Surveys[1].Score != 3 {
		t.Fatalf("after the restart: %+v, want r0 and r1", b.Surveys)
	}
	if b, _ := collectOnce(t, s3, cur, now.Add(time.Second)); len(b.Surveys) != 0 {
		t.Errorf("the committed cursor handed over %d again", len(b.Surveys))
	}
}

// A helper process serving the receiver, for the crash test.
func TestSurveyWebhookHelperProcess(t *testing.T) {
	dir := os.Getenv("SERVQ_WEBHOOK_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process of TestSurveyWebhookAcknowledgedIsDurableAcrossKill")
	}
	s := whBuild(t, dir, "svy", "    format: generic\n    secret: "+whSecret+"\n    settle: 0s\n", nil)
	srv := httptest.NewServer(s.Handler())
	fmt.Println("ADDR", srv.URL)
	select {} // until killed
}

// A delivery answered 200 is in the spool even when servq is killed
// (SIGKILL, no Close) right after answering.
func TestSurveyWebhookAcknowledgedIsDurableAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurveyWebhookHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SERVQ_WEBHOOK_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatal("helper process did not start")
	}
	now := time.Now()
	const n = 3
	for i := range n {
		body := genericBody(fmt.Sprint("k", i), "nps", float64(8+i), now)
		if code := whSend(t, url, body, signGeneric(whSecret, now, body)); code != 200 {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	s := whBuild(t, dir, "svy", "    format: generic\n    secret: "+whSecret+"\n    settle: 0s\n", nil)
	b, _ := collectOnce(t, s, nil, now.Add(time.Second))
	if len(b.Surveys) != n {
		t.Fatalf("after kill -9, %d of %d acknowledged responses are in the spool", len(b.Surveys), n)
	}
}

// Deliveries through Collect and a real quality model give exact CSAT and
// NPS counts; updates within the settle time count in their final
// version, a late update does not count again, and a second run adds
// nothing.
func TestSurveyWebhookQualityModelCounts(t *testing.T) {
	dir := t.TempDir()
	spec := "    format: generic\n    secret: " + whSecret + "\n    survey: post\n"
	m := testModel(t, testConfig(t, whConfig("svy", spec)))
	clock := whT0
	s := whBuild(t, dir, "svy", spec, &clock)
	h := s.Handler()
	send := func(id, kind string, score float64) {
		t.Helper()
		body := genericBody(id, kind, score, whT0)
		whMustPost(t, h, body, signGeneric(whSecret, clock, body))
	}
	// 10:00 CSAT c1..c5 = 5, 4, 3, 2, 5; NPS n1..n5 = 10, 9, 7, 6, 0.
	for i, sc := range []float64{5, 4, 3, 2, 5} {
		send(fmt.Sprint("c", i+1), "csat", sc)
	}
	for i, sc := range []float64{10, 9, 7, 6, 0} {
		send(fmt.Sprint("n", i+1), "nps", sc)
	}
	// 10:04 c4 is corrected from 2 to 4 and n4 from 6 to 9, within the
	// settle time: only the final versions count.
	clock = whT0.Add(4 * time.Minute)
	send("c4", "csat", 4)
	send("n4", "nps", 9)
	var dup int
	run := func(now time.Time, cursor []byte) ([]byte, int) {
		t.Helper()
		b, next := collectOnce(t, s, cursor, now)
		res, err := m.Commit("svy", b, next)
		if err != nil {
			t.Fatal(err)
		}
		dup = res.Duplicate["survey"]
		return next, res.Accepted["survey"]
	}
	// 10:12: the ten 10:00 deliveries minus the two updated are settled.
	cur, n := run(whT0.Add(12*time.Minute), nil)
	if n != 8 {
		t.Fatalf("10:12 run accepted %d responses, want 8", n)
	}
	cur, n = run(whT0.Add(15*time.Minute), cur)
	if n != 2 {
		t.Fatalf("10:15 run accepted %d responses, want the 2 updated ones", n)
	}
	// 10:20 a late update of c1 (5 -> 1): handed over again, not counted.
	clock = whT0.Add(20 * time.Minute)
	send("c1", "csat", 1)
	cur, n = run(whT0.Add(40*time.Minute), cur)
	if n != 0 || dup != 1 {
		t.Errorf("a late update: %d counted, %d duplicates; want it handed over and deduplicated (0, 1)", n, dup)
	}
	b, _ := collectOnce(t, s, cur, whT0.Add(time.Hour))
	if len(b.Surveys) != 0 {
		t.Errorf("a run after everything was counted handed over %d", len(b.Surveys))
	}
	sv := map[string]string{"collector": "svy", "survey": "post"}
	// CSAT: 5, 4, 3, 4 (c4 corrected), 5 -> 4 of 5 satisfied (>= 4), sum 21.
	// NPS: 10, 9, 7, 9 (n4 corrected), 0 -> 3 promoters, 1 passive, 1 detractor.
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"servq_survey_responses_total", map[string]string{"kind": "csat"}, 5},
		{"servq_survey_responses_total", map[string]string{"kind": "nps"}, 5},
		{"servq_csat_satisfied_total", nil, 4},
		{"servq_csat_score", nil, 5},
		{"servq_nps_responses_total", map[string]string{"category": "promoter"}, 3},
		{"servq_nps_responses_total", map[string]string{"category": "passive"}, 1},
		{"servq_nps_responses_total", map[string]string{"category": "detractor"}, 1},
	} {
		labels := map[string]string{}
		for k, v := range sv {
			labels[k] = v
		}
		for k, v := range c.labels {
			labels[k] = v
		}
		if got := seriesSum(t, m, c.name, labels); got != c.want {
			t.Errorf("%s%v = %g, want %g", c.name, c.labels, got, c.want)
		}
	}
}

// A Typeform form_response with an NPS question, a CSAT rating and a CES
// multiple choice, mapped by field ref; hidden fields give ticket, queue
// and channel; the unmapped long text is ignored.
func TestSurveyWebhookTypeformMapping(t *testing.T) {
	clock := whT0
	s := whBuild(t, t.TempDir(), "svy", `    format: typeform
    secret: `+whSecret+`
    survey: post-contact
    settle: 1m
    fields:
      recommend: {kind: nps, survey: relationship}
      satisfaction: {kind: csat}
      effort: {kind: ces}
`, &clock)
	body := whFixture(t, "typeform_form_response.json")
	whMustPost(t, s.Handler(), body, signTypeform(whSecret, body))
	b, _ := collectOnce(t, s, nil, whT0.Add(time.Minute))
	at := time.Date(2026, 11, 2, 10, 1, 0, 0, time.UTC)
	base := record.SurveyResponse{TicketID: "48213", Queue: "billing", Channel: "chat", SubmittedAt: at, HasScore: true}
	want := []record.SurveyResponse{base, base, base}
	tok := "a3a12ec67a1365927098a606107fac15"
	want[0].ID, want[0].Survey, want[0].Kind, want[0].Score = tok+"/recommend", "relationship", record.KindNPS, 10
	want[1].ID, want[1].Survey, want[1].Kind, want[1].Score = tok+"/satisfaction", "post-contact", record.KindCSAT, 4
	want[2].ID, want[2].Survey, want[2].Kind, want[2].Score = tok+"/effort", "post-contact", record.KindCES, 6
	if fmt.Sprint(b.Surveys) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", b.Surveys, want)
	}
	// A score outside the question's scale is a bad payload.
	bad := bytes.Replace(body, []byte(`"number": 4,`), []byte(`"number": 7,`), 1)
	rec := whPost(s.Handler(), bad, signTypeform(whSecret, bad))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "answers[1] (ref satisfaction): 7 outside 1-5") {
		t.Errorf("out-of-scale rating: %d %q", rec.Code, rec.Body.String())
	}
}

// SERVQUAL in the generic format: items by E<n>/P<n>, weights by dimension.
func TestSurveyWebhookGenericServqual(t *testing.T) {
	s := whBuild(t, t.TempDir(), "svy", "    format: generic\n    secret: "+whSecret+"\n    settle: 0s\n", nil)
	body := whFixture(t, "generic_servqual.json")
	whMustPost(t, s.Handler(), body, signGeneric(whSecret, time.Now(), body))
	b, _ := collectOnce(t, s, nil, time.Now().Add(time.Second))
	if len(b.Surveys) != 1 {
		t.Fatalf("got %d responses", len(b.Surveys))
	}
	r := b.Surveys[0]
	want := []record.ServqualItem{
		{Dimension: record.Tangibles, Expectation: 7, Perception: 5, HasE: true, HasP: true},
		{Dimension: record.Tangibles, Expectation: 6, Perception: 6, HasE: true, HasP: true},
		{Dimension: record.Empathy, Expectation: 5, HasE: true},
	}
	if r.ID != "resp-2001" || r.Survey != "annual" || r.Kind != record.KindSERVQUAL || fmt.Sprint(r.Servqual) != fmt.Sprint(want) ||
		r.Weights[record.Tangibles] != 30 || r.Weights[record.Empathy] != 70 {
		t.Errorf("got %+v", r)
	}
}

// Spool entries older than the retention that the committed cursor covers
// are pruned; entries not yet handed over are kept.
func TestSurveyWebhookRetentionPrunes(t *testing.T) {
	clock := whT0
	s := whBuild(t, t.TempDir(), "svy", "    format: generic\n    secret: "+whSecret+"\n    survey: post\n    settle: 1m\n    retention: 1h\n", &clock)
	send := func(id string) {
		body := genericBody(id, "csat", 4, whT0)
		whMustPost(t, s.Handler(), body, signGeneric(whSecret, clock, body))
	}
	send("old")
	_, cur := collectOnce(t, s, nil, whT0.Add(2*time.Minute))
	clock = whT0.Add(2 * time.Hour)
	send("new")
	collectOnce(t, s, cur, whT0.Add(2*time.Hour)) // prunes "old" (counted, 2h old)
	var keys []string
	s.withDB(func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(spoolEntries).ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
		})
	})
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[new]" {
		t.Errorf("spool holds %v, want [new]", keys)
	}
	if b, _ := collectOnce(t, s, cur, whT0.Add(3*time.Hour)); len(b.Surveys) != 1 || b.Surveys[0].ID != "new" {
		t.Errorf("after pruning, the next run handed over %+v, want new", b.Surveys)
	}
}

func TestSurveyWebhookConfigErrors(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{"    format: csv\n    secret: x\n    survey: s\n", `test.yml:5: collectors[0].format: unknown format "csv"`},
		{"    format: generic\n    signature: none\n", "test.yml:6: collectors[0].signature: none accepts anyone's deliveries; set insecure_no_signature: true"},
		{"    format: delighted\n    survey: s\n", "collectors[0].secret: is required for signature delighted"},
		{"    format: generic\n    signature: surveymonkey\n    secret: x\n", "collectors[0].api_key: is required for signature surveymonkey"},
		{"    format: typeform\n    secret: x\n    survey: s\n", "collectors[0].fields: typeform needs fields"},
		{"    format: typeform\n    secret: x\n    survey: s\n    fields:\n      q1: {kind: \"servqual:X9\"}\n", "test.yml:9: collectors[0].fields.q1: kind \"servqual:X9\""},
		{"    format: generic\n    secret: x\n    rate_limit: -1\n", "test.yml:7: collectors[0].rate_limit: must be a positive number"},
		{"    format: generic\n    secret: x\n    settle: 2h\n    retention: 1h\n", "test.yml:8: collectors[0].retention: must be longer than settle"},
		{"    format: generic\n    secret: x\n    sekret: y\n", "sekret"},
	} {
		expectConfigError(t, whConfig("svy", ""), c.spec, c.want)
	}
	// insecure_no_signature makes signature none valid; Receiver contract.
	src, err := buildSourceErr(whConfig("svy", "    format: generic\n    signature: none\n    insecure_no_signature: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(collectors.Receiver); !ok {
		t.Error("survey_webhook is not a collectors.Receiver")
	}
	if _, ok := src.(io.Closer); !ok {
		t.Error("survey_webhook is not an io.Closer")
	}
	body, _ := json.Marshal(map[string]any{"id": "u1", "survey": "s", "kind": "nps", "score": 8, "submitted_at": "2026-11-02T10:00:00Z"})
	if rec := whPost(src.(collectors.Receiver).Handler(), body, nil); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("without a data directory: %d, want 503", rec.Code)
	}
}

// Deliveries racing a Close (a reload or shutdown) either got 200 and are
// in the spool, or got 503 and will be retried by the sender.
func TestSurveyWebhookCloseDuringDeliveries(t *testing.T) {
	dir := t.TempDir()
	spec := "    format: generic\n    secret: " + whSecret + "\n    settle: 0s\n    rate_limit: 0\n"
	s := whBuild(t, dir, "svy", spec, nil)
	now := time.Now()
	codes := make(chan struct {
		id   string
		code int
	}, 40)
	for i := range 40 {
		go func() {
			id := fmt.Sprint("r", i)
			body := genericBody(id, "csat", 4, now)
			codes <- struct {
				id   string
				code int
			}{id, whPost(s.Handler(), body, signGeneric(whSecret, now, body)).Code}
		}()
		if i == 20 {
			s.Close()
		}
	}
	acked := map[string]bool{}
	for range 40 {
		c := <-codes
		switch c.code {
		case 200:
			acked[c.id] = true
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("%s: %d", c.id, c.code)
		}
	}
	b, _ := collectOnce(t, whBuild(t, dir, "svy", spec, nil), nil, now.Add(time.Second))
	got := map[string]bool{}
	for _, r := range b.Surveys {
		got[r.ID] = true
	}
	for id := range acked {
		if !got[id] {
			t.Errorf("%s was acknowledged but is not in the spool", id)
		}
	}
	if len(got) != len(acked) {
		t.Errorf("spool holds %d responses, %d were acknowledged", len(got), len(acked))
	}
}
