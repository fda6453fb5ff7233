package middleware

import (
	"runtime"
	"sync/atomic"
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
	// 1 on the first delivery, 0 when the broker does not say. Where the
	// broker stops counting, the transport calls SetDeliveryCountSaturated.
	DeliveryCount int
	// Destination is the queue or topic the message was received from or
	// published to.
	Destination string

	native Native
	attrs  []attribute.KeyValue

	// What the tracing middleware and Retry keep on a message between
	// calls. What every traced message has is inline, in 64 bytes; what few
	// have (trace state, baggage, what the limits cut) is behind a pointer,
	// allocated when there is some. A transport allocates a Message per
	// delivery and an application one per publish: a Message with the
	// whole state inline was 288 bytes, this one is 224 (a size class),
	// and a traced message costs no allocation beyond it.
	creation creation
	// countSaturated: see SetDeliveryCountSaturated. A bool here fits in
	// the padding after creation.
	countSaturated bool
	// processLock guards process, which a transport may read while the
	// handler's goroutine sets it (RecordExtensionFailed): a spin lock,
	// held for the copy of an interface value, in the padding before
	// attempts, so a Message stays 224 bytes.
	processLock atomic.Uint32
	attempts    int // set by Retry
	// process is the process span, the parent of a settle span that covers
	// this message alone and where RecordExtensionFailed records. Read and
	// written through processSpan and setProcess.
	process trace.Span
	rare    *rareState
}

// creation is the message's creation context without its trace state
// (kept in rareState): 27 bytes where a trace.SpanContext is 64.
type creation struct {
	traceID trace.TraceID
	spanID  trace.SpanID
	flags   trace.TraceFlags
	remote  bool
	// extracted is set when the tracing middleware has read the message's
	// headers, so a receive span and a process span extract only once.
	extracted bool
}

// rareState is what the middleware keeps on a message that carries more
// than a traceparent.
type rareState struct {
	traceState trace.TraceState
	baggage    baggage.Baggage
	dropped    []propagation.Dropped
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

// SetDeliveryCountSaturated is for transports: the broker will report no
// higher DeliveryCount for this message however often it redelivers it (a
// RabbitMQ classic queue that requeues flags a redelivery but does not count
// them). Retry with WithBrokerRedelivery and DeadLetter with
// WithMaxDeliveries wait for the count to reach a number; on a saturated
// count they stop waiting for the broker, so a failing message cannot be
// redelivered forever.
func (m *Message) SetDeliveryCountSaturated() { m.countSaturated = true }

// DeliveryCountSaturated reports whether DeliveryCount will not grow on
// later redeliveries: the transport said so (SetDeliveryCountSaturated), or
// the broker gives no count at all (0).
func (m *Message) DeliveryCountSaturated() bool { return m.countSaturated || m.DeliveryCount == 0 }

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
	c := &m.creation
	if c.spanID == (trace.SpanID{}) {
		return trace.SpanContext{}
	}
	cfg := trace.SpanContextConfig{TraceID: c.traceID, SpanID: c.spanID, TraceFlags: c.flags, Remote: c.remote}
	if m.rare != nil {
		cfg.TraceState = m.rare.traceState
	}
	return trace.NewSpanContext(cfg)
}

// setCreation sets m's creation context to sc.
func (m *Message) setCreation(sc trace.SpanContext) {
	m.creation = creation{
		traceID: sc.TraceID(), spanID: sc.SpanID(), flags: sc.TraceFlags(),
		remote: sc.IsRemote(), extracted: m.creation.extracted,
	}
	if ts := sc.TraceState(); ts.Len() > 0 || m.rare != nil {
		m.rareState().traceState = ts
	}
}

// rareState returns m's rareState, allocating it if m has none.
func (m *Message) rareState() *rareState {
	if m.rare == nil {
		m.rare = new(rareState)
	}
	return m.rare
}

// setProcess sets m's process span.
func (m *Message) setProcess(span trace.Span) {
	m.lockProcess()
	m.process = span
	m.processLock.Store(0)
}

// processSpan returns m's process span, nil when none was started.
func (m *Message) processSpan() trace.Span {
	m.lockProcess()
	p := m.process
	m.processLock.Store(0)
	return p
}

// lockProcess takes processLock. It is held for a copy only, and only a
// transport's extension pass contends with the handler's goroutine for it.
func (m *Message) lockProcess() {
	for !m.processLock.CompareAndSwap(0, 1) {
		runtime.Gosched()
	}
}
