package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a config file, located by file, line and the field
// path (collectors[2].schedule) so that a user can jump straight to it.
type Error struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a config, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns es as an error, or nil when there is none.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	return es
}

// positions maps a field path to the line it was written on, so that
// validation (which works on decoded structs) can still point at the source.
type positions map[string]int

// line returns the line of path, or of its closest written parent: a missing
// required field is reported where its parent mapping starts.
func (p positions) line(path string) int {
	for path != "" {
		if l, ok := p[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return p[""]
}

// rawNode lets a struct keep part of its YAML undecoded. A type that
// implements it is not checked for unknown keys by the walker: it takes the
// keys it knows and hands the rest on (collectors hand theirs to plugins).
type rawNode interface {
	knownKeys() map[string]bool
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in every scalar with the environment's value
// ($$ is a literal $). It works on parsed scalars, not the raw text, so line
// numbers stay exact and a value can never inject YAML structure.
func expandEnv(n *yaml.Node, file string, path string, errs *Errors) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			expandEnv(c, file, p, errs)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], file, joinPath(path, n.Content[i].Value), errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		// A plain scalar is typed by its text, so it is typed again after
		// expansion: label_limit: ${LIMIT} must become an int. Quoted and
		// explicitly tagged scalars stay what they were written as.
		if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			name := m[2 : len(m)-1]
			v, ok := os.LookupEnv(name)
			if !ok {
				*errs = append(*errs, &Error{File: file, Line: n.Line, Path: path,
					Msg: fmt.Sprintf("environment variable %s is not set", name)})
			}
			return v
		})
	}
}

func joinPath(parent, key string) string {
	if key == "" {
		return parent
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// walk checks a mapping against the yaml tags of the struct type t: unknown
// keys and duplicate keys are errors (the strictness of yaml.v3's
// KnownFields, with a line number and a path), and every key's line is
// recorded in pos for later validation messages.
func walk(n *yaml.Node, t reflect.Type, file, path string, pos positions, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	pos[path] = n.Line
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // yaml.v3's Decode reports the type mismatch
		}
		fields := yamlFields(t)
		var known map[string]bool
		if r, ok := reflect.New(t).Interface().(rawNode); ok {
			known = r.knownKeys()
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if seen[k.Value] {
				*errs = append(*errs, &Error{File: file, Line: k.Line, Path: p, Msg: "field is set twice"})
				continue
			}
			seen[k.Value] = true
			pos[p] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				if known == nil {
					*errs = append(*errs, &Error{File: file, Line: k.Line, Path: p,
						Msg: fmt.Sprintf("unknown field %q (known: %s)", k.Value, strings.Join(sortedKeys(fields), ", "))})
				}
				continue
			}
			walk(v, f.Type, file, p, pos, errs)
			pos[p] = k.Line
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			walk(c, t.Elem(), file, fmt.Sprintf("%s[%d]", path, i), pos, errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if seen[k.Value] {
				*errs = append(*errs, &Error{File: file, Line: k.Line, Path: p, Msg: "key is set twice"})
				continue
			}
			seen[k.Value] = true
			pos[p] = k.Line
			walk(v, t.Elem(), file, p, pos, errs)
			pos[p] = k.Line
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		parts := strings.Split(tag, ",")
		// An embedded struct may be unexported and still inline (yaml.v3
		// decodes into it); check inlining before exportedness.
		if len(parts) > 1 && parts[1] == "inline" && f.Type.Kind() == reflect.Struct {
			// Shared keys embedded in a plugin's spec (the API sources'
			// politeness settings) are keys of the spec itself.
			for k, sub := range yamlFields(f.Type) {
				out[k] = sub
			}
			continue
		}
		if tag == "-" || !f.IsExported() {
			continue
		}
		name := parts[0]
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// parserProblems are the syntax errors of yaml.v3's parser (as opposed to
// its scanner): it reports them with a line counted from 0, one less than
// the line of the file.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// decodeErrors turns yaml.v3's type errors ("line 7: cannot unmarshal ...")
// into located Errors.
func decodeErrors(err error, file string, pos positions, root *yaml.Node, rootPath string) Errors {
	var out Errors
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if ok := asTypeError(err, &te); ok {
		msgs = te.Errors
	}
	scalars := map[int][]pathValue{}
	if root != nil {
		scalarValues(root, rootPath, scalars)
	}
	byLine := map[int]string{}
	for p, l := range pos {
		if cur, ok := byLine[l]; !ok || len(p) > len(cur) {
			byLine[l] = p
		}
	}
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		e := &Error{File: file, Msg: m}
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			fmt.Sscan(g[1], &e.Line)
			e.Msg = g[2]
			if parserProblems[e.Msg] {
				e.Line++
			}
			e.Path = byLine[e.Line]
			// Several keys on one line ({name: a, timeout: zz}): the
			// one whose value the message quotes.
			for _, sv := range scalars[e.Line] {
				if strings.Contains(e.Msg, "`"+sv.value+"`") || strings.Contains(e.Msg, strconv.Quote(sv.value)) {
					e.Path = sv.path
					break
				}
			}
		}
		out = append(out, e)
	}
	return out
}

type pathValue struct{ path, value string }

// scalarValues lists the scalar values under n by line, with their paths.
func scalarValues(n *yaml.Node, path string, out map[int][]pathValue) {
	switch n.Kind {
	case yaml.ScalarNode:
		out[n.Line] = append(out[n.Line], pathValue{path, n.Value})
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			scalarValues(c, p, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			scalarValues(n.Content[i+1], joinPath(path, n.Content[i].Value), out)
		}
	}
}

func asTypeError(err error, te **yaml.TypeError) bool {
	t, ok := err.(*yaml.TypeError)
	if ok {
		*te = t
	}
	return ok
}

// decodeStrict decodes n into out after checking it for unknown keys. It is
// the one way config is decoded, for the main file and for plugin sections.
func decodeStrict(n *yaml.Node, out any, file, path string, pos positions) Errors {
	var errs Errors
	walk(n, reflect.TypeOf(out), file, path, pos, &errs)
	twice := map[int]bool{}
	for _, e := range errs {
		if strings.HasSuffix(e.Msg, "is set twice") {
			twice[e.Line] = true
		}
	}
	err := n.Decode(out)
	if err != nil && len(twice) > 0 {
		// yaml.v3 gives up on a document at its first duplicate key, so
		// the other problems of the file would show only once that one
		// is fixed. walk has reported the duplicates: decode a copy
		// without them to find the rest.
		d := reflect.New(reflect.TypeOf(out).Elem()).Interface()
		err = withoutDuplicates(n, map[*yaml.Node]*yaml.Node{}).Decode(d)
	}
	if err != nil {
		for _, e := range decodeErrors(err, file, pos, n, path) {
			// walk reported this duplicate with its path. yaml.v3's message
			// stays for duplicates walk cannot see (inside an `any` field):
			// yaml.v3 leaves that whole mapping undecoded.
			if strings.Contains(e.Msg, "already defined at line") && twice[e.Line] {
				continue
			}
			errs = append(errs, e)
		}
	}
	return errs
}

// withoutDuplicates returns a copy of n in which every mapping keeps only
// the first of repeated keys (merge keys aside), aliases pointing into the
// copy. n itself is left as it is.
func withoutDuplicates(n *yaml.Node, copies map[*yaml.Node]*yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if c, ok := copies[n]; ok {
		return c
	}
	c := *n
	copies[n] = &c
	c.Alias = withoutDuplicates(n.Alias, copies)
	c.Content = nil
	seen := map[string]bool{}
	for i := 0; i < len(n.Content); i++ {
		if n.Kind == yaml.MappingNode && i%2 == 0 && i+1 < len(n.Content) {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && k.Value != "<<" {
				if seen[k.Value] {
					i++ // skip the key and its value
					continue
				}
				seen[k.Value] = true
			}
		}
		c.Content = append(c.Content, withoutDuplicates(n.Content[i], copies))
	}
	return &c
}

// coreTags are the explicit tags a config may use: YAML's core schema.
// Others (!!binary, which yaml.v3 silently base64-decodes into a string,
// !!timestamp, !!set, local !tags) have no meaning in a servq config.
var coreTags = map[string]bool{"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true, "!!map": true, "!!seq": true}

// checkTags reports every explicit tag outside the core schema, and every
// core-tagged scalar whose text is not of its tag (!!int abc), with its
// line: yaml.v3 reports these without one, and stops at the first. A node
// reported is made null so that decoding carries on to the file's other
// problems.
func checkTags(n *yaml.Node, file, path string, errs *Errors) {
	if n.Kind == yaml.AliasNode {
		return
	}
	if n.Style&yaml.TaggedStyle != 0 {
		tag := n.ShortTag()
		msg := ""
		if !coreTags[tag] {
			msg = fmt.Sprintf("explicit tag %s is not supported: write the plain value (only the core tags !!str, !!int, !!float, !!bool and !!null are)", n.Tag)
		} else if n.Kind == yaml.ScalarNode {
			var v any
			if err := n.Decode(&v); err != nil {
				msg = fmt.Sprintf("%q is not a valid %s", n.Value, tag)
			}
		}
		if msg != "" {
			*errs = append(*errs, &Error{File: file, Line: n.Line, Path: path, Msg: msg})
			*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
			return
		}
	}
	for i, c := range n.Content {
		p := path
		switch n.Kind {
		case yaml.SequenceNode:
			p = fmt.Sprintf("%s[%d]", path, i)
		case yaml.MappingNode:
			if i%2 == 1 {
				p = joinPath(path, n.Content[i-1].Value)
			} else {
				p = joinPath(path, c.Value)
			}
		}
		checkTags(c, file, p, errs)
	}
}

// unknownAnchor is yaml.v3's message, without a line, for an alias to an
// anchor never defined.
var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// yamlComment is a comment to the end of the line (close enough to find an
// alias: a # inside a quoted value is rare in a config).
var yamlComment = regexp.MustCompile(`(^|\s)#.*$`)

// locate finds the line of a problem yaml.v3 reported without one, from the
// raw text: the first character YAML does not allow (control characters,
// invalid UTF-8), or the first use of an undefined anchor. It returns 0 and
// the message unchanged when it cannot tell.
func locate(data []byte, msg string) (int, string) {
	line := func(off int) int { return 1 + bytes.Count(data[:off], []byte("\n")) }
	switch msg {
	case "control characters are not allowed", "invalid leading UTF-8 octet", "invalid trailing UTF-8 octet", "incomplete UTF-8 octet sequence":
		for off := 0; off < len(data); {
			r, size := utf8.DecodeRune(data[off:])
			switch {
			case r == utf8.RuneError && size <= 1:
				return line(off), fmt.Sprintf("%s (byte 0x%02X is not UTF-8)", msg, data[off])
			case !yamlAllowed(r):
				return line(off), fmt.Sprintf("control character %U is not allowed", r)
			}
			off += size
		}
	}
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		alias := regexp.MustCompile(`\*` + regexp.QuoteMeta(m[1]) + `(?:[\s,\]}]|$)`)
		for i, l := range bytes.Split(data, []byte("\n")) {
			if alias.Match(yamlComment.ReplaceAll(l, nil)) {
				return i + 1, fmt.Sprintf("alias *%s refers to an anchor &%s that is not defined before it", m[1], m[1])
			}
		}
	}
	return 0, msg
}

// yamlAllowed is YAML 1.2's printable set, which yaml.v3's reader enforces.
func yamlAllowed(r rune) bool {
	switch {
	case r == 0x09, r == 0x0A, r == 0x0D, r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7E, r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}
