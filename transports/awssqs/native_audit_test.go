package awssqs_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/codes"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// TestNativeProcessHeaderAllowList: Instrumentation.StartProcess records
// the WithHeaderAllowList message attributes as messaging.header.<name>,
// as the Subscriber does, and no attribute off the list.
func TestNativeProcessHeaderAllowList(t *testing.T) {
	r := newNativeRig(t, "native-allow", middleware.WithHeaderAllowList("tenant", "absent"))
	_, err := r.raw.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(r.url), MessageBody: aws.String("a"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"tenant": {DataType: aws.String("String"), StringValue: aws.String("acme")},
			"secret": {DataType: aws.String("String"), StringValue: aws.String("s")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := receiveAll(t, r.client, r.url, "a")["a"]
	_, span := r.inst.StartProcess(awssqs.ReceiveContext(context.Background(), got.out), r.url, got.m)
	r.inst.Tracing().End(span, nil)
	procs := r.spans("process ")
	if len(procs) != 1 {
		t.Fatalf("%d process spans, want 1", len(procs))
	}
	if v := attr(procs[0], "messaging.header.tenant"); v != "acme" {
		t.Errorf("messaging.header.tenant = %q, want %q; attributes %v", v, "acme", procs[0].Attributes())
	}
	for _, k := range []string{"messaging.header.secret", "messaging.header.absent"} {
		if v := attr(procs[0], k); v != "" {
			t.Errorf("%s = %q recorded", k, v)
		}
	}
}

// TestNativeFailedReceive: a ReceiveMessage that fails records one receive
// span ended with the error (error status, error.type), as a failed poll of
// the Subscriber does; one its ctx cancels records none, nor does an empty
// one.
func TestNativeFailedReceive(t *testing.T) {
	r := newNativeRig(t, "native-fail")
	missing := r.url + "-missing"
	_, err := r.client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(missing)})
	if err == nil {
		t.Fatal("receive from a missing queue succeeded")
	}
	spans := r.spans("receive ")
	if len(spans) != 1 {
		t.Fatalf("%d receive spans for a failed ReceiveMessage (%v), want 1", len(spans), err)
	}
	s := spans[0]
	if s.Status().Code != codes.Error {
		t.Errorf("status %v, want Error", s.Status())
	}
	if et := attr(s, "error.type"); et == "" {
		t.Errorf("no error.type on %v", s.Attributes())
	}
	if et, want := attr(s, "error.type"), middleware.ErrorType(err); et != want {
		t.Errorf("error.type %q, want %q", et, want)
	}
	if v := attr(s, "messaging.operation.type"); v != "receive" {
		t.Errorf("messaging.operation.type %q, want receive", v)
	}
	if v := attr(s, "messaging.batch.message_count"); v != "" {
		t.Errorf("messaging.batch.message_count %q on a failed receive", v)
	}

	// Canceled: not a failure of the receive.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(missing)}); err == nil {
		t.Fatal("canceled receive succeeded")
	}
	// Empty.
	if _, err := r.client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.url), WaitTimeSeconds: 0}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if n := len(r.spans("receive ")); n != 1 {
		t.Errorf("%d receive spans after a canceled and an empty receive, want still 1", n)
	}
}
