package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/servq/servq/config"
	"github.com/servq/servq/dashboards"
)

// deploy/grafana holds what `servq dashboards -o deploy/grafana` writes
// for the embedded demo, plus a data source: the committed files must be
// exactly what servq generates.
func TestGrafanaProvisioningIsGenerated(t *testing.T) {
	cfg, err := config.Demo()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := dashboards.WriteFiles(cfg, dir, dashboards.DefaultFileOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		want, _ := os.ReadFile(f)
		have, err := os.ReadFile(filepath.Join("grafana", rel))
		if err != nil || !bytes.Equal(have, want) {
			t.Errorf("deploy/grafana/%s is not what servq generates (%v); regenerate with: go run ./cmd/servq dashboards -o deploy/grafana", rel, err)
		}
	}
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			UID, Type, URL string
		}
	}
	b, err := os.ReadFile("grafana/provisioning/datasources/servq-prometheus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil || ds.APIVersion != 1 || len(ds.Datasources) != 1 ||
		ds.Datasources[0].UID != dashboards.DefaultFileOptions.DatasourceUID || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("data source file: %+v %v", ds, err)
	}
}
