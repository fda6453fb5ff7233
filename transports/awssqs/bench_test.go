package awssqs_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// BenchmarkPipeline publishes and consumes b.N messages (64 B, ten per
// send) through goaws in this process, so allocs/op is per message, SDK and
// goaws included: "otelmq-noop" is the Publisher and Subscriber under the
// tracing middleware with the no-op TracerProvider, "raw" the SDK loop of
// examples/bench (SendMessageBatch; ReceiveMessage and one
// DeleteMessageBatch per receive). Profile with
// go test -run X -bench Pipeline -benchmem -memprofile mem.out ./transports/awssqs/
func BenchmarkPipeline(b *testing.B) {
	body := make([]byte, 64)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	b.Run("otelmq-noop", func(b *testing.B) {
		client := brokers.SQS(b)
		url := brokers.SQSQueue(b, client, "bench", nil)
		tr := middleware.NewTracing(middleware.WithTracerProvider(noop.NewTracerProvider()))
		pub := tr.Publisher(awssqs.NewPublisher(client))
		// A short wait: stopping waits for the last (empty) long poll. The
		// queue is never empty while the timer runs, so it costs nothing.
		sub := tr.Subscriber(awssqs.NewSubscriber(client, fast...))
		var got atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- sub.Subscribe(ctx, url, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
				got.Add(1)
				return nil
			}))
		}()
		b.ReportAllocs()
		b.ResetTimer()
		for sent := 0; sent < b.N; {
			msgs := make([]*middleware.Message, min(10, b.N-sent))
			for i := range msgs {
				msgs[i] = &middleware.Message{Body: body}
			}
			if err := pub.Publish(context.Background(), url, msgs...); err != nil {
				b.Fatal(err)
			}
			sent += len(msgs)
		}
		waitCount(b, &got, b.N)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
	b.Run("raw", func(b *testing.B) {
		client := brokers.SQS(b)
		url := brokers.SQSQueue(b, client, "bench", nil)
		var got atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 20}
			for ctx.Err() == nil {
				out, err := client.ReceiveMessage(ctx, in)
				if err != nil || len(out.Messages) == 0 {
					continue
				}
				entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
				for i, m := range out.Messages {
					entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
				}
				if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
					continue
				}
				got.Add(int64(len(out.Messages)))
			}
		}()
		b.ReportAllocs()
		b.ResetTimer()
		for sent := 0; sent < b.N; {
			entries := make([]types.SendMessageBatchRequestEntry, min(10, b.N-sent))
			for i := range entries {
				entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(body))}
			}
			if _, err := client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
				b.Fatal(err)
			}
			sent += len(entries)
		}
		waitCount(b, &got, b.N)
		b.StopTimer()
		cancel()
		<-done
	})
}

func waitCount(b *testing.B, got *atomic.Int64, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for got.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d messages", got.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
