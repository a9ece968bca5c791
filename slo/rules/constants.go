package rules

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/servq/servq/slo/sli"
)

// keySep separates the label values constExpr packs into one label: a
// control character no SLO name, label or counter selector has (it
// refuses one that does).
const keySep = "\x1f"

// constRow is one constant series of constExpr: its value, its SLO and
// the values of the labels it sets itself.
type constRow struct {
	value  float64
	id     string
	packed []string
}

// constExpr is one expression for many constant series: one per row,
// with sloth_id, the packed labels, sloth_service, sloth_slo and the
// labels of its SLO (perID, by sloth_id).
//
// Prometheus spends about 50 µs on every function call and operator of
// an expression, so a series built from vector() with one label_replace
// per label costs that many calls: 187 term weights with 6 labels each
// took 66 ms an evaluation. Here each series is one label_replace setting
// one label that packs its own values, the branches are combined by "or"
// in a balanced tree (each "or" hashes the series of both sides, so a
// chain of n costs n²/2), and every other label is set for all series at
// once: unpacked by one regular expression per label, sloth_slo taken
// from sloth_id, and an SLO label by one label_replace per distinct value
// over the SLOs that have it (18 ms for the same weights).
func constExpr(service string, packed []string, rows []constRow, perID map[string]map[string]string) (string, error) {
	parts := make([]string, len(rows))
	for i, r := range rows {
		vals := append([]string{r.id}, r.packed...)
		for _, v := range vals {
			if strings.Contains(v, keySep) {
				return "", fmt.Errorf("%q: SLO names, labels and filters cannot hold the control character U+001F", v)
			}
		}
		parts[i] = fmt.Sprintf(`label_replace(vector(%s), "servq_key", %s, "", "")`,
			sli.Num(r.value), strconv.Quote(replacement(strings.Join(vals, keySep))))
	}
	x := balancedOr(parts)
	names := append([]string{"sloth_id"}, packed...)
	groups := make([]string, len(names))
	for i := range names {
		groups[i] = "([^" + keySep + "]*)"
	}
	unpack := strconv.Quote(strings.Join(groups, keySep))
	for i, n := range names {
		x = fmt.Sprintf(`label_replace(%s, %s, "${%d}", "servq_key", %s)`, x, strconv.Quote(n), i+1, unpack)
	}
	x = fmt.Sprintf(`label_replace(%s, "servq_key", "", "", "")`, x)
	x = fmt.Sprintf(`label_replace(%s, "sloth_service", %s, "", "")`, x, strconv.Quote(replacement(service)))
	x = fmt.Sprintf(`label_replace(%s, "sloth_slo", "${1}", "sloth_id", %s)`, x, strconv.Quote(regexp.QuoteMeta(service+"-")+"(.*)"))
	var ids []string
	seen := map[string]bool{}
	for _, r := range rows {
		if !seen[r.id] {
			seen[r.id] = true
			ids = append(ids, r.id)
		}
	}
	return withSLOLabels(x, ids, perID), nil
}

// withSLOLabels sets the labels of each SLO (perID, by sloth_id) on the
// series of x, whose SLOs are ids: one label_replace per label and
// value, over the SLOs that have it.
func withSLOLabels(x string, ids []string, perID map[string]map[string]string) string {
	type pair struct{ name, value string }
	who := map[pair][]string{}
	for _, id := range ids {
		for k, v := range perID[id] {
			who[pair{k, v}] = append(who[pair{k, v}], id)
		}
	}
	pairs := make([]pair, 0, len(who))
	for p := range who {
		pairs = append(pairs, p)
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].name != pairs[j].name {
			return pairs[i].name < pairs[j].name
		}
		return pairs[i].value < pairs[j].value
	})
	for _, p := range pairs {
		src, re := `""`, `""`
		if have := who[p]; len(have) < len(ids) {
			quoted := make([]string, len(have))
			for i, id := range have {
				quoted[i] = regexp.QuoteMeta(id)
			}
			src, re = `"sloth_id"`, strconv.Quote(strings.Join(quoted, "|"))
		}
		x = fmt.Sprintf("label_replace(%s, %s, %s, %s, %s)", x, strconv.Quote(p.name), strconv.Quote(replacement(p.value)), src, re)
	}
	return x
}

// balancedOr joins the vectors by "or" in a balanced tree.
func balancedOr(parts []string) string {
	switch len(parts) {
	case 0:
		return "vector(0) < 0" // nothing
	case 1:
		return parts[0]
	}
	m := len(parts) / 2
	return "(" + balancedOr(parts[:m]) + "\nor " + balancedOr(parts[m:]) + ")"
}

// replacement escapes a label value for label_replace, which expands $
// in its replacement.
func replacement(v string) string { return strings.ReplaceAll(v, "$", "$$") }
