package grafana

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestCovers(t *testing.T) {
	cases := []struct {
		want, have string
		ok         bool
	}{
		{`{"a":1}`, `{"a":1,"b":2}`, true},      // key added by Grafana
		{`{"a":1}`, `{"a":1.0}`, true},          // same number
		{`{"a":1,"b":null}`, `{"a":1}`, true},   // null ~ missing
		{`{"a":1,"b":2}`, `{"a":1}`, false},     // key missing
		{`{"a":[1,2]}`, `{"a":[1,2,3]}`, false}, // array grew
		{`{"a":[{"x":1}]}`, `{"a":[{"x":1,"y":2}]}`, true},
		{`{"a":"1"}`, `{"a":1}`, false},
		{`{"a":true}`, `{"a":false}`, false},
	}
	for _, c := range cases {
		w, _ := decodeJSON([]byte(c.want))
		h, _ := decodeJSON([]byte(c.have))
		if got := covers(w, h); got != c.ok {
			t.Errorf("covers(%s, %s) = %v", c.want, c.have, got)
		}
	}
}

func TestRuleCovered(t *testing.T) {
	ours := rule("servq-x", "X", "1")
	ours.FolderUID, ours.RuleGroup, ours.NoDataState, ours.ExecErrState = "f", "g", "NoData", "Error"
	// As Grafana gives it back: orgID set, "for" in another notation,
	// fields and model keys it adds.
	raw, _ := json.Marshal(ours)
	var m map[string]any
	json.Unmarshal(raw, &m)
	m["orgID"], m["for"], m["id"], m["provenance"] = 1, "300s", 7, "api"
	m["data"].([]any)[0].(map[string]any)["model"].(map[string]any)["intervalMs"] = 1000
	back, _ := json.Marshal(m)
	var theirs AlertRule
	if err := json.Unmarshal(back, &theirs); err != nil {
		t.Fatal(err)
	}
	if !ruleCovered(ours, theirs) {
		t.Errorf("same rule seen as changed:\n%s", back)
	}
	changed := theirs
	changed.For = model.Duration(10 * time.Minute)
	if ruleCovered(ours, changed) {
		t.Error("changed for not seen")
	}
	changed = theirs
	changed.Labels = map[string]string{"severity": "ticket"}
	if ruleCovered(ours, changed) {
		t.Error("changed labels not seen")
	}
	other := rule("servq-x", "X", "2")
	other.FolderUID, other.RuleGroup, other.NoDataState, other.ExecErrState = "f", "g", "NoData", "Error"
	if ruleCovered(other, theirs) {
		t.Error("changed threshold not seen")
	}
}
