package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/otelmq/otelmq/middleware"
)

// TestDeadLetterAgain: a message consumed from a dead-letter queue already
// carries the dead-letter headers of its first dead-lettering. When the
// DLQ consumer dead-letters it again (to a parking queue, say), the headers
// describe the new failure: without WithErrorText the first failure's text
// must not stay beside the new failure's type, which would pair an error
// with the wrong cause.
func TestDeadLetterAgain(t *testing.T) {
	second := errors.New("parking: no handler for this order")
	for _, tc := range []struct {
		name     string
		opts     []middleware.DeadLetterOption
		wantText string // "" for no HeaderDLQError
	}{
		{"without error text", nil, ""},
		{"WithErrorText", []middleware.DeadLetterOption{middleware.WithErrorText()}, second.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dead *middleware.Message
			dlq := middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
				dead = msgs[0]
				return nil
			})
			msg := middleware.NewMessage([]byte("order-7"))
			msg.Destination, msg.DeliveryCount = "orders-dlq", 1
			msg.Headers["x-tenant"] = "acme"
			msg.Headers[middleware.HeaderDLQSource] = "orders"
			msg.Headers[middleware.HeaderDLQAttempts] = "3"
			msg.Headers[middleware.HeaderDLQErrorType] = "*payments.DeclinedError"
			msg.Headers[middleware.HeaderDLQError] = "card of alice@example.com declined"
			h := middleware.DeadLetter(dlq, "orders-parked", tc.opts...)(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
				return second
			}))
			if err := h.Handle(context.Background(), msg); err != nil || dead == nil {
				t.Fatalf("Handle = %v, dead-lettered %v; want nil and a dead letter", err, dead != nil)
			}
			want := map[string]string{
				"x-tenant":                    "acme",
				middleware.HeaderDLQSource:    "orders-dlq",
				middleware.HeaderDLQAttempts:  "1",
				middleware.HeaderDLQErrorType: "_OTHER",
			}
			if tc.wantText != "" {
				want[middleware.HeaderDLQError] = tc.wantText
			}
			if len(dead.Headers) != len(want) {
				t.Errorf("dead-letter headers %v, want %v", dead.Headers, want)
			}
			for k, v := range want {
				if dead.Headers[k] != v {
					t.Errorf("%s = %q, want %q", k, dead.Headers[k], v)
				}
			}
			if msg.Headers[middleware.HeaderDLQError] == "" {
				t.Error("dead-lettering changed the source message's headers")
			}
		})
	}
}

// TestDeadLetterErrorTextBounded: WithErrorText carries at most
// MaxDLQErrorText bytes of a long error's text, cut on a rune boundary and
// marked, so the dead letter stays within what brokers take.
func TestDeadLetterErrorTextBounded(t *testing.T) {
	long := errors.New(strings.Repeat("é", middleware.MaxDLQErrorText)) // 2 bytes a rune
	var dead *middleware.Message
	dlq := middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
		dead = msgs[0]
		return nil
	})
	h := middleware.DeadLetter(dlq, "dlq", middleware.WithErrorText())(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		return long
	}))
	if err := h.Handle(context.Background(), middleware.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	text := dead.Headers[middleware.HeaderDLQError]
	if len(text) > middleware.MaxDLQErrorText || !utf8.ValidString(text) || !strings.HasSuffix(text, "…") || !strings.HasPrefix(long.Error(), strings.TrimSuffix(text, "…")) {
		t.Errorf("error text of %d bytes (valid UTF-8 %v), want a prefix of at most %d ending in …", len(text), utf8.ValidString(text), middleware.MaxDLQErrorText)
	}
}
