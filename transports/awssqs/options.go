package awssqs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// API is the part of *sqs.Client the transport uses, so tests and callers
// can wrap the client (fault injection, rate limiting).
type API interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

var _ API = (*sqs.Client)(nil)

// Limits SQS puts on a request.
const (
	maxBatch       = 10               // entries per SendMessageBatch / messages per ReceiveMessage
	maxWait        = 20 * time.Second // WaitTimeSeconds
	maxVisibility  = 12 * time.Hour   // VisibilityTimeout
	defaultWorkers = 10

	// defaultDeleteLinger is how long a succeeded message waits for the
	// other handlers of its poll before it is deleted without them (see
	// WithDeleteLinger).
	defaultDeleteLinger = 50 * time.Millisecond
)

// DefaultPropagationFields are the headers the Publisher treats as
// propagation fields (see EncodeHeaders) unless WithPropagationFields says
// otherwise.
var DefaultPropagationFields = []string{"traceparent", "tracestate", "baggage"}

type config struct {
	propagationFields []string
	deduplicationID   func(*middleware.Message) string

	maxMessages       int32
	waitTime          time.Duration
	visibilityTimeout *time.Duration
	extendVisibility  time.Duration // 0: off
	retryVisibility   *time.Duration
	concurrency       int
	deleteLinger      time.Duration
}

func newConfig(opts []Option) config {
	c := config{
		propagationFields: DefaultPropagationFields,
		deduplicationID:   func(m *middleware.Message) string { return deduplicationID(m.ID) },
		maxMessages:       maxBatch,
		waitTime:          maxWait,
		concurrency:       defaultWorkers,
		deleteLinger:      defaultDeleteLinger,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// Option configures a Publisher or a Subscriber; each ignores the options
// that only concern the other.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithPropagationFields sets the header names the Publisher spends the
// attribute budget on last and packs together when they do not fit (see
// EncodeHeaders).
// The default is DefaultPropagationFields; pass the Fields of the
// propagator in use when it writes others.
func WithPropagationFields(fields ...string) Option {
	return optionFunc(func(c *config) { c.propagationFields = fields })
}

// WithPropagator set the Propagator the Publisher recorded dropped
// propagation fields with.
//
// Deprecated: the Publisher packs propagation fields that do not fit and
// drops none any more, so it records nothing; the option is kept so that
// code using it still builds, and does nothing.
func WithPropagator(*propagation.Propagator) Option {
	return optionFunc(func(*config) {})
}

// WithDeduplicationID sets how the Publisher derives the
// MessageDeduplicationId of a message sent to a FIFO queue; an empty result
// sends none, which a queue without ContentBasedDeduplication rejects. The
// default is the message's ID, which a new message does not have (SQS
// assigns IDs on send): for a FIFO queue without ContentBasedDeduplication,
// set Message.ID (an ID of your own, kept when you publish again, makes
// SQS drop the duplicate) or give this option. Relay and DeadLetter carry
// the source message's ID. An ID SQS would not take as a deduplication ID
// (over 128 characters, or characters other than ASCII letters, digits and
// punctuation: another broker's ID) is sent as its SHA-256, in hex. A FIFO
// message also needs its Key, the MessageGroupId. It is not used for
// standard queues.
func WithDeduplicationID(f func(*middleware.Message) string) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.deduplicationID = f
		}
	})
}

// WithMaxMessages sets how many messages one ReceiveMessage asks for,
// between 1 and 10; the default is 10.
func WithMaxMessages(n int) Option {
	return optionFunc(func(c *config) { c.maxMessages = int32(min(max(n, 1), maxBatch)) })
}

// WithWaitTime sets the long-poll wait of ReceiveMessage, up to 20 s (the
// default), rounded up to whole seconds. 0 sends none, so the queue's
// ReceiveMessageWaitTimeSeconds applies: short polling when that is 0 too,
// which costs a request per empty poll (the Subscriber then pauses 100 ms
// after each). When Subscribe's context ends, it waits for the poll in
// flight, so up to this long (up to 20 s with 0).
func WithWaitTime(d time.Duration) Option {
	return optionFunc(func(c *config) { c.waitTime = min(max(d, 0), maxWait) })
}

// WithVisibilityTimeout sets the visibility timeout of the messages a
// Subscriber receives, rounded up to whole seconds, up to 12 h (0 leaves
// the queue's own, as SQS takes a 0 in the request): how long a message has,
// from its receive, before another consumer may receive it. By default the
// queue's own applies. A receive takes up to WithMaxMessages messages and
// WithConcurrency of them run at once, so the last of a receive starts
// after about maxMessages/concurrency handler times: the timeout must cover
// those as well as its own handling, or it is delivered again meanwhile
// (ten 500 ms handlers, one at a time, under a 2 s timeout: 17 handlings).
// Lower WithMaxMessages, or raise the timeout, when handlers are slow, or
// let WithVisibilityExtension extend it while they run.
func WithVisibilityTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		d = min(max(d, 0), maxVisibility)
		c.visibilityTimeout = &d
	})
}

// WithVisibilityExtension makes a Subscriber extend the visibility timeout
// of the messages it holds, waiting for a handler or being handled, to d
// every d/3 until their handlers return: a handler slower than the
// visibility timeout then does not see its message delivered again
// meanwhile, to itself or to another consumer. The receive asks for d as
// the visibility timeout as well, unless WithVisibilityTimeout sets one
// (the extensions then come every third of the shorter of the two). d is
// rounded up to whole seconds, 2 s at least; 0, the default, extends
// nothing. SQS ends extensions 12 h after a message's receive.
//
// Each tick sends a ChangeMessageVisibility per message of a poll still
// held, all at once, each bounded by half a tick (d/6, 30 s at most): a
// slow call does not delay the others, and a hung one ends before the
// next tick. Each
// extension lasts d from when it lands, so one that fails (throttling, a
// network error the SDK gave up on) is retried at the next tick, still
// d/3 before the message would be visible again; it costs three requests
// per message and d. Two failures in a row can let the message be
// delivered again while its handler runs. A failed extension is recorded
// as an event (middleware.ExtensionFailedEventName, with error.type) on
// the message's process span, when the tracing middleware records one:
// see middleware.RecordExtensionFailed. A message waiting for a handler
// has no process span yet, and nothing records its failures.
func WithVisibilityExtension(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.extendVisibility = 0
			return
		}
		c.extendVisibility = min(max(time.Duration(seconds(d))*time.Second, 2*time.Second), maxVisibility)
	})
}

// WithRetryVisibility makes a Subscriber set the visibility timeout of a
// message whose handler failed to d (rounded up to whole seconds; 0 makes
// it visible at once), so its redelivery does not wait for the rest of the receive's
// visibility timeout. By default the message stays invisible until that
// timeout ends.
func WithRetryVisibility(d time.Duration) Option {
	return optionFunc(func(c *config) {
		d = min(max(d, 0), maxVisibility)
		c.retryVisibility = &d
	})
}

// WithConcurrency sets how many handlers a Subscriber runs at once; the
// default is 10. Values below 1 are ignored. Messages of one FIFO group
// are handled in order only with 1; then, when a handler fails, the later
// messages of its group from the same receive are not handled but made
// visible again, to come after its redelivery. Those were received all
// the same: their ApproximateReceiveCount (DeliveryCount) grows with the
// failed one's, and a redrive policy may move them to the dead-letter
// queue with it, as with Lambda's handling of FIFO batches.
func WithConcurrency(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.concurrency = n
		}
	})
}

// WithDeleteLinger sets how long a Subscriber lets the deletes of
// succeeded messages wait for the other handlers of the same poll. The
// Subscriber deletes with DeleteMessageBatch: the successes of one
// ReceiveMessage are deleted together as soon as all of its handlers have
// returned, or when d has passed since the first of them succeeded,
// whichever comes first, so a slow handler delays the deletes of fast ones
// by at most d. The default is 50 ms; 0 deletes every message as soon as
// its handler returns, one request each. Keep d far below the visibility
// timeout: a message whose delete waits past it is delivered again.
func WithDeleteLinger(d time.Duration) Option {
	return optionFunc(func(c *config) { c.deleteLinger = max(d, 0) })
}

func seconds(d time.Duration) int32 { return int32((d + time.Second - 1) / time.Second) }

// deduplicationID is id as a MessageDeduplicationId: id itself when SQS
// takes it (1 to 128 ASCII letters, digits and punctuation), else its
// SHA-256 in hex, which it takes and which stays the same for the same id.
func deduplicationID(id string) string {
	if id == "" {
		return ""
	}
	valid := len(id) <= 128
	for i := 0; valid && i < len(id); i++ {
		valid = '!' <= id[i] && id[i] <= '~' // letters, digits, punctuation
	}
	if valid {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}
