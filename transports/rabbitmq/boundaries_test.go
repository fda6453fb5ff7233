package rabbitmq

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
)

// TestPublishAtShortStringLimits: a message ID and a header name of
// exactly 255 bytes, the most an AMQP short string holds, are published
// and arrive as they were sent; only one byte more is refused (see
// TestPublishUnencodableMessages).
func TestPublishAtShortStringLimits(t *testing.T) {
	conn, queue := setup(t, nil)
	got, r := collect(t, NewSubscriber(conn), queue, 1)
	id, name := strings.Repeat("i", 255), strings.Repeat("k", 255)
	msg := &middleware.Message{ID: id, Body: []byte("at the limit"), Headers: map[string]string{name: "v"}}
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), queue, msg); err != nil {
		t.Fatalf("a 255-byte ID and header name: %v", err)
	}
	if m := receive(t, got, 1, 10*time.Second)[0]; m.ID != id || m.Headers[name] != "v" {
		t.Errorf("received ID of %d bytes, headers %v; want the 255-byte ID and header", len(m.ID), m.Headers)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Subscribe = %v", err)
	}
}

// TestEmptyKeyRoundTrip: an empty, non-nil Key travels (as an empty
// KeyHeader) and arrives empty, not nil, even on a message without other
// headers; a nil Key arrives nil, with no header table.
func TestEmptyKeyRoundTrip(t *testing.T) {
	conn, queue := setup(t, nil)
	got, r := collect(t, NewSubscriber(conn), queue, 2)
	err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), queue,
		&middleware.Message{Body: []byte("empty"), Key: []byte{}},
		&middleware.Message{Body: []byte("nil")})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range receive(t, got, 2, 10*time.Second) {
		if want := string(m.Body) == "empty"; (m.Key != nil) != want || len(m.Key) != 0 || len(m.Headers) != 0 {
			t.Errorf("%s key: received key %#v, headers %v", m.Body, m.Key, m.Headers)
		}
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Subscribe = %v", err)
	}
}

// TestDeliveryCountIntegerTypes: the counts are read whatever integer
// type the table decoded them as (amqp091 decodes each AMQP integer field
// type to its own Go type, and other clients and plugins pick different
// ones), in x-delivery-count as in x-death.
func TestDeliveryCountIntegerTypes(t *testing.T) {
	for _, n := range []any{int(2), int8(2), int16(2), int32(2), int64(2), uint8(2), uint16(2), uint32(2)} {
		quorum := amqp.Delivery{Headers: amqp.Table{"x-delivery-count": n}}
		if got := deliveryCount(&quorum); got != 3 {
			t.Errorf("x-delivery-count %T 2: deliveryCount = %d, want 3", n, got)
		}
		dead := amqp.Delivery{Headers: amqp.Table{"x-death": []any{amqp.Table{"count": n, "reason": "rejected"}}}}
		if got := deliveryCount(&dead); got != 3 {
			t.Errorf("x-death count %T 2: deliveryCount = %d, want 3", n, got)
		}
	}
}
