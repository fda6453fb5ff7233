package awssqs_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// A wait under a second is rounded up to one, not down to 0 (which the SDK
// leaves out of the request): the Subscriber polled an empty queue in a
// hot loop, some 1,000 requests a second.
func TestSubSecondWaitTimeDoesNotSpin(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "spin", nil)
	var calls atomic.Int64
	var waits sync.Map
	api := &faultAPI{Client: client}
	api.receive = func(ctx context.Context, in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
		calls.Add(1)
		waits.Store(in.WaitTimeSeconds, true)
		return client.ReceiveMessage(ctx, in)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = awssqs.NewSubscriber(api, awssqs.WithWaitTime(500*time.Millisecond)).Subscribe(ctx, url,
		middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
	var ws []int32
	waits.Range(func(k, _ any) bool { ws = append(ws, k.(int32)); return true })
	// WithWaitTime(0) sleeps 100 ms per empty poll: ~10 polls in 1 s.
	// A 500 ms long poll: ~2. Anything over 20 is a spin.
	if n := calls.Load(); n > 20 {
		t.Errorf("WithWaitTime(500ms): %d ReceiveMessage calls in 1s on an empty queue (WaitTimeSeconds sent: %v); want <= 20", n, ws)
	}
}

// A FIFO publish of 15 messages of one group is two SendMessageBatch
// requests; when the first fails, the second must not send the group's
// later messages ahead of the failed ones (the caller can only send those
// again after them). A message of another group is still sent.
func TestFIFOPublishHoldsGroupAfterFailure(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "order.fifo", map[string]string{"ContentBasedDeduplication": "true"})
	api := &faultAPI{Client: client}
	var n atomic.Int64
	var sentFirst []string
	api.sendBatch = func(ctx context.Context, in *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
		if n.Add(1) == 1 {
			return nil, serverError() // e.g. a 5xx / throttle after SDK retries
		}
		for _, e := range in.Entries {
			sentFirst = append(sentFirst, aws.ToString(e.MessageBody))
		}
		return client.SendMessageBatch(ctx, in)
	}
	msgs := make([]*middleware.Message, 16)
	for i := range msgs {
		msgs[i] = middleware.NewMessage(fmt.Appendf(nil, "m%02d", i))
		msgs[i].Key = []byte("customer-1")
	}
	msgs[15].Key = []byte("customer-2")
	err := awssqs.NewPublisher(api).Publish(context.Background(), url, msgs...)
	if err == nil || !errors.Is(err, awssqs.ErrFIFOGroupFailed) {
		t.Fatalf("Publish = %v, want the held messages' ErrFIFOGroupFailed", err)
	}
	if len(sentFirst) != 1 || sentFirst[0] != "m15" {
		t.Errorf("FIFO group customer-1: messages m00..m09 failed, and %v were sent after them (%d SendMessageBatch calls); want only m15 of customer-2", sentFirst, n.Load())
	}
}

// On a FIFO queue Publish keeps a message's own ID (the default
// MessageDeduplicationId): publishing again a partly failed batch then
// sends the same deduplication IDs, and SQS drops what it already took.
func TestFIFOPublishKeepsOwnIDForRepublish(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "dedup.fifo", nil)
	api := &faultAPI{Client: client}
	var calls int
	var dedup [][]string
	api.sendBatch = func(ctx context.Context, in *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
		calls++
		var ids []string
		for _, e := range in.Entries {
			ids = append(ids, aws.ToString(e.MessageDeduplicationId))
		}
		dedup = append(dedup, ids)
		if calls == 1 { // entry 1 refused (e.g. throttled entry), entry 0 sent
			out, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: in.Entries[:1]})
			if err != nil {
				return nil, err
			}
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: in.Entries[1].Id, Code: aws.String("InternalError"), Message: aws.String("injected")})
			return out, nil
		}
		return client.SendMessageBatch(ctx, in)
	}
	pub := awssqs.NewPublisher(api)
	a, b := middleware.NewMessage([]byte("order 42")), middleware.NewMessage([]byte("order 43"))
	a.ID, a.Key = "order-42", []byte("customer-1")
	b.ID, b.Key = "order-43", []byte("customer-1")
	err := pub.Publish(context.Background(), url, a, b)
	t.Logf("first Publish: %v", err)
	if err := pub.Publish(context.Background(), url, a, b); err != nil {
		t.Fatal(err)
	}
	if a.ID != "order-42" || b.ID != "order-43" {
		t.Errorf("IDs after publishing: %q, %q; want the caller's", a.ID, b.ID)
	}
	if dedup[0][0] != dedup[1][0] {
		t.Errorf("message a retried with MessageDeduplicationId %q instead of %q: SQS will not drop the duplicate", dedup[1][0], dedup[0][0])
	}
}

// A single message (SendMessage rather than a batch) keeps its own ID on a
// FIFO queue too, and a publish of it again sends the same
// MessageDeduplicationId; a standard queue's gets the SQS MessageId.
func TestFIFOSingleMessageKeepsOwnID(t *testing.T) {
	client := brokers.SQS(t)
	fifo := brokers.SQSQueue(t, client, "single.fifo", nil)
	standard := brokers.SQSQueue(t, client, "single", nil)
	pub := awssqs.NewPublisher(client)
	msg := middleware.NewMessage([]byte("order 44"))
	msg.ID, msg.Key = "order-44", []byte("customer-1")
	for range 2 {
		if err := pub.Publish(context.Background(), fifo, msg); err != nil {
			t.Fatal(err)
		}
		if msg.ID != "order-44" {
			t.Fatalf("ID after a FIFO publish: %q, want the caller's", msg.ID)
		}
	}
	plain := middleware.NewMessage([]byte("order 45"))
	plain.ID = "order-45"
	if err := pub.Publish(context.Background(), standard, plain); err != nil {
		t.Fatal(err)
	}
	if plain.ID == "order-45" || plain.ID == "" {
		t.Fatalf("ID after a standard publish: %q, want the MessageId SQS assigned", plain.ID)
	}
}

// fifoFake answers the first ReceiveMessage with three messages of one
// group, in order, as SQS may for a FIFO queue, and nothing afterwards; it
// records deletes and visibility changes.
type fifoFake struct {
	mu      sync.Mutex
	served  bool
	deleted []string
	changed []string
}

func (f *fifoFake) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return nil, fmt.Errorf("unused")
}
func (f *fifoFake) SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return nil, fmt.Errorf("unused")
}
func (f *fifoFake) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	first := !f.served
	f.served = true
	f.mu.Unlock()
	if !first { // an empty long poll
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(in.WaitTimeSeconds) * time.Second):
			return &sqs.ReceiveMessageOutput{}, nil
		}
	}
	out := &sqs.ReceiveMessageOutput{}
	for _, b := range []string{"m1", "m2", "m3"} {
		out.Messages = append(out.Messages, types.Message{MessageId: aws.String(b), ReceiptHandle: aws.String("rh-" + b), Body: aws.String(b),
			Attributes: map[string]string{"MessageGroupId": "customer-1", "ApproximateReceiveCount": "1"}})
	}
	return out, nil
}
func (f *fifoFake) DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	return nil, fmt.Errorf("unused")
}
func (f *fifoFake) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	out := &sqs.DeleteMessageBatchOutput{}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range in.Entries {
		f.deleted = append(f.deleted, aws.ToString(e.ReceiptHandle))
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}
func (f *fifoFake) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed = append(f.changed, fmt.Sprintf("%s=%d", aws.ToString(in.ReceiptHandle), in.VisibilityTimeout))
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

// SQS may return several messages of one FIFO group in one receive. With
// concurrency 1, when the handler fails m1, m2 and m3 of the same group
// must not be handled and deleted before m1's redelivery: they are made
// visible again instead. (goaws never returns two messages of a group in
// one receive, hence the fake client.)
func TestFIFOFailureHoldsGroupInReceive(t *testing.T) {
	api := &fifoFake{}
	url := "http://127.0.0.1:1/000000000000/orders.fifo"
	var mu sync.Mutex
	var order []string
	h := middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, string(m.Body))
		if string(m.Body) == "m1" {
			return fmt.Errorf("transient")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = awssqs.NewSubscriber(api, awssqs.WithWaitTime(time.Second), awssqs.WithConcurrency(1), awssqs.WithRetryVisibility(0)).Subscribe(ctx, url, h)
	mu.Lock()
	defer mu.Unlock()
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.deleted) > 0 || fmt.Sprint(order) != "[m1]" {
		t.Errorf("m1 failed, yet %v of the same FIFO group were handled (deleted %v) before m1 could be retried", order, api.deleted)
	}
	slices.Sort(api.changed) // m1's retry and the dispatch race
	if got := fmt.Sprint(api.changed); got != "[rh-m1=0 rh-m2=0 rh-m3=0]" {
		t.Errorf("visibility changes %s, want m1's retry and m2, m3 made visible again", got)
	}
}

// SQS judges each entry of a SendMessageBatch on its own: when it refuses
// the second message of a FIFO group, the third, in the same request, is
// sent all the same, ahead of it. Publish cannot take that back; it must
// say so: the error names only the refused message, and the sent one has
// gone (Publish's doc promised that later messages of a failed group are
// not sent, which holds only across requests).
func TestFIFOPublishPartialBatchSendsLaterOfGroup(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "inbatch.fifo", map[string]string{"ContentBasedDeduplication": "true"})
	api := &faultAPI{Client: client}
	api.sendBatch = func(ctx context.Context, in *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
		forward := *in
		forward.Entries = append([]types.SendMessageBatchRequestEntry{in.Entries[0]}, in.Entries[2:]...)
		out, err := client.SendMessageBatch(ctx, &forward)
		if err != nil {
			return nil, err
		}
		out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: in.Entries[1].Id, Code: aws.String("InternalError"), Message: aws.String("injected")})
		return out, nil
	}
	msgs := make([]*middleware.Message, 3)
	for i := range msgs {
		msgs[i] = middleware.NewMessage(fmt.Appendf(nil, "m%d", i))
		msgs[i].Key = []byte("customer-1")
	}
	err := awssqs.NewPublisher(api).Publish(context.Background(), url, msgs...)
	if err == nil || !strings.Contains(err.Error(), "1 message(s) failed") || !strings.Contains(err.Error(), "message 1 ") {
		t.Fatalf("Publish = %v, want message 1 alone failed", err)
	}
	if errors.Is(err, awssqs.ErrFIFOGroupFailed) {
		t.Errorf("Publish = %v: message 2 reported held back, but it was sent", err)
	}
	// None is in flight, so goaws's count is exact.
	if n := approximateCount(t, client, url); n != 2 {
		t.Errorf("%d message(s) on the queue, want m0 and m2", n)
	}
}
