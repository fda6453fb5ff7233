package main

import (
	"context"
	"strconv"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// TestLinkReceive: -link-receive reaches the otelmq modes' tracing: their
// process spans link the receive span in ctx, and without it they do not.
func TestLinkReceive(t *testing.T) {
	for _, link := range []bool{false, true} {
		cfg, err := parseFlags([]string{"-link-receive=" + strconv.FormatBool(link)}, nil)
		if err != nil || cfg.link != link {
			t.Fatalf("-link-receive=%v parsed as %v, %v", link, cfg.link, err)
		}
		linkReceive = cfg.link
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		tr := middleware.NewTracing(tracingOptions(tp, tracingAlways)...)
		rctx, receive := tp.Tracer("test").Start(context.Background(), "receive")
		creation := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true, TraceFlags: trace.FlagsSampled})
		_, span := tr.StartProcessFrom(rctx, middleware.Destination{System: propagation.SystemKafka, Name: "t"}, creation, baggage.Baggage{})
		span.End()
		receive.End()
		process := rec.Ended()[0]
		if got := len(process.Links()) == 1 && process.Links()[0].SpanContext.SpanID() == receive.SpanContext().SpanID(); got != link {
			t.Errorf("-link-receive=%v: process span links %v", link, process.Links())
		}
	}
	linkReceive = false
}
