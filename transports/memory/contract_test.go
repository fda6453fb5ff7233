package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// TestPublishCopiesKeyAndBody: the broker keeps its own copy of a
// message's key and body, so a publisher that reuses its buffers after
// Publish, or a handler that writes into a Message's body before failing,
// changes neither the delivery nor the redelivery.
func TestPublishCopiesKeyAndBody(t *testing.T) {
	b := memory.New()
	key, body := []byte("key"), []byte("body")
	if err := b.Publish(context.Background(), "q", &middleware.Message{Key: key, Body: body}); err != nil {
		t.Fatal(err)
	}
	copy(key, "KEY")
	copy(body, "BODY")

	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.Subscribe(ctx, "q", middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		got = append(got, string(m.Key)+"/"+string(m.Body))
		if m.DeliveryCount == 1 {
			copy(m.Key, "xxx")
			copy(m.Body, "xxxx")
			return errors.New("declined")
		}
		cancel()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "key/body" || got[1] != "key/body" {
		t.Errorf("delivered %q, want key/body twice: the published bytes, untouched by the publisher's buffers or the handler", got)
	}
}
