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
//	ID            <-> MessageId, set by Publish from SQS's answer
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
// come first, one attribute each; more than 10 of them fail that message.
// The propagation fields (traceparent, tracestate, baggage; see
// WithPropagationFields) get one attribute each when they fit beside them,
// else they are packed together into the single String attribute "otelmq"
// (PackedAttribute, URL query encoding), else, when no slot is left, they are
// dropped, recorded with propagation.Default().RecordDropped (reason
// "sqs_attribute_budget"), and the message is still sent. Carrier reads both
// forms. Empty header values are not sent: SQS rejects them.
//
// # Destinations and spans
//
// The destination is the queue URL; spans are named by the queue name, its
// last path segment ("process orders"), with aws.sqs.queue.url and the server
// address as attributes. Each ReceiveMessage that returns messages is one
// receive. A handler's nil deletes the message ("delete" settle); an error or
// panic leaves it for redelivery when its visibility timeout ends, or sooner
// with WithRetryVisibility.
//
// # goaws
//
// goaws v0.5.4, the in-process SQS the tests use, answers SendMessageBatch
// with a response that lists no entry at all; Publish treats such a response
// as "all sent" and leaves the IDs of those messages empty. It also drops
// system attributes (AWSTraceHeader, MessageGroupId), reports
// ApproximateReceiveCount 1 and stamps SentTimestamp at receive time.
package awssqs
