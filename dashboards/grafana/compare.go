package grafana

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/big"
	"slices"
	"time"
)

// decodeJSON decodes keeping numbers exact.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// covers reports whether have holds everything want holds: objects are
// compared key by key for want's keys only (keys Grafana or a user added
// are not servq's business), arrays element by element and with the same
// length, numbers by value (1 and 1.0 are equal), a null in want matches a
// missing key.
func covers(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			hv, ok := h[k]
			if !ok {
				if wv == nil {
					continue
				}
				return false
			}
			if !covers(wv, hv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !covers(w[i], h[i]) {
				return false
			}
		}
		return true
	case json.Number:
		h, ok := have.(json.Number)
		if !ok {
			return false
		}
		if w == h {
			return true
		}
		a, _, errA := big.ParseFloat(string(w), 10, 256, big.ToNearestEven)
		b, _, errB := big.ParseFloat(string(h), 10, 256, big.ToNearestEven)
		return errA == nil && errB == nil && a.Cmp(b) == 0
	default: // string, bool, nil
		return want == have
	}
}

// dashboardCovered reports whether Grafana's dashboard object holds ours,
// ignoring id and version (Grafana's bookkeeping).
func dashboardCovered(ours map[string]any, theirs []byte) bool {
	h, err := decodeJSON(theirs)
	if err != nil {
		return false
	}
	w := maps.Clone(ours)
	delete(w, "id")
	delete(w, "version")
	return covers(w, h)
}

// ruleCovered reports whether the rule Grafana holds is ours: equal fields
// (a zero OrgID in ours matches any, nil and empty maps are equal, For by
// duration) and query models compared like dashboards.
func ruleCovered(ours, theirs AlertRule) bool {
	if ours.UID != theirs.UID || ours.FolderUID != theirs.FolderUID ||
		ours.RuleGroup != theirs.RuleGroup || ours.Title != theirs.Title ||
		ours.Condition != theirs.Condition || ours.NoDataState != theirs.NoDataState ||
		ours.ExecErrState != theirs.ExecErrState || ours.IsPaused != theirs.IsPaused ||
		time.Duration(ours.For) != time.Duration(theirs.For) ||
		(ours.OrgID != 0 && ours.OrgID != theirs.OrgID) ||
		!maps.Equal(ours.Labels, theirs.Labels) || !maps.Equal(ours.Annotations, theirs.Annotations) {
		return false
	}
	return slices.EqualFunc(ours.Data, theirs.Data, func(a, b AlertQuery) bool {
		if a.RefID != b.RefID || a.QueryType != b.QueryType ||
			a.RelativeTimeRange != b.RelativeTimeRange || a.DatasourceUID != b.DatasourceUID {
			return false
		}
		am, errA := decodeJSON(orNull(a.Model))
		bm, errB := decodeJSON(orNull(b.Model))
		return errA == nil && errB == nil && covers(am, bm)
	})
}

func orNull(b []byte) []byte {
	if len(bytes.TrimSpace(b)) == 0 {
		return []byte("null")
	}
	return b
}
