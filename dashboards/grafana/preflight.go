package grafana

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// The permissions servq's writes need, as Grafana grants them by default.
// Dashboards and the folder: Editor in every version. Alert rules through
// the provisioning API: alert.provisioning:read/write, which Grafana 10.x
// grants to Admin only; from 11.0 (grafana/grafana#77007 and #85022) also
// alert.rules:* with alert.provisioning.provenance:write, both Editor's,
// or the narrower alert.rules.provisioning:read/write.
const (
	dashboardRequirement = "folders and dashboards need the Editor role (folders:create, folders:write, dashboards:create, dashboards:write)"
	ruleRequirement      = "alert rules go through Grafana's alerting provisioning API, which needs the Admin role on Grafana 10.x " +
		"(alert.provisioning:read and alert.provisioning:write; Editor is refused there) and the Editor role from Grafana 11.0 " +
		"(alert.rules:read/create/write/delete with alert.provisioning.provenance:write, or alert.rules.provisioning:read and :write)"
)

// grafanaVersion is what GET /api/health says ("" when it does not).
func (p *provisioner) grafanaVersion(ctx context.Context) string {
	var h struct {
		Version string `json:"version"`
	}
	if err := p.c.do(ctx, http.MethodGet, "/api/health", nil, &h); err != nil {
		return "" // hidden or unreachable: the next request says which
	}
	return h.Version
}

// majorVersion is the leading number of a version ("10.2.3" → 10), 0 when
// there is none.
func majorVersion(v string) int {
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(v)
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// checkPermissions reads the token's permissions and fails, before
// anything is written, when they lack what the run needs; the message
// names the role this Grafana version requires. When Grafana does not say
// (the endpoint refused or missing), the writes themselves will.
func (p *provisioner) checkPermissions(ctx context.Context, version string, withRules bool) error {
	var perms map[string][]string
	err := p.c.do(ctx, http.MethodGet, "/api/access-control/user/permissions", nil, &perms)
	switch {
	case isStatus(err, http.StatusUnauthorized):
		return fmt.Errorf("grafana: %w", err)
	case err != nil:
		return nil
	}
	has := func(actions ...string) bool {
		for _, a := range actions {
			if _, ok := perms[a]; !ok {
				return false
			}
		}
		return true
	}
	var missing, needs []string
	if !has("folders:write") && !has("folders:create") || !has("dashboards:create", "dashboards:write") {
		for _, a := range []string{"folders:create", "folders:write", "dashboards:create", "dashboards:write"} {
			if !has(a) {
				missing = append(missing, a)
			}
		}
		needs = append(needs, dashboardRequirement)
	}
	rulesOK := has("alert.provisioning:write") && (has("alert.provisioning:read") || has("alert.provisioning.secrets:read")) ||
		has("alert.rules.provisioning:read", "alert.rules.provisioning:write") ||
		has("alert.rules:read", "alert.rules:create", "alert.rules:write", "alert.rules:delete", "alert.provisioning.provenance:write")
	// An Editor on 11+ whose organisation took
	// alert.provisioning.provenance:write away (Enterprise and Cloud can):
	// the one action to grant.
	rulesMissing := withRules && !rulesOK
	onlyProvenance := rulesMissing && majorVersion(version) >= 11 &&
		has("alert.rules:read", "alert.rules:create", "alert.rules:write", "alert.rules:delete")
	switch {
	case onlyProvenance:
		missing = append(missing, "alert.provisioning.provenance:write")
		needs = append(needs, ruleRequirement)
	case rulesMissing:
		missing = append(missing, "alert.provisioning:read", "alert.provisioning:write")
		needs = append(needs, ruleRequirement)
	}
	if len(missing) == 0 {
		return nil
	}
	what := "this Grafana (version unknown)"
	advice := "give the service account the role its Grafana version needs"
	switch major := majorVersion(version); {
	case onlyProvenance:
		what, advice = "Grafana "+version, "the service account has the alert-rule actions but not alert.provisioning.provenance:write, "+
			"which this organisation took from its role: grant it (the fixed role that sets provisioning status), or use an Admin account"
	case major >= 11:
		what, advice = "Grafana "+version, "give the service account the Editor role (or Admin)"
	case major == 10 && rulesMissing:
		what, advice = "Grafana "+version, "give the service account the Admin role, or upgrade Grafana to 11.0 or later, where Editor suffices"
	case major > 0:
		what, advice = "Grafana "+version, "give the service account the Editor role (Admin for the alert rules)"
	}
	sort.Strings(missing)
	return fmt.Errorf("grafana: the token lacks %s on %s, so servq wrote nothing: %s; %s",
		strings.Join(missing, ", "), what, strings.Join(needs, "; "), advice)
}

// fileProvisionedDashboard and fileProvisionedRule say what to do when
// servq's uids are held by Grafana's file provisioning (servq dashboards
// -o was used before): Grafana refuses the API's writes to them.
func fileProvisionedDashboard(what, file string) error {
	return fmt.Errorf("grafana: %s is provisioned from the file %q by Grafana's file provisioning, which owns it: Grafana refuses to save it through the API "+
		"(400 \"Cannot save provisioned dashboard\") unless the provider allows UI updates, and servq shares no dashboard with a file either way; "+
		"to switch to the API, remove servq's dashboard provider "+
		"(provisioning/dashboards/servq.yaml) and restart Grafana, which then deletes that provider's dashboards; servq wrote nothing "+
		"(see \"Switching from file provisioning\" in dashboards/README.md)", what, file)
}

func fileProvisionedRule(uid, prov string) error {
	if prov != "file" {
		// e.g. "converted_prometheus": Grafana's import of Prometheus rules.
		return fmt.Errorf("grafana: alert rule %s has provenance %q (provisioned by something other than the API), and Grafana refuses to change it "+
			"through the API (\"cannot change provenance from '%s' to 'api'\"): delete it where it was provisioned, then run servq again; servq wrote nothing",
			uid, prov, prov)
	}
	return fmt.Errorf("grafana: alert rule %s has provenance %q (file provisioning), and Grafana refuses to change it through the API "+
		"(\"cannot change provenance from '%s' to 'api'\"): to switch to the API, replace provisioning/alerting/servq.yaml with one that "+
		"lists servq's rules under deleteRules and restart Grafana; servq wrote nothing "+
		"(see \"Switching from file provisioning\" in dashboards/README.md)", uid, prov, prov)
}

// writeHint explains the refusals of a write that the checks before it
// could not foresee (someone changed Grafana in between).
func writeHint(err error) string {
	var ae *APIError
	if !errors.As(err, &ae) {
		return ""
	}
	switch {
	case ae.StatusCode == http.StatusBadRequest && strings.Contains(ae.Message, "Cannot save provisioned dashboard"):
		return " (the dashboard is file-provisioned: see \"Switching from file provisioning\" in dashboards/README.md)"
	case strings.Contains(ae.Message, "cannot change provenance"), strings.Contains(ae.Message, "with provided provenance"):
		// The single-rule PUT says the first, the group PUT the second.
		return " (the rule is provisioned otherwise than through the API: see \"Switching from file provisioning\" in dashboards/README.md)"
	}
	return conflictHint(err)
}

// groupState is servq's rule group as Grafana holds it, read before any
// write.
type groupState struct {
	found bool
	group ruleGroup
	// rules of the group by uid.
	rules map[string]AlertRule
	// elsewhere: servq's rules found outside the group (by uid).
	elsewhere map[string]AlertRule
}

type provenanced struct {
	AlertRule
	Provenance string `json:"provenance"`
}

func (p *provisioner) groupPath() string {
	return "/api/v1/provisioning/folder/" + url.PathEscape(p.opt.FolderUID) +
		"/rule-groups/" + url.PathEscape(p.opt.RuleGroup)
}

// readRules reads servq's group and its rules that are elsewhere, and
// refuses, before anything is written, a group servq does not have to
// itself and rules held by file provisioning.
//
// The provenance comes from the single-rule GET: the group GET carries
// none (Grafana 10 to 12 build the group without it, so every rule in it
// reads as not provisioned). servq's rules are therefore read one by one,
// those of its group and those it wants.
func (p *provisioner) readRules(ctx context.Context, want []AlertRule) (*groupState, error) {
	st := &groupState{rules: map[string]AlertRule{}, elsewhere: map[string]AlertRule{}}
	g, found, err := p.readGroup(ctx, p.groupPath())
	if len(want) == 0 && isStatus(err, http.StatusForbidden) {
		// No rules to provision, and a token (Editor on Grafana 10.x)
		// that may not use the provisioning API: nothing to do there.
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	st.found, st.group = found, g
	var foreign, own []string
	for _, raw := range g.Rules {
		var r AlertRule
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("grafana: GET %s: decoding a rule: %w", p.groupPath(), err)
		}
		st.rules[r.UID] = r
		if strings.HasPrefix(r.UID, RulePrefix) {
			own = append(own, r.UID)
		} else {
			foreign = append(foreign, r.UID)
		}
	}
	if len(foreign) > 0 && len(want) > 0 {
		sort.Strings(foreign)
		return nil, fmt.Errorf("grafana: rule group %q of folder %s holds alert rules servq did not create (%s), and servq needs a group of its own: "+
			"Grafana's UI refuses to edit any rule of a group holding provisioned rules, and setting the group's interval writes the whole group, "+
			"which would make those rules provisioned too; give servq another group with --grafana.rule-group (servq moves its rules there) "+
			"or move those rules to another group; servq wrote nothing",
			p.opt.RuleGroup, p.opt.FolderUID, strings.Join(foreign, ", "))
	}
	for _, r := range want {
		if _, ok := st.rules[r.UID]; !ok {
			own = append(own, r.UID)
		}
	}
	for _, uid := range own {
		var have provenanced
		err := p.c.do(ctx, http.MethodGet, rulesPath+"/"+uid, nil, &have)
		_, inGroup := st.rules[uid]
		switch {
		case isStatus(err, http.StatusNotFound):
			delete(st.rules, uid) // deleted since the group was read
			continue
		case err != nil:
			return nil, fmt.Errorf("grafana: reading alert rule %s: %w", uid, err)
		case have.Provenance != "" && have.Provenance != "api":
			return nil, fileProvisionedRule(uid, have.Provenance)
		case !inGroup:
			st.elsewhere[uid] = have.AlertRule
		}
	}
	return st, nil
}
