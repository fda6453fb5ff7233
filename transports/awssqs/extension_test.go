package awssqs_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelmq/otelmq/integration"
	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// sqsLog is an SDK middleware, on a client of its own (client), that
// records when each ReceiveMessage and ChangeMessageVisibility began and
// ended and what it returned, and injects fault(n) into the nth
// ChangeMessageVisibility: an error returned before the request is sent,
// which the SDK does not retry.
type sqsLog struct {
	fault func(ctx context.Context, n int) error

	mu       sync.Mutex
	changes  []visibilityCall
	received map[string]time.Time // receipt handle: when its receive began
}

type visibilityCall struct {
	handle     string
	start, end time.Time
	err        error
}

func newSQSLog(t *testing.T, fault func(ctx context.Context, n int) error) (*sqsLog, *sqs.Client) {
	l := &sqsLog{fault: fault, received: map[string]time.Time{}}
	client := sqs.New(brokers.SQS(t).Options(), func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *smithymiddleware.Stack) error {
			return stack.Initialize.Add(smithymiddleware.InitializeMiddlewareFunc("sqsLog", l.handle), smithymiddleware.Before)
		})
	})
	return l, client
}

func (l *sqsLog) handle(ctx context.Context, in smithymiddleware.InitializeInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
	start := time.Now()
	switch p := in.Parameters.(type) {
	case *sqs.ReceiveMessageInput:
		out, md, err := next.HandleInitialize(ctx, in)
		if r, ok := out.Result.(*sqs.ReceiveMessageOutput); ok && err == nil {
			l.mu.Lock()
			for _, m := range r.Messages {
				l.received[aws.ToString(m.ReceiptHandle)] = start
			}
			l.mu.Unlock()
		}
		return out, md, err
	case *sqs.ChangeMessageVisibilityInput:
		l.mu.Lock()
		n := len(l.changes) + 1
		l.changes = append(l.changes, visibilityCall{handle: aws.ToString(p.ReceiptHandle), start: start})
		l.mu.Unlock()
		var (
			out smithymiddleware.InitializeOutput
			md  smithymiddleware.Metadata
			err error
		)
		if l.fault != nil {
			err = l.fault(ctx, n)
		}
		if err == nil {
			out, md, err = next.HandleInitialize(ctx, in)
		}
		l.mu.Lock()
		l.changes[n-1].end, l.changes[n-1].err = time.Now(), err
		l.mu.Unlock()
		return out, md, err
	}
	return next.HandleInitialize(ctx, in)
}

// checkCovered fails t unless the message received with handle stayed
// invisible from its receive until until (its handler's return), with
// visibility timeout vt from the receive and d from each extension: every
// extension that succeeded returned before the visibility it extended
// ended, and the last one lasted until until. The ends are counted from
// the client's side of each call, so they are never later than SQS's.
func (l *sqsLog) checkCovered(t *testing.T, handle string, vt, d time.Duration, until time.Time) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	received, ok := l.received[handle]
	if !ok {
		t.Fatalf("no receive returned %q", handle)
	}
	ends := received.Add(vt)
	failed := 0
	for _, c := range l.changes {
		switch {
		case c.handle != handle || c.start.After(until):
		case c.err != nil:
			failed++
		case c.end.After(ends):
			t.Errorf("an extension returned %s after the visibility ended (%d failed before it): the message could be delivered again meanwhile",
				c.end.Sub(ends).Round(time.Millisecond), failed)
			return
		default:
			ends = c.start.Add(d)
		}
	}
	if until.After(ends) {
		t.Errorf("the visibility ended %s before the handler returned", until.Sub(ends).Round(time.Millisecond))
	}
}

// failures returns how many ChangeMessageVisibility calls failed.
func (l *sqsLog) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.changes {
		if c.err != nil {
			n++
		}
	}
	return n
}

// receiveElsewhere polls url as another consumer would, until the
// returned stop is called, which returns the bodies it received.
func receiveElsewhere(t *testing.T, url string) (stop func() []string) {
	client := brokers.SQS(t)
	ctx, cancel := context.WithCancel(context.Background())
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for _, m := range out.Messages {
				got = append(got, aws.ToString(m.Body))
			}
		}
	}()
	return func() []string {
		cancel()
		<-done
		return got
	}
}

// extensionEvents returns the error.type of each ExtensionFailedEventName
// event on the spans.
func extensionEvents(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		for _, e := range s.Events() {
			if e.Name != middleware.ExtensionFailedEventName {
				continue
			}
			errType := "<none>"
			for _, a := range e.Attributes {
				if a.Key == "error.type" {
					errType = a.Value.Emit()
				}
			}
			out = append(out, errType)
		}
	}
	return out
}

// slowHandler is a handler that takes d per message and records when each
// one returned, by receipt handle.
type slowHandler struct {
	d       time.Duration
	started chan struct{}

	handlings atomic.Int64
	mu        sync.Mutex
	returned  map[string]time.Time
}

func newSlowHandler(d time.Duration, n int) *slowHandler {
	return &slowHandler{d: d, started: make(chan struct{}, n), returned: map[string]time.Time{}}
}

func (h *slowHandler) Handle(_ context.Context, m *middleware.Message) error {
	h.handlings.Add(1)
	select {
	case h.started <- struct{}{}:
	default: // a redelivery, which the test counts by handlings
	}
	time.Sleep(h.d)
	var raw *types.Message
	if m.As(&raw) {
		h.mu.Lock()
		h.returned[aws.ToString(raw.ReceiptHandle)] = time.Now()
		h.mu.Unlock()
	}
	return nil
}

// An extension that fails is retried in time: the first one (a throttled
// request) fails, and the message, under a 2 s visibility, is still not
// delivered to another consumer while its 3 s handler runs. Extending
// every half of the visibility, the retry came as it ended. The failure
// shows on the message's process span.
func TestVisibilityExtensionFailureRetriedInTime(t *testing.T) {
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded", Fault: smithy.FaultClient}
	log, client := newSQSLog(t, func(_ context.Context, n int) error {
		if n == 1 {
			return throttled
		}
		return nil
	})
	url := brokers.SQSQueue(t, client, "extfail", map[string]string{"VisibilityTimeout": "1"})
	publishBodies(t, client, url, "slow")

	const d = 2 * time.Second
	tel := newTelemetry(t)
	h := newSlowHandler(3*time.Second, 1)
	stop := integration.RunSubscriber(t, context.Background(), tel.Subscriber(awssqs.NewSubscriber(client,
		awssqs.WithWaitTime(time.Second), awssqs.WithVisibilityExtension(d))), url, h)
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no handler started")
	}
	elsewhere := receiveElsewhere(t, url)
	waitEmpty(t, brokers.SQS(t), url, 10*time.Second)
	got := elsewhere()
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	if len(got) > 0 || h.handlings.Load() != 1 {
		t.Errorf("another consumer received %q, and the Subscriber handled it %d times; want once, by the Subscriber alone", got, h.handlings.Load())
	}
	if log.failures() < 1 {
		t.Fatal("the injected failure was not met")
	}
	h.mu.Lock()
	for handle, returned := range h.returned {
		log.checkCovered(t, handle, d, d, returned)
	}
	h.mu.Unlock()
	if events := extensionEvents(tel.spansOf("process")); len(events) != 1 || events[0] != "ThrottlingException" {
		t.Errorf("%s events on the process span, by error.type: %q; want one ThrottlingException", middleware.ExtensionFailedEventName, events)
	}
}

// Every message of a poll is extended in time, even when the extensions
// of others hang: the first two calls hang until cut (a network that
// swallows the requests), and none of the three messages, under a 2 s
// visibility, goes to another consumer while its 3 s handler runs. One
// call at a time, each bounded by the tick, the first two retried only
// as their visibility ended, and the third was first extended a second
// after: all three were delivered again. The cut calls show on their
// messages' process spans, as timeouts.
func TestVisibilityExtensionCoversEveryMessageOfPoll(t *testing.T) {
	log, client := newSQSLog(t, func(ctx context.Context, n int) error {
		if n <= 2 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	url := brokers.SQSQueue(t, client, "extpoll", map[string]string{"VisibilityTimeout": "1"})
	publishBodies(t, client, url, "a", "b", "c")

	const d = 2 * time.Second
	tel := newTelemetry(t)
	h := newSlowHandler(3*time.Second, 3)
	stop := integration.RunSubscriber(t, context.Background(), tel.Subscriber(awssqs.NewSubscriber(client,
		awssqs.WithWaitTime(time.Second), awssqs.WithVisibilityExtension(d))), url, h)
	for range 3 {
		select {
		case <-h.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the three handlers did not start")
		}
	}
	elsewhere := receiveElsewhere(t, url)
	waitEmpty(t, brokers.SQS(t), url, 10*time.Second)
	got := elsewhere()
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	if len(got) > 0 || h.handlings.Load() != 3 {
		t.Errorf("another consumer received %q, and the Subscriber had %d handlings; want 3, by the Subscriber alone", got, h.handlings.Load())
	}
	log.mu.Lock()
	polls := map[time.Time]bool{}
	for _, start := range log.received {
		polls[start] = true
	}
	log.mu.Unlock()
	if len(polls) != 1 {
		t.Fatalf("the three messages came in %d polls, want one", len(polls))
	}
	if log.failures() < 2 {
		t.Fatal("the injected hangs were not met")
	}
	h.mu.Lock()
	for handle, returned := range h.returned {
		log.checkCovered(t, handle, d, d, returned)
	}
	h.mu.Unlock()
	timeouts := 0
	for _, e := range extensionEvents(tel.spansOf("process")) {
		if e == "timeout" {
			timeouts++
		}
	}
	if timeouts < 2 {
		t.Errorf("%d timeouts recorded as %s, want the two cut calls'", timeouts, middleware.ExtensionFailedEventName)
	}
}
