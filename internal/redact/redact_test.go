package redact

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// Every form under which an echoing server may return a secret is
// redacted, including base64 of user:secret for any user (the secret at
// each byte offset of the encoded text).
func TestEncodingsAreRedacted(t *testing.T) {
	const secret = "Zd-t0ken/with+chars&=?"
	Add(secret)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := map[string]string{
		"plain":          "Authorization: Bearer " + secret,
		"query":          "GET /x?token=" + url.QueryEscape(secret),
		"path":           "GET /x/" + url.PathEscape(secret),
		"json":           `{"h":"` + strings.ReplaceAll(secret, "&", `\u0026`) + `"}`,
		"go quoted":      "body: " + strconv.Quote("echo "+secret),
		"base64":         "X-Echo: " + b64(secret),
		"base64 url":     "X-Echo: " + base64.URLEncoding.EncodeToString([]byte(secret)),
		"basic offset 0": "Basic " + b64("abc:"+secret),
		"basic offset 1": "Basic " + b64("agent@example.com/token:"+secret),
		"basic offset 2": "Basic " + b64("ab:"+secret),
		"basic suffix":   "Basic " + b64(secret+":X"),
	}
	for name, text := range cases {
		got := String(text)
		if strings.Contains(got, secret) || !strings.Contains(got, Placeholder) {
			t.Errorf("%s: %q → %q", name, text, got)
		}
		// Nothing of the base64 text is left next to the placeholder.
		if strings.HasPrefix(text, "Basic ") && got != "Basic "+Placeholder {
			t.Errorf("%s: %q → %q, want the whole credential replaced", name, text, got)
		}
	}
}

// A short password is not found inside base64 on its own, so BasicAuth
// registers the exact credential it builds.
func TestBasicAuthRegistersTheCredential(t *testing.T) {
	h := BasicAuth("servq", "pw42")
	if h != "Basic "+base64.StdEncoding.EncodeToString([]byte("servq:pw42")) {
		t.Fatalf("BasicAuth = %q", h)
	}
	if got := String("Authorization: " + h); got != "Authorization: Basic "+Placeholder {
		t.Errorf("echoed header → %q", got)
	}
	if got := String("user servq password pw42"); got != "user servq password "+Placeholder {
		t.Errorf("echoed password → %q", got)
	}
}

func TestShortValuesAreLeftAlone(t *testing.T) {
	Add("abc", "")
	if got := String("abcdef abc"); got != "abcdef abc" {
		t.Errorf("a 3-character value was redacted: %q", got)
	}
}

func TestHandlerRedactsMessagesAndAttributes(t *testing.T) {
	const secret = "h4ndler-s3cret"
	Add(secret)
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewJSONHandler(&buf, nil))).With("pre", "x "+secret)
	log.WithGroup("g").Error("failed: "+secret, "err", errors.New("401: "+secret),
		"n", 42, "list", []string{secret}, slog.Group("inner", "v", secret), "url", fmt.Stringer(u("/p?t="+secret)))
	out := buf.String()
	if strings.Contains(out, secret) || strings.Count(out, Placeholder) != 6 || !strings.Contains(out, `"n":42`) {
		t.Errorf("log line: %s", out)
	}
}

type u string

func (s u) String() string { return string(s) }

func TestTextIsBoundedAndPrintable(t *testing.T) {
	in := "line1\n\tline2 \x1b[31mred\u202e evil\x00" + string([]byte{0xff}) + strings.Repeat("é", 100)
	got := Text(in, 40)
	if got != "line1 line2 \uFFFD[31mred\uFFFD evil\uFFFD\uFFFDéé…" {
		t.Errorf("Text = %q", got)
	}
	// Redaction happens before the cut: a secret across the limit does
	// not leave its prefix behind.
	const secret = "cut-across-the-limit"
	Add(secret)
	if got := Text(strings.Repeat("a", 30)+secret, 40); strings.Contains(got, "cut-across") {
		t.Errorf("Text kept a prefix of the secret: %q", got)
	}
}

// A secret holding a whole Authorization value is redacted when a server
// quotes only its credential.
func TestAuthorizationValues(t *testing.T) {
	Add("Bearer b3arer-cred", "Basic "+base64.StdEncoding.EncodeToString([]byte("u:basic-pass")))
	for in, want := range map[string]string{
		"invalid token b3arer-cred":       "invalid token " + Placeholder,
		"user u with password basic-pass": "user u with password " + Placeholder,
		"Bearer is a scheme, Basic too":   "Bearer is a scheme, Basic too",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriter(t *testing.T) {
	Add("wr1ter-secret")
	var b bytes.Buffer
	n, err := fmt.Fprintf(Writer(&b), "error: %s\n", "401 wr1ter-secret")
	if err != nil || n != len("error: 401 wr1ter-secret\n") || b.String() != "error: 401 "+Placeholder+"\n" {
		t.Errorf("wrote %d, %v: %q", n, err, b.String())
	}
}

// The cost of redacting a typical error line with ten registered secrets
// (the log handler pays it per string attribute).
func BenchmarkString(b *testing.B) {
	for i := range 10 {
		Add(fmt.Sprintf("bench-secret-%02d-%s", i, strings.Repeat("x", 20)))
	}
	line := "GET /api/v2/tickets: 500 Internal Server Error: " + strings.Repeat("upstream said no; ", 14)
	b.ReportAllocs()
	for b.Loop() {
		String(line)
	}
}
