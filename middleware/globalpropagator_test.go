package middleware_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
)

// TestGlobalPropagatorIsUsed: without WithPropagator the middleware injects
// and extracts with the global propagator, set here after the middleware
// was built (a baggage-only one, so its effect shows: no traceparent is
// written, and the process span is no child of the send span). The global
// propagator is process-wide, so the test runs in a process of its own.
func TestGlobalPropagatorIsUsed(t *testing.T) {
	const env = "OTELMQ_TEST_GLOBAL_PROPAGATOR"
	if os.Getenv(env) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGlobalPropagatorIsUsed$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), env+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestGlobalPropagatorIsUsed") {
			t.Fatalf("in its own process: %v\n%s", err, out)
		}
		return
	}

	h := newHarness(t)
	otel.SetTextMapPropagator(otelprop.Baggage{})
	member, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(member)
	ctx, root := h.tp.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bag), "POST /orders")
	msg := middleware.NewMessage([]byte("order"))
	if err := h.pub.Publish(ctx, "q", msg); err != nil {
		t.Fatal(err)
	}
	root.End()
	if _, ok := msg.Headers["traceparent"]; ok || msg.Headers["baggage"] != "tenant=acme" {
		t.Fatalf("published headers %v, want the global propagator's: baggage alone", msg.Headers)
	}
	var got baggage.Baggage
	var sc trace.SpanContext
	h.consume("q", 1, func(ctx context.Context, _ *middleware.Message) error {
		got, sc = baggage.FromContext(ctx), trace.SpanContextFromContext(ctx)
		return nil
	})
	if got.Member("tenant").Value() != "acme" {
		t.Errorf("handler baggage %q, want what the global propagator extracted", got)
	}
	if sc.TraceID() == root.SpanContext().TraceID() {
		t.Error("the process span joined the producer's trace: a propagator other than the global one wrote it")
	}
}
