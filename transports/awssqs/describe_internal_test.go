package awssqs

import (
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/propagation"
)

// TestDescribe: a queue URL's destination, built once and then served
// from the cache without allocating; its shared attributes are clipped, so
// a caller's append copies them.
func TestDescribe(t *testing.T) {
	const url = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
	d := describe(url)
	want := []attribute.KeyValue{
		propagation.SQSQueueURL(url), propagation.ServerAddress("sqs.eu-west-1.amazonaws.com"), propagation.ServerPort(443),
	}
	if d.Name != "orders" || d.System != propagation.SystemSQS || !slices.Equal(d.Attributes, want) {
		t.Fatalf("describe = %+v", d)
	}
	if cap(d.Attributes) != len(d.Attributes) {
		t.Error("shared attributes not clipped: an append would write into them")
	}
	if got := testing.AllocsPerRun(100, func() { _ = describe(url) }); got != 0 {
		t.Errorf("a described queue allocates %.0f times", got)
	}
	if d := describe("not a url"); d.Name != "not a url" || len(d.Attributes) != 1 {
		t.Errorf("describe of a bare name = %+v", d)
	}
}

// Relay and DeadLetter carry the source's ID, which may be another
// broker's: one SQS would refuse as a MessageDeduplicationId (a long Kafka
// topic, a RabbitMQ message-id with spaces) is sent as its SHA-256.
func TestDeduplicationID(t *testing.T) {
	long := strings.Repeat("com.example.orders.", 7) + "v1/3/1234567"
	for _, tc := range []struct {
		id   string
		kept bool
	}{
		{"", true}, {"order-42", true}, {"orders/3/1234567", true}, {"0c5c5e1a-2f3b-4c1d-9e8f-1a2b3c4d5e6f", true},
		{"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", true}, {strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false}, {long, false}, {"order 42 (retry)", false}, {"ünï", false}, {"a\x00b", false},
	} {
		got := deduplicationID(tc.id)
		if tc.kept && got != tc.id {
			t.Errorf("deduplicationID(%q) = %q, want it kept", tc.id, got)
		}
		if !tc.kept && (len(got) != 64 || got == tc.id || got != deduplicationID(tc.id)) {
			t.Errorf("deduplicationID(%q) = %q, want a stable SHA-256 in hex", tc.id, got)
		}
	}
}
