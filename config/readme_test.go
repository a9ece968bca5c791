package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The README's configuration table names every key of every top-level
// section (the plugin keys of collectors excepted: each plugin documents
// its own in collectors/sources/README.md and config/example.yml), so a
// key added to the config types without documentation fails here.
func TestREADMEConfigTableHasEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## Configuration")
	if start < 0 {
		t.Fatal("README has no Configuration section")
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	rows := map[string]string{}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (.*)\\|$")
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		rows[m[1]] = m[2]
	}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		f := ct.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		doc, ok := rows[key]
		if !ok {
			t.Errorf("README's configuration table has no row for %q", key)
			continue
		}
		for _, k := range keysOf(f.Type, map[reflect.Type]bool{}) {
			if !strings.Contains(doc, "`"+k+"`") {
				t.Errorf("README's configuration row %q does not name `%s`", key, k)
			}
		}
	}
}

func yamlKey(f reflect.StructField) string {
	tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
	if tag == "-" || !f.IsExported() {
		return ""
	}
	return tag
}

// keysOf lists the yaml keys of a section type and of the structs nested
// in it (an SLO's alerting keys are in the SLO row).
func keysOf(t reflect.Type, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() != reflect.TypeOf(Config{}).PkgPath() {
		return nil
	}
	seen[t] = true
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		k := yamlKey(f)
		if k == "" {
			continue
		}
		keys = append(keys, k)
		keys = append(keys, keysOf(f.Type, seen)...)
	}
	return keys
}
