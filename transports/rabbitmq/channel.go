package rabbitmq

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Channel is an *amqp.Channel that traces what goes through it, for code
// that uses amqp091-go directly instead of Publisher and Subscriber. Every
// method it does not redefine is the channel's own.
type Channel struct {
	*amqp.Channel
	tracing *middleware.Tracing
	metrics *middleware.Metrics
	queues  sync.Map // consumer tag -> queue, so process spans name the queue
}

// WrapChannel returns ch with tracing and metrics configured by opts
// (middleware.NewTelemetry(opts...)).
//
// The metrics are those of a Publisher and Subscriber wrapped in the
// middleware: each publish is a send (messaging.client.operation.duration
// and sent.messages), each delivery given to StartProcess a consumed
// message (a push delivery has no receive duration), its process span,
// ended through Tracing.End (or middleware.End), a
// messaging.process.duration, with the queue time from the delivery's
// timestamp, and Ack and Nack settle durations. For spans alone, pass
// middleware.WithMeterProvider(noop.NewMeterProvider()).
//
// The Channel's spans carry no server.address or server.port, unlike those
// of Publisher and Subscriber, which hold the connection: an *amqp.Channel
// does not expose the connection it was opened on.
func WrapChannel(ch *amqp.Channel, opts ...middleware.Option) *Channel {
	t := middleware.NewTelemetry(opts...)
	return &Channel{Channel: ch, tracing: t.Tracing, metrics: t.Metrics}
}

// PublishWithContext publishes msg inside a send span and injects the
// creation context into a copy of msg.Headers, keeping a creation context
// the caller already put there.
func (c *Channel) PublishWithContext(ctx context.Context, exchange, key string, mandatory, immediate bool, msg amqp.Publishing) error {
	ctx, span, d := c.startPublish(ctx, exchange, key, &msg)
	start := time.Now()
	err := c.Channel.PublishWithContext(ctx, exchange, key, mandatory, immediate, msg)
	c.endPublish(ctx, span, d, start, &msg, err)
	return err
}

// PublishWithDeferredConfirmWithContext is PublishWithContext for a channel
// in confirm mode. The send span ends when the message is written, not when
// it is confirmed.
func (c *Channel) PublishWithDeferredConfirmWithContext(ctx context.Context, exchange, key string, mandatory, immediate bool, msg amqp.Publishing) (*amqp.DeferredConfirmation, error) {
	ctx, span, d := c.startPublish(ctx, exchange, key, &msg)
	start := time.Now()
	dc, err := c.Channel.PublishWithDeferredConfirmWithContext(ctx, exchange, key, mandatory, immediate, msg)
	c.endPublish(ctx, span, d, start, &msg, err)
	return dc, err
}

// endPublish ends the send span of msg to d with err, recording msg's
// MessageId, as the Publisher records a message's ID, and CorrelationId,
// and measures the send that began at start.
func (c *Channel) endPublish(ctx context.Context, span trace.Span, d middleware.Destination, start time.Time, msg *amqp.Publishing, err error) {
	err = named(err) // for the span and metric; the caller gets amqp091's error
	c.metrics.Sent(ctx, d, start, 1, err)
	if (msg.MessageId != "" || msg.CorrelationId != "") && span.IsRecording() {
		c.tracing.RecordAttributes(span, appendMessageIDs(make([]attribute.KeyValue, 0, 2), msg.MessageId, msg.CorrelationId)...)
	}
	c.tracing.End(span, err)
}

func (c *Channel) startPublish(ctx context.Context, exchange, key string, msg *amqp.Publishing) (context.Context, trace.Span, middleware.Destination) {
	d := middleware.Destination{
		System:     propagation.SystemRabbitMQ,
		Name:       propagation.RabbitMQDestination(exchange, key, ""),
		Attributes: appendRoutingKey(nil, key),
	}
	// The caller's table may be shared between publishes: never write to it.
	msg.Headers = maps.Clone(msg.Headers)
	ctx, span := c.tracing.StartSendOne(ctx, d, NewCarrier(&msg.Headers))
	return ctx, span, d
}

var consumerTags atomic.Uint64

// Consume is the channel's Consume; it remembers which queue consumer tag
// reads, so StartProcess, Ack and Nack name the queue, until Cancel is
// called with that tag. An empty consumer tag is replaced by a unique one.
func (c *Channel) Consume(queue, consumer string, autoAck, exclusive, noLocal, noWait bool, args amqp.Table) (<-chan amqp.Delivery, error) {
	if consumer == "" {
		consumer = "ctag-otelmq-" + strconv.FormatUint(consumerTags.Add(1), 10)
	}
	prev, had := c.queues.Swap(consumer, queue)
	ds, err := c.Channel.Consume(queue, consumer, autoAck, exclusive, noLocal, noWait, args)
	if err != nil {
		// No new consumer to name: forget the tag, or give it back to
		// the consumer that had it (a tag reused by mistake).
		if had {
			c.queues.Store(consumer, prev)
		} else {
			c.queues.Delete(consumer)
		}
	}
	return ds, err
}

// Cancel is the channel's Cancel; it also forgets the queue that Consume
// remembered for consumer, so that the consumer tags of a long-lived
// channel do not pile up. Deliveries of consumer still to process after
// Cancel are named "{exchange}:{routing key}", as those of a consumer
// started without c.
func (c *Channel) Cancel(consumer string, noWait bool) error {
	err := c.Channel.Cancel(consumer, noWait)
	c.queues.Delete(consumer)
	return err
}

// Tracing returns the Tracing the channel records through.
func (c *Channel) Tracing() *middleware.Tracing { return c.tracing }

// Metrics returns the Metrics the channel records through.
func (c *Channel) Metrics() *middleware.Metrics { return c.metrics }

// StartProcess starts the process span of d, parented on its creation
// context per middleware.WithProcessParent, and counts d as a consumed
// message. End the span it returns with c.Tracing().End, which puts its
// error text through the redactor and records the process duration with
// its error.type (the span in the returned ctx records no duration: see
// middleware.Metrics.TimeProcess).
func (c *Channel) StartProcess(ctx context.Context, d amqp.Delivery) (context.Context, trace.Span) {
	attrs := appendDeliveryAttributes(make([]attribute.KeyValue, 0, maxDeliveryAttributes+1), &d)
	attrs = append(attrs, middleware.DeliveryCountKey.Int(deliveryCount(&d)))
	dest := c.destination(&d)
	c.metrics.Consumed(ctx, dest, time.Time{}, 1)
	ctx, span := c.tracing.StartProcess(ctx, dest, NewCarrier(&d.Headers), attrs...)
	return ctx, c.metrics.TimeProcess(ctx, span, dest, timestamp(&d))
}

// Ack acknowledges d inside an "ack" settle span.
func (c *Channel) Ack(ctx context.Context, d amqp.Delivery, multiple bool) error {
	return c.settle(ctx, &d, propagation.OpAck, func() error { return d.Ack(multiple) })
}

// Nack rejects d inside a "nack" settle span.
func (c *Channel) Nack(ctx context.Context, d amqp.Delivery, multiple, requeue bool) error {
	return c.settle(ctx, &d, propagation.OpNack, func() error { return d.Nack(multiple, requeue) })
}

func (c *Channel) settle(ctx context.Context, d *amqp.Delivery, op string, settle func() error) error {
	creation := trace.SpanContextFromContext(c.tracing.Extract(context.Background(), NewCarrier(&d.Headers)))
	dest := c.destination(d)
	_, span := c.tracing.StartSettle(ctx, dest, op, []trace.SpanContext{creation}, deliveryAttributes(d)...)
	start := time.Now()
	err := settle()
	recorded := named(err) // the caller gets amqp091's error
	c.metrics.Settled(ctx, dest, op, start, nil, recorded)
	c.tracing.End(span, recorded)
	return err
}

// destination names d by the queue its consumer reads when Consume was
// called through c (a push delivery, as the Subscriber's are: no span in the
// caller's ctx is taken for a receive span), else by
// "{exchange}:{routing key}".
func (c *Channel) destination(d *amqp.Delivery) middleware.Destination {
	if q, ok := c.queues.Load(d.ConsumerTag); ok {
		return middleware.Destination{System: propagation.SystemRabbitMQ, Name: q.(string), Push: true}
	}
	return middleware.Destination{System: propagation.SystemRabbitMQ, Name: propagation.RabbitMQDestination(d.Exchange, d.RoutingKey, "")}
}

// maxDeliveryAttributes is how many attributes appendDeliveryAttributes
// adds at most to a delivery without a correlation ID: one with one (rare
// outside request-reply) grows the slice, rather than every delivery
// making room for it.
const maxDeliveryAttributes = 3

// deliveryAttributes are the attributes that describe d: its routing key
// (when not empty), delivery tag and, when it has them, message ID and
// correlation ID (messaging.message.conversation_id).
func deliveryAttributes(d *amqp.Delivery) []attribute.KeyValue {
	return appendDeliveryAttributes(make([]attribute.KeyValue, 0, maxDeliveryAttributes), d)
}

// appendDeliveryAttributes appends deliveryAttributes(d) to attrs.
func appendDeliveryAttributes(attrs []attribute.KeyValue, d *amqp.Delivery) []attribute.KeyValue {
	attrs = append(appendRoutingKey(attrs, d.RoutingKey), propagation.RabbitMQDeliveryTag(d.DeliveryTag))
	return appendMessageIDs(attrs, d.MessageId, d.CorrelationId)
}

// appendMessageIDs appends the message-id property, as messaging.message.id,
// and the correlation-id property, as messaging.message.conversation_id
// (semconv's RabbitMQ mapping), leaving out the empty ones.
func appendMessageIDs(attrs []attribute.KeyValue, messageID, correlationID string) []attribute.KeyValue {
	if messageID != "" {
		attrs = append(attrs, propagation.MessageID(messageID))
	}
	if correlationID != "" {
		attrs = append(attrs, propagation.ConversationID(correlationID))
	}
	return attrs
}

// appendRoutingKey appends messaging.rabbitmq.destination.routing_key to
// attrs, unless key is empty: semconv requires it only when it is not (a
// fanout or headers exchange routes without one).
func appendRoutingKey(attrs []attribute.KeyValue, key string) []attribute.KeyValue {
	if key == "" {
		return attrs
	}
	return append(attrs, propagation.RabbitMQRouting(key))
}
