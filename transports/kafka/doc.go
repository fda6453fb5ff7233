// Package kafka is the Kafka transport of otelmq, over
// github.com/twmb/franz-go: a Publisher and a Subscriber for the middleware
// package over the caller's *kgo.Client, and a Carrier over record headers.
//
// # Mapping
//
// A middleware.Message maps onto a Kafka record as follows:
//
//	Body          <-> record value; a nil value is a tombstone
//	Key           <-> record key (nil: no key)
//	Headers       <-> record headers, written in sorted key order; when a
//	                  key appears more than once the last value wins, a nil
//	                  value reads as ""
//	ID            <-  "topic/partition/offset", set on receive and after a
//	                  successful Publish
//	Time          <-> record timestamp; the client stamps the produce time
//	                  when Time is zero, and Publish copies it back
//	DeliveryCount <-  1 + how many times a handler in this process failed on
//	                  this offset; Kafka does not count deliveries, so a
//	                  redelivery after a restart, or to another member
//	                  after a rebalance, counts from 1 (and one that comes
//	                  back to this process goes on from its count)
//	Destination   <-  the record's topic
//
// Message.As reaches the record: pass a **kgo.Record (or a *kgo.Record to get
// a copy). Each message carries the partition, offset, key, tombstone flag,
// consumer group and message ID as semantic-convention attributes. The
// Messages of a poll are built in blocks of a few dozen that share their
// arrays and strings (IDs, header values), so a handler that keeps a
// Message keeps its block's memory (some KiB) alive.
//
// A Publish of one message records on its send span, as the Hooks do, the
// record's key, tombstone flag, partition, offset and ID (partition and
// offset once the broker acknowledged it); in a batch each message's create
// span records its key and tombstone flag (Destination.MessageAttributes).
//
// Publish marks middleware.Permanent (so DeadLetter dead-letters at once)
// a nil message, and a record the broker refuses as too large
// (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_RECORD) when it was
// the call's only one: the broker judges whole batches, so records that
// failed together may each fit alone.
//
// # Client options
//
// The Subscriber consumes with a *kgo.Client built for it:
//
//	cl, err := kgo.NewClient(
//		kgo.SeedBrokers(seeds...),
//		kgo.ConsumeTopics("orders"),    // exactly the topic passed to Subscribe
//		kgo.ConsumerGroup("billing"),   // required: offsets are committed to it
//		kgo.DisableAutoCommit(),        // required: only handled records are committed
//		kgo.BlockRebalanceOnPoll(),     // recommended
//	)
//
// Subscribe rejects a client without a group, with auto-commit on, or that
// consumes other topics. A client serves one Subscribe: when it returns, the
// client has left the group (so the other members take over its partitions
// at once) and cannot rejoin; subscribe again with a new client. BlockRebalanceOnPoll keeps a rebalance from moving
// a partition while its records are being handled, so the commit that
// follows is made by the partition's owner; Subscribe allows rebalances
// again after every poll. Without it, a rebalance in the middle of a poll
// can make records be handled twice, never lost. Keep handlers shorter than
// the group's rebalance timeout, or bound the work per poll with
// WithMaxPollRecords.
//
// # Delivery
//
// Delivery is at least once and in order per partition. A handler's nil
// commits its record; an error or panic stops its partition for the poll
// and rewinds the partition to that record, which is delivered again once
// the partition's WithRetryBackoff is over (the other partitions are
// polled meanwhile), and the records after it are delivered after it: a
// failing record blocks its partition, and only it, until it succeeds
// (dead-lettering is the handler's business). Spans are named by the topic
// ("process orders", "commit orders").
//
// # Native instrumentation
//
// Code that keeps its own kgo produce calls and poll loop traces them with
// Hooks instead of Publisher and Subscriber: install it with
// kgo.WithHooks(NewHooks(opts...)) on the clients, and in the loop call
// ReceiveContext once per poll and StartProcess per record:
//
//	hooks := kafka.NewHooks(middleware.WithTracerProvider(tp))
//	cl, _ := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("orders"), kgo.WithHooks(hooks))
//	cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: v}) // send span, traceparent header
//	for {
//		fetches := cl.PollFetches(ctx)
//		rctx := hooks.ReceiveContext(ctx, fetches) // one receive span per poll
//		fetches.EachRecord(func(r *kgo.Record) {
//			pctx, span := hooks.StartProcess(rctx, r) // child of the send span
//			err := handle(pctx, r)
//			hooks.Tracing().End(span, err) // error text through the redactor
//		})
//	}
//
// NewHooks records the semconv messaging metrics as well (a send per
// produced record, consumed.messages per record a poll hands over, the
// process duration of a span ended through Tracing.End; see
// NewHooksWithTelemetry); NewHooksWithTracing records spans only.
//
// The trace context travels as the W3C headers traceparent, tracestate and
// baggage, so producers and consumers instrumented with franz-go's kotel
// plugin, OTel Java's Kafka instrumentation or any client that writes a
// bare traceparent join the same trace. Of duplicate headers otelmq reads
// the last (see Carrier); kotel reads the first. Do not install kotel's
// tracer and Hooks on the same client: both would record spans.
package kafka
