// Package deploy_test checks the deployment examples with the real tools:
// promtool, amtool and servq's own config and rule generation.
package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
	"github.com/servq/servq/slo/rules"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The example Prometheus config passes promtool, with the rule file that
// `servq rules` writes for the example servq config in place.
func TestPrometheusConfig(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	dir := t.TempDir()
	cfg, err := config.Load("../config/example.yml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := rules.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rules.Marshal(f, "example.yml")
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(dir, "servq.rules.yml")
	os.WriteFile(rulesFile, b, 0o644)
	prom, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	const want = "/etc/prometheus/rules/servq.rules.yml"
	if !bytes.Contains(prom, []byte(want)) {
		t.Fatalf("prometheus.yml does not load %s", want)
	}
	promFile := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(promFile, bytes.ReplaceAll(prom, []byte(want), []byte(rulesFile)), 0o644)
	out := run(t, promtool, "check", "config", promFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check config:\n%s", out)
	}
}

// The Alertmanager example is valid and routes page and ticket severities
// to their receivers.
func TestAlertmanagerRouting(t *testing.T) {
	amtool := testenv.Binary(t, "amtool")
	run(t, amtool, "check-config", "alertmanager/alertmanager.yml")
	for labels, want := range map[string]string{
		"severity=page":   "oncall-pager",
		"severity=ticket": "support-tickets",
		"alertname=Other": "support-tickets",
	} {
		args := append([]string{"config", "routes", "test", "--config.file=alertmanager/alertmanager.yml"}, strings.Fields("alertname=X "+labels)...)
		// amtool may print a warning line before the receiver.
		lines := strings.Split(strings.TrimSpace(run(t, amtool, args...)), "\n")
		if got := lines[len(lines)-1]; got != want {
			t.Errorf("%s routes to %q, want %q", labels, got, want)
		}
	}
}

func TestSystemdUnitKeyLines(t *testing.T) {
	b, err := os.ReadFile("systemd/servq.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"ExecStart=/usr/local/bin/servq run --config.file=/etc/servq/servq.yml --storage.path=/var/lib/servq",
		"ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=servq", "[Install]"} {
		if !bytes.Contains(b, []byte(line)) {
			t.Errorf("servq.service lacks %q", line)
		}
	}
}

// The Kubernetes manifests decode, fit together (probes on the port the
// Service exposes, the ServiceMonitor selects the Service), carry a valid
// servq config, and the PrometheusRule is exactly what servq generates for
// it, with rules promtool accepts.
func TestKubernetesManifests(t *testing.T) {
	docs := map[string]map[string]any{}
	for _, name := range []string{"configmap", "pvc", "deployment", "service", "servicemonitor", "prometheusrule"} {
		b, err := os.ReadFile("kubernetes/" + name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if doc["apiVersion"] == nil || doc["kind"] == nil || get(doc, "metadata", "name") == nil {
			t.Errorf("%s lacks apiVersion, kind or metadata.name", name)
		}
		docs[name] = doc
	}
	kust, _ := os.ReadFile("kubernetes/kustomization.yaml")
	for name := range docs {
		if !bytes.Contains(kust, []byte("- "+name+".yaml")) {
			t.Errorf("kustomization.yaml does not list %s.yaml", name)
		}
	}
	container := get(docs["deployment"], "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	port := container["ports"].([]any)[0].(map[string]any)["name"]
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if p := get(container, probe, "httpGet", "port"); p != port {
			t.Errorf("%s probes port %v, container port is %v", probe, p, port)
		}
	}
	if p := get(docs["service"], "spec", "ports").([]any)[0].(map[string]any)["name"]; p != port {
		t.Errorf("service port %v, container port %v", p, port)
	}
	if e := get(docs["servicemonitor"], "spec", "endpoints").([]any)[0].(map[string]any)["port"]; e != port {
		t.Errorf("servicemonitor scrapes port %v", e)
	}
	sel := get(docs["servicemonitor"], "spec", "selector", "matchLabels").(map[string]any)
	for k, v := range sel {
		if get(docs["service"], "metadata", "labels", k) != v {
			t.Errorf("servicemonitor selects %s=%v, the service has no such label", k, v)
		}
	}
	servqYAML := get(docs["configmap"], "data", "servq.yml").(string)
	cfg, err := config.Parse([]byte(servqYAML), "servq.yml")
	if err != nil {
		t.Fatalf("servq config in the ConfigMap: %v", err)
	}
	f, err := rules.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := rules.MarshalPrometheusRule(f, "servq.yml", "servq", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	have, _ := os.ReadFile("kubernetes/prometheusrule.yaml")
	if !bytes.Equal(have, want) {
		t.Errorf("kubernetes/prometheusrule.yaml is not what servq generates for the ConfigMap's config; regenerate it with\n  servq --config.file servq.yml rules --format prometheusrule -o deploy/kubernetes/prometheusrule.yaml")
	}
	spec, err := yaml.Marshal(docs["prometheusrule"]["spec"])
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	os.WriteFile(file, spec, 0o644)
	run(t, testenv.Binary(t, "promtool"), "check", "rules", file)
}

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

// systemd-analyze verify checks the unit's directives; ExecStart must name
// an existing binary, so a copy points at /bin/true.
func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	b, err := os.ReadFile("systemd/servq.service")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "servq.service")
	os.WriteFile(file, bytes.ReplaceAll(b, []byte("/usr/local/bin/servq"), []byte("/bin/true")), 0o644)
	if out := run(t, sa, "verify", file); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify reports:\n%s", out)
	}
}
