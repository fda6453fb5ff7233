package rabbitmq

import (
	"bytes"
	"math"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
)

func TestPublishingAndMessage(t *testing.T) {
	now := time.Unix(1700000000, 0)
	msg := &middleware.Message{
		ID:      "id-1",
		Key:     []byte("key"),
		Body:    []byte("body"),
		Headers: map[string]string{"traceparent": "tp", "a": "b"},
	}
	p := publishing(msg, now, nil, false)
	if !p.Timestamp.Equal(now) || p.MessageId != "id-1" || string(p.Body) != "body" {
		t.Fatalf("publishing = %+v", p)
	}
	if err := p.Headers.Validate(); err != nil {
		t.Fatalf("headers invalid: %v", err)
	}
	if !bytes.Equal(p.Headers[KeyHeader].([]byte), []byte("key")) {
		t.Fatalf("key header = %#v", p.Headers[KeyHeader])
	}
	if _, ok := p.Headers[TimestampHeader]; ok {
		t.Fatalf("%s written without WithTimestampHeader: %v", TimestampHeader, p.Headers)
	}
	if p := publishing(msg, now, nil, true); p.Headers[TimestampHeader] != now.UnixMilli() {
		t.Fatalf("with WithTimestampHeader: %v", p.Headers)
	}
	if p := publishing(&middleware.Message{}, now, nil, false); p.Headers != nil {
		t.Fatalf("empty message got headers %v", p.Headers)
	}
	stamped := time.Unix(5, 0)
	if p := publishing(&middleware.Message{Time: stamped}, now, nil, false); !p.Timestamp.Equal(stamped) {
		t.Fatalf("Time not kept: %v", p.Timestamp)
	}

	d := &amqp.Delivery{
		MessageId:   p.MessageId,
		Body:        p.Body,
		Timestamp:   p.Timestamp,
		Headers:     p.Headers,
		DeliveryTag: 9,
		RoutingKey:  "rk",
	}
	d.Headers["num"] = int32(1)
	got := message(d, "q")
	if got.ID != "id-1" || string(got.Key) != "key" || string(got.Body) != "body" || got.Destination != "q" || got.DeliveryCount != 1 {
		t.Fatalf("message = %+v", got)
	}
	if len(got.Headers) != 2 || got.Headers["traceparent"] != "tp" || got.Headers["a"] != "b" {
		t.Fatalf("headers = %v (the key and non-text values must be left out)", got.Headers)
	}
	var dp *amqp.Delivery
	if !got.As(&dp) || dp == nil || dp.DeliveryTag != 9 || dp.RoutingKey != "rk" {
		t.Fatal("As(**amqp.Delivery) failed")
	}
	var again *amqp.Delivery
	if got.As(&again); again != dp {
		t.Fatal("As(**amqp.Delivery) returned another delivery the second time")
	}
	var dv amqp.Delivery
	if !got.As(&dv) || dv.DeliveryTag != 9 {
		t.Fatal("As(*amqp.Delivery) failed")
	}
	var other *int
	if got.As(&other) {
		t.Fatal("As(**int) succeeded")
	}
	if len(got.Attributes()) == 0 {
		t.Fatal("no attributes")
	}
}

func TestDeliveryCount(t *testing.T) {
	death := func(n any) amqp.Table { return amqp.Table{"count": n, "reason": "rejected"} }
	for _, tc := range []struct {
		name string
		d    amqp.Delivery
		want int
	}{
		{"first", amqp.Delivery{}, 1},
		{"redelivered", amqp.Delivery{Redelivered: true}, 2},
		{"quorum", amqp.Delivery{Headers: amqp.Table{"x-delivery-count": int64(2)}, Redelivered: true}, 3},
		{"quorum negative ignored", amqp.Delivery{Headers: amqp.Table{"x-delivery-count": int64(-5)}}, 1},
		{"x-death", amqp.Delivery{Headers: amqp.Table{"x-death": []any{death(int64(1))}}}, 2},
		{"x-death two queues", amqp.Delivery{Headers: amqp.Table{"x-death": []any{death(int64(2)), death(int32(1))}}, Redelivered: true}, 5},
		{"x-death junk", amqp.Delivery{Headers: amqp.Table{"x-death": []any{"x", nil, death("3"), death(int64(-1)), death(int64(math.MaxInt64))}}}, 1},
		// A delayed retry: rejected into a queue whose TTL dead-letters it
		// back; the expiries were no deliveries, nor was an overflow.
		{"x-death delayed retry", amqp.Delivery{Headers: amqp.Table{"x-death": []any{
			amqp.Table{"count": int64(2), "reason": "expired"}, death(int64(2)),
		}}}, 3},
		{"x-death maxlen and unknown", amqp.Delivery{Headers: amqp.Table{"x-death": []any{
			amqp.Table{"count": int64(1), "reason": "maxlen"}, amqp.Table{"count": int64(1)},
		}}}, 1},
		{"x-death delivery limit", amqp.Delivery{Headers: amqp.Table{"x-death": []any{amqp.Table{"count": int64(1), "reason": "delivery_limit"}}}}, 2},
		{"x-death not array", amqp.Delivery{Headers: amqp.Table{"x-death": amqp.Table{"count": int64(4)}}}, 1},
		{"x-delivery-count huge", amqp.Delivery{Headers: amqp.Table{"x-delivery-count": int64(math.MaxInt64)}}, 1},
	} {
		if got := deliveryCount(&tc.d); got != tc.want {
			t.Errorf("%s: deliveryCount = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// hostileValue turns fuzz input into one of the types an AMQP table can
// hold after decoding, including nonsense shapes for the headers the
// transport interprets.
func hostileValue(kind uint8, n int64, s string, b []byte) any {
	switch kind % 14 {
	case 0:
		return n
	case 1:
		return int32(n)
	case 2:
		return s
	case 3:
		return b
	case 4:
		return nil
	case 5:
		return []any{amqp.Table{"count": n}, amqp.Table{"count": int32(n)}, s, nil}
	case 6:
		return amqp.Table{"count": n}
	case 7:
		return []any{amqp.Table{"count": s}, []any{n}}
	case 8:
		return float64(n)
	case 9:
		return uint8(n)
	case 10:
		return time.Unix(n%(1<<40), 0)
	case 11:
		return amqp.Decimal{Scale: uint8(n), Value: int32(n)}
	case 12:
		return []any{amqp.Table{"count": n}, amqp.Table{"count": n}, amqp.Table{"count": n}}
	default:
		return uint32(n)
	}
}

func FuzzDeliveryCount(f *testing.F) {
	f.Add(uint8(0), uint8(5), int64(3), "x", []byte("y"), true)
	f.Add(uint8(1), uint8(12), int64(math.MaxInt32), "", []byte(nil), false)
	f.Add(uint8(0), uint8(0), int64(math.MinInt64), "\xff", []byte{0}, true)
	f.Fuzz(func(t *testing.T, k1, k2 uint8, n int64, s string, b []byte, redelivered bool) {
		d := amqp.Delivery{
			Redelivered: redelivered,
			Headers: amqp.Table{
				"x-delivery-count": hostileValue(k1, n, s, b),
				"x-death":          hostileValue(k2, n, s, b),
			},
		}
		if got := deliveryCount(&d); got < 1 {
			t.Fatalf("deliveryCount = %d for %v", got, d.Headers)
		}
	})
}

func FuzzMessage(f *testing.F) {
	f.Add("traceparent", uint8(3), int64(1), "v", []byte("b"), "id", []byte("body"))
	f.Add(KeyHeader, uint8(2), int64(-1), "", []byte(nil), "", []byte(nil))
	f.Add("x-death", uint8(5), int64(1<<40), "\x00", []byte{0xff}, "\xff", []byte{})
	f.Fuzz(func(t *testing.T, key string, kind uint8, n int64, s string, b []byte, id string, body []byte) {
		d := &amqp.Delivery{
			MessageId: id,
			Body:      body,
			Headers: amqp.Table{
				key:                hostileValue(kind, n, s, b),
				KeyHeader:          hostileValue(kind+1, n, s, b),
				"x-death":          hostileValue(kind+2, n, s, b),
				"x-delivery-count": hostileValue(kind+3, n, s, b),
				TimestampHeader:    hostileValue(kind+4, n, s, b),
			},
			Timestamp: time.Unix(1700000000, 0),
		}
		msg := message(d, "q")
		// Time is the header's milliseconds only when plausible, else the
		// property's seconds.
		if !msg.Time.Equal(d.Timestamp) && (msg.Time.Before(time.UnixMilli(minStamp)) || msg.Time.After(time.UnixMilli(maxStamp))) {
			t.Fatalf("Time %v from %s %#v", msg.Time, TimestampHeader, d.Headers[TimestampHeader])
		}
		if msg.DeliveryCount < 1 || msg.ID != id || !bytes.Equal(msg.Body, body) {
			t.Fatalf("message = %+v", msg)
		}
		if _, ok := msg.Headers[KeyHeader]; ok {
			t.Fatal("the key header leaked into Headers")
		}
		// Key is the key header's text, and nil only without one.
		if want, ok := textValue(d.Headers[KeyHeader]); ok != (msg.Key != nil) || string(msg.Key) != want {
			t.Fatalf("Key = %q (nil %v) from key header %#v", msg.Key, msg.Key == nil, d.Headers[KeyHeader])
		}
		for k, v := range msg.Headers {
			if want, _ := textValue(d.Headers[k]); v != want {
				t.Fatalf("Headers[%q] = %q, want %q", k, v, want)
			}
		}
		// And back: whatever came in must make a publishable table.
		p := publishing(msg, time.Now(), nil, kind%2 == 0)
		if err := p.Headers.Validate(); err != nil {
			t.Fatalf("publishing headers invalid: %v", err)
		}
	})
}

// TestTimestampHeader: TimestampHeader's milliseconds win over the timestamp
// property's seconds when plausible; anything else (another type, a time
// before 2000 or after 2200, a forged overflow) leaves the property.
func TestTimestampHeader(t *testing.T) {
	property := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		header any
		want   time.Time
	}{
		{int64(1700000000456), time.UnixMilli(1700000000456)},
		{int32(5), property},
		{"1700000000456", property},
		{int64(-1), property},
		{int64(1) << 62, property},
		{nil, property},
	} {
		d := &amqp.Delivery{Timestamp: property, Headers: amqp.Table{}}
		if tc.header != nil {
			d.Headers[TimestampHeader] = tc.header
		}
		if got := newInbound(d, "q").msg.Time; !got.Equal(tc.want) {
			t.Errorf("header %#v: Time %v, want %v", tc.header, got, tc.want)
		}
	}
}
