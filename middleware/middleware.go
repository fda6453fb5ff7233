package middleware

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
)

// Publisher sends messages to a destination (queue, topic, routing key).
// It returns an error naming every message that was not accepted.
type Publisher interface {
	Publish(ctx context.Context, destination string, msgs ...*Message) error
}

// Subscriber delivers messages from source to h until ctx ends (then it
// drains in-flight handlers and returns nil) or a fatal error occurs.
//
// Handler contract: a nil error settles the message (delete, ack, commit);
// an error leaves it unsettled, so the broker redelivers it by its own rules;
// a panic is recovered and treated as an error.
type Subscriber interface {
	Subscribe(ctx context.Context, source string, h Handler) error
}

// Handler processes one message.
type Handler interface {
	Handle(ctx context.Context, msg *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg *Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, msg *Message) error { return f(ctx, msg) }

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, destination string, msgs ...*Message) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, destination string, msgs ...*Message) error {
	return f(ctx, destination, msgs...)
}

// SubscriberFunc adapts a function to Subscriber.
type SubscriberFunc func(ctx context.Context, source string, h Handler) error

// Subscribe calls f.
func (f SubscriberFunc) Subscribe(ctx context.Context, source string, h Handler) error {
	return f(ctx, source, h)
}

// HandlerMiddleware wraps a Handler.
type HandlerMiddleware func(Handler) Handler

// PublisherMiddleware wraps a Publisher.
type PublisherMiddleware func(Publisher) Publisher

// SubscriberMiddleware wraps a Subscriber.
type SubscriberMiddleware func(Subscriber) Subscriber

// ChainHandler wraps h in mws; the first middleware is the outermost.
func ChainHandler(h Handler, mws ...HandlerMiddleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Destination describes where messages go or come from, in
// semantic-convention terms, so middleware can name spans and fill attributes
// without importing a transport.
type Destination struct {
	// System is messaging.system (propagation.SystemKafka, ...).
	System string
	// Name is messaging.destination.name, formatted per system (RabbitMQ
	// sends: "{exchange}:{routing key}"; RabbitMQ consumers: the queue).
	Name string
	// Attributes are per-destination attributes: server.address/port,
	// consumer group, queue URL, client ID.
	Attributes []attribute.KeyValue
	// Push is set by transports whose broker pushes messages to the consumer
	// (RabbitMQ basic.consume, the in-memory broker) rather than answering
	// polls (SQS ReceiveMessage, Kafka fetches). The semantic conventions'
	// receive span is for pulls, so a push delivery gets none: the process
	// span is the consumer's first span. Metrics still count the consumed
	// messages, but record no receive duration. Push describes
	// the consuming side; a publisher ignores it.
	Push bool
	// Template is messaging.destination.template: a low-cardinality name
	// for the destinations Name stands among ("orders.{region}" for
	// "orders.eu"). When set, spans are named after it (and record it
	// beside Name), and metrics record it instead of Name. Transports leave
	// it empty; WithDestinationTemplate sets it.
	Template string
	// MessageAttributes, when not nil, describes one message published to
	// this destination: before the publish (sent false) what the message
	// itself says (a Kafka key, a tombstone), after a successful one (sent
	// true) also what the broker told (a Kafka partition and offset). The
	// tracing middleware records them on the message's create span, and on
	// the send span of a Publish of that message alone. The slice returned
	// is the caller's. Transports' publishers set it; subscribers describe
	// consumed messages with Message.Attributes instead.
	MessageAttributes func(msg *Message, sent bool) []attribute.KeyValue
}

// Describer is implemented by transports' publishers and subscribers.
// Middleware in this package forwards it, so it survives wrapping.
type Describer interface {
	Describe(destination string) Destination
}

// Describe asks v (a Publisher or Subscriber) to describe destination; when v
// is not a Describer the result has System "unknown" and Name destination.
func Describe(v any, destination string) Destination {
	if d, ok := v.(Describer); ok {
		return d.Describe(destination)
	}
	return Destination{System: "unknown", Name: destination}
}
