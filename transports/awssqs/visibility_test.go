package awssqs_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// A handler slower than the queue's visibility timeout (1 s) sees its
// message delivered again while it runs, to a second handler of the same
// Subscriber. With WithVisibilityExtension(2s) the Subscriber extends the
// visibility every second until the handler returns: one handling, then
// the delete.
func TestVisibilityExtensionCoversSlowHandler(t *testing.T) {
	for _, extend := range []bool{false, true} {
		name := map[bool]string{false: "without", true: "with"}[extend]
		t.Run(name, func(t *testing.T) {
			client := brokers.SQS(t)
			url := brokers.SQSQueue(t, client, "slow", map[string]string{"VisibilityTimeout": "1"})
			publishBodies(t, client, url, "slow")
			var handlings, changes atomic.Int64
			api := &faultAPI{Client: client}
			api.changeVisibility = func(ctx context.Context, in *sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error) {
				changes.Add(1)
				return client.ChangeMessageVisibility(ctx, in)
			}
			opts := []awssqs.Option{awssqs.WithWaitTime(time.Second), awssqs.WithConcurrency(2)}
			if extend {
				opts = append(opts, awssqs.WithVisibilityExtension(2*time.Second))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			err := awssqs.NewSubscriber(api, opts...).Subscribe(ctx, url, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
				handlings.Add(1)
				time.Sleep(3 * time.Second)
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			switch n := handlings.Load(); {
			case extend && (n != 1 || changes.Load() < 2):
				t.Errorf("handled %d times with %d visibility changes, want once with extensions", n, changes.Load())
			case !extend && n < 2:
				// The control: goaws does redeliver a message whose
				// visibility ran out, so the case above shows something.
				t.Errorf("without extension the message was handled %d times, want more than once", n)
			}
		})
	}
}

// With a receive timeout (WithVisibilityTimeout, 1 s) shorter than half the
// extension (4 s), the first extension came at 2 s, after the message was
// visible again; they now come every half of the shorter.
func TestVisibilityExtensionBeforeShortTimeout(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "slowshort", nil)
	publishBodies(t, client, url, "slow")
	var handlings atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	err := awssqs.NewSubscriber(client, awssqs.WithWaitTime(time.Second), awssqs.WithConcurrency(2),
		awssqs.WithVisibilityTimeout(time.Second), awssqs.WithVisibilityExtension(4*time.Second)).
		Subscribe(ctx, url, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			handlings.Add(1)
			time.Sleep(3 * time.Second)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if n := handlings.Load(); n != 1 {
		t.Errorf("handled %d times with WithVisibilityExtension on", n)
	}
}
