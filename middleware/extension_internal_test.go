package middleware

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type codedError struct{}

func (codedError) Error() string     { return "Rate exceeded for receipt handle AQEB..." }
func (codedError) ErrorCode() string { return "ThrottlingException" }

// extensionEvents subscribes through a Tracing made with opts to a
// transport that receives one message and records failed extensions in
// the context Received returned, as an extension pass does: one before
// the handler starts (error.type "before"), one racing its start, from
// another goroutine ("ThrottlingException", which may land or not), one
// while it runs ("timeout") and one after it returned ("after"). It
// returns the error.type of each ExtensionFailedEventName event on the
// process span.
func extensionEvents(t *testing.T, opts ...Option) []string {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := NewTracing(append([]Option{WithTracerProvider(tp)}, opts...)...)
	msg := &Message{ID: "m1"}
	running, release := make(chan struct{}), make(chan struct{})
	sub := tr.Subscriber(subscriberFunc(func(ctx context.Context, h Handler) error {
		hctx := ObserverFrom(ctx).Received(ctx, Destination{Name: "q"}, time.Now(), []*Message{msg})
		RecordExtensionFailed(hctx, msg, NamedError(errors.New("waiting"), "before"))
		var wg sync.WaitGroup
		wg.Go(func() {
			RecordExtensionFailed(hctx, msg, codedError{})
			<-running
			RecordExtensionFailed(hctx, msg, context.DeadlineExceeded)
			close(release)
		})
		err := h.Handle(hctx, msg)
		wg.Wait()
		RecordExtensionFailed(hctx, msg, NamedError(errors.New("done"), "after"))
		return err
	}))
	err := sub.Subscribe(context.Background(), "q", HandlerFunc(func(context.Context, *Message) error {
		close(running)
		<-release
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range rec.Ended() {
		for _, e := range s.Events() {
			if e.Name != ExtensionFailedEventName {
				continue
			}
			if s.Name() != "process q" {
				t.Errorf("%s event on span %q", e.Name, s.Name())
			}
			errType := "<none>"
			for _, a := range e.Attributes {
				switch a.Key {
				case "error.type":
					errType = a.Value.Emit()
				default:
					t.Errorf("%s event has %s, want error.type alone", e.Name, a.Key)
				}
				if strings.Contains(a.Value.Emit(), "receipt") {
					t.Errorf("the error's text was recorded: %s", a.Value.Emit())
				}
			}
			out = append(out, errType)
		}
	}
	return out
}

// RecordExtensionFailed records on the process span while the handler
// runs, with error.type and not the error's text; nothing before the span
// starts or after it ends. Settle spans off do not turn it off.
func TestRecordExtensionFailed(t *testing.T) {
	for _, settle := range []bool{true, false} {
		events := extensionEvents(t, WithSettleSpans(settle))
		timeouts := 0
		for _, e := range events {
			switch e {
			case "timeout":
				timeouts++
			case "ThrottlingException": // raced the handler's start
			default:
				t.Errorf("settle spans %v: an event with error.type %q", settle, e)
			}
		}
		if timeouts != 1 {
			t.Errorf("settle spans %v: events %q, want one timeout", settle, events)
		}
	}
}

// The redactor of the Tracing the handler's context went through sees the
// event's error.type, as it sees Retry's.
func TestRecordExtensionFailedRedacts(t *testing.T) {
	events := extensionEvents(t, WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == "error.type" {
			return kv.Key.String("masked")
		}
		return kv
	}))
	if len(events) == 0 {
		t.Fatal("no event")
	}
	for _, e := range events {
		if e != "masked" {
			t.Errorf("error.type %q got past the redactor", e)
		}
	}
}

// Nothing happens without a process span: no tracing, a nil message, a
// nil error.
func TestRecordExtensionFailedWithoutSpan(t *testing.T) {
	RecordExtensionFailed(context.Background(), &Message{}, errors.New("x"))
	RecordExtensionFailed(context.Background(), nil, errors.New("x"))
	RecordExtensionFailed(context.Background(), &Message{}, nil)
}
