package middleware

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// Message is a transport-neutral message. Handlers and middleware see only
// this; As reaches the broker's own type when needed.
type Message struct {
	// ID is the broker's message ID (SQS MessageId, AMQP message-id,
	// Kafka "topic/partition/offset"); transports set it on receive and, when
	// the broker assigns one, after a publish.
	ID string
	// Key orders and partitions messages where the broker supports it
	// (Kafka record key, SQS MessageGroupId); see README for each broker.
	Key []byte
	// Body is the payload. It is never recorded in telemetry.
	Body []byte
	// Headers are the message's application headers; the trace context
	// travels in them (traceparent, tracestate, baggage). On a consumed
	// message that carries no headers it is nil (reading is fine; make a
	// map before writing), which saves an allocation per message.
	Headers map[string]string
	// Time is when the producer or broker stamped the message; zero if unknown.
	Time time.Time
	// DeliveryCount is how many times the broker has delivered this message,
	// 1 on the first delivery, 0 when the broker does not say.
	DeliveryCount int
	// Destination is the queue or topic the message was received from or
	// published to.
	Destination string

	native Native
	attrs  []attribute.KeyValue
	// state is what the middleware keeps on the message between calls,
	// allocated when there is something to keep: a message a no-op
	// provider passes through, without trace headers, has none, and every
	// Message is the smaller for it (a transport allocates one per
	// delivery, an application one per publish).
	state *messageState
}

// messageState is what the middleware keeps on a Message.
type messageState struct {
	// Set by the tracing middleware when it first extracts the message's
	// headers, so a receive span and a process span extract only once.
	extracted bool
	creation  trace.SpanContext
	baggage   baggage.Baggage
	dropped   []propagation.Dropped
	// attempts is set by Retry.
	attempts int
	// process is the process span, the parent of a settle span that covers
	// this message alone.
	process trace.Span
}

// NewMessage returns a message with body and an empty header map.
func NewMessage(body []byte) *Message {
	return &Message{Body: body, Headers: map[string]string{}}
}

// As sets target to the broker's native message and reports whether it
// could: *types.Message (SQS), *amqp.Delivery (RabbitMQ), *kgo.Record (Kafka).
// target must be a pointer to one of those pointer-or-value types, as each
// transport documents.
func (m *Message) As(target any) bool {
	if m == nil || m.native == nil {
		return false
	}
	return m.native.As(target)
}

// Native is a broker's message as a transport exposes it through
// Message.As: As sets target to it, as Message.As documents.
type Native interface {
	As(target any) bool
}

// SetNative is for transports: n implements As for this message. A pointer
// type (a named *kgo.Record, say) costs no allocation, where a closure over
// the native message passed to SetAs costs one per message.
func (m *Message) SetNative(n Native) { m.native = n }

// SetAs is for transports: as implements As for this message. SetNative
// does the same without allocating.
func (m *Message) SetAs(as func(target any) bool) {
	if as == nil {
		m.native = nil
		return
	}
	m.native = asFunc(as)
}

type asFunc func(target any) bool

func (f asFunc) As(target any) bool { return f(target) }

// Attributes returns the broker-specific semantic-convention attributes a
// transport attached to this message (partition, offset, delivery tag, ...):
// those given to SetAttributes, or else those its Native builds when it is
// an AttributeSource. The returned slice must not be modified.
func (m *Message) Attributes() []attribute.KeyValue {
	if m.attrs == nil {
		if src, ok := m.native.(AttributeSource); ok {
			return src.MessageAttributes()
		}
	}
	return m.attrs
}

// SetAttributes is for transports: attrs describe this message on its broker
// and are recorded on the spans that cover it. Build them with the
// propagation package's semconv builders.
func (m *Message) SetAttributes(attrs ...attribute.KeyValue) { m.attrs = attrs }

// AttributeSource is a Native that builds its message's attributes when a
// span first needs them, rather than when the message is received: the
// middleware asks only for spans it starts (a span the sampler then drops
// included: the partition is a start attribute), so with a no-op provider,
// or for a trace sampled out upstream under WithParentBasedSampling, they
// are never asked for. MessageAttributes
// must return the same attributes every time, and be safe to call from
// the handler's goroutine while other messages' handlers run.
type AttributeSource interface {
	Native
	MessageAttributes() []attribute.KeyValue
}

// CreationContext is the producer's span context extracted from the message
// by the tracing middleware, or on a message published through it the
// context injected into the message; invalid before that, when there was
// none, and under a no-op TracerProvider, whose middleware keeps nothing on
// messages (the handler's ctx carries the producer's span context there:
// trace.SpanContextFromContext).
func (m *Message) CreationContext() trace.SpanContext {
	if m.state == nil {
		return trace.SpanContext{}
	}
	return m.state.creation
}

// kept returns m's state, allocating it if m has none.
func (m *Message) kept() *messageState {
	if m.state == nil {
		m.state = new(messageState)
	}
	return m.state
}

// processSpan is the process span recorded for m, nil when none was.
func (m *Message) processSpan() trace.Span {
	if m.state == nil {
		return nil
	}
	return m.state.process
}

// stateBlock is how many messages' states keepAll allocates together.
const stateBlock = 32

// keepAll gives a state to each of msgs that has none and for which need
// is true, allocating them in arrays of up to stateBlock: a batch costs an
// allocation per block rather than per message, and a handler that keeps a
// message keeps its block's states, not the batch's.
func keepAll(msgs []*Message, need func(*Message) bool) {
	var block []messageState
	for i, m := range msgs {
		if m == nil || m.state != nil || !need(m) {
			continue
		}
		if len(block) == 0 {
			block = make([]messageState, min(stateBlock, len(msgs)-i))
		}
		m.state, block = &block[0], block[1:]
	}
}
