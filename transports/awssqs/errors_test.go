package awssqs_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// deadEndpoint is a loopback port nothing listens on: every call fails
// before SQS could answer.
const deadEndpoint = "http://127.0.0.1:1"

func deadClient(optFns ...func(*sqs.Options)) *sqs.Client {
	return sqs.New(sqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(deadEndpoint), Credentials: aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
	}, optFns...)
}

// TestUnansweredCallErrorType: a call that fails without an answer from SQS
// is recorded by its cause (a refused connection: *net.OpError), not as
// the *smithy.OperationError every failed call is, on the Publisher's send
// span and metric and on the native instrumentation's span; the caller
// still gets the SDK's error.
func TestUnansweredCallErrorType(t *testing.T) {
	const want = "*net.OpError"
	tel := newTelemetry(t)
	err := tel.Publisher(awssqs.NewPublisher(deadClient())).Publish(context.Background(), deadEndpoint+"/000000000000/q", &middleware.Message{Body: []byte("x")})
	var opErr *smithy.OperationError
	if err == nil || !errors.As(err, &opErr) {
		t.Fatalf("Publish to a dead endpoint: %v, want an error holding *smithy.OperationError", err)
	}
	// Two messages go by SendMessageBatch, one by SendMessage.
	err = tel.Publisher(awssqs.NewPublisher(deadClient())).Publish(context.Background(), deadEndpoint+"/000000000000/q",
		&middleware.Message{Body: []byte("x")}, &middleware.Message{Body: []byte("y")})
	if err == nil || !errors.As(err, &opErr) {
		t.Fatalf("batch Publish to a dead endpoint: %v, want an error holding *smithy.OperationError", err)
	}
	sends := tel.spansOf("send")
	if len(sends) != 2 || spanAttr(sends[0], "error.type") != want || spanAttr(sends[1], "error.type") != want {
		t.Errorf("%d send spans, want 2 with error.type %q", len(sends), want)
	}
	if got := tel.durations(t, "send"); got[want] != 2 {
		t.Errorf("send operation.duration points by error.type %v, want two %q", got, want)
	}

	rec := tracetest.NewSpanRecorder()
	inst := awssqs.NewInstrumentation(middleware.NewTracing(middleware.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))))
	_, err = deadClient(inst.ClientOption()).SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(deadEndpoint + "/000000000000/q"), MessageBody: aws.String("x"),
	})
	if _, ok := err.(*smithy.OperationError); !ok {
		t.Errorf("native SendMessage returned %T, want the SDK's *smithy.OperationError unchanged", err)
	}
	if ended := rec.Ended(); len(ended) != 1 || spanAttr(ended[0], "error.type") != want {
		t.Errorf("native spans %d, want one with error.type %q", len(ended), want)
	}
}
