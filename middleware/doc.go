// Package middleware is otelmq's broker-neutral layer: the Publisher,
// Subscriber and Handler interfaces every transport implements, a Message
// type, and the middleware that composes over them: Tracing, Metrics (or
// both as Telemetry) and Recover.
//
// # Spans (OpenTelemetry messaging semantic conventions)
//
//   - send {destination}: one per Publish call; for a batch,
//     messaging.batch.message_count and one create {destination} span
//     (PRODUCER) per message (WithCreateSpans(false) turns those off). Each
//     message's creation context is injected into its Headers, unless it
//     already carries one (a relay or a dead-letter publish keeps the
//     original, which the send span links). The send span is a PRODUCER
//     when its own context is some message's creation context, else (create
//     spans, or every message keeping its own) a CLIENT.
//   - receive {destination} (CLIENT): one per poll that returned messages,
//     linking every message's creation context (up to WithLinkLimit, by
//     default the SDK's own link limit). Only pull-based consumers
//     poll (SQS, Kafka): a push-based one (Destination.Push: RabbitMQ, the
//     in-memory broker) has no receive span, and the process span is the
//     consumer's first span.
//   - process {destination} (CONSUMER): one per message, even when a poll
//     returned a batch, parented per WithProcessParent: by default on the
//     message's creation context (one connected trace; the receive span
//     links the message, ParentMessageLinkReceive also links the process
//     span to the receive span).
//   - ack, nack, delete, commit {destination} (CLIENT): settlement
//     (WithSettleSpans(false) turns these off).
//
// Errors set the span status and error.type; a recovered panic has
// error.type "panic". Bodies are never recorded (their size only with
// WithBodySize, opt-in as in semconv), and header values only for the names
// given to WithHeaderAllowList.
//
// # Sampling
//
// Spans start with the attributes the semantic conventions list for
// sampling decisions; the others are built only for spans that record. A
// dropped span still costs the SDK its IDs, the sampler call and a
// context. With WithParentBasedSampling, for a provider whose sampler is
// ParentBased (the SDK's default), no span is started under an unsampled
// parent: a message of a trace sampled out upstream then costs only its
// propagation.
//
// # How transports cooperate
//
// Only a transport sees a poll and a settlement, so the Subscriber wrappers
// install Observers in the Subscribe context and transports report to
// ObserverFrom(ctx). A transport runs handlers through Call, so a panic is
// an error whether or not Recover is used. A transport whose per-message
// attributes cost something to build sets a Native that is an
// AttributeSource: the middleware asks for them only for spans it starts.
// On the publishing side, Destination.MessageAttributes describes a message
// being published (before the publish, for its create span) or just
// published (for the send span of a lone message: a Kafka partition and
// offset, known only then).
package middleware
