package middleware

import (
	"context"
	"testing"
	"unsafe"

	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/propagation"
)

// TestMessageSize pins what a Message costs: transports allocate one per
// delivery and applications one per publish. 224 bytes is an allocator
// size class; a full trace.SpanContext and the rest of the state inline
// made a Message 288.
func TestMessageSize(t *testing.T) {
	if got := unsafe.Sizeof(Message{}); got > 224 {
		t.Fatalf("Message is %d bytes, want at most 224: keep what few messages need in rareState", got)
	}
}

const (
	testTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	testSpanID      = "b7ad6b7169203331"
)

// TestNoopKeepsNoState: a no-op provider's middleware keeps nothing on the
// messages it passes, traced or not; the handler still runs in the
// producer's trace with its baggage.
func TestNoopKeepsNoState(t *testing.T) {
	tr := NewTracing(WithTracerProvider(noop.NewTracerProvider()))
	bare := &Message{Body: []byte("a")}
	traced := &Message{Headers: map[string]string{propagation.TraceParentKey: testTraceparent, propagation.BaggageKey: "tenant=acme"}}
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
	for _, m := range []*Message{bare, traced} {
		if m.creation != (creation{}) || m.rare != nil {
			t.Errorf("a no-op provider kept state on a message: %+v, %+v", m.creation, m.rare)
		}
	}
	if parents[0].IsValid() || tenants[0] != "" {
		t.Errorf("the bare message's handler ran in trace %v with tenant %q", parents[0], tenants[0])
	}
	if parents[1].SpanID().String() != testSpanID || !parents[1].IsRemote() || tenants[1] != "acme" {
		t.Errorf("the traced message's handler ran in %v with tenant %q, want its traceparent's remote span and tenant acme", parents[1], tenants[1])
	}
}

// TestStateInline: a message that carries a traceparent alone, published
// or consumed one at a time under the SDK, keeps its creation context and
// process span without allocating; trace state and baggage go to
// rareState and come back intact.
func TestStateInline(t *testing.T) {
	tr := NewTracing(WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))))
	pub := NewMessage(nil)
	if err := tr.Publisher(publisherFunc(func(context.Context, ...*Message) error { return nil })).Publish(context.Background(), "q", pub); err != nil {
		t.Fatal(err)
	}
	if sc := pub.CreationContext(); !sc.IsValid() || pub.rare != nil {
		t.Errorf("published message: creation %v, rare state %+v; want a valid context and none", sc, pub.rare)
	}

	run := func(headers map[string]string) *Message {
		msg := &Message{Headers: headers}
		sub := tr.Subscriber(subscriberFunc(func(ctx context.Context, h Handler) error { return h.Handle(ctx, msg) }))
		err := sub.Subscribe(context.Background(), "q", HandlerFunc(func(context.Context, *Message) error { return nil }))
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	plain := run(map[string]string{propagation.TraceParentKey: testTraceparent})
	if sc := plain.CreationContext(); sc.SpanID().String() != testSpanID || !sc.IsRemote() || !sc.IsSampled() || plain.rare != nil {
		t.Errorf("consumed message: creation %v, rare state %+v; want the traceparent's remote sampled span and none", sc, plain.rare)
	}
	if plain.process == nil || !plain.process.SpanContext().IsValid() {
		t.Error("consumed message: no process span kept for its settle span")
	}

	rich := run(map[string]string{
		propagation.TraceParentKey: testTraceparent, propagation.TraceStateKey: "vendor=1",
		propagation.BaggageKey: "tenant=acme",
	})
	sc := rich.CreationContext()
	if sc.SpanID().String() != testSpanID || sc.TraceState().Get("vendor") != "1" {
		t.Errorf("creation context %v lost its trace state", sc)
	}
	if _, bg, _ := tr.carried(rich); bg.Member("tenant").Value() != "acme" {
		t.Errorf("kept baggage %v, want tenant=acme", bg)
	}
}

// TestStateAllocations: a message costs the SDK paths no allocation for
// the state the middleware keeps on it.
func TestStateAllocations(t *testing.T) {
	tr := NewTracing(WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))))
	headers := map[string]string{propagation.TraceParentKey: testTraceparent}
	msg := &Message{Headers: headers}
	extract := testing.AllocsPerRun(100, func() {
		msg.creation, msg.rare = creation{}, nil
		tr.extract(msg)
	})
	read := testing.AllocsPerRun(100, func() { _, _, _ = tr.prop.ExtractSpanContext(propagation.MapCarrier(headers)) })
	if extract != read {
		t.Errorf("extract: %v allocations, reading the headers alone %v", extract, read)
	}
	sc := msg.CreationContext()
	if set := testing.AllocsPerRun(100, func() {
		msg.rare = nil
		msg.setCreation(sc)
	}); set != 0 {
		t.Errorf("setCreation: %v allocations, want 0", set)
	}
}

// TestSetCreation: a creation context comes back as it was set, trace
// state included, and setting one without trace state clears the old one.
func TestSetCreation(t *testing.T) {
	var msg Message
	if sc := msg.CreationContext(); sc.IsValid() {
		t.Errorf("a new message's creation context is %v, want invalid", sc)
	}
	ts, err := trace.ParseTraceState("vendor=1")
	if err != nil {
		t.Fatal(err)
	}
	with := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	msg.setCreation(with)
	if got := msg.CreationContext(); !got.Equal(with) {
		t.Errorf("creation context %v, want %v", got, with)
	}
	without := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{3}, SpanID: trace.SpanID{4}})
	msg.setCreation(without)
	if got := msg.CreationContext(); !got.Equal(without) || got.TraceState().Len() != 0 {
		t.Errorf("creation context %v (trace state %q), want %v without trace state", got, got.TraceState(), without)
	}
	msg.setCreation(trace.SpanContext{})
	if got := msg.CreationContext(); got.IsValid() {
		t.Errorf("creation context %v after setting an invalid one", got)
	}
}

type subscriberFunc func(ctx context.Context, h Handler) error

func (f subscriberFunc) Subscribe(ctx context.Context, _ string, h Handler) error { return f(ctx, h) }

type publisherFunc func(ctx context.Context, msgs ...*Message) error

func (f publisherFunc) Publish(ctx context.Context, _ string, msgs ...*Message) error {
	return f(ctx, msgs...)
}
