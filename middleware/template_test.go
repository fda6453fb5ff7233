package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/otelmq/otelmq/middleware"
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
			h := newHarnessOn(t, newPolled(), tc.opts...)
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

// TestRedactorSeesStatusDescriptions: an error's text, which can hold
// message data, reaches span status descriptions only through the
// redactor (as StatusDescriptionKey), on the process span and on Retry's
// attempt spans alike; error.type stays.
func TestRedactorSeesStatusDescriptions(t *testing.T) {
	const secret = "alice@example.com"
	for _, tc := range []struct {
		name string
		to   attribute.KeyValue // what the redactor returns for the description
		want string
	}{
		{"masked", middleware.StatusDescriptionKey.String("invalid address"), "invalid address"},
		{"dropped", attribute.KeyValue{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
				if kv.Key == middleware.StatusDescriptionKey {
					return tc.to
				}
				return kv
			}))
			if err := h.pub.Publish(context.Background(), "signups", middleware.NewMessage(nil)); err != nil {
				t.Fatal(err)
			}
			failing := errors.New("invalid address " + secret)
			calls := 0
			retry := middleware.Retry(middleware.WithAttempts(2), middleware.WithBackoff(func(int) time.Duration { return 0 }))
			h.consume("signups", 1, retry(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
				if calls++; calls <= 4 {
					return failing
				}
				return nil
			})).Handle)
			checked := 0
			for _, s := range h.rec.Ended() {
				if s.Status().Code != codes.Error {
					continue
				}
				checked++
				if s.Status().Description != tc.want || strings.Contains(s.Status().Description, secret) {
					t.Errorf("%s: status description %q, want %q", s.Name(), s.Status().Description, tc.want)
				}
				if v, _ := attr(s, "error.type"); v.AsString() != "_OTHER" {
					t.Errorf("%s: error.type %q", s.Name(), v.AsString())
				}
			}
			if checked < 2 || len(h.spans("attempt 2")) == 0 {
				t.Fatalf("%d failed spans, attempt spans %d: want process and attempt spans with errors", checked, len(h.spans("attempt 2")))
			}
		})
	}
}
