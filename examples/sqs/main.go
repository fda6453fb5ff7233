// Command sqs shows the three ways to trace Amazon SQS with otelmq, on goaws
// served in this process:
//
//  1. the unified API: awssqs.NewPublisher / awssqs.NewSubscriber wrapped in
//     middleware.Telemetry;
//  2. native-client instrumentation: awssqs.Instrumentation installed as a
//     smithy middleware on your own *sqs.Client, with StartProcess and
//     DeleteMessage for your own receive loop;
//  3. manual propagation: awssqs.Carrier with propagation.Inject/Extract and
//     spans of your own.
//
// Each section prints its spans; each ends in one trace.
package main

import (
	"context"
	"flag"
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
	flag.Parse() // takes no flags; -h says so instead of running
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

	if err := show.Section(w, "\n2. native client: awssqs.Instrumentation as a middleware of your own *sqs.Client", func(tp trace.TracerProvider) error {
		queue, err := createQueue(ctx, "native", nil)
		if err != nil {
			return err
		}
		// One option on the client: SendMessage gets a send span and the
		// trace context in its attributes, ReceiveMessage asks for them.
		inst := awssqs.NewInstrumentation(middleware.NewTracing(middleware.WithTracerProvider(tp)))
		traced := sqs.New(client.Options(), inst.ClientOption())
		if _, err := traced.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(`{"order":2}`)}); err != nil {
			return err
		}
		m, err := receiveOne(ctx, traced, queue)
		if err != nil {
			return err
		}
		// Your own loop: a process span in the producer's trace, and the
		// delete inside it.
		cctx, span := inst.StartProcess(ctx, queue, m)
		_, err = inst.DeleteMessage(cctx, traced, queue, m)
		inst.Tracing().End(span, err)
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
