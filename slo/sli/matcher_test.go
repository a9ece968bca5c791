package sli

import "testing"

// ValueMatcher reads a filter as Selector's PromQL does: "=~" anchors the
// regular expression at both ends; anything else is equality, also for a
// missing label ("").
func TestValueMatcherIsPromQLs(t *testing.T) {
	for _, c := range []struct {
		matcher, value string
		want           bool
	}{
		{"=~sal.*", "sales", true},
		{"=~sal.*", "resale", false}, // anchored at the start
		{"=~sal", "sales", false},    // and at the end
		{"=~a|b", "b", true},         // the whole alternation is anchored
		{"=~a|b", "ab", false},
		{"=~|x", "", true}, // a missing label reads as ""
		{"sales", "sales", true},
		{"sales", "Sales", false},
		{"", "", true},
		{"sal.*", "sales", false}, // no "=~": literal
	} {
		m, err := ValueMatcher(c.matcher)
		if err != nil {
			t.Fatal(err)
		}
		if got := m(c.value); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.matcher, c.value, got, c.want)
		}
	}
	if _, err := ValueMatcher("=~("); err == nil {
		t.Error("a regular expression that does not compile is accepted")
	}
}
