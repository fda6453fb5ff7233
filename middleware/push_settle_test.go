package middleware_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// coalescingPush is a push transport that delivers its messages one by one
// and then settles them all with one ack, as RabbitMQ's multiple ack does.
type coalescingPush struct{ msgs []*middleware.Message }

func (p *coalescingPush) Describe(name string) middleware.Destination {
	return middleware.Destination{System: propagation.SystemMemory, Name: name, Push: true}
}

func (p *coalescingPush) Subscribe(ctx context.Context, name string, h middleware.Handler) error {
	obs := middleware.ObserverFrom(ctx)
	d := p.Describe(name)
	for _, m := range p.msgs {
		m.Destination = name
		hctx := obs.Received(ctx, d, time.Now(), []*middleware.Message{m})
		if err := middleware.Call(hctx, h, m); err != nil {
			return err
		}
	}
	obs.Settled(ctx, d, propagation.OpAck, time.Now(), p.msgs, nil)
	return nil
}

// TestCoalescedAckPrefersASampledParent: an ack covering several push
// deliveries is a child of a sampled process span among theirs even when an
// unsampled one comes first, so that it is recorded in a trace of its
// messages instead of dropped with the unsampled one.
func TestCoalescedAckPrefersASampledParent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	unsampled := middleware.NewMessage(nil)
	unsampled.Headers["traceparent"] = "00-11111111111111111111111111111111-1111111111111111-00"
	sampled := middleware.NewMessage(nil)
	sampled.Headers["traceparent"] = "00-22222222222222222222222222222222-2222222222222222-01"
	push := &coalescingPush{msgs: []*middleware.Message{unsampled, sampled}}
	sub := middleware.NewTracing(middleware.WithTracerProvider(tp)).Subscriber(push)
	if err := sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
		t.Fatal(err)
	}
	var process, ack sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "process q":
			process = s // only the sampled message's is recorded
		case "ack q":
			ack = s
		}
	}
	if process == nil || process.SpanContext().TraceID() != sampled.CreationContext().TraceID() {
		t.Fatalf("recorded process span %v, want the sampled message's", process)
	}
	if ack == nil {
		t.Fatal("no ack span recorded: it was parented on the unsampled process span")
	}
	if ack.Parent().SpanID() != process.SpanContext().SpanID() {
		t.Errorf("ack span's parent %v, want the sampled process span %v", ack.Parent().SpanID(), process.SpanContext().SpanID())
	}
	if !hasLink(ack, unsampled.CreationContext()) || !hasLink(ack, sampled.CreationContext()) {
		t.Errorf("ack span links %v, want both messages' creation contexts", ack.Links())
	}
}

// TestRepublishKeepsTheMessagesBaggage: a message republished under the
// creation context it carries as X-Ray alone gets that context written as
// W3C, but not the publisher's baggage: the message's own (or none) stays.
func TestRepublishKeepsTheMessagesBaggage(t *testing.T) {
	h := newHarness(t)
	const xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	own := middleware.NewMessage([]byte("own baggage"))
	own.Headers[propagation.XRayKey] = xray
	own.Headers["baggage"] = "tenant=acme"
	none := middleware.NewMessage([]byte("no baggage"))
	none.Headers[propagation.XRayKey] = xray
	m, _ := baggage.NewMember("user", "alice")
	bg, _ := baggage.New(m)
	ctx, span := h.tp.Tracer("t").Start(baggage.ContextWithBaggage(context.Background(), bg), "relay")
	if err := h.pub.Publish(ctx, "q", own, none); err != nil {
		t.Fatal(err)
	}
	span.End()
	for _, tc := range []struct {
		msg  *middleware.Message
		want string
	}{{own, "tenant=acme"}, {none, ""}} {
		if got := tc.msg.Headers["baggage"]; got != tc.want {
			t.Errorf("%s: baggage %q, want %q", tc.msg.Body, got, tc.want)
		}
		if tp := tc.msg.Headers["traceparent"]; tp != "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01" {
			t.Errorf("%s: traceparent %q, want the X-Ray context", tc.msg.Body, tp)
		}
	}
}
