// Package redact keeps configured secrets out of everything servq prints
// or serves. Every secret servq holds is registered here when it is decoded
// from the config, read from a *_file or put on the wire; String replaces
// each registered value, and the encodings under which a server or proxy
// may echo it back, with Placeholder. servq applies it where text leaves
// the process: the log handler, collector and reload errors on the landing
// page and /api/v1/collectors, and the output of servq collect.
//
// The registry is process-wide and only grows: a secret rotated away by a
// reload stays redacted, which costs nothing and covers old errors still
// on display.
package redact

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// Placeholder replaces a secret.
const Placeholder = "<redacted>"

// MinLen is the shortest secret that is redacted: shorter values ("x",
// "abc") would mangle ordinary text wherever those letters occur, and are
// no protection anyway.
const MinLen = 4

// minCore is the shortest base64 fragment matched on its own: 8 base64
// characters (48 bits) do not occur in ordinary text by chance.
const minCore = 8

// pattern is one form of a secret. token patterns are base64 text: a match
// removes the whole run of base64 characters around it, since the
// characters next to an embedded secret encode parts of it too.
type pattern struct {
	s     string
	token bool
}

var (
	mu    sync.Mutex
	seen  = map[string]bool{} // registered values and user:pass pairs
	known atomic.Pointer[[]pattern]
)

// Add registers secret values. Values shorter than MinLen are ignored.
func Add(values ...string) {
	for _, v := range values {
		if len(v) < MinLen || isSeen(v) {
			continue
		}
		add(v, forms(v))
		Add(credentials(v)...)
	}
}

// credentials are the parts of a whole Authorization value ("Bearer
// TOKEN", "Basic base64(user:pass)", "token TOKEN") that a server may quote
// on their own: the credential after the scheme, and a basic-auth password.
func credentials(v string) []string {
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok || len(scheme) > 10 || strings.ContainsFunc(scheme, func(r rune) bool { return !unicode.IsLetter(r) }) {
		return nil
	}
	cred = strings.TrimSpace(cred)
	out := []string{cred}
	if strings.EqualFold(scheme, "basic") {
		if b, err := base64.StdEncoding.DecodeString(cred); err == nil {
			if _, pass, ok := strings.Cut(string(b), ":"); ok {
				out = append(out, pass)
			}
		}
	}
	return out
}

// BasicAuth returns the Authorization header value of HTTP basic auth for
// user and pass, and registers its encoding, so that an echoed header is
// redacted even when pass alone is too short to be found in it.
func BasicAuth(user, pass string) string {
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	key := "basic\x00" + user + "\x00" + pass
	if !isSeen(key) {
		ps := []pattern{{strings.TrimRight(cred, "="), true}}
		if len(pass) >= MinLen {
			ps = append(ps, forms(pass)...)
		}
		add(key, ps)
	}
	return "Basic " + cred
}

func isSeen(key string) bool {
	mu.Lock()
	defer mu.Unlock()
	return seen[key]
}

func add(key string, ps []pattern) {
	mu.Lock()
	defer mu.Unlock()
	if seen[key] {
		return
	}
	seen[key] = true
	var all []pattern
	if old := known.Load(); old != nil {
		all = slices.Clone(*old)
	}
	for _, p := range ps {
		if len(p.s) >= MinLen && !slices.Contains(all, p) {
			all = append(all, p)
		}
	}
	// Longest first, so that a form containing another is replaced whole.
	slices.SortStableFunc(all, func(a, b pattern) int { return len(b.s) - len(a.s) })
	known.Store(&all)
}

// forms are the encodings under which v may come back: as sent, escaped
// for a URL, HTML, a JSON string or a Go %q, and in base64 (alone, or anywhere
// inside a longer base64 text such as the user:pass of basic auth).
func forms(v string) []pattern {
	ps := []pattern{{v, false}, {url.QueryEscape(v), false}, {url.PathEscape(v), false}, {html.EscapeString(v), false}}
	j, _ := json.Marshal(v)
	ps = append(ps, pattern{string(j[1 : len(j)-1]), false})
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	if s := strings.TrimSpace(b.String()); len(s) >= 2 {
		ps = append(ps, pattern{s[1 : len(s)-1], false})
	}
	q := strconv.Quote(v)
	ps = append(ps, pattern{q[1 : len(q)-1], false})
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		ps = append(ps, pattern{strings.TrimRight(e.EncodeToString([]byte(v)), "="), true})
		// v at byte offset 0, 1 or 2 (mod 3) of a longer encoded text:
		// the 4-character groups made of v's bytes only are the same
		// whatever surrounds v.
		for off := 0; off < 3; off++ {
			full := e.EncodeToString(append(make([]byte, off), v...))
			first := (off + 2) / 3     // first group without prefix bytes
			last := (off + len(v)) / 3 // groups fully inside v end here
			if core := full[min(first*4, len(full)):min(last*4, len(full))]; len(core) >= minCore {
				ps = append(ps, pattern{core, true})
			}
		}
	}
	return ps
}

// String returns s with every registered secret form replaced.
func String(s string) string {
	ps := known.Load()
	if ps == nil || len(s) < MinLen {
		return s
	}
	for _, p := range *ps {
		if !strings.Contains(s, p.s) {
			continue
		}
		if !p.token {
			s = strings.ReplaceAll(s, p.s, Placeholder)
			continue
		}
		var b strings.Builder
		for {
			i := strings.Index(s, p.s)
			if i < 0 {
				break
			}
			start, end := i, i+len(p.s)
			for start > 0 && isB64(s[start-1]) {
				start--
			}
			for end < len(s) && isB64(s[end]) {
				end++
			}
			b.WriteString(s[:start])
			b.WriteString(Placeholder)
			s = s[end:]
		}
		b.WriteString(s)
		s = b.String()
	}
	return s
}

func isB64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '-' || c == '_' || c == '='
}

// Error is String of err's text, "" for nil.
func Error(err error) string {
	if err == nil {
		return ""
	}
	return String(err.Error())
}

// Text makes text of unknown origin (a vendor's error body, a command's
// stderr, an error quoting either) safe to print on one line: secrets
// redacted, invalid UTF-8, control and bidirectional-override characters
// replaced, runs of white space collapsed, and at most max bytes (cut at a
// character boundary, "…" appended). Redaction comes before the cut, so
// that a cut cannot leave a secret's prefix unrecognised.
func Text(s string, max int) string {
	s = String(strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r), r == '\u2028', r == '\u2029':
			return '\uFFFD'
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if max > 0 && len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
