package awssqs_test

import (
	"context"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// A service that drives its own SQS client: the instrumentation traces and
// propagates through SendMessage and ReceiveMessage, and the loop adds a
// process span per message in the producer's trace.
func ExampleInstrumentation() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	inst := awssqs.NewInstrumentation(middleware.NewTracing())
	client := sqs.NewFromConfig(cfg, inst.ClientOption())
	queueURL := "https://sqs.us-east-1.amazonaws.com/123456789012/orders"

	// A send span, and traceparent among the message attributes.
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(queueURL),
		MessageBody: aws.String(`{"order":42}`),
	}); err != nil {
		log.Fatal(err)
	}

	// The instrumentation asks for the attributes it needs and records a
	// receive span.
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 20,
	})
	if err != nil {
		log.Fatal(err)
	}
	rctx := awssqs.ReceiveContext(ctx, out)
	for _, m := range out.Messages {
		pctx, span := inst.StartProcess(rctx, queueURL, m)
		err := handle(pctx, aws.ToString(m.Body))
		if err == nil {
			_, err = inst.DeleteMessage(pctx, client, queueURL, m)
		}
		inst.Tracing().End(span, err)
	}
}

func handle(context.Context, string) error { return nil }

// WithTracing instruments one client with a Tracing of its own.
func ExampleWithTracing() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg, awssqs.WithTracing())
	_ = client
}

// WithTelemetry instruments one client with spans and the semconv messaging
// metrics (sends, receives, deletes, process durations), on the global
// providers unless options say otherwise.
func ExampleWithTelemetry() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg, awssqs.WithTelemetry())
	_ = client
}
