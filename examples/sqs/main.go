// Command sqs shows the three ways to trace Amazon SQS with otelmq, on goaws
// served in this process:
//
//  1. the unified API: awssqs.NewPublisher / awssqs.NewSubscriber wrapped in
//     middleware.Telemetry;
//  2. a bare *sqs.Client instrumented with middleware.Tracing's building
//     blocks (StartSend, InjectCreate, StartProcess) and awssqs.Carrier:
//     transports/awssqs has no client middleware of its own yet, and these
//     give the same span names and attributes as the unified API;
//  3. manual propagation: awssqs.Carrier with propagation.Inject/Extract and
//     spans of your own.
//
// Each section prints its spans; each ends in one trace.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/examples/internal/show"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/awssqs"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer) error {
	client, createQueue, closeSQS, err := embedded.StartSQS()
	if err != nil {
		return err
	}
	defer closeSQS()

	if err := show.Section(w, "1. unified API (awssqs.Publisher/Subscriber + middleware.Telemetry)", func(tp trace.TracerProvider) error {
		queue, err := createQueue(ctx, "unified", nil)
		if err != nil {
			return err
		}
		tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))
		pctx, span := tp.Tracer("example").Start(ctx, "place order")
		err = tel.Publisher(awssqs.NewPublisher(client)).Publish(pctx, queue, middleware.NewMessage([]byte(`{"order":1}`)))
		span.End()
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		sub := tel.Subscriber(awssqs.NewSubscriber(client, awssqs.WithWaitTime(time.Second)))
		handled := false
		err = sub.Subscribe(sctx, queue, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			handled = true
			cancel() // one message is enough; Subscribe deletes it and returns
			return nil
		}))
		if err == nil && !handled {
			err = fmt.Errorf("no message on %s", queue)
		}
		return err
	}); err != nil {
		return err
	}

	if err := show.Section(w, "\n2. bare *sqs.Client with middleware.Tracing building blocks", func(tp trace.TracerProvider) error {
		queue, err := createQueue(ctx, "native", nil)
		if err != nil {
			return err
		}
		tracing := middleware.NewTracing(middleware.WithTracerProvider(tp))
		dest := awssqs.NewPublisher(client).Describe(queue) // span name and attributes as the transport has them
		pctx, span := tracing.StartSend(ctx, dest, 1)
		attrs := map[string]types.MessageAttributeValue{}
		tracing.InjectCreate(pctx, dest, awssqs.NewCarrier(&attrs), false)
		_, err = client.SendMessage(pctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(`{"order":2}`), MessageAttributes: attrs})
		middleware.End(span, err)
		if err != nil {
			return err
		}
		m, err := receiveOne(ctx, client, queue)
		if err != nil {
			return err
		}
		cctx, span := tracing.StartProcess(ctx, dest, awssqs.NewCarrier(&m.MessageAttributes))
		_, err = client.DeleteMessage(cctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle})
		middleware.End(span, err)
		return err
	}); err != nil {
		return err
	}

	return show.Section(w, "\n3. manual: awssqs.Carrier with propagation.Inject/Extract", func(tp trace.TracerProvider) error {
		queue, err := createQueue(ctx, "manual", nil)
		if err != nil {
			return err
		}
		tracer := tp.Tracer("example")
		pctx, span := tracer.Start(ctx, "send manual", trace.WithSpanKind(trace.SpanKindProducer))
		attrs := map[string]types.MessageAttributeValue{}
		propagation.Inject(pctx, awssqs.NewCarrier(&attrs)) // traceparent as a String message attribute
		_, err = client.SendMessage(pctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(`{"order":3}`), MessageAttributes: attrs})
		span.End()
		if err != nil {
			return err
		}
		m, err := receiveOne(ctx, client, queue)
		if err != nil {
			return err
		}
		cctx := propagation.Extract(ctx, awssqs.NewCarrier(&m.MessageAttributes))
		_, span = tracer.Start(cctx, "process manual", trace.WithSpanKind(trace.SpanKindConsumer))
		span.End()
		_, err = client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle})
		return err
	})
}

// receiveOne long-polls queue for one message, asking for its message
// attributes: SQS returns none unless asked, and the trace context is one.
func receiveOne(ctx context.Context, client *sqs.Client, queue string) (types.Message, error) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queue), MaxNumberOfMessages: 1, WaitTimeSeconds: 1,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			return types.Message{}, err
		}
		if len(out.Messages) > 0 {
			return out.Messages[0], nil
		}
	}
	return types.Message{}, fmt.Errorf("no message on %s", queue)
}
