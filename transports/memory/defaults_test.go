package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// batches records the number of messages of every Received.
type batches struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batches) Received(ctx context.Context, _ middleware.Destination, _ time.Time, msgs []*middleware.Message) context.Context {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(msgs))
	b.mu.Unlock()
	return ctx
}

func (b *batches) Settled(context.Context, middleware.Destination, string, time.Time, []*middleware.Message, error) {
}

// TestDefaults: a Broker without options takes 10 ready messages at a
// time, runs one handler at a time in queue order, and puts a failed
// message back at once (no redelivery delay): the defaults the README's
// table of knobs gives.
func TestDefaults(t *testing.T) {
	b := memory.New()
	const n = 25
	for i := range n {
		if err := b.Publish(context.Background(), "q", middleware.NewMessage(fmt.Appendf(nil, "m%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	obs := &batches{}
	ctx, cancel := context.WithCancel(middleware.WithObserver(context.Background(), obs))
	var order []string
	readyAfterFailure := -1
	release := make(chan struct{})
	held := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, "q", middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
			order = append(order, string(m.Body)) // one handler at a time: no lock, -race says
			switch {
			case len(order) == 1:
				close(held)
				<-release
			case string(m.Body) == "m20" && m.DeliveryCount == 1:
				return errors.New("declined")
			case string(m.Body) == "m21":
				// Without a redelivery delay the failed message is back
				// on the queue before the next handler starts.
				readyAfterFailure, _ = b.Len("q")
			case string(m.Body) == "m20":
				cancel()
			}
			return nil
		}))
	}()
	<-held
	// The first batch is taken, its first message is being handled: the
	// rest of the batch waits in the broker, not in more handlers.
	if ready, inFlight := b.Len("q"); ready != n-10 || inFlight != 10 {
		t.Errorf("ready %d, in flight %d while the first handler runs; want %d and 10", ready, inFlight, n-10)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if readyAfterFailure != 1 {
		t.Errorf("%d messages ready right after a failure, want the failed one back", readyAfterFailure)
	}
	want := make([]string, 0, n+1)
	for i := range n {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	if want = append(want, "m20"); !slices.Equal(order, want) {
		t.Errorf("handled %v, want queue order and the failed one again at the back", order)
	}
	// The observers hear of each message when a handler gets it (a push
	// broker's consumed messages), not of the batch taken: the batch size
	// shows in Len above.
	if len(obs.sizes) != n+1 || slices.ContainsFunc(obs.sizes, func(k int) bool { return k != 1 }) {
		t.Errorf("observers told of %v, want %d deliveries of one message", obs.sizes, n+1)
	}
}
