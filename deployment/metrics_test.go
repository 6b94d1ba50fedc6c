package deployment

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The chart's metrics: what the server is told, what Prometheus finds.

// metricsObject is an object reduced to what the metrics wiring sets: the
// DaemonSet's pod (annotations, host network, the server's environment and
// ports), the headless Service and the ServiceMonitor.
type metricsObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   metadata
	Spec       struct {
		// DaemonSet
		Template struct {
			Metadata metadata
			Spec     struct {
				HostNetwork bool `yaml:"hostNetwork"`
				Containers  []metricsContainer
			}
		}
		// Service: a map of labels; ServiceMonitor: matchLabels.
		Selector map[string]any
		// Service
		ClusterIP string `yaml:"clusterIP"`
		Ports     []struct {
			Name       string
			Port       int
			TargetPort string `yaml:"targetPort"`
		}
		// ServiceMonitor
		NamespaceSelector struct {
			MatchNames []string `yaml:"matchNames"`
		} `yaml:"namespaceSelector"`
		Endpoints []struct {
			Port, Path, Scheme, Interval string
		}
	}
}

type metricsContainer struct {
	Name  string
	Args  []string
	Env   []envVar
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
		Protocol      string
	}
}

type envVar struct {
	Name      string
	Value     string
	ValueFrom struct {
		FieldRef struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

// labels reads a selector's labels: a Service's map, or a
// ServiceMonitor's matchLabels.
func (o *metricsObject) labels() map[string]string {
	m := o.Spec.Selector
	if ml, ok := m["matchLabels"].(map[string]any); ok {
		m = ml
	}
	out := map[string]string{}
	for k, v := range m {
		s, _ := v.(string)
		out[k] = s
	}
	return out
}

func renderMetrics(t *testing.T, args ...string) map[string]metricsObject {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]metricsObject{}
	for _, o := range decodeAll[metricsObject](t, "helm template", out) {
		objs[o.Kind] = o
	}
	return objs
}

// TestMetricsByDefault: on by default, at the pod's own IP, on the pod
// network; annotated for Prometheus; verification every 5 minutes; no
// ServiceMonitor unless asked for.
func TestMetricsByDefault(t *testing.T) {
	objs := renderMetrics(t)
	ds := objs["DaemonSet"]
	pod := ds.Spec.Template
	if pod.Spec.HostNetwork {
		t.Error("hostNetwork: the pod IP would be the node's, and the metrics on its interface")
	}
	want := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9464", "prometheus.io/path": "/metrics"}
	for k, v := range want {
		if pod.Metadata.Annotations[k] != v {
			t.Errorf("pod annotation %s = %q, want %q", k, pod.Metadata.Annotations[k], v)
		}
	}
	server := pod.Spec.Containers[slices.IndexFunc(pod.Spec.Containers, func(c metricsContainer) bool { return c.Name == "eventlog-server" })]
	env := map[string]string{}
	for i, e := range server.Env {
		env[e.Name] = e.Value
		if e.Name == "POD_IP" && e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
			t.Errorf("POD_IP from %q, want status.podIP", e.ValueFrom.FieldRef.FieldPath)
		}
		if e.Name == "EVENTLOG_METRICS_ADDR" && !slices.ContainsFunc(server.Env[:i], func(p envVar) bool { return p.Name == "POD_IP" }) {
			t.Error("EVENTLOG_METRICS_ADDR comes before POD_IP, which it refers to: Kubernetes would not expand it")
		}
	}
	if _, ok := env["POD_IP"]; !ok {
		t.Error("no POD_IP")
	}
	if got := env["EVENTLOG_METRICS_ADDR"]; got != "[$(POD_IP)]:9464" {
		t.Errorf("EVENTLOG_METRICS_ADDR = %q: want the pod's IP (in brackets, for IPv6 too) and the port", got)
	}
	if len(server.Ports) != 1 || server.Ports[0].Name != "metrics" || server.Ports[0].ContainerPort != 9464 || server.Ports[0].Protocol != "TCP" {
		t.Errorf("ports %+v, want metrics 9464/TCP", server.Ports)
	}
	if v, ok := flagValue(server.Args, "verify-interval"); !ok || v != "5m" {
		t.Errorf("--verify-interval=%q (%v)", v, ok)
	}
	for _, args := range [][]string{nil, {"--set", "metrics.serviceMonitor.enabled=true"}} {
		objs := renderMetrics(t, args...)
		if _, ok := objs["ServiceMonitor"]; ok {
			t.Errorf("%v: a ServiceMonitor on a cluster without monitoring.coreos.com/v1", args)
		}
		if _, ok := objs["Service"]; ok {
			t.Errorf("%v: a Service on a cluster without monitoring.coreos.com/v1", args)
		}
	}
}

// TestMetricsServiceMonitor: where prometheus-operator's API is, the
// ServiceMonitor selects a headless Service of the DaemonSet's pods.
func TestMetricsServiceMonitor(t *testing.T) {
	objs := renderMetrics(t, "--api-versions", "monitoring.coreos.com/v1",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.interval=30s",
		"--set", "metrics.serviceMonitor.labels.release=kube-prometheus-stack", "--set", "metrics.port=9500")
	svc, ok := objs["Service"]
	if !ok {
		t.Fatal("no Service")
	}
	sm, ok := objs["ServiceMonitor"]
	if !ok {
		t.Fatal("no ServiceMonitor")
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor %s", sm.APIVersion)
	}
	if svc.Spec.ClusterIP != "None" {
		t.Errorf("Service clusterIP %q, want None (headless)", svc.Spec.ClusterIP)
	}
	ds := objs["DaemonSet"]
	if len(svc.labels()) == 0 {
		t.Fatal("the Service selects nothing")
	}
	for k, v := range svc.labels() {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, which the DaemonSet's pods do not carry", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 9500 || svc.Spec.Ports[0].TargetPort != "metrics" {
		t.Errorf("Service ports %+v", svc.Spec.Ports)
	}
	sel := sm.labels()
	matched := map[string]string{}
	for k := range sel {
		matched[k] = svc.Metadata.Labels[k]
	}
	if len(sel) == 0 || !reflect.DeepEqual(matched, sel) {
		t.Errorf("the ServiceMonitor selects %v; the Service is labelled %v", sel, svc.Metadata.Labels)
	}
	if sel["app.kubernetes.io/component"] != "metrics" {
		t.Errorf("the ServiceMonitor's selector %v would also select other Services of the release", sel)
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{svc.Metadata.Namespace}) || sm.Metadata.Namespace != svc.Metadata.Namespace {
		t.Errorf("ServiceMonitor in %s watching %v; the Service is in %s", sm.Metadata.Namespace, sm.Spec.NamespaceSelector.MatchNames, svc.Metadata.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("endpoints %+v", sm.Spec.Endpoints)
	}
	if e := sm.Spec.Endpoints[0]; e.Port != "metrics" || e.Path != "/metrics" || e.Scheme != "http" || e.Interval != "30s" {
		t.Errorf("endpoint %+v", e)
	}
	if sm.Metadata.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v: metrics.serviceMonitor.labels not added", sm.Metadata.Labels)
	}
}

// TestMetricsOff: no address, no port, no annotations, no ServiceMonitor;
// the verification is its own switch.
func TestMetricsOff(t *testing.T) {
	objs := renderMetrics(t, "--api-versions", "monitoring.coreos.com/v1", "--set", "metrics.enabled=false",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "podAnnotations.team=ops", "--set", "verifyInterval=0s")
	pod := objs["DaemonSet"].Spec.Template
	if want := map[string]string{"team": "ops"}; !reflect.DeepEqual(pod.Metadata.Annotations, want) {
		t.Errorf("pod annotations %v, want %v", pod.Metadata.Annotations, want)
	}
	for _, c := range pod.Spec.Containers {
		if len(c.Env) > 0 || len(c.Ports) > 0 {
			t.Errorf("%s: env %+v, ports %+v with metrics off", c.Name, c.Env, c.Ports)
		}
		if v, _ := flagValue(c.Args, "verify-interval"); c.Name == "eventlog-server" && v != "0s" {
			t.Errorf("--verify-interval=%q, want 0s", v)
		}
	}
	for _, kind := range []string{"Service", "ServiceMonitor"} {
		if _, ok := objs[kind]; ok {
			t.Errorf("a %s with metrics off", kind)
		}
	}
}

func TestMetricsSchema(t *testing.T) {
	for _, tt := range []struct{ set, want string }{
		{"metrics.port=0", "port"},
		{"metrics.port=70000", "port"},
		{"metrics.enabled=yes", "enabled"},
		{"metrics.serviceMonitor.interval=soon", "interval"},
		{"metrics.serviceMonitor.labels.a=null", "labels"},
		{"metrics.scrape=true", "scrape"},
		{"verifyInterval=five minutes", "verifyInterval"},
		{"verifyInterval=-1m", "verifyInterval"},
	} {
		_, err := helm(t, "template", release, chartDir, "--set", tt.set)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--set %s: error %v, want one naming %s", tt.set, err, tt.want)
		}
	}
}
