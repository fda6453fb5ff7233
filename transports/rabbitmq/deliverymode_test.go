package rabbitmq

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
)

// The delivery mode is read back from the broker, not from the Publishing
// the Publisher built: what matters is what the broker stored.
func TestDeliveryMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want uint8
	}{
		{"default persistent", nil, amqp.Persistent},
		{"WithTransient", []Option{WithTransient()}, amqp.Transient},
		{"with confirms", []Option{WithConfirms(true)}, amqp.Persistent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, q := setup(t, nil)
			pub := NewPublisher(conn, tc.opts...)
			defer pub.Close()
			if err := pub.Publish(t.Context(), q, middleware.NewMessage([]byte("m"))); err != nil {
				t.Fatal(err)
			}

			got := make(chan *middleware.Message, 1)
			subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
				got <- m
				return nil
			})
			m := receive(t, got, 1, 10*time.Second)[0]
			var d *amqp.Delivery
			if !m.As(&d) {
				t.Fatal("As(**amqp.Delivery) failed")
			}
			if d.DeliveryMode != tc.want {
				t.Errorf("DeliveryMode = %d, want %d", d.DeliveryMode, tc.want)
			}
		})
	}
}

func TestDeliveryModeOption(t *testing.T) {
	if got := newConfig(nil, nil).deliveryMode(); got != 2 {
		t.Errorf("default deliveryMode = %d, want 2 (persistent)", got)
	}
	if got := newConfig(nil, []Option{WithTransient()}).deliveryMode(); got != amqp.Transient {
		t.Errorf("WithTransient deliveryMode = %d, want 1 (transient)", got)
	}
}
