package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// sqsBatch is the messages per send: SendMessageBatch's limit, which the
// otelmq Publisher also sends a multi-message Publish as.
const sqsBatch = 10

// newSQS runs SQS on the in-process goaws from examples/internal/embedded.
func newSQS() (*transport, error) {
	client, createQueue, closeFn, err := embedded.StartSQS()
	if err != nil {
		return nil, err
	}
	pair := func(name string) func(context.Context, int) (middleware.Publisher, middleware.Subscriber, string, func(), error) {
		return func(ctx context.Context, _ int) (middleware.Publisher, middleware.Subscriber, string, func(), error) {
			q, err := createQueue(ctx, "bench-"+name, nil)
			if err != nil {
				return nil, nil, "", nil, err
			}
			// A 1 s long poll, as raw's: messages flow during a run, so
			// it only bounds how long stopping waits for the poll in
			// flight, which the Subscriber lets answer.
			return awssqs.NewPublisher(client), awssqs.NewSubscriber(client, awssqs.WithWaitTime(time.Second)), q, func() {}, nil
		}
	}
	return &transport{
		name:     "sqs",
		defaultN: 2_000,
		notes: []string{
			"goaws runs in this process, one request at a time: its CPU and allocations count in every mode's.",
			"raw deletes with one DeleteMessageBatch per receive; so does the otelmq Subscriber, once a receive's handlers have returned (or after WithDeleteLinger, 50 ms).",
		},
		modes: []mode{
			sqsRawMode(client, createQueue),
			otelmqMode(modeNoop, tracingNoop, sqsBatch, pair(modeNoop)),
			otelmqMode(modeSDK, tracingAlways, sqsBatch, pair(modeSDK)),
			otelmqMode(modeRatio, tracingRatio, sqsBatch, pair(modeRatio)),
			otelmqMode(modeRatioPB, tracingRatioPB, sqsBatch, pair(modeRatioPB)),
		},
		targets: func(r *results) []verdict { return []verdict{noopTarget(r, 0.98)} },
		close:   closeFn,
	}, nil
}

// sqsRawMode is the plain SDK client: SendMessageBatch of ten, and a loop
// of ReceiveMessage (ten, long poll) and DeleteMessageBatch.
func sqsRawMode(client *sqs.Client, createQueue func(context.Context, string, map[string]string) (string, error)) mode {
	return mode{name: modeRaw, tracing: tracingNone, build: func(ctx context.Context, _ int, _ trace.TracerProvider, cnt *counter) (*pipeline, error) {
		q, err := createQueue(ctx, "bench-raw", nil)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(q), MaxNumberOfMessages: sqsBatch, WaitTimeSeconds: 1}
			for {
				out, err := client.ReceiveMessage(sctx, in)
				if sctx.Err() != nil {
					return
				}
				if err != nil {
					cnt.fail(fmt.Errorf("receive: %w", err))
					return
				}
				if len(out.Messages) == 0 {
					continue
				}
				entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
				for i, m := range out.Messages {
					entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
				}
				del, err := client.DeleteMessageBatch(sctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q), Entries: entries})
				if sctx.Err() != nil {
					return
				}
				if err == nil && len(del.Failed) > 0 {
					err = errors.New(aws.ToString(del.Failed[0].Message))
				}
				if err != nil {
					cnt.fail(fmt.Errorf("delete: %w", err))
					return
				}
				cnt.add(len(out.Messages))
			}
		})
		return &pipeline{
			publish: func(ctx context.Context, n int) error {
				for sent := 0; sent < n; {
					k := min(sqsBatch, n-sent)
					entries := make([]types.SendMessageBatchRequestEntry, k)
					for i := range entries {
						entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(body))}
					}
					out, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q), Entries: entries})
					if err == nil && len(out.Failed) > 0 {
						err = errors.New(aws.ToString(out.Failed[0].Message))
					}
					if err != nil {
						return err
					}
					sent += k
				}
				return nil
			},
			stop: func() error {
				cancel()
				wg.Wait()
				return nil
			},
		}, nil
	}}
}
