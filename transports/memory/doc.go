// Package memory is otelmq's in-memory transport: a Broker that is both a
// Publisher and a Subscriber, with at-least-once delivery like the real
// brokers (an error or panic requeues the message, a stopped subscriber's
// unsettled messages return to the queue). Use it in unit tests and demos;
// it keeps nothing on disk and nothing across processes.
//
// # Mapping
//
//	ID            <-> assigned on publish ("mem-{n}") when empty
//	Key, Body     <-> kept as published
//	Headers       <-> a copy of the published map; the carrier is the map itself
//	Time          <-> the publish time, unless the publisher set one
//	DeliveryCount <-  1 on the first delivery, +1 per redelivery
//	Destination   <-> the queue name
//
// Messages of one queue are delivered in publish order; a requeued message
// goes to the back of the queue. A subscriber takes up to WithBatchSize
// ready messages at a time. Deliveries are pushed, as on RabbitMQ
// (middleware.Destination.Push): the tracing middleware starts no receive
// span for them, only a process span per message.
package memory
