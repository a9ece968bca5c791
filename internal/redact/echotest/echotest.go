// Package echotest is a hostile vendor for tests: a server that answers
// every request with 500 and the request's Authorization header, method,
// URL and other headers in its body, as a misconfigured proxy or a vendor's
// debug page does, and a servq config whose credentialed sources and push
// target all point at it.
package echotest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The configured secrets, with characters that URL, JSON and HTML escape
// differently. pushPassword is shorter than any base64 fragment redact
// matches on its own: only the registered credential can catch its header.
const (
	HTTPJSONToken  = "hj-T0ken<&>=9f2Q"
	ZendeskEmail   = "agent@example.com"
	ZendeskToken   = "zdT0ken-Zz9+x~Q"
	FreshdeskKey   = "fdK3yAbCdEf1234"
	TwilioSID      = "AC0123456789abcdef0123456789abcdef"
	TwilioToken    = "9c1f3e5a7b9d0f2e4c6a8b0d2f4e6a8c"
	TwilioWS       = "WS0123456789abcdef0123456789abcdef"
	PushUser       = "servq"
	PushPassword   = "pw-9!"
	basicFreshdesk = FreshdeskKey + ":X"
)

// Server starts the echo server; asJSON answers {"error": …, "headers": …,
// "url": …} instead of plain text. The Authorization header comes first,
// within the 300 characters of a vendor's message servq quotes.
func Server(t testing.TB, asJSON bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		fmt.Fprintf(&b, "Authorization: %s\n%s %s\n", r.Header.Get("Authorization"), r.Method, r.URL.RequestURI())
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(r.Header[k], ", "))
		}
		if asJSON {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]any{"error": b.String(), "headers": r.Header, "url": r.URL.String()})
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(b.String()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Config is a servq config whose http_json (bearer token), zendesk
// (email/token basic auth), freshdesk (API key basic auth), twilio (SID and
// token basic auth) collectors and push target (basic auth) all talk to
// base, every second, without retries.
func Config(base string) string {
	return fmt.Sprintf(`collectors:
  - name: hj
    type: http_json
    schedule: "@every 1s"
    url: %[1]s/tickets?status=all&per_page=50
    auth_value: %[2]s
    record: ticket
    mapping: {id: id, created_at: created}
    retries: 0
  - name: zd
    type: zendesk
    schedule: "@every 1s"
    url: %[1]s
    email: %[3]s
    token: %[4]s
    retries: 0
  - name: fd
    type: freshdesk
    schedule: "@every 1s"
    url: %[1]s
    api_key: %[5]s
    retries: 0
  - name: tw
    type: twilio_taskrouter
    schedule: "@every 1s"
    base_url: %[1]s
    account_sid: %[6]s
    auth_token: %[7]s
    workspace_sid: %[8]s
    retries: 0
push:
  url: %[1]s/api/v1/import/prometheus
  interval: 1s
  username: %[9]s
  password: %[10]s
`, base, strconv.Quote("Bearer "+HTTPJSONToken), ZendeskEmail, ZendeskToken, FreshdeskKey,
		TwilioSID, TwilioToken, TwilioWS, PushUser, strconv.Quote(PushPassword))
}

// Leaks returns the secret forms found in text: each secret as sent and
// URL-, HTML- and JSON-escaped and base64-encoded, and each basic-auth
// credential in base64.
func Leaks(text string) []string {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	forms := map[string]string{}
	for _, s := range []string{HTTPJSONToken, ZendeskToken, FreshdeskKey, TwilioToken, PushPassword} {
		j, _ := json.Marshal(s)
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), html.EscapeString(s), string(j[1 : len(j)-1]), b64(s)} {
			forms[f] = s
		}
	}
	for _, c := range []string{ZendeskEmail + "/token:" + ZendeskToken, basicFreshdesk, TwilioSID + ":" + TwilioToken, PushUser + ":" + PushPassword} {
		forms[strings.TrimRight(b64(c), "=")] = c
	}
	var out []string
	for f, s := range forms {
		if strings.Contains(text, f) {
			out = append(out, fmt.Sprintf("%q (a form of %q)", f, s))
		}
	}
	sort.Strings(out)
	return out
}
