package awssqs_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// TestShutdownAbandonsPollTogether: the messages of a poll that no handler
// started when Subscribe's context ends are made visible again with their
// ChangeMessageVisibility calls in flight together, not one after another
// (a slow SQS would hold shutdown for a round trip each). Each call waits
// until all of them arrived; one at a time, the first would wait alone.
func TestShutdownAbandonsPollTogether(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "abandon-together", nil)
	publishBodies(t, client, url, "a", "b", "c", "d", "e")

	// One poll returns messages; later ones wait for shutdown, so that the
	// abandoned messages are the first poll's but one.
	var polls atomic.Int32
	var polled int
	api := &faultAPI{Client: client}
	api.receive = func(ctx context.Context, in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
		if polls.Add(1) > 1 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		in.WaitTimeSeconds = 1
		for {
			out, err := client.ReceiveMessage(ctx, in)
			if err != nil || len(out.Messages) > 0 {
				if out != nil {
					polled = len(out.Messages)
				}
				return out, err
			}
		}
	}
	var mu sync.Mutex
	arrived, together := 0, make(chan struct{})
	var alone atomic.Int32
	api.changeVisibility = func(ctx context.Context, in *sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error) {
		mu.Lock()
		arrived++
		if arrived == polled-1 {
			close(together)
		}
		mu.Unlock()
		select {
		case <-together:
		case <-time.After(5 * time.Second):
			alone.Add(1)
		}
		return client.ChangeMessageVisibility(ctx, in)
	}

	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h := middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		once.Do(func() { close(started); <-release })
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- awssqs.NewSubscriber(api, append(fast, awssqs.WithConcurrency(1))...).Subscribe(ctx, url, h)
	}()
	select {
	case <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("no handler started")
	}
	if polled < 3 {
		t.Fatalf("the first poll returned %d messages; the test needs at least 3", polled)
	}
	cancel()
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Subscribe = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Subscribe did not return")
	}
	mu.Lock()
	defer mu.Unlock()
	if arrived != polled-1 || alone.Load() != 0 {
		t.Errorf("%d visibility changes for %d abandoned messages, %d of them waited alone: want all in flight together",
			arrived, polled-1, alone.Load())
	}
	if v := approximateVisible(t, client, url); v != "4" {
		t.Errorf("%s visible message(s) after shutdown, want the 4 abandoned ones", v)
	}
}
