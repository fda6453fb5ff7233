package collector

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The configuration is not run here (that needs Docker and the collector's
// images); these tests pin the decisions that are easy to break by editing
// YAML: processor order, sampling policies, and the trace/log links.

func load(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// get walks m along keys; a missing step fails the test.
func get(t *testing.T, m any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			t.Fatalf("%s: not a mapping", strings.Join(keys[:i], "."))
		}
		if m, ok = mm[k]; !ok {
			t.Fatalf("%s: missing", strings.Join(keys[:i+1], "."))
		}
	}
	return m
}

func strs(t *testing.T, v any) []string {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("%v: not a list", v)
	}
	out := make([]string, len(list))
	for i, e := range list {
		out[i], _ = e.(string)
	}
	return out
}

func TestTracesPipeline(t *testing.T) {
	cfg := load(t, "otel-collector.yaml")
	procs := strs(t, get(t, cfg, "service", "pipelines", "traces", "processors"))
	if procs[0] != "memory_limiter" {
		t.Errorf("first processor %q, want memory_limiter: %v", procs[0], procs)
	}
	if procs[len(procs)-1] != "batch" {
		t.Errorf("last processor %q, want batch: %v", procs[len(procs)-1], procs)
	}
	idx := func(prefix string) int {
		return slices.IndexFunc(procs, func(p string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") })
	}
	for _, p := range []string{"resource", "filter", "transform", "tail_sampling"} {
		if idx(p) < 0 {
			t.Errorf("no %s processor in the traces pipeline: %v", p, procs)
		}
	}
	// Enrich, drop and redact before sampling, so sampling memory holds no
	// health checks and nothing unredacted; sample before batching.
	if !(idx("resource") < idx("filter") && idx("filter") < idx("transform") &&
		idx("transform") < idx("tail_sampling") && idx("tail_sampling") < idx("batch")) {
		t.Errorf("processor order %v: want memory_limiter, resource, filter, transform, tail_sampling, batch", procs)
	}
	for _, p := range procs {
		get(t, cfg, "processors", p) // every processor used is defined
	}
	if got := get(t, cfg, "processors", "resource/environment"); !strings.Contains(yamlString(t, got), "deployment.environment") {
		t.Errorf("resource processor does not set deployment.environment: %v", got)
	}
	if f := yamlString(t, get(t, cfg, "processors", "filter/healthz")); !strings.Contains(f, `attributes["http.route"] == "/healthz"`) {
		t.Errorf("filter does not drop /healthz spans: %s", f)
	}
	redact := yamlString(t, get(t, cfg, "processors", "transform/redact"))
	for _, want := range []string{`attributes["url.query"]`, `messaging\\.header\\.`} {
		if !strings.Contains(redact, want) {
			t.Errorf("transform does not touch %s:\n%s", want, redact)
		}
	}
	exp := strs(t, get(t, cfg, "service", "pipelines", "traces", "exporters"))
	if len(exp) != 1 || !strings.HasPrefix(exp[0], "otlp") {
		t.Fatalf("traces exporters %v, want one otlp exporter", exp)
	}
	if ep := get(t, cfg, "exporters", exp[0], "endpoint"); ep != "tempo:4317" {
		t.Errorf("traces exported to %v, want tempo:4317", ep)
	}
}

func TestTailSamplingPolicies(t *testing.T) {
	cfg := load(t, "otel-collector.yaml")
	policies, ok := get(t, cfg, "processors", "tail_sampling", "policies").([]any)
	if !ok {
		t.Fatal("tail_sampling.policies is not a list")
	}
	found := map[string]bool{}
	for _, p := range policies {
		switch get(t, p, "type") {
		case "status_code":
			if slices.Contains(strs(t, get(t, p, "status_code", "status_codes")), "ERROR") {
				found["errors"] = true
			}
		case "latency":
			if get(t, p, "latency", "threshold_ms") == 500 {
				found["latency"] = true
			}
		case "probabilistic":
			if v := get(t, p, "probabilistic", "sampling_percentage"); v == 10 || v == 10.0 {
				found["probabilistic"] = true
			}
		}
	}
	for _, want := range []string{"errors", "latency", "probabilistic"} {
		if !found[want] {
			t.Errorf("no %s policy as required (ERROR / 500 ms / 10%%): %v", want, policies)
		}
	}
}

func TestCompose(t *testing.T) {
	compose := load(t, "docker-compose.yaml")
	services := get(t, compose, "services").(map[string]any)
	for _, s := range []string{"otel-collector", "tempo", "loki", "grafana"} {
		if _, ok := services[s]; !ok {
			t.Errorf("docker-compose.yaml: no %s service", s)
		}
	}
	// Published ports stay on loopback.
	for name, s := range services {
		if ports, ok := s.(map[string]any)["ports"]; ok {
			for _, p := range strs(t, ports) {
				if !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("%s publishes %q beyond loopback", name, p)
				}
			}
		}
	}
	// The files the services mount exist.
	for _, f := range []string{"otel-collector.yaml", "tempo.yaml", "grafana/provisioning/datasources/datasources.yaml"} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
}

func TestGrafanaLinksTracesAndLogs(t *testing.T) {
	ds := load(t, "grafana/provisioning/datasources/datasources.yaml")
	byType := map[string]map[string]any{}
	for _, d := range ds["datasources"].([]any) {
		m := d.(map[string]any)
		byType[m["type"].(string)] = m
	}
	tempo, loki := byType["tempo"], byType["loki"]
	if tempo == nil || loki == nil {
		t.Fatalf("want a tempo and a loki datasource, have %v", byType)
	}
	if got := get(t, tempo, "jsonData", "tracesToLogsV2", "datasourceUid"); got != loki["uid"] {
		t.Errorf("Tempo tracesToLogsV2 points at %v, want Loki's uid %v", got, loki["uid"])
	}
	fields, _ := get(t, loki, "jsonData", "derivedFields").([]any)
	linked := false
	for _, f := range fields {
		m := f.(map[string]any)
		if m["datasourceUid"] == tempo["uid"] && strings.Contains(m["matcherRegex"].(string), "trace_id") {
			linked = true
		}
	}
	if !linked {
		t.Errorf("no Loki derived field links trace_id to Tempo: %v", fields)
	}
}

func yamlString(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
