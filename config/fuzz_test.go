package config

import (
	"os"
	"testing"
)

// Any input gives a config or located errors, never a panic.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"example.yml", "demo.yml", "testdata/errors/slo-custom-both.yml", "testdata/errors/key-set-twice.yml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("collectors: [{name: &a x, type: *a}]\n"))
	f.Add([]byte("global: !!binary aGVsbG8=\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yml")
		if err == nil && cfg == nil {
			t.Fatal("no config and no error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}
