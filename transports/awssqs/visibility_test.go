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

// WithVisibilityExtension also extends a message that waits for a handler
// slot: with one handler at a time and a 2 s extension, the second message
// of a receive still waits when its first 2 s have passed, and no other
// consumer may receive it then.
func TestVisibilityExtensionCoversWaitingMessage(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "waiting", map[string]string{"VisibilityTimeout": "1"})
	publishBodies(t, client, url, "a", "b")
	started, release := make(chan string, 2), make(chan struct{})
	s := awssqs.NewSubscriber(client, awssqs.WithWaitTime(time.Second), awssqs.WithConcurrency(1),
		awssqs.WithMaxMessages(2), awssqs.WithVisibilityExtension(2*time.Second))
	stop := subscribe(t, context.Background(), s, url, middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		started <- string(m.Body)
		<-release
		return nil
	}))
	var first string
	select {
	case first = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no handler started")
	}
	// Past the receive's 2 s timeout, with a tick of goaws's 1 s clock.
	time.Sleep(3 * time.Second)
	out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 0 {
		t.Errorf("another consumer received %q while %q's handler ran and it waited for the slot", *out.Messages[0].Body, first)
	}
	select {
	case <-started: // the second message, once the first returned
	case <-time.After(10 * time.Second):
		t.Error("the second message was not handled")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
