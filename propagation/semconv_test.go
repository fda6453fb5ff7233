package propagation_test

import (
	"testing"

	"github.com/otelmq/otelmq/propagation"
)

// TestRabbitMQDestination: semconv's rabbitmq.md names a destination
// "{exchange}:{routing key}" on send and "{exchange}:{routing key}:{queue}"
// on receive, leaving out what is empty and a routing key equal to the
// queue; "amq.default" only when a send has neither exchange nor key.
func TestRabbitMQDestination(t *testing.T) {
	for _, tc := range []struct{ exchange, key, queue, want string }{
		{"", "orders", "", "orders"},
		{"", "", "", "amq.default"},
		{"events", "", "", "events"},
		{"events", "order.created", "", "events:order.created"},
		{"", "orders", "orders", "orders"},
		{"", "orders", "billing", "orders:billing"},
		{"events", "", "billing", "events:billing"},
		{"events", "billing", "billing", "events:billing"},
		{"events", "order.created", "billing", "events:order.created:billing"},
		{"", "", "billing", "billing"},
	} {
		if got := propagation.RabbitMQDestination(tc.exchange, tc.key, tc.queue); got != tc.want {
			t.Errorf("RabbitMQDestination(%q, %q, %q) = %q, want %q", tc.exchange, tc.key, tc.queue, got, tc.want)
		}
	}
}

// TestRecordableKey: a Kafka key is recorded only when there is one (nil
// is no key; an empty key is one) and it is UTF-8.
func TestRecordableKey(t *testing.T) {
	for _, tc := range []struct {
		key  []byte
		want bool
	}{
		{nil, false},
		{[]byte{}, true},
		{[]byte("order-1"), true},
		{[]byte{0xff, 0xfe}, false},
	} {
		if got := propagation.RecordableKey(tc.key); got != tc.want {
			t.Errorf("RecordableKey(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}
