package rabbitmq

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// KeyHeader is the AMQP header that carries Message.Key: AMQP has no message
// key, so the key travels as a byte-array header and is not part of
// Message.Headers on receive.
const KeyHeader = "otelmq-key"

// publishing converts msg to an AMQP publishing stamped at now when msg.Time
// is zero.
func publishing(msg *middleware.Message, now time.Time) amqp.Publishing {
	p := amqp.Publishing{
		MessageId: msg.ID,
		Timestamp: msg.Time,
		Body:      msg.Body,
	}
	if p.Timestamp.IsZero() {
		p.Timestamp = now
	}
	if len(msg.Headers) > 0 || msg.Key != nil {
		p.Headers = make(amqp.Table, len(msg.Headers)+1)
	}
	c := NewCarrier(&p.Headers)
	for k, v := range msg.Headers {
		c.Set(k, v)
	}
	if msg.Key != nil {
		p.Headers[KeyHeader] = msg.Key
	}
	return p
}

// message converts a delivery from queue to a Message; As reaches d.
func message(d *amqp.Delivery, queue string) *middleware.Message {
	msg := &middleware.Message{
		ID:            d.MessageId,
		Body:          d.Body,
		Headers:       make(map[string]string, len(d.Headers)),
		Time:          d.Timestamp,
		DeliveryCount: deliveryCount(d),
		Destination:   queue,
	}
	for k, v := range d.Headers {
		s, ok := textValue(v)
		switch {
		case !ok:
		case k == KeyHeader:
			msg.Key = []byte(s)
		default:
			msg.Headers[k] = s
		}
	}
	msg.SetAs(func(target any) bool {
		switch t := target.(type) {
		case **amqp.Delivery:
			*t = d
		case *amqp.Delivery:
			*t = *d
		default:
			return false
		}
		return true
	})
	msg.SetAttributes(deliveryAttributes(d)...)
	return msg
}

// deliveryCount is a lower bound of how many times d has been delivered:
// quorum queues count redeliveries in x-delivery-count; otherwise every
// dead-lettering recorded in x-death was a delivery, and Redelivered adds one
// more. A classic queue does not count requeues, so the true number can be
// higher.
func deliveryCount(d *amqp.Delivery) int {
	if n, ok := intValue(d.Headers["x-delivery-count"]); ok && n >= 0 && n < 1<<31 {
		return int(n) + 1
	}
	n := 1
	if deaths, ok := d.Headers["x-death"].([]any); ok {
		for _, death := range deaths {
			if t, ok := death.(amqp.Table); ok {
				if c, ok := intValue(t["count"]); ok && c > 0 && c < 1<<31 {
					// Saturate: a forged x-death must not overflow int
					// (32-bit platforms) into a count below 1.
					n = int(min(int64(n)+c, 1<<30))
				}
			}
		}
	}
	if d.Redelivered {
		n++
	}
	return n
}

func intValue(v any) (int64, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	}
	return 0, false
}

// serverAttributes are server.address and server.port when known.
func (c config) serverAttributes() []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if c.host != "" {
		attrs = append(attrs, propagation.ServerAddress(c.host))
	}
	if c.port > 0 {
		attrs = append(attrs, propagation.ServerPort(c.port))
	}
	return attrs
}
