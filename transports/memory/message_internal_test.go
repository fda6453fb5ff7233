package memory

import (
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/propagation"
)

// TestMessageAllocations: a delivery without headers is one allocation,
// its attribute included, and one more for the handler's copy of its key
// and body; headers add their map.
func TestMessageAllocations(t *testing.T) {
	env := &envelope{id: "7", key: []byte("k"), body: []byte("b"), time: time.Now(), deliveries: 1}
	msg := message(env, "orders")
	if want := []attribute.KeyValue{propagation.MessageID("7")}; !slices.Equal(msg.Attributes(), want) {
		t.Errorf("attributes %v, want %v", msg.Attributes(), want)
	}
	if string(msg.Key) != "k" || string(msg.Body) != "b" || &msg.Body[0] == &env.body[0] || cap(msg.Key) != 1 {
		t.Errorf("key %q, body %q: want copies of k and b, the key capped", msg.Key, msg.Body)
	}
	if n := testing.AllocsPerRun(100, func() { _ = message(env, "orders") }); n != 2 {
		t.Errorf("a delivery allocates %v times, want 2", n)
	}
	bare := &envelope{id: "8", time: time.Now(), deliveries: 1}
	if msg := message(bare, "orders"); msg.Key != nil || msg.Body != nil {
		t.Errorf("no key or body delivered as %q, %q; want nil", msg.Key, msg.Body)
	}
	if n := testing.AllocsPerRun(100, func() { _ = message(bare, "orders") }); n != 1 {
		t.Errorf("a delivery without key or body allocates %v times, want 1", n)
	}
	empty := &envelope{id: "9", key: []byte{}, body: []byte{}, time: time.Now(), deliveries: 1}
	if msg := message(empty, "orders"); msg.Key == nil || msg.Body == nil {
		t.Error("an empty key or body delivered as nil; want empty, as published")
	}
}
