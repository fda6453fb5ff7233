package awssqs

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// TestBatchLen: a SendMessageBatch holds at most ten entries and at most
// maxBatchBytes of what SQS counts (bodies, and each attribute's name, type
// and value); an entry larger than that goes alone, so SQS judges it and
// the others are not refused with it.
func TestBatchLen(t *testing.T) {
	entry := func(body int, attrName string, attrValue int) types.SendMessageBatchRequestEntry {
		e := types.SendMessageBatchRequestEntry{MessageBody: aws.String(strings.Repeat("b", body))}
		if attrName != "" {
			e.MessageAttributes = map[string]types.MessageAttributeValue{
				attrName: {DataType: aws.String("String"), StringValue: aws.String(strings.Repeat("v", attrValue))},
			}
		}
		return e
	}
	half := maxBatchBytes / 2
	name := strings.Repeat("n", 200) // SQS allows names up to 256 characters
	for _, tc := range []struct {
		what    string
		entries []types.SendMessageBatchRequestEntry
		want    int
	}{
		{"eleven small", func() []types.SendMessageBatchRequestEntry {
			var es []types.SendMessageBatchRequestEntry
			for range 11 {
				es = append(es, entry(1, "", 0))
			}
			return es
		}(), maxBatch},
		{"two halves fit exactly", []types.SendMessageBatchRequestEntry{entry(half, "", 0), entry(half, "", 0)}, 2},
		// Bodies alone fit; the attribute names push the batch over.
		{"attribute names count", []types.SendMessageBatchRequestEntry{
			entry(half-len("String")-1, name, 1), entry(half-len("String")-1, name, 1)}, 1},
		{"attribute types count", []types.SendMessageBatchRequestEntry{
			entry(half-1, "a", 0), entry(half-1, "a", 0)}, 1},
		{"attribute values count", []types.SendMessageBatchRequestEntry{
			entry(half-100, "", 0), entry(half-100, "a", 200)}, 1},
		{"one too large goes alone", []types.SendMessageBatchRequestEntry{entry(maxBatchBytes+1, "", 0), entry(1, "", 0)}, 1},
		{"one", []types.SendMessageBatchRequestEntry{entry(1, "", 0)}, 1},
	} {
		if got := batchLen(tc.entries); got != tc.want {
			t.Errorf("%s: batchLen = %d, want %d", tc.what, got, tc.want)
		}
	}
}
