// Package rabbitmq is the RabbitMQ transport of otelmq, over
// github.com/rabbitmq/amqp091-go: a Publisher and a Subscriber for the
// middleware package, a Carrier over AMQP header tables, and Channel, a thin
// traced wrapper for code that uses an *amqp.Channel directly.
//
// # Mapping
//
// A middleware.Message maps onto AMQP as follows:
//
//	Body          <-> message body
//	Headers       <-> header table; string and []byte values become Headers
//	                  entries, values of other types (numbers, nested tables,
//	                  arrays, x-death) are left out but stay on the delivery
//	Key           <-> header "otelmq-key" (KeyHeader), a byte array: AMQP has no
//	                  message key
//	ID            <-> message-id property; when ID is empty the Publisher
//	                  assigns a random one and sets msg.ID to it, so a
//	                  message published again keeps its ID and consumers
//	                  can drop duplicates
//	Time          <-> timestamp property (whole seconds on the wire), and
//	                  with WithTimestampHeader TimestampHeader
//	                  (milliseconds) on a message that has a header table
//	                  anyway; read from the header when present. The
//	                  Publisher stamps the publish time when Time is zero
//	DeliveryCount <-  at least: x-delivery-count + 1 (quorum queues), else
//	                  1 + the x-death counts of rejections (not of
//	                  expiries: a delayed retry through a TTL queue
//	                  counts once per attempt) + 1 when redelivered; a
//	                  classic queue does not count requeues, so the
//	                  Subscriber marks a redelivered count saturated
//	                  (Message.DeliveryCountSaturated) when it requeues
//	Destination   <-  the queue passed to Subscribe
//
// Delivery mode: the Publisher publishes every message persistent
// (delivery mode 2, amqp.Persistent), so that a durable queue keeps it
// across a broker restart; WithTransient publishes transient messages
// (delivery mode 1), which are cheaper but lost on restart. Message has no
// field for it.
//
// Confirms: by default the Publisher publishes without publisher confirms,
// so Publish returns before the broker took the messages, and a message
// nothing is bound to, or sent to a missing exchange, is dropped unseen.
// The exception is a Publish whose context is marked with
// middleware.RequireConfirm, as Relay and DeadLetter mark theirs before
// they settle the source message: it goes through a second channel, in
// confirm mode, and returns nil only once the broker confirmed every
// message and returned none as unroutable. WithConfirms(true) does so for
// every Publish.
//
// Publish refuses before sending, marked middleware.Permanent (so
// DeadLetter dead-letters at once), what AMQP cannot carry: a nil message,
// a message ID or header name over 255 bytes, headers past the frame size.
//
// Message.As reaches the delivery: pass a **amqp.Delivery (or an
// *amqp.Delivery to get a copy).
//
// # Destinations and spans
//
// Publish's destination is the routing key on the exchange set with
// WithExchange (default: the default exchange, which routes to the queue
// of that name). Send spans are named per the semantic conventions,
// "send {exchange}:{routing key}", without the default exchange's empty
// name: "send orders" through it, "send events:order.created" through an
// exchange "events" ("amq.default" when neither is set). Subscribe's
// destination is the queue (one low-cardinality name for all its
// deliveries, where semconv would add each delivery's exchange and
// routing key), and
// process and settle spans are named by the queue alone ("process orders",
// "ack orders"); the routing key, delivery tag and message ID of each
// delivery are attributes. The broker pushes deliveries, so there is no
// receive span: the process span is the consumer's first. Handler success
// is an "ack", an error or panic a "nack" (sent as basic.reject, which
// RabbitMQ 4.3 and later count in x-delivery-count, and a basic.nack not).
//
// Settling happens off the handler's goroutine, which goes on to its next
// delivery meanwhile, and acks are coalesced: the deliveries whose handlers
// finished while the previous ack was being written are acked by one
// basic.ack with multiple set, when their delivery tags follow the last
// one settled without a gap (nothing waits for a batch to fill; a reject
// always goes alone, and never under a multiple ack). Such an ack is one
// "ack orders" span with messaging.batch.message_count, linking each
// message's creation context, a child of one of their process spans (a
// sampled one when any is, so that messages sampled out upstream cost no
// ack span), where a lone ack is a child of the message's process span.
// Per message, acks were a third of a consumer's CPU: one write system
// call each, and a frame for the broker to handle.
//
// # Reconnecting
//
// Without amqp.Config.Recovery, amqp091-go does not reconnect: a
// connection closed by the broker, the network or an operator stays
// closed. With it, amqp091 reopens channels in place, delivery tags
// starting again at 1 under handlers still settling the old channel's
// deliveries, and publisher confirm tags too, under messages still
// waiting for theirs; so Subscribe and Publish refuse such a connection
// (ErrAMQPRecovery, which says what was measured: no Publish returned nil
// for a lost message, but a recovery could leave every later Publish
// failing). Behind a Dialer of your own the recovery is seen only when
// topology recovery is on, amqp.Recovery's default: an *amqp.Channel does
// not reveal a Recovery whose TopologyRecoveryMode is
// TopologyRecoveryDisabled, so do not pass one.
//
// Dial returns a *Connection, a Dialer that redials with backoff when its
// connection is closed. On it the Publisher opens a new channel at the
// next Publish, and Subscribe opens a new channel and resumes consuming
// (WithReconnect). With confirms
// (WithConfirms, or a context marked with middleware.RequireConfirm, as
// DeadLetter and Relay mark theirs) the Publish that was cut off returns an
// error naming its unconfirmed messages: publish them again and expect
// duplicates. Without confirms a Publish returns once the client wrote its
// messages, so the ones the cut lost are not reported, however many the
// broker had yet to take: measured over a forced close, 67 of 2,989
// messages from a paced publisher, but 17,006 to 23,492 of about 80,000
// (over 20%) from four goroutines publishing as fast as they could, every
// one of those Publish calls having returned nil (with confirms, in the
// same test, none of 5,490 was lost). Deliveries that were being handled
// when the channel died cannot be acked; the broker redelivers them, so
// handlers must tolerate duplicates.
//
// Calls that wait for the broker's reply (opening a channel, entering
// confirm mode, setting the prefetch, consuming) give up when their
// context ends, also over a silent network (a partition, a dead host),
// which amqp091 notices only after three heartbeats; the channel an
// abandoned call was setting up is closed in the background once the call
// returns, never before (a frame on a channel the broker has closed makes
// it close the whole connection). Closing Subscribe's channel waits at
// most a second for the broker's answer.
package rabbitmq
