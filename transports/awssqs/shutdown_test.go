package awssqs_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// abandonedPoll forwards requests to the endpoint as SQS serves them: a
// ReceiveMessage goes on after its client hung up (SQS keeps the long poll
// open and hands it the next messages, aws-sdk-java-v2#1395), and the
// client then gets its own context's error instead of those messages.
// polling gets a value when a ReceiveMessage arrives, answered when the
// endpoint answered it.
type abandonedPoll struct {
	next              http.RoundTripper
	polling, answered chan struct{}
}

func (a *abandonedPoll) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Target") != "AmazonSQS.ReceiveMessage" {
		return a.next.RoundTrip(r)
	}
	select {
	case a.polling <- struct{}{}:
	default:
	}
	res, err := a.next.RoundTrip(r.WithContext(context.WithoutCancel(r.Context())))
	select {
	case a.answered <- struct{}{}:
	default:
	}
	if err == nil && r.Context().Err() != nil {
		_ = res.Body.Close()
		return nil, r.Context().Err()
	}
	return res, err
}

// A message that arrives while Subscribe's context ends with a long poll in
// flight is handed to that poll by SQS all the same. Subscribe must get
// that answer and make the message visible again at once, not leave it
// invisible for the queue's visibility timeout (30 s here) as it did when
// the end of ctx cancelled the poll; and it still returns within the wait.
func TestShutdownDuringPollKeepsItsMessagesVisible(t *testing.T) {
	direct := brokers.SQS(t)
	url := brokers.SQSQueue(t, direct, "pollshutdown", nil)
	rt := &abandonedPoll{next: http.DefaultTransport, polling: make(chan struct{}, 1), answered: make(chan struct{}, 1)}
	client := sqs.New(direct.Options(), func(o *sqs.Options) { o.HTTPClient = &http.Client{Transport: rt} })

	const wait = 3 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	handled := make(chan string, 1)
	go func() {
		done <- awssqs.NewSubscriber(client, awssqs.WithWaitTime(wait)).Subscribe(ctx, url,
			middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
				handled <- string(m.Body)
				return nil
			}))
	}()
	select {
	case <-rt.polling:
	case <-time.After(10 * time.Second):
		t.Fatal("no ReceiveMessage")
	}
	cancel()
	stopped := time.Now()
	publishBodies(t, direct, url, "late") // reaches the poll still open on the server
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Subscribe = %v, want nil", err)
		}
		if d := time.Since(stopped); d > wait+2*time.Second {
			t.Errorf("Subscribe returned %v after its context ended, want within the %v wait", d, wait)
		}
	case <-time.After(wait + 10*time.Second):
		t.Fatal("Subscribe did not return after its context ended")
	}
	// Whether or not Subscribe waited for it, the poll has taken the
	// message once the endpoint answered.
	select {
	case <-rt.answered:
	case <-time.After(wait + 10*time.Second):
		t.Fatal("the last poll was not answered")
	}
	select {
	case body := <-handled:
		t.Errorf("the handler ran on %q after Subscribe's context ended", body)
	default:
	}
	out, err := direct.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "late" {
		t.Errorf("received %d message(s) right after Subscribe returned, want the one that arrived during its last poll, visible again", len(out.Messages))
	}
}
