package memory

import (
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/propagation"
)

// TestMessageAllocations: a delivery without headers is one allocation,
// its attribute included; headers add their map.
func TestMessageAllocations(t *testing.T) {
	env := &envelope{id: "7", body: []byte("b"), time: time.Now(), deliveries: 1}
	msg := message(env, "orders")
	if want := []attribute.KeyValue{propagation.MessageID("7")}; !slices.Equal(msg.Attributes(), want) {
		t.Errorf("attributes %v, want %v", msg.Attributes(), want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = message(env, "orders") }); n != 1 {
		t.Errorf("a delivery allocates %v times, want 1", n)
	}
}
