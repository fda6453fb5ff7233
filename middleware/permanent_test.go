package middleware_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// A failure marked Permanent is not retried, in place or through the
// broker, and DeadLetter dead-letters it on its first delivery whatever
// WithMaxDeliveries says: a relay whose destination refuses a message for
// good no longer sends it round for ever, holding up what follows.
func TestPermanentFailures(t *testing.T) {
	refusal := middleware.Permanent(fmt.Errorf("header name too long: %w", errDeclined))
	if !middleware.IsPermanent(fmt.Errorf("wrapped: %w", refusal)) || middleware.IsPermanent(errDeclined) || middleware.Permanent(nil) != nil {
		t.Fatal("IsPermanent does not see the mark through wrapping, or sees one that is not there")
	}
	if got, want := middleware.ErrorType(refusal), middleware.ErrorType(errDeclined); got != want {
		t.Errorf("error.type of a permanent error %q, want its cause's %q", got, want)
	}

	noWait := middleware.WithBackoff(func(int) time.Duration { return 0 })
	for name, retry := range map[string]middleware.HandlerMiddleware{
		"in place":          middleware.Retry(middleware.WithAttempts(5), noWait),
		"broker redelivery": middleware.Retry(middleware.WithAttempts(5), middleware.WithBrokerRedelivery()),
	} {
		t.Run(name, func(t *testing.T) {
			src, dlq := memory.New(), memory.New()
			for _, body := range []string{"refused", "next"} {
				if err := src.Publish(context.Background(), "in", middleware.NewMessage([]byte(body))); err != nil {
					t.Fatal(err)
				}
			}
			var calls, nexts atomic.Int32
			h := middleware.ChainHandler(middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
				if string(m.Body) == "next" {
					nexts.Add(1)
					return nil
				}
				calls.Add(1)
				return refusal
			}), middleware.DeadLetter(dlq, "dlq", middleware.WithMaxDeliveries(5)), retry)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- src.Subscribe(ctx, "in", h) }()
			deadline := time.Now().Add(5 * time.Second)
			for nexts.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // a redelivery would show by now
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n, _ := dlq.Len("dlq"); n != 1 || calls.Load() != 1 || nexts.Load() != 1 {
				t.Errorf("handler called %d times for the refused message, %d dead letters, next handled %d times; want 1, 1, 1",
					calls.Load(), n, nexts.Load())
			}
		})
	}
}

// TestNamedErrorEmptyName: an empty name would record less than err's own
// type, so NamedError leaves err as it is; nil stays nil.
func TestNamedErrorEmptyName(t *testing.T) {
	err := &os.PathError{Op: "open", Path: "x", Err: os.ErrNotExist}
	if got := middleware.NamedError(err, ""); got != error(err) || middleware.ErrorType(got) != "*fs.PathError" {
		t.Errorf("NamedError(err, \"\") = %v (%s), want err", got, middleware.ErrorType(got))
	}
	if middleware.NamedError(nil, "x") != nil {
		t.Error("NamedError(nil, x) != nil")
	}
}
