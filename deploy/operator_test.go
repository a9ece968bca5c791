package deploy_test

import (
	"path/filepath"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

// The ServiceMonitor and the PrometheusRule decode strictly into the
// Prometheus Operator's own API types (an unknown or mistyped field
// fails, as the CRD's structural schema would reject it), and both carry
// the labels kube-prometheus-stack selects them by: without them the
// operator ignores both without a word.
func TestOperatorObjectsValidAndSelected(t *testing.T) {
	var sm monitoringv1.ServiceMonitor
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(k8sDir, "servicemonitor.yaml")), &sm); err != nil {
		t.Fatalf("servicemonitor.yaml: %v", err)
	}
	var pr monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(k8sDir, "prometheusrule.yaml")), &pr); err != nil {
		t.Fatalf("prometheusrule.yaml: %v", err)
	}
	if sm.Kind != monitoringv1.ServiceMonitorsKind || pr.Kind != monitoringv1.PrometheusRuleKind {
		t.Errorf("kinds %q and %q", sm.Kind, pr.Kind)
	}
	for name, l := range map[string]map[string]string{"ServiceMonitor": sm.Labels, "PrometheusRule": pr.Labels} {
		for k, v := range selectorLabels {
			if l[k] != v {
				t.Errorf("%s labels %v lack %s=%s, the label kube-prometheus-stack selects by", name, l, k, v)
			}
		}
	}
	if len(pr.Spec.Groups) == 0 || len(pr.Spec.Groups[0].Rules) == 0 {
		t.Errorf("PrometheusRule has no rules")
	}
	// A field the operator does not know fails the strict decoding.
	bad := map[string]any{"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
		"metadata": map[string]any{"name": "x"}, "spec": map[string]any{"endpoint": []any{}}}
	b, _ := yaml.Marshal(bad)
	if err := yaml.UnmarshalStrict(b, &monitoringv1.ServiceMonitor{}); err == nil {
		t.Errorf("strict decoding accepted spec.endpoint (a typo of endpoints)")
	}
}
