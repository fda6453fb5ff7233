package awssqs_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/otelmq/otelmq/integration"
	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/awssqs"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// fast keeps tests short: goaws answers an empty long poll only after the
// wait, and shutdown interrupts it anyway.
var fast = []awssqs.Option{awssqs.WithWaitTime(time.Second)}

// collector is a handler that records every delivery and lets the test wait
// for distinct bodies; SQS delivers at least once, so it counts that way.
type collector struct {
	mu     sync.Mutex
	byBody map[string][]*middleware.Message
	signal chan struct{}
	handle func(ctx context.Context, msg *middleware.Message, delivery int) error
}

func newCollector() *collector {
	return &collector{byBody: map[string][]*middleware.Message{}, signal: make(chan struct{}, 1)}
}

func (c *collector) Handle(ctx context.Context, msg *middleware.Message) error {
	c.mu.Lock()
	c.byBody[string(msg.Body)] = append(c.byBody[string(msg.Body)], msg)
	n := len(c.byBody[string(msg.Body)])
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
	if c.handle != nil {
		return c.handle(ctx, msg, n)
	}
	return nil
}

// waitFor waits until cond holds over the deliveries so far.
func (c *collector) waitFor(t *testing.T, d time.Duration, what string, cond func(map[string][]*middleware.Message) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		ok := cond(c.byBody)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.signal:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("timed out waiting for %s; deliveries by body: %d", what, len(c.byBody))
		}
	}
}

// subscribe runs s.Subscribe in the background and returns a function that
// stops it and returns its result.
func subscribe(t *testing.T, ctx context.Context, s *awssqs.Subscriber, url string, h middleware.Handler) (stop func() error) {
	t.Helper()
	return integration.RunSubscriber(t, ctx, s, url, h)
}

// approximateCount returns the queue's visible plus in-flight messages. On
// goaws, whose ApproximateNumberOfMessages counts the in-flight ones too,
// only 0 is exact: a message in flight counts twice.
func approximateCount(t *testing.T, client *sqs.Client, url string) int {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, k := range []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible} {
		var v int
		fmt.Sscan(out.Attributes[string(k)], &v)
		n += v
	}
	return n
}

// approximateVisible returns the queue's ApproximateNumberOfMessages as SQS
// answers it.
func approximateVisible(t *testing.T, client *sqs.Client, url string) string {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)]
}

func TestRoundTrip(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "roundtrip", nil)
	ctx := context.Background()

	msg := middleware.NewMessage([]byte("hello"))
	msg.Headers["traceparent"] = traceparent
	msg.Headers["tenant"] = "acme"
	before := time.Now().Add(-2 * time.Second) // goaws and the test share a clock
	if err := awssqs.NewPublisher(client).Publish(ctx, url, msg); err != nil {
		t.Fatal(err)
	}
	if msg.ID == "" {
		t.Error("Publish did not set the message ID")
	}

	c := newCollector()
	stop := subscribe(t, ctx, awssqs.NewSubscriber(client, fast...), url, c)
	c.waitFor(t, 15*time.Second, "the message", func(m map[string][]*middleware.Message) bool { return len(m["hello"]) > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	got := c.byBody["hello"][0]
	if got.ID != msg.ID {
		t.Errorf("ID = %q, want %q", got.ID, msg.ID)
	}
	want := map[string]string{"traceparent": traceparent, "tenant": "acme"}
	if !maps.Equal(got.Headers, want) {
		t.Errorf("Headers = %v, want %v", got.Headers, want)
	}
	if got.Time.Before(before) || got.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("Time = %v, want about now", got.Time)
	}
	if got.DeliveryCount < 1 {
		t.Errorf("DeliveryCount = %d, want >= 1", got.DeliveryCount)
	}
	if got.Destination != url {
		t.Errorf("Destination = %q, want %q", got.Destination, url)
	}
	var raw *types.Message
	if !got.As(&raw) || aws.ToString(raw.Body) != "hello" {
		t.Errorf("As(**types.Message) = %v, %+v", got.As(&raw), raw)
	}
	var copied types.Message
	if !got.As(&copied) || aws.ToString(copied.MessageId) != msg.ID {
		t.Errorf("As(*types.Message) did not copy the message")
	}
	if got.As(new(string)) {
		t.Error("As(*string) = true")
	}
	attrs := map[string]string{}
	for _, kv := range got.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["messaging.message.id"] != msg.ID || attrs["aws.sqs.queue.url"] != url {
		t.Errorf("Attributes = %v", attrs)
	}
	if n := approximateCount(t, client, url); n != 0 {
		t.Errorf("%d message(s) left on the queue after a successful handler", n)
	}
}

func TestBatchPublish(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "batch", nil)
	ctx := context.Background()

	api := &faultAPI{Client: client}
	msgs := make([]*middleware.Message, 25)
	for i := range msgs {
		msgs[i] = middleware.NewMessage(fmt.Appendf(nil, "m%02d", i))
		msgs[i].Headers["traceparent"] = traceparent
	}
	if err := awssqs.NewPublisher(api).Publish(ctx, url, msgs...); err != nil {
		t.Fatal(err)
	}
	if got := api.batchSizes(); fmt.Sprint(got) != "[10 10 5]" {
		t.Errorf("SendMessageBatch sizes = %v, want [10 10 5]", got)
	}

	c := newCollector()
	stop := subscribe(t, ctx, awssqs.NewSubscriber(client, fast...), url, c)
	c.waitFor(t, 20*time.Second, "25 distinct messages", func(m map[string][]*middleware.Message) bool { return len(m) == 25 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for body, got := range c.byBody {
		if got[0].Headers["traceparent"] != traceparent {
			t.Errorf("%s: traceparent = %q", body, got[0].Headers["traceparent"])
		}
	}
}

// TestBatchPublishBoundedByPayload: SQS refuses a whole SendMessageBatch
// whose bodies and attributes pass its payload limit (BatchRequestTooLong;
// 256 KiB before 2025), so ten 100 KiB messages go two to a batch, and all
// arrive whole.
func TestBatchPublishBoundedByPayload(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "bigbatch", nil)
	api := &faultAPI{Client: client}
	msgs := make([]*middleware.Message, 10)
	bodies := make([]string, len(msgs))
	for i := range msgs {
		bodies[i] = fmt.Sprintf("big-%02d-", i) + strings.Repeat("x", 100*1024)
		msgs[i] = middleware.NewMessage([]byte(bodies[i]))
		msgs[i].Headers["traceparent"] = traceparent
	}
	if err := awssqs.NewPublisher(api).Publish(context.Background(), url, msgs...); err != nil {
		t.Fatal(err)
	}
	if got := api.batchSizes(); fmt.Sprint(got) != "[2 2 2 2 2]" {
		t.Errorf("SendMessageBatch sizes = %v, want [2 2 2 2 2] (no batch past 256 KiB)", got)
	}
	if got := receiveAll(t, client, url, bodies...); len(got) != len(bodies) {
		t.Errorf("received %d of %d messages", len(got), len(bodies))
	}
}

func TestPublishPartialBatchFailure(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "partial", nil)
	ctx := context.Background()

	// The fake forwards the even entries and refuses the odd ones; in the
	// second chunk it also leaves entry 13 out of the response altogether.
	api := &faultAPI{Client: client}
	api.sendBatch = func(ctx context.Context, in *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
		forward := *in
		forward.Entries = nil
		var failed []types.BatchResultErrorEntry
		for _, e := range in.Entries {
			var i int
			fmt.Sscan(aws.ToString(e.Id), &i)
			switch {
			case i%2 == 0:
				forward.Entries = append(forward.Entries, e)
			case i == 13:
			default:
				failed = append(failed, types.BatchResultErrorEntry{
					Id: e.Id, Code: aws.String("InvalidParameterValue"), Message: aws.String(fmt.Sprint("refused ", i)), SenderFault: true,
				})
			}
		}
		out, err := client.SendMessageBatch(ctx, &forward)
		if err != nil {
			return nil, err
		}
		out.Failed = append(out.Failed, failed...)
		return out, nil
	}
	msgs := make([]*middleware.Message, 15)
	for i := range msgs {
		msgs[i] = middleware.NewMessage(fmt.Appendf(nil, "m%02d", i))
	}
	msgs[3].ID = "caller-id-3"
	err := awssqs.NewPublisher(api).Publish(ctx, url, msgs...)
	if err == nil {
		t.Fatal("Publish succeeded although 7 messages failed")
	}
	text := err.Error()
	for i := 1; i < 15; i += 2 {
		want := fmt.Sprintf("message %d ", i)
		if !strings.Contains(text, want) {
			t.Errorf("error does not name message %d: %v", i, text)
		}
	}
	for _, want := range []string{"7 message(s) failed", "InvalidParameterValue", "refused 5", `"caller-id-3"`, "message 13 (id \"\"): missing from the SendMessageBatch response"} {
		if !strings.Contains(text, want) {
			t.Errorf("error lacks %q: %v", want, text)
		}
	}
	var entryErr *awssqs.BatchEntryError
	if !errors.As(err, &entryErr) || !entryErr.SenderFault {
		t.Errorf("errors.As(BatchEntryError) = %v", entryErr)
	}
	for i := 0; i < 15; i += 2 {
		if msgs[i].ID == "" {
			t.Errorf("message %d: no ID, want the MessageId from the response", i)
		}
	}
	if strings.Contains(text, "message 0 ") || strings.Contains(text, "message 14 ") {
		t.Errorf("error names a message that was sent: %v", text)
	}
}

func TestPublishServerError(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "fivexx", nil)
	ctx := context.Background()

	api := &faultAPI{Client: client}
	api.send = func(context.Context, *sqs.SendMessageInput) (*sqs.SendMessageOutput, error) {
		return nil, serverError()
	}
	api.sendBatch = func(context.Context, *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
		return nil, serverError()
	}
	p := awssqs.NewPublisher(api)

	err := p.Publish(ctx, url, middleware.NewMessage([]byte("one")))
	if err == nil || !strings.Contains(err.Error(), "message 0 ") || !strings.Contains(err.Error(), "InternalError") {
		t.Errorf("single publish: err = %v", err)
	}
	msgs := make([]*middleware.Message, 12)
	for i := range msgs {
		msgs[i] = middleware.NewMessage([]byte("batch"))
	}
	err = p.Publish(ctx, url, msgs...)
	if err == nil || !strings.Contains(err.Error(), "12 message(s) failed") {
		t.Fatalf("batch publish: err = %v", err)
	}
	for i := range msgs {
		if !strings.Contains(err.Error(), fmt.Sprintf("message %d ", i)) {
			t.Errorf("error does not name message %d", i)
		}
	}
	if n := approximateCount(t, client, url); n != 0 {
		t.Errorf("%d message(s) on the queue, want 0", n)
	}
}

// TestPublishInvalidMessages: a nil message fails alone, named by its
// index; a message with more headers than SQS has attributes is sent, the
// overflow packed, and every header arrives.
func TestPublishInvalidMessages(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "invalid", nil)
	many := middleware.NewMessage([]byte("many"))
	for i := range 12 {
		many.Headers[fmt.Sprint("h", i)] = fmt.Sprint("v", i)
	}
	ok := middleware.NewMessage([]byte("ok"))
	err := awssqs.NewPublisher(client).Publish(context.Background(), url, many, nil, ok)
	if err == nil || !strings.Contains(err.Error(), "message 1 ") || !strings.Contains(err.Error(), "1 message(s) failed") {
		t.Errorf("err = %v, want message 1 (nil) alone", err)
	}
	if ok.ID == "" || many.ID == "" {
		t.Error("a sent message has no ID")
	}
	var mu sync.Mutex
	got := map[string]*middleware.Message{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = awssqs.NewSubscriber(client, fast...).Subscribe(ctx, url, middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[string(m.Body)] = m
		if len(got) == 2 {
			cancel()
		}
		return nil
	}))
	mu.Lock()
	defer mu.Unlock()
	m := got["many"]
	if m == nil || got["ok"] == nil {
		t.Fatalf("received %v, want both messages", slices.Collect(maps.Keys(got)))
	}
	for k, v := range many.Headers {
		if m.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, m.Headers[k], v)
		}
	}
}

func TestReceiveRetriesServerErrors(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "recv5xx", nil)
	ctx := context.Background()
	if err := awssqs.NewPublisher(client).Publish(ctx, url, middleware.NewMessage([]byte("after errors"))); err != nil {
		t.Fatal(err)
	}

	api := &faultAPI{Client: client}
	var mu sync.Mutex
	failures := 3
	api.receive = func(ctx context.Context, in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return nil, serverError()
		}
		return client.ReceiveMessage(ctx, in)
	}
	c := newCollector()
	stop := subscribe(t, ctx, awssqs.NewSubscriber(api, fast...), url, c)
	c.waitFor(t, 15*time.Second, "the message", func(m map[string][]*middleware.Message) bool { return len(m) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestReceiveMissingQueue(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "missing", nil)
	if _, err := client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := awssqs.NewSubscriber(client, fast...).Subscribe(ctx, url, middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
	if err == nil || ctx.Err() != nil {
		t.Errorf("Subscribe on a deleted queue: err = %v, ctx.Err() = %v; want an error before the deadline", err, ctx.Err())
	}
}

func TestHandlerErrorRedelivers(t *testing.T) {
	for _, tt := range []struct {
		name  string
		attrs map[string]string
		opts  []awssqs.Option
		fail  func() error
	}{
		{"retry visibility 0", nil, []awssqs.Option{awssqs.WithRetryVisibility(0)}, func() error { return errors.New("try again") }},
		{"queue visibility timeout", map[string]string{"VisibilityTimeout": "1"}, nil, func() error { return errors.New("try again") }},
		{"panic", nil, []awssqs.Option{awssqs.WithRetryVisibility(0)}, func() error { panic("handler blew up") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := brokers.SQS(t)
			url := brokers.SQSQueue(t, client, "redeliver", tt.attrs)
			ctx := context.Background()
			if err := awssqs.NewPublisher(client).Publish(ctx, url, middleware.NewMessage([]byte("flaky"))); err != nil {
				t.Fatal(err)
			}
			c := newCollector()
			c.handle = func(_ context.Context, _ *middleware.Message, delivery int) error {
				if delivery == 1 {
					return tt.fail()
				}
				return nil
			}
			stop := subscribe(t, ctx, awssqs.NewSubscriber(client, append(fast, tt.opts...)...), url, c)
			c.waitFor(t, 20*time.Second, "a redelivery", func(m map[string][]*middleware.Message) bool { return len(m["flaky"]) >= 2 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if n := approximateCount(t, client, url); n != 0 {
				t.Errorf("%d message(s) left after the redelivery succeeded", n)
			}
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "shutdown", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := awssqs.NewPublisher(client).Publish(ctx, url, middleware.NewMessage([]byte("in flight"))); err != nil {
		t.Fatal(err)
	}

	started, release := make(chan struct{}), make(chan struct{})
	var handlerCtxErr error
	h := middleware.HandlerFunc(func(ctx context.Context, _ *middleware.Message) error {
		close(started)
		<-release
		handlerCtxErr = ctx.Err()
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- awssqs.NewSubscriber(client, fast...).Subscribe(ctx, url, h) }()

	select {
	case <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("the handler did not start")
	}
	cancelWhileRunning(t, cancel, release, done)
	if handlerCtxErr != nil {
		t.Errorf("the handler's context ended with Subscribe's: %v", handlerCtxErr)
	}
	if n := approximateCount(t, client, url); n != 0 {
		t.Errorf("%d message(s) left: the drained handler's message was not deleted", n)
	}
}

func TestConcurrencyBound(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "bound", nil)
	ctx := context.Background()
	msgs := make([]*middleware.Message, 20)
	for i := range msgs {
		msgs[i] = middleware.NewMessage(fmt.Appendf(nil, "m%02d", i))
	}
	if err := awssqs.NewPublisher(client).Publish(ctx, url, msgs...); err != nil {
		t.Fatal(err)
	}

	const concurrency, maxMessages = 2, 3
	api := &faultAPI{Client: client}
	var mu sync.Mutex
	var running, maxRunning, held, maxHeld int
	api.receive = func(ctx context.Context, in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
		out, err := client.ReceiveMessage(ctx, in)
		if err == nil {
			mu.Lock()
			held += len(out.Messages)
			maxHeld = max(maxHeld, held)
			mu.Unlock()
		}
		return out, err
	}
	api.deleteBatch = func(ctx context.Context, in *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error) {
		mu.Lock()
		held -= len(in.Entries)
		mu.Unlock()
		return client.DeleteMessageBatch(ctx, in)
	}
	c := newCollector()
	c.handle = func(context.Context, *middleware.Message, int) error {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}
	s := awssqs.NewSubscriber(api, append(fast, awssqs.WithConcurrency(concurrency), awssqs.WithMaxMessages(maxMessages))...)
	stop := subscribe(t, ctx, s, url, c)
	c.waitFor(t, 20*time.Second, "20 distinct messages", func(m map[string][]*middleware.Message) bool { return len(m) == 20 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if maxRunning > concurrency {
		t.Errorf("%d handlers ran at once, want at most %d", maxRunning, concurrency)
	}
	if maxHeld > concurrency+maxMessages {
		t.Errorf("%d messages held at once, want at most %d", maxHeld, concurrency+maxMessages)
	}
}

// observer records the events of an Observer and the handler calls in one
// sequence.
type observer struct {
	mu     sync.Mutex
	events []string
}

type receivedKey struct{}

func (o *observer) add(e string) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *observer) Received(ctx context.Context, d middleware.Destination, _ time.Time, msgs []*middleware.Message) context.Context {
	for _, m := range msgs {
		o.add("received " + string(m.Body) + " " + d.Name)
	}
	return context.WithValue(ctx, receivedKey{}, true)
}

func (o *observer) Settled(ctx context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	for _, m := range msgs {
		o.add(fmt.Sprintf("%s %s %v %v", op, m.Body, ctx.Value(receivedKey{}), err))
	}
}

func TestObserver(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "observed", nil)
	ctx := context.Background()
	if err := awssqs.NewPublisher(client).Publish(ctx, url, middleware.NewMessage([]byte("a")), middleware.NewMessage([]byte("b"))); err != nil {
		t.Fatal(err)
	}

	o := &observer{}
	c := newCollector()
	c.handle = func(ctx context.Context, msg *middleware.Message, _ int) error {
		o.add(fmt.Sprintf("handle %s %v", msg.Body, ctx.Value(receivedKey{})))
		return nil
	}
	stop := subscribe(t, middleware.WithObserver(ctx, o), awssqs.NewSubscriber(client, fast...), url, c)
	c.waitFor(t, 15*time.Second, "both messages", func(m map[string][]*middleware.Message) bool { return len(m) == 2 })
	time.Sleep(200 * time.Millisecond) // let the deletes finish
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	name := url[strings.LastIndex(url, "/")+1:]
	for _, body := range []string{"a", "b"} {
		received := slicesIndex(o.events, "received "+body+" "+name)
		handled := slicesIndex(o.events, "handle "+body+" true")
		deleted := slicesIndex(o.events, "delete "+body+" true <nil>")
		if received < 0 || handled < 0 || deleted < 0 || !(received < handled && handled < deleted) {
			t.Errorf("message %s: want received, handle (with the Received context), delete in order; events: %q", body, o.events)
		}
	}
}

func slicesIndex(s []string, v string) int {
	for i, e := range s {
		if e == v {
			return i
		}
	}
	return -1
}

func TestDescribe(t *testing.T) {
	d := awssqs.NewPublisher(nil).Describe("https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo")
	if d.System != "aws_sqs" || d.Name != "orders.fifo" {
		t.Errorf("Describe = %+v", d)
	}
	attrs := map[string]string{}
	for _, kv := range d.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	want := map[string]string{
		"aws.sqs.queue.url": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo",
		"server.address":    "sqs.eu-west-1.amazonaws.com",
		"server.port":       "443",
	}
	if !maps.Equal(attrs, want) {
		t.Errorf("attributes = %v, want %v", attrs, want)
	}
}

// faultAPI is the real client with some calls replaced to inject faults.
type faultAPI struct {
	*sqs.Client
	send        func(context.Context, *sqs.SendMessageInput) (*sqs.SendMessageOutput, error)
	sendBatch   func(context.Context, *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error)
	receive     func(context.Context, *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error)
	delete      func(context.Context, *sqs.DeleteMessageInput) (*sqs.DeleteMessageOutput, error)
	deleteBatch func(context.Context, *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error)
	// changeVisibility, like the others, replaces the call when set.
	changeVisibility func(context.Context, *sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error)

	mu    sync.Mutex
	sizes []int
}

var _ awssqs.API = (*faultAPI)(nil)

func (f *faultAPI) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if f.send != nil {
		return f.send(ctx, in)
	}
	return f.Client.SendMessage(ctx, in, opts...)
}

func (f *faultAPI) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	f.sizes = append(f.sizes, len(in.Entries))
	f.mu.Unlock()
	if f.sendBatch != nil {
		return f.sendBatch(ctx, in)
	}
	return f.Client.SendMessageBatch(ctx, in, opts...)
}

func (f *faultAPI) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if f.receive != nil {
		return f.receive(ctx, in)
	}
	return f.Client.ReceiveMessage(ctx, in, opts...)
}

func (f *faultAPI) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	if f.delete != nil {
		return f.delete(ctx, in)
	}
	return f.Client.DeleteMessage(ctx, in, opts...)
}

func (f *faultAPI) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if f.deleteBatch != nil {
		return f.deleteBatch(ctx, in)
	}
	return f.Client.DeleteMessageBatch(ctx, in, opts...)
}

func (f *faultAPI) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	if f.changeVisibility != nil {
		return f.changeVisibility(ctx, in)
	}
	return f.Client.ChangeMessageVisibility(ctx, in, opts...)
}

func (f *faultAPI) batchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.sizes...)
}

func serverError() error {
	return &smithy.GenericAPIError{Code: "InternalError", Message: "injected 500", Fault: smithy.FaultServer}
}

func TestFIFO(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "ordered.fifo", map[string]string{"ContentBasedDeduplication": "true"})
	ctx := context.Background()

	var groups []string
	api := &faultAPI{Client: client}
	api.sendBatch = func(ctx context.Context, in *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
		for _, e := range in.Entries {
			groups = append(groups, aws.ToString(e.MessageGroupId)+"/"+aws.ToString(e.MessageDeduplicationId))
		}
		return client.SendMessageBatch(ctx, in)
	}
	first, second := middleware.NewMessage([]byte("first")), middleware.NewMessage([]byte("second"))
	first.Key, second.Key = []byte("customer-1"), []byte("customer-1")
	second.ID = "dedup-2"
	if err := awssqs.NewPublisher(api).Publish(ctx, url, first, second); err != nil {
		t.Fatal(err)
	}
	if want := "[customer-1/ customer-1/dedup-2]"; fmt.Sprint(groups) != want {
		t.Errorf("group/deduplication IDs = %v, want %v", groups, want)
	}

	c := newCollector()
	stop := subscribe(t, ctx, awssqs.NewSubscriber(client, append(fast, awssqs.WithConcurrency(1))...), url, c)
	c.waitFor(t, 15*time.Second, "both messages", func(m map[string][]*middleware.Message) bool { return len(m) == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// cancelWhileRunning ends Subscribe's ctx while a handler blocks on release,
// checks that Subscribe waits for it, then releases it and checks that
// Subscribe (whose result arrives on done) returns nil.
func cancelWhileRunning(t *testing.T, cancel func(), release chan struct{}, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Subscribe returned %v while a handler was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Subscribe = %v, want nil after ctx ended", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Subscribe did not return after the handlers finished (waiting for a delete linger?)")
	}
}

// What SQS would refuse or alter travels anyway, over goaws and back:
// with 10 headers of the message's own the trace context is packed with
// one of them (it used to be dropped); header names SQS refuses as
// attribute names (Kafka and AMQP headers may be named anything) travel
// packed; values that are not SQS text go as Binary attributes, which the
// SDK does not alter. A body that is not SQS text is refused, marked
// permanent, before anything is sent.
func TestPublishCarriesWhatSQSRefuses(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "rules", nil)
	pub := awssqs.NewPublisher(client)

	msg := middleware.NewMessage([]byte("text"))
	for i := range 10 {
		msg.Headers[fmt.Sprintf("user-%d", i)] = "v"
	}
	msg.Headers["traceparent"] = traceparent
	msg.Headers["content type"] = "a space"
	msg.Headers["AWS.trace"] = "reserved prefix"
	msg.Headers["a..b"] = "double period"
	msg.Headers["bytes"] = "\xc3\x28\x00\xff"
	want := maps.Clone(msg.Headers)
	if err := pub.Publish(context.Background(), url, msg); err != nil {
		t.Fatal(err)
	}
	out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(url), MessageAttributeNames: []string{"All"}, WaitTimeSeconds: 1,
	})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(out.Messages))
	}
	if n := len(out.Messages[0].MessageAttributes); n > awssqs.MaxAttributes {
		t.Errorf("%d attributes sent", n)
	}
	for name := range out.Messages[0].MessageAttributes {
		for _, bad := range []string{"content type", "AWS.trace", "a..b"} {
			if name == bad {
				t.Errorf("attribute %q sent under a name SQS refuses", name)
			}
		}
	}
	c := awssqs.NewCarrier(&out.Messages[0].MessageAttributes)
	for k, v := range want {
		if got := c.Get(k); got != v {
			t.Errorf("header %q = %q after the round trip, want %q", k, got, v)
		}
	}

	err = pub.Publish(context.Background(), url, middleware.NewMessage([]byte{0x89, 'P', 'N', 'G', 0xff}))
	if !errors.Is(err, awssqs.ErrBodyNotText) || !middleware.IsPermanent(err) {
		t.Errorf("binary body: %v, want a permanent ErrBodyNotText", err)
	}
}

// TestDeadLetterOfAFullMessage: a message SQS accepted with 8 attributes,
// whose handler fails, is dead-lettered with DeadLetter's 3 headers on top
// (11, past SQS's 10: the overflow travels packed), not redelivered
// forever; the dead letter carries every header.
func TestDeadLetterOfAFullMessage(t *testing.T) {
	client := brokers.SQS(t)
	src := brokers.SQSQueue(t, client, "full-src", nil)
	dlq := brokers.SQSQueue(t, client, "full-dlq", nil)
	attrs := map[string]types.MessageAttributeValue{}
	for i := range 8 {
		attrs[fmt.Sprint("a", i)] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(fmt.Sprint("v", i))}
	}
	if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &src, MessageBody: aws.String("poison"), MessageAttributes: attrs}); err != nil {
		t.Fatal(err)
	}
	receive := func(url string, h middleware.Handler) *middleware.Message {
		t.Helper()
		var once sync.Once
		var got *middleware.Message
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = awssqs.NewSubscriber(client, fast...).Subscribe(ctx, url, middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			err := h.Handle(ctx, m)
			once.Do(func() { got = m; cancel() })
			return err
		}))
		return got
	}
	failing := middleware.DeadLetter(awssqs.NewPublisher(client), dlq)(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		return errors.New("bad payload")
	}))
	if receive(src, failing) == nil {
		t.Fatal("the poison message was never received")
	}
	dead := receive(dlq, middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
	if dead == nil {
		t.Fatal("nothing was dead-lettered")
	}
	for i := range 8 {
		if k := fmt.Sprint("a", i); dead.Headers[k] != fmt.Sprint("v", i) {
			t.Errorf("dead letter header %s = %q", k, dead.Headers[k])
		}
	}
	if dead.Headers[middleware.HeaderDLQSource] != src || dead.Headers[middleware.HeaderDLQErrorType] == "" {
		t.Errorf("dead letter headers %v, want DeadLetter's", dead.Headers)
	}
}

// TestPublishTraceHeaderSQSWouldRefuse: Headers["AWSTraceHeader"] goes as
// the AWSTraceHeader system attribute only when it is an X-Ray header, as
// SQS requires; a malformed one (a relay from another broker) travels as an
// ordinary attribute, so the message is sent and the header arrives.
func TestPublishTraceHeaderSQSWouldRefuse(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "xray-header", nil)
	for _, tt := range []struct {
		header string
		system bool
	}{
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", true},
		{"not an X-Ray header", false},
		{"Root=1-5759e988-bd862e3fe1be46a994272793", false}, // no Parent
	} {
		var sent *sqs.SendMessageInput
		pub := awssqs.NewPublisher(sqs.New(client.Options(), sendSpy(&sent)))
		msg := middleware.NewMessage([]byte(tt.header))
		msg.Headers[propagation.XRayKey] = tt.header
		if err := pub.Publish(context.Background(), url, msg); err != nil {
			t.Fatalf("%q: %v", tt.header, err)
		}
		_, system := sent.MessageSystemAttributes["AWSTraceHeader"]
		_, attribute := sent.MessageAttributes["AWSTraceHeader"]
		if system != tt.system || attribute == tt.system {
			t.Errorf("%q: system attribute %v, message attribute %v; want the system attribute %v", tt.header, system, attribute, tt.system)
		}
		if !tt.system {
			m := receiveAll(t, client, url, tt.header)[tt.header].m
			if got := awssqs.NewCarrier(&m.MessageAttributes).Get(propagation.XRayKey); got != tt.header {
				t.Errorf("%q arrived as %q", tt.header, got)
			}
		}
	}
}
