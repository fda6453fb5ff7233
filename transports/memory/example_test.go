package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// A failed message comes back, like on a real broker.
func Example() {
	b := memory.New()
	_ = b.Publish(context.Background(), "jobs", middleware.NewMessage([]byte("job-1")))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- b.Subscribe(ctx, "jobs", middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
			fmt.Printf("%s delivery %d\n", m.Body, m.DeliveryCount)
			if m.DeliveryCount == 1 {
				return errors.New("not yet")
			}
			cancel()
			return nil
		}))
	}()
	<-done
	ready, inFlight := b.Len("jobs")
	fmt.Println("left:", ready+inFlight)
	// Output:
	// job-1 delivery 1
	// job-1 delivery 2
	// left: 0
}
