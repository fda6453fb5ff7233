// Package awssqs is the Amazon SQS transport of otelmq, over
// github.com/aws/aws-sdk-go-v2/service/sqs: a Publisher and a Subscriber for
// the middleware package and a Carrier over SQS message attributes.
//
// # Mapping
//
// A middleware.Message maps onto SQS as follows:
//
//	Body          <-> message body (SQS bodies are text: send valid UTF-8)
//	Headers       <-> String message attributes, one per header; on receive
//	                  Number and Binary attributes become headers too, and the
//	                  fields packed in the "otelmq" attribute are unpacked
//	Headers["AWSTraceHeader"]
//	              <-> the AWSTraceHeader message system attribute (X-Ray),
//	                  which does not count against the attribute limit
//	Key           <-> MessageGroupId, for FIFO queues (URL ending in ".fifo")
//	                  only; WithDeduplicationID gives MessageDeduplicationId
//	ID            <-> MessageId, set by Publish from SQS's answer; on a FIFO
//	                  queue Publish keeps the caller's ID, the default
//	                  MessageDeduplicationId
//	Time          <-  SentTimestamp (SQS stamps it; Publish does not send Time)
//	DeliveryCount <-  ApproximateReceiveCount
//	Destination   <-  the queue URL passed to Subscribe
//
// Message.As reaches the received message: pass a **types.Message (or a
// *types.Message to get a copy).
//
// # The attribute budget
//
// SQS accepts at most 10 message attributes per message. Application headers
// come first, one attribute each. The propagation fields (traceparent,
// tracestate, baggage; see WithPropagationFields) get one attribute each when
// they fit beside them, else they are packed together into the single String
// attribute "otelmq" (PackedAttribute, URL query encoding) with the
// application headers that do not fit beside it: 9 keep an attribute (the
// application's before the library's "otelmq-" headers). So the trace
// context always travels, and a message another broker or DeadLetter's
// headers brought past the budget is still sent. Headers whose names SQS
// refuses as attribute names travel packed as well, and values that are not
// SQS text go as Binary attributes (see EncodeHeaders). Carrier reads every
// form. Empty header values are not sent: SQS rejects them.
//
// A body that is not SQS text (not UTF-8, or control characters) is refused
// with ErrBodyNotText before anything is sent; refusals that sending again
// cannot cure (this one, a reserved header name, SQS's InvalidParameterValue,
// InvalidMessageContents, MissingParameter and the like) are marked
// middleware.Permanent, so DeadLetter dead-letters them at once.
//
// # Destinations and spans
//
// The destination is the queue URL; spans are named by the queue name, its
// last path segment ("process orders"), with aws.sqs.queue.url and the server
// address as attributes. Each ReceiveMessage that returns messages is one
// receive. A handler's nil deletes the message; an error or panic leaves it
// for redelivery when its visibility timeout ends, or sooner with
// WithRetryVisibility.
//
// # Deletes
//
// The Subscriber deletes with DeleteMessageBatch, never across polls: the
// messages of one ReceiveMessage whose handlers succeeded are deleted
// together as soon as all of that poll's handlers have returned, or once
// WithDeleteLinger (default 50 ms) has passed since the first of them
// succeeded, so a slow handler holds back the deletes of fast ones by at
// most the linger. A poll of ten quick messages costs one receive and one
// delete request, not eleven. Each batch is one "delete" settle: one span
// that links each message (a child of the receive span; a batch of one is a
// child of its process span). A message the batch did not delete (an entry
// SQS lists as failed, one it does not list at all, or every entry when the
// request failed) is reported to the observers with its error and stays on
// the queue to be delivered again; Subscribe goes on. When Subscribe's
// context ends, the successes of the running handlers are deleted before it
// returns. DeleteMessageBatch needs the same IAM permission as
// DeleteMessage (sqs:DeleteMessage).
//
// # Native client instrumentation
//
// Code that keeps its own SQS calls instead of using Publisher and Subscriber
// installs an Instrumentation on the client: WithTracing(opts...) (or
// NewInstrumentation(t).ClientOption()) for spans, WithTelemetry(opts...)
// (NewInstrumentationWithTelemetry) for spans and the semconv metrics, as
// an option of sqs.NewFromConfig,
// sqs.New or a single call, or Instrumentation.AppendMiddlewares on
// aws.Config.APIOptions. It is an Initialize middleware of the SDK's stack
// that sees only SendMessage, SendMessageBatch and ReceiveMessage:
//
//   - SendMessage: a send span around the call, and the creation context
//     injected into a copy of MessageAttributes within the attribute budget
//     above (a valid traceparent the caller set, in any casing or packed, is
//     kept). When the message's own 10 attributes leave no slot, the
//     creation context goes as the AWSTraceHeader system attribute (X-Ray
//     format: trace ID, parent, sampled flag), which does not count against
//     the budget and which receivers read when there is no traceparent,
//     unless the message has its own; the fields that found no place
//     (tracestate, baggage) are recorded as dropped on the send span and the
//     counter. The caller's input is never modified.
//   - SendMessageBatch: one send span and, for more than one entry, a
//     create span per entry whose context that entry carries.
//   - ReceiveMessage: "All" is added to MessageAttributeNames and
//     AWSTraceHeader, ApproximateReceiveCount and SentTimestamp to
//     MessageSystemAttributeNames when missing (so the caller may get more
//     attributes than it named), and a receive span linking the messages'
//     creation contexts is recorded when messages come back.
//
// In the receive loop, Instrumentation.StartProcess starts the process span
// of one message, in the producer's trace (W3C first, else AWSTraceHeader),
// and Instrumentation.DeleteMessage deletes it inside a delete span. Pass
// ReceiveContext(ctx, out) to StartProcess: a message without a creation
// context is then a child of the receive span, and with
// middleware.ParentMessageLinkReceive every process span links it. Do not
// also wrap a Publisher or Subscriber on an instrumented client with
// middleware tracing: both would record send and receive spans (the trace
// context is still injected once). The contrib otelaws middleware can run
// on the same client: its client spans are children of the send span, and
// it writes trace context only into HTTP headers, not into messages.
//
// # X-Ray
//
// On receive, AWSTraceHeader becomes Headers["AWSTraceHeader"], which the
// propagation package falls back to when a message carries no W3C context.
// On publish, Headers["AWSTraceHeader"] is sent as that system attribute;
// middleware.WithPropagation(propagation.WithXRayInject(true)) makes the
// tracing middleware write it beside traceparent.
//
// # goaws
//
// goaws v0.5.4, the in-process SQS the tests use, answers SendMessageBatch
// in the Query protocol's shape, which the SDK parses as listing no entry;
// the test fixture (integration/brokers/goaws) rewrites that answer into the
// JSON protocol's, and Publish counts an unlisted entry as failed. It also drops
// system attributes (AWSTraceHeader, MessageGroupId), reports
// ApproximateReceiveCount 1 and stamps SentTimestamp at receive time.
package awssqs
