package middleware

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/propagation"
)

// TestMessageSize pins what a Message costs: transports allocate one per
// delivery and applications one per publish, so state only the middleware
// reads lives behind a pointer. 176 bytes is an allocator size class; the
// state inline made a Message 288.
func TestMessageSize(t *testing.T) {
	if got := unsafe.Sizeof(Message{}); got > 176 {
		t.Fatalf("Message is %d bytes, want at most 176: keep middleware state in messageState", got)
	}
}

// TestNoopKeepsNoState: a no-op provider's middleware keeps nothing on the
// messages it passes, traced or not, so a message costs it no allocation;
// the handler still runs in the producer's trace.
func TestNoopKeepsNoState(t *testing.T) {
	tr := NewTracing(WithTracerProvider(noop.NewTracerProvider()))
	const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	bare := &Message{Body: []byte("a")}
	traced := &Message{Headers: map[string]string{propagation.TraceParentKey: traceparent, propagation.BaggageKey: "tenant=acme"}}
	var parents []trace.SpanContext
	var tenants []string
	sub := tr.Subscriber(subscriberFunc(func(ctx context.Context, h Handler) error {
		for _, m := range []*Message{bare, traced} {
			if err := h.Handle(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}))
	err := sub.Subscribe(context.Background(), "q", HandlerFunc(func(ctx context.Context, _ *Message) error {
		parents = append(parents, trace.SpanContextFromContext(ctx))
		tenants = append(tenants, baggage.FromContext(ctx).Member("tenant").Value())
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if bare.state != nil || traced.state != nil {
		t.Errorf("a no-op provider kept state on messages: bare %+v, traced %+v", bare.state, traced.state)
	}
	if parents[0].IsValid() || tenants[0] != "" {
		t.Errorf("the bare message's handler ran in trace %v with tenant %q", parents[0], tenants[0])
	}
	if parents[1].SpanID().String() != "b7ad6b7169203331" || !parents[1].IsRemote() || tenants[1] != "acme" {
		t.Errorf("the traced message's handler ran in %v with tenant %q, want its traceparent's remote span and tenant acme", parents[1], tenants[1])
	}
	pub := &Message{Body: []byte("b")}
	if err := tr.Publisher(publisherFunc(func(context.Context, ...*Message) error { return nil })).Publish(context.Background(), "q", pub); err != nil {
		t.Fatal(err)
	}
	if pub.state != nil {
		t.Errorf("a no-op publish gave the message state %+v", pub.state)
	}
}

// TestBatchStatesAllocatedPerBlock: a traced batch publish and a poll's
// receive give every message its own state, stateBlock of them per
// allocation, and messages that need none get none.
func TestBatchStatesAllocatedPerBlock(t *testing.T) {
	msgs := make([]*Message, 100)
	for i := range msgs {
		msgs[i] = &Message{}
	}
	msgs[7] = nil
	kept := msgs[8]
	own := &messageState{attempts: 3}
	kept.state = own
	allocs := testing.AllocsPerRun(1, func() {
		for _, m := range msgs {
			if m != nil && m != kept {
				m.state = nil
			}
		}
		keepAll(msgs, func(m *Message) bool { return m != msgs[9] })
	})
	if want := float64((100 - 3 + stateBlock - 1) / stateBlock); allocs != want {
		t.Errorf("keepAll of 97 messages: %v allocations, want %v", allocs, want)
	}
	if kept.state != own {
		t.Error("keepAll replaced a message's state")
	}
	if msgs[9].state != nil {
		t.Error("keepAll gave state to a message need refused")
	}
	seen := map[*messageState]bool{}
	for i, m := range msgs {
		if m == nil || i == 9 {
			continue
		}
		if m.state == nil || seen[m.state] {
			t.Fatalf("message %d: state %p missing or shared", i, m.state)
		}
		seen[m.state] = true
	}

	rec := tracetest.NewSpanRecorder()
	tr := NewTracing(WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))))
	batch := make([]*Message, 40)
	for i := range batch {
		batch[i] = NewMessage(nil)
	}
	if err := tr.Publisher(publisherFunc(func(context.Context, ...*Message) error { return nil })).Publish(context.Background(), "q", batch...); err != nil {
		t.Fatal(err)
	}
	creations := map[trace.SpanID]bool{}
	for i, m := range batch {
		sc := m.CreationContext()
		if !sc.IsValid() || creations[sc.SpanID()] {
			t.Fatalf("published message %d: creation context %v invalid or shared", i, sc)
		}
		creations[sc.SpanID()] = true
	}

	polled := make([]*Message, len(batch))
	for i, m := range batch {
		polled[i] = &Message{Headers: m.Headers}
	}
	tr.Received(context.Background(), Destination{System: "test", Name: "q"}, time.Now(), polled)
	for i, m := range polled {
		if !m.CreationContext().Equal(batch[i].CreationContext().WithRemote(true)) {
			t.Fatalf("polled message %d: creation context %v, want %v", i, m.CreationContext(), batch[i].CreationContext())
		}
	}
}

type subscriberFunc func(ctx context.Context, h Handler) error

func (f subscriberFunc) Subscribe(ctx context.Context, _ string, h Handler) error { return f(ctx, h) }

type publisherFunc func(ctx context.Context, msgs ...*Message) error

func (f publisherFunc) Publish(ctx context.Context, _ string, msgs ...*Message) error {
	return f(ctx, msgs...)
}
