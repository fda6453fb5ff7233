package integration

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/otelmq/otelmq/transports/awssqs"
)

// memSQS is an in-memory awssqs.API with SQS's delivery rules (receive hides
// a message until it is deleted or made visible again; a long poll waits for
// messages). It exists for the 100,000-message leak run only: the emulator,
// one request at a time under the race detector, cannot serve that many in
// the suite's time budget, and the leak being looked for is in the
// transport and middleware, which run unchanged over it.
type memSQS struct {
	mu      sync.Mutex
	seq     int
	ready   []*types.Message
	hidden  map[string]*types.Message // receipt handle -> message
	arrived chan struct{}
}

var _ awssqs.API = (*memSQS)(nil)

func newMemSQS() *memSQS {
	return &memSQS{hidden: map[string]*types.Message{}, arrived: make(chan struct{})}
}

func (f *memSQS) push(body *string, attrs map[string]types.MessageAttributeValue) string {
	f.seq++
	id := "m-" + strconv.Itoa(f.seq)
	f.ready = append(f.ready, &types.Message{
		MessageId: aws.String(id), Body: body, MessageAttributes: attrs,
		Attributes: map[string]string{"SentTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "ApproximateReceiveCount": "1"},
	})
	return id
}

func (f *memSQS) wake() {
	close(f.arrived)
	f.arrived = make(chan struct{})
}

func (f *memSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.push(in.MessageBody, in.MessageAttributes)
	f.wake()
	return &sqs.SendMessageOutput{MessageId: aws.String(id)}, nil
}

func (f *memSQS) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		id := f.push(e.MessageBody, e.MessageAttributes)
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String(id)})
	}
	f.wake()
	return out, nil
}

func (f *memSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	deadline := time.After(time.Duration(in.WaitTimeSeconds) * time.Second)
	for {
		f.mu.Lock()
		if len(f.ready) > 0 {
			n := min(len(f.ready), int(max(in.MaxNumberOfMessages, 1)))
			out := &sqs.ReceiveMessageOutput{}
			for _, m := range f.ready[:n] {
				f.seq++
				receipt := "r-" + strconv.Itoa(f.seq)
				f.hidden[receipt] = m
				cp := *m
				cp.ReceiptHandle = aws.String(receipt)
				out.Messages = append(out.Messages, cp)
			}
			clear(f.ready[:n])
			f.ready = f.ready[n:]
			f.mu.Unlock()
			return out, nil
		}
		arrived := f.arrived
		f.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline:
			return &sqs.ReceiveMessageOutput{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (f *memSQS) DeleteMessage(_ context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.hidden, aws.ToString(in.ReceiptHandle))
	return &sqs.DeleteMessageOutput{}, nil
}

func (f *memSQS) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		delete(f.hidden, aws.ToString(e.ReceiptHandle))
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// ChangeMessageVisibility with 0 makes the message visible again at once,
// which is how the leak run's failures are redelivered.
func (f *memSQS) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	receipt := aws.ToString(in.ReceiptHandle)
	if m, ok := f.hidden[receipt]; ok && in.VisibilityTimeout == 0 {
		delete(f.hidden, receipt)
		f.ready = append(f.ready, m)
		f.wake()
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}
