package rabbitmq

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
)

// coalescedAckSpans runs a traced Subscriber (SDK default sampler,
// WithParentBasedSampling) on the broker over rounds of messages published
// under pub until at least one ack covered several deliveries, with subCtx
// as the Subscribe context, and returns the consumer's ended spans.
func coalescedAckSpans(t *testing.T, pub func(ctx context.Context) context.Context, subCtx context.Context) []sdktrace.ReadOnlySpan {
	t.Helper()
	conn, q := setup(t, nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracing := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithParentBasedSampling(true))
	counter := &frameCounter{}
	const n = 200
	for round := 0; round < 10; round++ {
		batch := make([]*middleware.Message, n)
		for i := range batch {
			batch[i] = &middleware.Message{ID: fmt.Sprint(round, "-", i), Headers: map[string]string{}}
		}
		producer := middleware.NewTracing(middleware.WithTracerProvider(tp)).Publisher(NewPublisher(conn, WithConfirms(true)))
		if err := producer.Publish(pub(context.Background()), q, batch...); err != nil {
			t.Fatal(err)
		}
		handled := make(chan struct{}, n)
		sub := tracing.Subscriber(NewSubscriber(conn, WithConcurrency(4), WithPrefetch(50)))
		run := subscribe(t, middleware.WithObserver(subCtx, counter), sub, q, func(context.Context, *middleware.Message) error {
			handled <- struct{}{}
			return nil
		})
		for range n {
			select {
			case <-handled:
			case <-time.After(30 * time.Second):
				t.Fatal("timed out waiting for the deliveries")
			}
		}
		if err := run.stop(t); err != nil {
			t.Fatal(err)
		}
		counter.mu.Lock()
		multiples := counter.multiples
		counter.mu.Unlock()
		if multiples > 0 {
			return rec.Ended()
		}
	}
	// 600 deliveries per run coalesce into a few hundred frames
	// (TestCoalescedAcksOnBroker): none in 2,000 is a broken acker, not
	// a precondition to skip on.
	t.Fatal("no ack covered several deliveries in 10 rounds of 200: acks are not coalesced")
	return nil
}

// TestCoalescedAckSampledOut: messages of traces sampled out upstream cost
// the consumer no span with WithParentBasedSampling (and the SDK's default
// sampler), as a lone ack's span under the unsampled process span costs
// none: an ack that covers several of them records no span either, where a
// new root would be sampled by the root sampler.
func TestCoalescedAckSampledOut(t *testing.T) {
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x5a, 1}, SpanID: trace.SpanID{0x5a, 2}})
	spans := coalescedAckSpans(t, func(ctx context.Context) context.Context {
		return trace.ContextWithSpanContext(ctx, unsampled)
	}, t.Context())
	for _, s := range spans {
		t.Errorf("span %q recorded (%d links) for messages sampled out upstream", s.Name(), len(s.Links()))
	}
}

// TestCoalescedAckParent: a push delivery's spans never take the Subscribe
// context's span as their parent (it is the caller's, not a receive span):
// an ack that covers several deliveries goes in one of their traces, not
// in the trace of whatever span started the subscriber, which would
// collect every coalesced ack for the subscriber's lifetime.
func TestCoalescedAckParent(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	subCtx, worker := tp.Tracer("test").Start(t.Context(), "worker")
	defer worker.End()
	spans := coalescedAckSpans(t, func(ctx context.Context) context.Context { return ctx }, subCtx)
	process := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindConsumer {
			process[s.SpanContext().SpanID()] = true
		}
	}
	acks := 0
	for _, s := range spans {
		if !strings.HasPrefix(s.Name(), "ack ") {
			continue
		}
		if s.Parent().TraceID() == worker.SpanContext().TraceID() {
			t.Errorf("span %q (%d links) is in the trace of the Subscribe context's span", s.Name(), len(s.Links()))
		}
		if len(s.Links()) > 1 {
			acks++
			if !process[s.Parent().SpanID()] {
				t.Errorf("ack of %d messages: parent %v is no process span", len(s.Links()), s.Parent().SpanID())
			}
		}
	}
	if acks == 0 {
		t.Error("no span of a coalesced ack recorded")
	}
}
