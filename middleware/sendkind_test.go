package middleware_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
)

// TestSendSpanKind: semconv makes a send span a PRODUCER when its context is
// injected as a message's creation context, else a CLIENT: when create
// spans give each message of a batch its own, or when every message keeps
// the creation context it came with (a relay, a retry, a dead-letter
// publish).
func TestSendSpanKind(t *testing.T) {
	const carried = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	withContext := func() *middleware.Message {
		m := middleware.NewMessage(nil)
		m.Headers["traceparent"] = carried
		return m
	}
	for _, tc := range []struct {
		name string
		opts []middleware.Option
		msgs func() []*middleware.Message
		want trace.SpanKind
	}{
		{"one message", nil,
			func() []*middleware.Message { return []*middleware.Message{middleware.NewMessage(nil)} },
			trace.SpanKindProducer},
		{"batch with create spans", nil,
			func() []*middleware.Message {
				return []*middleware.Message{middleware.NewMessage(nil), middleware.NewMessage(nil)}
			},
			trace.SpanKindClient},
		{"batch without create spans", []middleware.Option{middleware.WithCreateSpans(false)},
			func() []*middleware.Message {
				return []*middleware.Message{middleware.NewMessage(nil), middleware.NewMessage(nil)}
			},
			trace.SpanKindProducer},
		{"one message keeping its context", nil,
			func() []*middleware.Message { return []*middleware.Message{withContext()} },
			trace.SpanKindClient},
		{"batch all keeping theirs, no create spans", []middleware.Option{middleware.WithCreateSpans(false)},
			func() []*middleware.Message { return []*middleware.Message{withContext(), withContext()} },
			trace.SpanKindClient},
		{"batch one keeping its own, no create spans", []middleware.Option{middleware.WithCreateSpans(false)},
			func() []*middleware.Message { return []*middleware.Message{withContext(), middleware.NewMessage(nil)} },
			trace.SpanKindProducer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			msgs := tc.msgs()
			if err := h.pub.Publish(context.Background(), "q", msgs...); err != nil {
				t.Fatal(err)
			}
			send := h.one("send q")
			if send.SpanKind() != tc.want {
				t.Fatalf("send span kind %v, want %v", send.SpanKind(), tc.want)
			}
			kept := 0
			for _, m := range msgs {
				if m.Headers["traceparent"] == carried {
					kept++
				} else if tc.want == trace.SpanKindProducer && len(h.spans("create q")) == 0 &&
					m.CreationContext().SpanID() != send.SpanContext().SpanID() {
					t.Fatalf("a PRODUCER send span whose context the message did not take: %v", m.CreationContext())
				}
			}
			if len(send.Links()) != kept {
				t.Fatalf("send span has %d links, want one per kept creation context (%d)", len(send.Links()), kept)
			}
			if v, _ := attr(send, "messaging.operation.type"); v.AsString() != "send" {
				t.Fatalf("send span operation type %q", v.AsString())
			}
		})
	}
}
