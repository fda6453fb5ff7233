package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// TestMessageMapping: the in-memory broker's row of the README's mapping
// table. Publish assigns mem-{n} IDs and the publish time where missing;
// a handler gets the key and body, a copy of the headers (its changes do
// not reach a redelivery), the exact delivery count and the queue name.
func TestMessageMapping(t *testing.T) {
	b := memory.New()
	before := time.Now()
	first, second := middleware.NewMessage([]byte("a")), middleware.NewMessage([]byte("b"))
	first.Key = []byte("k")
	first.Headers["x-app"] = "orders"
	if err := b.Publish(context.Background(), "q", first, second); err != nil {
		t.Fatal(err)
	}
	if first.ID != "mem-1" || second.ID != "mem-2" {
		t.Errorf("IDs %q, %q, want mem-1, mem-2", first.ID, second.ID)
	}
	if first.Time.Before(before) || first.Time.After(time.Now()) {
		t.Errorf("Time %v, want the publish time", first.Time)
	}
	first.Headers["x-app"] = "changed after publish"

	var seen []*middleware.Message
	ctx, cancel := context.WithCancel(context.Background())
	err := b.Subscribe(ctx, "q", middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		seen = append(seen, m)
		if string(m.Body) == "a" && m.DeliveryCount == 1 {
			m.Headers["x-app"] = "changed by the handler"
			return errors.New("declined")
		}
		if len(seen) == 3 {
			cancel()
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 {
		t.Fatalf("%d deliveries, want 3", len(seen))
	}
	again := seen[2]
	if again.ID != "mem-1" || string(again.Key) != "k" || string(again.Body) != "a" || again.DeliveryCount != 2 ||
		again.Destination != "q" || !again.Time.Equal(first.Time) || again.Headers["x-app"] != "orders" {
		t.Errorf("redelivery %+v, want mem-1 with key k, body a, delivery 2 on q, the publish time and its own header copy", again)
	}
}
