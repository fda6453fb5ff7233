package integration

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
)

// RunSubscriber runs sub.Subscribe(ctx, source, h) in the background until
// the returned stop is called (or the test ends): stop cancels it and
// returns Subscribe's result, or an error when Subscribe does not return
// within 30 s of its context ending. stop may be called more than once.
func RunSubscriber(t testing.TB, ctx context.Context, sub middleware.Subscriber, source string, h middleware.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sub.Subscribe(ctx, source, h) }()
	var (
		once sync.Once
		err  error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Subscribe did not return within 30 s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}
