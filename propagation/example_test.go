package propagation_test

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

func Example() {
	// The producer side: any carrier over the message's headers.
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	headers := propagation.MapCarrier{}
	propagation.Inject(trace.ContextWithSpanContext(context.Background(), sc), headers)
	fmt.Println(headers["traceparent"])

	// The consumer side: the producer's span becomes the remote parent.
	ctx := propagation.Extract(context.Background(), headers)
	fmt.Println(trace.SpanContextFromContext(ctx).TraceID())
	// Output:
	// 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	// 4bf92f3577b34da6a3ce929d0e0e4736
}

func ExampleParseXRay() {
	sc, ok := propagation.ParseXRay("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	fmt.Println(ok, sc.TraceID(), sc.SpanID(), sc.IsSampled())
	// Output: true 5759e988bd862e3fe1be46a994272793 53995c3f42cd8ad8 true
}

func ExamplePropagator_ExtractSpanContext() {
	headers := propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"baggage":     "tenant=acme",
	}
	// What the message carries, without a context: for a caller that
	// starts its own span from it (a process span of a native consumer).
	sc, bg, dropped := propagation.Default().ExtractSpanContext(headers)
	fmt.Println(sc.TraceID(), sc.IsRemote(), bg.Member("tenant").Value(), len(dropped))
	// Output: 4bf92f3577b34da6a3ce929d0e0e4736 true acme 0
}
