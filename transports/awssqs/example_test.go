package awssqs_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	queueURL := "https://sqs.us-east-1.amazonaws.com/123456789012/orders"

	pub := awssqs.NewPublisher(client)
	msg := middleware.NewMessage([]byte(`{"order":42}`))
	msg.Headers["tenant"] = "acme"
	if err := pub.Publish(ctx, queueURL, msg); err != nil {
		log.Fatal(err)
	}

	// A failed message comes back after 5 s instead of after the rest of
	// the queue's visibility timeout.
	sub := awssqs.NewSubscriber(client, awssqs.WithConcurrency(4), awssqs.WithRetryVisibility(5*time.Second))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = sub.Subscribe(ctx, queueURL, middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		fmt.Printf("%s: %s (delivery %d)\n", msg.ID, msg.Body, msg.DeliveryCount)
		return nil // deletes the message
	}))
	if err != nil {
		log.Fatal(err)
	}
}
