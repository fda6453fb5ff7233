package middleware_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
)

// describingPublisher describes its destination with a MessageAttributes
// that says what it was asked, and fails when fail is set.
type describingPublisher struct {
	fail  bool
	calls []bool
}

func (p *describingPublisher) Describe(dest string) middleware.Destination {
	return middleware.Destination{System: "test", Name: dest,
		MessageAttributes: func(msg *middleware.Message, sent bool) []attribute.KeyValue {
			p.calls = append(p.calls, sent)
			// A slice with room: the caller must not write into a shared one.
			return append(make([]attribute.KeyValue, 0, 4), attribute.String("test.key", string(msg.Key)), attribute.Bool("test.sent", sent))
		}}
}

func (p *describingPublisher) Publish(_ context.Context, _ string, msgs ...*middleware.Message) error {
	if p.fail {
		return errors.New("refused")
	}
	for i, m := range msgs {
		m.ID = string(rune('a' + i))
	}
	return nil
}

// TestDestinationMessageAttributes: a transport's Destination.MessageAttributes
// describes each message on its create span (before the publish) and a
// lone message on its send span (after it: sent tells whether it
// succeeded), beside the message ID.
func TestDestinationMessageAttributes(t *testing.T) {
	spanAttrs := func(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
		out := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes() {
			out[a.Key] = a.Value
		}
		return out
	}
	for _, fail := range []bool{false, true} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		next := &describingPublisher{fail: fail}
		pub := middleware.NewTracing(middleware.WithTracerProvider(tp)).Publisher(next)
		_ = pub.Publish(context.Background(), "q", &middleware.Message{Key: []byte("k1")})
		send := spanAttrs(rec.Ended()[0])
		if send["test.key"].AsString() != "k1" || send["test.sent"].AsBool() == fail {
			t.Errorf("fail %v: send span %v, want test.key k1 and test.sent %v", fail, send, !fail)
		}
		if _, ok := send["messaging.message.id"]; ok == fail {
			t.Errorf("fail %v: send span message ID recorded %v", fail, ok)
		}

		rec.Reset()
		next.calls = nil
		_ = pub.Publish(context.Background(), "q", &middleware.Message{Key: []byte("x")}, &middleware.Message{Key: []byte("y")})
		keys := map[string]bool{}
		for _, s := range rec.Ended() {
			a := spanAttrs(s)
			if s.Name() == "create q" {
				keys[a["test.key"].AsString()] = true
				if a["test.sent"].AsBool() {
					t.Errorf("a create span was described as sent")
				}
			} else if _, ok := a["test.key"]; ok {
				t.Errorf("the batch's send span records one message's attributes: %v", a)
			}
		}
		if !keys["x"] || !keys["y"] || len(next.calls) != 2 {
			t.Errorf("create spans keys %v after %d calls, want x and y after 2", keys, len(next.calls))
		}
		_ = tp.Shutdown(context.Background())
	}
}
