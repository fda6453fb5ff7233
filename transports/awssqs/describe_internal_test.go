package awssqs

import (
	"slices"
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
