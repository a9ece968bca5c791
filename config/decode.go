package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

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
func decodeErrors(err error, file string, pos positions) Errors {
	var out Errors
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if ok := asTypeError(err, &te); ok {
		msgs = te.Errors
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
		}
		out = append(out, e)
	}
	return out
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
	if err := n.Decode(out); err != nil {
		for _, e := range decodeErrors(err, file, pos) {
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
