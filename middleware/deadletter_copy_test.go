package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/otelmq/otelmq/middleware"
)

// TestDeadLetterKeepsMessageID: the dead letter carries its source's ID,
// so that a destination deduplicating by ID (an SQS FIFO queue) drops the
// copy a redelivery dead-letters again.
func TestDeadLetterKeepsMessageID(t *testing.T) {
	f := &failingRecorder{}
	msg := middleware.NewMessage([]byte("x"))
	msg.ID = "m-42"
	if err := middleware.DeadLetter(f, "dlq")(f).Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if len(f.dead) != 1 || f.dead[0].ID != "m-42" {
		t.Fatalf("dead letters %v, want one with ID m-42", f.dead)
	}
}

// TestDeadLetterErrorTextAtTheBound: an error text of exactly
// MaxDLQErrorText bytes is carried whole; one byte more is cut and marked.
func TestDeadLetterErrorTextAtTheBound(t *testing.T) {
	for _, n := range []int{middleware.MaxDLQErrorText, middleware.MaxDLQErrorText + 1} {
		text := strings.Repeat("e", n)
		var dead *middleware.Message
		dlq := middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
			dead = msgs[0]
			return nil
		})
		h := middleware.DeadLetter(dlq, "dlq", middleware.WithErrorText())(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			return errors.New(text)
		}))
		if err := h.Handle(context.Background(), middleware.NewMessage(nil)); err != nil {
			t.Fatal(err)
		}
		got := dead.Headers[middleware.HeaderDLQError]
		cut := n > middleware.MaxDLQErrorText
		if cut != strings.HasSuffix(got, "…") || len(got) > middleware.MaxDLQErrorText || (!cut && got != text) {
			t.Errorf("error text of %d bytes carried as %d bytes (cut %v), want it whole up to %d bytes",
				n, len(got), strings.HasSuffix(got, "…"), middleware.MaxDLQErrorText)
		}
	}
}

func panickingHandler(context.Context, *middleware.Message) error { panic("boom") }

// TestCallRecordsPanicStack: a recovered panic keeps its value and the
// stack it was raised on, for the application to log.
func TestCallRecordsPanicStack(t *testing.T) {
	err := middleware.Call(context.Background(), middleware.HandlerFunc(panickingHandler), middleware.NewMessage(nil))
	var pe *middleware.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("Call returned %v, want a *PanicError of boom", err)
	}
	if !strings.Contains(string(pe.Stack), "panickingHandler") {
		t.Errorf("panic stack does not name the panicking function:\n%s", pe.Stack)
	}
}
