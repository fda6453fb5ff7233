package rabbitmq

import (
	"bytes"
	"fmt"
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

// TimestampHeader carries Message.Time in milliseconds since the Unix
// epoch: the timestamp property holds whole seconds, which made the queue
// time of a message half a second too long on average. It is RabbitMQ's own
// name (its set_header_timestamp message interceptor writes it), so a
// broker that stamps messages is read the same way. A Publisher writes it
// with WithTimestampHeader, and then only on a message that has a header
// table anyway (trace context, application headers, a key): a table on
// every message costs the broker more than the precision is worth.
const TimestampHeader = "timestamp_in_ms"

// publishing converts msg to an AMQP publishing stamped at now when msg.Time
// is zero, with TimestampHeader in its header table, if it has one, when
// millis is set. Its header table is headers, cleared and refilled, when headers
// is not nil: amqp091 has written the table out by the time a publish
// returns, so a Publisher reuses one table for all its messages.
func publishing(msg *middleware.Message, now time.Time, headers amqp.Table, millis bool) amqp.Publishing {
	p := amqp.Publishing{
		MessageId: msg.ID,
		Timestamp: msg.Time,
		Body:      msg.Body,
	}
	if p.Timestamp.IsZero() {
		p.Timestamp = now
	}
	if len(msg.Headers) == 0 && msg.Key == nil {
		return p
	}
	if headers == nil {
		n := len(msg.Headers) + 1 // and the timestamp, if millis
		if msg.Key != nil {
			n++
		}
		headers = make(amqp.Table, n)
	} else {
		clear(headers)
	}
	// Written directly rather than through a Carrier: the table is new or
	// cleared, so there is nothing to check first.
	for k, v := range msg.Headers {
		headers[k] = v
	}
	if msg.Key != nil {
		headers[KeyHeader] = msg.Key
	}
	if millis {
		headers[TimestampHeader] = p.Timestamp.UnixMilli()
	}
	p.Headers = headers
	return p
}

// maxShortstr is the longest AMQP short string: field names in a header
// table, and the message-id property.
const maxShortstr = 255

// checkPublishing returns why msg cannot be published as publishing would
// build it, on a connection whose frames hold frameSize bytes: a header name
// or message ID longer than a short string, or headers whose table does not
// fit in the one frame a content header must fit in. amqp091 and the broker
// answer either by closing the whole connection, the other channels and
// every later publish with it, so the message fails alone instead.
func checkPublishing(msg *middleware.Message, frameSize int) error {
	if len(msg.ID) > maxShortstr {
		return fmt.Errorf("message ID is %d bytes: AMQP's message-id holds at most %d", len(msg.ID), maxShortstr)
	}
	size := 4 // the table's length
	for k, v := range msg.Headers {
		if len(k) > maxShortstr {
			return fmt.Errorf("header name %.40q... is %d bytes: AMQP field names hold at most %d", k, len(k), maxShortstr)
		}
		size += 1 + len(k) + 1 + 4 + len(v) // name, type, long string
	}
	if msg.Key != nil {
		size += 1 + len(KeyHeader) + 1 + 4 + len(msg.Key)
	}
	size += 1 + len(TimestampHeader) + 1 + 8 // a long-long int
	// What else the content header holds (its fixed fields and the other
	// properties: message ID, timestamp, delivery mode) fits in a KiB.
	if limit := frameSize - 1024; size > limit {
		return fmt.Errorf("headers take %d bytes as an AMQP table, more than the %d a frame of this connection (%d bytes) leaves them", size, limit, frameSize)
	}
	return nil
}

// frameSizeOf is the frame size conn negotiated when it says, else
// amqp091's default.
func frameSizeOf(conn Dialer) int {
	n := 0
	switch c := conn.(type) {
	case *amqp.Connection:
		n = c.Config.FrameSize
	case *Connection:
		n = c.frameSize()
	}
	if n <= 0 {
		n = defaultFrameSize
	}
	return n
}

// defaultFrameSize is amqp091's (and RabbitMQ's) default frame_max.
const defaultFrameSize = 131072

// inbound is what the Subscriber builds for one delivery, in a single
// allocation: the Message, the copy of the delivery its As reaches, the
// one-message slice the observers get and the message's attributes.
type inbound struct {
	msg   middleware.Message
	d     amqp.Delivery
	msgs  [1]*middleware.Message
	attrs [maxDeliveryAttributes]attribute.KeyValue
}

// newInbound converts a copy of d, delivered from queue, to a Message.
func newInbound(d *amqp.Delivery, queue string) *inbound {
	in := &inbound{d: *d}
	d = &in.d
	msg := &in.msg
	in.msgs[0] = msg
	msg.ID = d.MessageId
	msg.Body = d.Body
	if len(d.Headers) > 0 {
		msg.Headers = make(map[string]string, len(d.Headers))
	}
	msg.Time = timestamp(d)
	msg.DeliveryCount = deliveryCount(d)
	msg.Destination = queue
	for k, v := range d.Headers {
		if k == KeyHeader {
			switch v := v.(type) {
			case []byte:
				msg.Key = bytes.Clone(v)
				if msg.Key == nil {
					msg.Key = []byte{}
				}
			case string:
				msg.Key = []byte(v)
			}
			continue
		}
		if s, ok := textValue(v); ok {
			msg.Headers[k] = s
		}
	}
	msg.SetNative(in)
	attrs := appendDeliveryAttributes(in.attrs[:0], d)
	// Clipped, so that an append to Attributes() copies instead of
	// writing past them.
	msg.SetAttributes(attrs[:len(attrs):len(attrs)]...)
	return in
}

// as implements Message.As for in: **amqp.Delivery gets in's copy of the
// delivery, *amqp.Delivery a copy of that.
// As implements middleware.Native: it reaches the copy of the delivery.
func (in *inbound) As(target any) bool {
	switch t := target.(type) {
	case **amqp.Delivery:
		*t = &in.d
	case *amqp.Delivery:
		*t = in.d
	default:
		return false
	}
	return true
}

// message converts a copy of d, delivered from queue, to a Message; As
// reaches the copy.
func message(d *amqp.Delivery, queue string) *middleware.Message {
	return &newInbound(d, queue).msg
}

// deliveryCount is a lower bound of how many times d has been delivered:
// quorum queues count redeliveries in x-delivery-count; otherwise every
// dead-lettering recorded in x-death for a rejection (or a quorum queue's
// delivery limit) followed a delivery, and Redelivered adds one more. The
// x-death entries of messages that expired or overflowed a queue are left
// out: no consumer saw them there, and a delayed retry (rejected into a
// queue whose TTL dead-letters back) records one of those per attempt too.
// A classic queue does not count requeues, so the true number can be
// higher.
func deliveryCount(d *amqp.Delivery) int {
	if n, ok := intValue(d.Headers["x-delivery-count"]); ok && n >= 0 && n < 1<<31 {
		return int(n) + 1
	}
	n := 1
	if deaths, ok := d.Headers["x-death"].([]any); ok {
		for _, death := range deaths {
			if t, ok := death.(amqp.Table); ok && deliveredBefore(t["reason"]) {
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

// deliveredBefore reports whether an x-death reason means the message was
// delivered before it was dead-lettered: a reject or nack without requeue,
// or a quorum queue's delivery-limit. "expired" and "maxlen" say nothing of
// a delivery, nor does a reason RabbitMQ may add later.
func deliveredBefore(reason any) bool {
	switch reason {
	case "rejected", "delivery_limit":
		return true
	}
	return false
}

// timestamp is when d was stamped: TimestampHeader's milliseconds when it
// holds a plausible time (after 2000, before 2200), else the timestamp
// property's whole seconds.
func timestamp(d *amqp.Delivery) time.Time {
	if ms, ok := intValue(d.Headers[TimestampHeader]); ok && ms > minStamp && ms < maxStamp {
		return time.UnixMilli(ms)
	}
	return d.Timestamp
}

// The bounds of a plausible TimestampHeader, in Unix milliseconds.
const (
	minStamp = 946684800000  // 2000-01-01
	maxStamp = 7258118400000 // 2200-01-01
)

// countSaturated reports whether a requeue of d would come back with the
// same deliveryCount: only quorum queues count requeues (x-delivery-count);
// elsewhere the count grows from 1 to 2 by the redelivered flag, then stays.
func countSaturated(d *amqp.Delivery) bool {
	_, counted := d.Headers["x-delivery-count"]
	return d.Redelivered && !counted
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
