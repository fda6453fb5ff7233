package middleware_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// tracedMessages returns n messages, each carrying a creation context of
// its own trace.
func tracedMessages(n int) ([]*middleware.Message, []trace.SpanContext) {
	msgs := make([]*middleware.Message, n)
	scs := make([]trace.SpanContext, n)
	for i := range msgs {
		scs[i] = trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{2, byte(i + 1)}, SpanID: trace.SpanID{2, byte(i + 1)}, TraceFlags: trace.FlagsSampled, Remote: true,
		})
		msgs[i] = middleware.NewMessage(nil)
		propagation.Inject(trace.ContextWithSpanContext(context.Background(), scs[i]), propagation.MapCarrier(msgs[i].Headers))
	}
	return msgs, scs
}

// TestObservedLinksHonourTheLimit: the receive span of a poll and the
// settle span of several messages, which transports start through the
// Observer methods, link the first WithLinkLimit messages' creation
// contexts and no more.
func TestObservedLinksHonourTheLimit(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithLinkLimit(3))
	d := middleware.Destination{System: propagation.SystemMemory, Name: "t"}
	msgs, scs := tracedMessages(8)
	ctx := tr.Received(context.Background(), d, time.Now(), msgs)
	tr.Settled(ctx, d, propagation.OpAck, time.Now(), msgs, nil)
	for _, name := range []string{"receive t", "ack t"} {
		links := oneSpan(t, rec, name).Links()
		if len(links) != 3 {
			t.Errorf("%s: %d links, want 3", name, len(links))
			continue
		}
		for i, l := range links {
			if l.SpanContext.TraceID() != scs[i].TraceID() {
				t.Errorf("%s: link %d to %v, want the first messages' in order", name, i, l.SpanContext.TraceID())
			}
		}
	}
}

// TestSettleOfUnprocessedMessageLinksIt: a settle span of one push
// delivery that had no process span (a transport settling it without a
// handler, on shutdown say) has no parent to tie it to the message: it
// links the message's creation context instead of being an orphan.
func TestSettleOfUnprocessedMessageLinksIt(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp))
	d := middleware.Destination{System: propagation.SystemMemory, Name: "t", Push: true}
	msgs, scs := tracedMessages(1)
	ctx := tr.Received(context.Background(), d, time.Now(), msgs)
	tr.Settled(ctx, d, propagation.OpNack, time.Now(), msgs, nil)
	nack := oneSpan(t, rec, "nack t")
	if !hasLink(nack, scs[0]) {
		t.Errorf("settle span of an unprocessed message links %v, want its creation context %v", nack.Links(), scs[0])
	}
}

// TestExtractLeavesCallersBaggageUnfiltered: WithInboundBaggage filters
// what a message brings, not the caller's own baggage, which stays whole
// when the message brings none.
func TestExtractLeavesCallersBaggageUnfiltered(t *testing.T) {
	tr := middleware.NewTracing(middleware.WithTracerProvider(sdktrace.NewTracerProvider()), middleware.WithInboundBaggage("region"))
	local, _ := baggage.Parse("local=1,region=home")
	out := tr.Extract(baggage.ContextWithBaggage(context.Background(), local),
		propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	bg := baggage.FromContext(out)
	if bg.Len() != 2 || bg.Member("local").Value() != "1" || bg.Member("region").Value() != "home" {
		t.Errorf("caller's baggage became %q, want local=1,region=home", bg)
	}
}
