package awssqs

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// TestMessageSystemAttributes: the system attributes of a received
// message map onto the Message (goaws drops or fixes them, so this is
// checked on the conversion): ApproximateReceiveCount is DeliveryCount,
// SentTimestamp (milliseconds) is Time, AWSTraceHeader is
// Headers[propagation.XRayKey] even on a message without message
// attributes, MessageGroupId is Key; the request ID is an attribute only
// when there is one.
func TestMessageSystemAttributes(t *testing.T) {
	const (
		url  = "http://127.0.0.1:1/000000000000/orders.fifo"
		xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	)
	raw := &types.Message{
		MessageId: aws.String("m-1"),
		Body:      aws.String("body"),
		Attributes: map[string]string{
			attrReceiveCount: "3", attrSentTimestamp: "1700000000123", attrTraceHeader: xray, attrGroupID: "customer-1",
		},
	}
	msg := message(raw, url, "req-1")
	if msg.ID != "m-1" || string(msg.Body) != "body" || msg.Destination != url {
		t.Errorf("message = %+v", msg)
	}
	if msg.DeliveryCount != 3 {
		t.Errorf("DeliveryCount = %d, want 3", msg.DeliveryCount)
	}
	if want := time.UnixMilli(1700000000123); !msg.Time.Equal(want) {
		t.Errorf("Time = %v, want %v", msg.Time, want)
	}
	if len(msg.Headers) != 1 || msg.Headers[propagation.XRayKey] != xray {
		t.Errorf("Headers = %v, want only %s", msg.Headers, propagation.XRayKey)
	}
	if string(msg.Key) != "customer-1" {
		t.Errorf("Key = %q, want the group ID", msg.Key)
	}
	want := []attribute.KeyValue{propagation.MessageID("m-1"), propagation.SQSQueueURL(url), propagation.AWSRequestID("req-1")}
	if !slices.Equal(msg.Attributes(), want) {
		t.Errorf("attributes %v, want %v", msg.Attributes(), want)
	}

	bare := message(&types.Message{MessageId: aws.String("m-2"), Body: aws.String("b")}, url, "")
	if bare.Headers != nil || bare.Key != nil || bare.DeliveryCount != 0 || !bare.Time.IsZero() {
		t.Errorf("message without system attributes = %+v", bare)
	}
	if want := []attribute.KeyValue{propagation.MessageID("m-2"), propagation.SQSQueueURL(url)}; !slices.Equal(bare.Attributes(), want) {
		t.Errorf("attributes without a request ID %v", bare.Attributes())
	}
}

// TestUnpackFirstWins: of a key repeated in the packed attribute the
// first value wins, as Unpack documents, whatever order the pairs come in.
func TestUnpackFirstWins(t *testing.T) {
	if got := Unpack("traceparent=first&baggage=b&traceparent=second"); got["traceparent"] != "first" || got["baggage"] != "b" {
		t.Errorf("Unpack = %v, want the first traceparent", got)
	}
}

// TestRefusedCodes: the SQS error codes that refuse a message for good
// mark the error middleware.Permanent; others (throttling, server
// faults) do not.
func TestRefusedCodes(t *testing.T) {
	for _, code := range []string{"InvalidMessageContents", "InvalidParameterValue", "InvalidAttributeName",
		"InvalidAttributeValue", "MissingParameter", "UnsupportedOperation"} {
		if err := refused(&BatchEntryError{Code: code}); !middleware.IsPermanent(err) {
			t.Errorf("%s: not marked permanent", code)
		}
	}
	for _, code := range []string{"ThrottlingException", "InternalError", ""} {
		if err := refused(&BatchEntryError{Code: code}); middleware.IsPermanent(err) {
			t.Errorf("%q: marked permanent", code)
		}
	}
}
