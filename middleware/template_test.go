package middleware_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// TestDestinationTemplateAndRedactor: a destination name holding personal
// data ("orders-alice") reaches no span name, span attribute or metric
// when spans are named by a template and the redactor drops the name; and
// the redactor alone keeps it out of metrics as it does out of spans.
func TestDestinationTemplateAndRedactor(t *testing.T) {
	const secret = "alice"
	dropName := middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == semconv.MessagingDestinationNameKey {
			return attribute.KeyValue{}
		}
		return kv
	})
	template := middleware.WithDestinationTemplate(func(d middleware.Destination) string {
		if strings.HasPrefix(d.Name, "orders-") {
			return "orders-{customer}"
		}
		return ""
	})
	for _, tc := range []struct {
		name       string
		opts       []middleware.Option
		redacted   bool
		spanNamed  string // "" when span names keep the destination
		inMetrics  attribute.Key
		wantMetric string
	}{
		{"redactor alone", []middleware.Option{dropName}, true, "", semconv.MessagingDestinationNameKey, ""},
		{"template and redactor", []middleware.Option{template, dropName}, true, "orders-{customer}", semconv.MessagingDestinationTemplateKey, "orders-{customer}"},
		{"template alone", []middleware.Option{template}, false, "orders-{customer}", semconv.MessagingDestinationTemplateKey, "orders-{customer}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessOn(t, polled{memory.New()}, tc.opts...)
			if err := h.pub.Publish(context.Background(), "orders-"+secret, middleware.NewMessage([]byte("{}"))); err != nil {
				t.Fatal(err)
			}
			h.consume("orders-"+secret, 1, func(context.Context, *middleware.Message) error { return nil })

			if tc.spanNamed != "" {
				for _, op := range []string{"send", "receive", "process", "ack"} {
					s := h.one(op + " " + tc.spanNamed)
					if v, _ := attr(s, string(semconv.MessagingDestinationTemplateKey)); v.AsString() != tc.spanNamed {
						t.Errorf("%s span: template %q", op, v.AsString())
					}
				}
				for _, s := range h.rec.Ended() {
					if strings.Contains(s.Name(), secret) {
						t.Errorf("span name %q holds the destination", s.Name())
					}
				}
			}
			if tc.redacted {
				for _, s := range h.rec.Ended() {
					for _, kv := range s.Attributes() {
						if strings.Contains(kv.Value.Emit(), secret) {
							t.Errorf("span %q: %s = %q", s.Name(), kv.Key, kv.Value.Emit())
						}
					}
				}
			}

			var rm metricdata.ResourceMetrics
			if err := h.reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			points := 0
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					for _, set := range attributeSets(m.Data) {
						points++
						for _, kv := range set.ToSlice() {
							if strings.Contains(kv.Value.Emit(), secret) {
								t.Errorf("metric %s: %s = %q", m.Name, kv.Key, kv.Value.Emit())
							}
						}
						if v, _ := set.Value(tc.inMetrics); v.AsString() != tc.wantMetric {
							t.Errorf("metric %s: %s = %q, want %q", m.Name, tc.inMetrics, v.AsString(), tc.wantMetric)
						}
					}
				}
			}
			if points == 0 {
				t.Fatal("no metric recorded")
			}
		})
	}
}

// attributeSets returns the attribute sets of data's points.
func attributeSets(data metricdata.Aggregation) []attribute.Set {
	var sets []attribute.Set
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	}
	return sets
}
