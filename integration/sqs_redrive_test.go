package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// TestSQSNativeRedriveKeepsTrace: SQS's own dead-lettering (RedrivePolicy,
// maxReceiveCount) moves a message whose handler keeps failing to the DLQ
// with its attributes, so the DLQ consumer's process span joins the
// producer's trace.
func TestSQSNativeRedriveKeepsTrace(t *testing.T) {
	client := brokers.SQS(t)
	dlq := brokers.SQSQueue(t, client, "redrive-dlq", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlq), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	source := brokers.SQSQueue(t, client, "redrive-src", map[string]string{
		"VisibilityTimeout": "1",
		"RedrivePolicy":     fmt.Sprintf(`{"maxReceiveCount":"2","deadLetterTargetArn":%q}`, arn),
	})

	opts := []awssqs.Option{awssqs.WithWaitTime(time.Second)}
	rec, tp := newRecorder()
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))
	pub := tel.Publisher(awssqs.NewPublisher(client, opts...))
	rctx, root := tp.Tracer("test").Start(ctx, "checkout")
	msg := middleware.NewMessage([]byte("poison"))
	msg.Headers["x-order"] = "13"
	if err := pub.Publish(rctx, source, msg); err != nil {
		t.Fatal(err)
	}
	root.End()

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = tel.Subscriber(awssqs.NewSubscriber(client, opts...)).Subscribe(sctx, source,
			middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return errors.New("always fails") }))
	}()
	type arrival struct {
		msg  *middleware.Message
		span trace.SpanContext
	}
	got := make(chan arrival, 1)
	go func() {
		_ = tel.Subscriber(awssqs.NewSubscriber(client, opts...)).Subscribe(sctx, dlq,
			middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
				select {
				case got <- arrival{m, trace.SpanContextFromContext(ctx)}:
				default:
				}
				return nil
			}))
	}()
	var a arrival
	select {
	case a = <-got:
	case <-ctx.Done():
		t.Fatal("the message was not redriven to the dead-letter queue within a minute")
	}
	stop()
	dead, gotSpan := a.msg, a.span
	if string(dead.Body) != "poison" || dead.Headers["x-order"] != "13" {
		t.Fatalf("dead-lettered message lost data: body %q headers %v", dead.Body, dead.Headers)
	}
	if gotSpan.TraceID() != root.SpanContext().TraceID() {
		t.Fatal("the DLQ handler is not in the producer's trace")
	}
	failed := 0
	for _, s := range rec.Ended() {
		if s.Name() == "process "+lastSegment(source) && s.Status().Code == 1 && s.SpanContext().TraceID() == root.SpanContext().TraceID() {
			failed++
		}
	}
	if failed < 2 {
		t.Fatalf("%d failed attempts in the trace, want the 2 before the redrive", failed)
	}
}

func lastSegment(u string) string {
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == '/' {
			return u[i+1:]
		}
	}
	return u
}
