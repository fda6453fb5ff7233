// Package collector holds a local observability stack for otelmq's demo: an
// OpenTelemetry Collector (otel-collector.yaml), Tempo, Loki and Grafana
// (docker-compose.yaml). There is no Go code to run here; the package exists
// for collector_test.go, which checks the configuration's shape.
package collector
