package awssqs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// emptyBatchAPI answers every SendMessageBatch with "{}": neither sent nor
// failed, as a broken endpoint or proxy might.
type emptyBatchAPI struct{ awssqs.API }

func (emptyBatchAPI) SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return &sqs.SendMessageBatchOutput{}, nil
}

func TestUnlistedBatchEntriesAreErrors(t *testing.T) {
	msgs := []*middleware.Message{middleware.NewMessage([]byte("a")), middleware.NewMessage([]byte("b"))}
	err := awssqs.NewPublisher(emptyBatchAPI{}).Publish(context.Background(), "http://127.0.0.1:1/000/q", msgs...)
	if err == nil || !strings.Contains(err.Error(), "message 0") || !strings.Contains(err.Error(), "message 1") {
		t.Fatalf("an empty batch answer must fail every message, got %v", err)
	}
}
