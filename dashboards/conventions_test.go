package dashboards

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// strictDecode decodes a dashboard into the Grafana Foundation SDK's types
// (the dashboard schema Grafana itself is generated from) strictly: an
// unknown field, a field of the wrong type or a missing required field is
// an error, in the dashboard, its variables, links and panels, each
// panel's options and fieldConfig.defaults.custom (decoded by the panel
// plugin's own types: timeseries, stat, gauge, bargauge, table) and its
// Prometheus queries. The SDK decodes fieldConfig itself loosely, apart
// from custom: it is decoded strictly on its own.
func strictDecode(raw []byte) error {
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := sdkErr(d.UnmarshalJSONStrict(raw)); err != nil {
		return err
	}
	var panels struct {
		Panels []struct {
			Title       string          `json:"title"`
			FieldConfig json.RawMessage `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &panels); err != nil {
		return err
	}
	for _, p := range panels.Panels {
		if p.FieldConfig == nil {
			continue
		}
		var fc dashboard.FieldConfigSource
		if err := sdkErr(fc.UnmarshalJSONStrict(p.FieldConfig)); err != nil {
			return fmt.Errorf("panel %q: fieldConfig: %w", p.Title, err)
		}
	}
	return nil
}

// Every generated dashboard decodes strictly into the Grafana Foundation
// SDK's dashboard types.
func TestDashboardsDecodeStrictlyIntoTheFoundationSDK(t *testing.T) {
	_, ds := demoBoards(t)
	for _, d := range ds {
		if err := strictDecode(d.JSON); err != nil {
			t.Errorf("%s: %v", d.UID, err)
		}
	}
}

// sdkErr turns the SDK's empty error list (a non-nil error of no errors)
// into nil.
func sdkErr(err error) error {
	if be, ok := err.(cog.BuildErrors); ok && len(be) == 0 {
		return nil
	}
	return err
}

// Strict decoding fails on what Grafana would ignore or misread: unknown
// fields and wrong types anywhere, the panel plugins' options included.
func TestStrictDecodeRejectsUnknownAndMistypedFields(t *testing.T) {
	_, ds := demoBoards(t)
	var tickets []byte
	for _, d := range ds {
		if d.UID == UIDTickets {
			tickets = d.JSON
		}
	}
	for name, edit := range map[string]func(m map[string]any){
		"unknown dashboard field": func(m map[string]any) { m["refreshh"] = "1m" },
		"mistyped gridPos":        func(m map[string]any) { panel(m, 1)["gridPos"].(map[string]any)["w"] = "12" },
		"unknown panel field":     func(m map[string]any) { panel(m, 1)["spann"] = 4 },
		"unknown option":          func(m map[string]any) { panel(m, 1)["options"].(map[string]any)["legendd"] = true },
		"mistyped stat option": func(m map[string]any) {
			for _, p := range m["panels"].([]any) {
				if pm := p.(map[string]any); pm["type"] == "stat" {
					pm["options"].(map[string]any)["wideLayout"] = "yes"
					return
				}
			}
			t.Fatal("no stat panel")
		},
		"unknown custom field config": func(m map[string]any) {
			fieldDefaults(panel(m, 1))["custom"].(map[string]any)["lineWidht"] = 2
		},
		"unknown field config": func(m map[string]any) { fieldDefaults(panel(m, 1))["unti"] = "s" },
		"unknown query field": func(m map[string]any) {
			panel(m, 1)["targets"].([]any)[0].(map[string]any)["exprr"] = "up"
		},
		"unknown variable field": func(m map[string]any) {
			m["templating"].(map[string]any)["list"].([]any)[1].(map[string]any)["multii"] = true
		},
	} {
		var m map[string]any
		if err := json.Unmarshal(tickets, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		if err := strictDecode(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func panel(m map[string]any, i int) map[string]any { return m["panels"].([]any)[i].(map[string]any) }

func fieldDefaults(p map[string]any) map[string]any {
	return p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)
}
