package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
)

// TestDeadLetterDefaults: without options, DeadLetter publishes on a
// context that outlives the handler's (cancelled here) with a deadline of
// DefaultDeadLetterTimeout, 30 s, marked RequireConfirm, and the
// dead-lettered message carries the error's type but not its text, which
// can hold personal data (WithErrorText adds it).
func TestDeadLetterDefaults(t *testing.T) {
	if middleware.DefaultDeadLetterTimeout != 30*time.Second {
		t.Errorf("DefaultDeadLetterTimeout = %v, the README says 30 s", middleware.DefaultDeadLetterTimeout)
	}
	failure := errors.New("card of alice@example.com declined")
	for _, tc := range []struct {
		name     string
		opts     []middleware.DeadLetterOption
		wantText bool
	}{
		{"defaults", nil, false},
		{"non-positive timeout keeps the default", []middleware.DeadLetterOption{middleware.WithPublishTimeout(0)}, false},
		{"WithErrorText", []middleware.DeadLetterOption{middleware.WithErrorText()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dead *middleware.Message
			var pubErr error
			var deadline time.Time
			var confirm bool
			var published time.Time
			dlq := middleware.PublisherFunc(func(ctx context.Context, _ string, msgs ...*middleware.Message) error {
				published = time.Now()
				dead, pubErr, confirm = msgs[0], ctx.Err(), middleware.ConfirmRequired(ctx)
				deadline, _ = ctx.Deadline()
				return nil
			})
			h := middleware.DeadLetter(dlq, "dlq", tc.opts...)(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
				return failure
			}))
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the handler context ended (a shutdown, a deadline around Retry)
			msg := middleware.NewMessage([]byte("order"))
			msg.Destination, msg.DeliveryCount = "orders", 1
			before := time.Now()
			if err := h.Handle(ctx, msg); err != nil {
				t.Fatalf("Handle = %v, want nil once dead-lettered", err)
			}
			if dead == nil {
				t.Fatal("nothing dead-lettered")
			}
			if pubErr != nil || !confirm {
				t.Errorf("dead-letter publish context: err %v, RequireConfirm %v; want a live context that requires a confirm", pubErr, confirm)
			}
			// The deadline was set between before and the publish, 30 s on.
			if deadline.Before(before.Add(30*time.Second)) || deadline.After(published.Add(30*time.Second)) {
				t.Errorf("dead-letter publish deadline %v after the handler started, want 30 s", deadline.Sub(before))
			}
			_, hasText := dead.Headers[middleware.HeaderDLQError]
			if hasText != tc.wantText {
				t.Errorf("%s header present: %v, want %v", middleware.HeaderDLQError, hasText, tc.wantText)
			}
			for k, v := range dead.Headers {
				if !tc.wantText && strings.Contains(v, "alice@example.com") {
					t.Errorf("header %s holds the error text %q", k, v)
				}
			}
			if dead.Headers[middleware.HeaderDLQErrorType] == "" {
				t.Error("no error type on the dead-lettered message")
			}
		})
	}
}
