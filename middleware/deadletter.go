package middleware

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"
	"unicode/utf8"
)

// Headers DeadLetter adds to a dead-lettered message.
const (
	HeaderDLQSource    = "otelmq-dlq-source"
	HeaderDLQAttempts  = "otelmq-dlq-attempts"
	HeaderDLQErrorType = "otelmq-dlq-error-type"
	// HeaderDLQError holds the error text, only with WithErrorText: error
	// messages can hold personal data.
	HeaderDLQError = "otelmq-dlq-error"
)

// DeadLetterOption configures DeadLetter.
type DeadLetterOption func(*deadLetterConfig)

type deadLetterConfig struct {
	maxDeliveries  int
	errorText      bool
	publishTimeout time.Duration
}

// DefaultDeadLetterTimeout bounds a dead-letter publish unless
// WithPublishTimeout says otherwise.
const DefaultDeadLetterTimeout = 30 * time.Second

// WithMaxDeliveries dead-letters a failing message only once the broker has
// delivered it n times (its DeliveryCount), leaving earlier failures
// unsettled for the broker to redeliver. The default, 1, dead-letters on the
// first failure that reaches DeadLetter, which suits a Retry inside it.
// Where the broker's count stops growing before n (a RabbitMQ classic queue
// counts 1, then 2 on every redelivery: Message.DeliveryCountSaturated), a
// failure on a saturated count is dead-lettered rather than redelivered
// forever; so is a failure when the transport gives no count (0).
func WithMaxDeliveries(n int) DeadLetterOption {
	return func(c *deadLetterConfig) {
		if n > 0 {
			c.maxDeliveries = n
		}
	}
}

// WithPublishTimeout bounds each dead-letter publish to d (default
// DefaultDeadLetterTimeout; d <= 0 keeps it). The publish does not inherit
// the handler context's deadline or cancellation, which may have ended
// while the handler failed (a deadline around Retry's attempts): it would
// then fail every time, and the message would come back for ever.
func WithPublishTimeout(d time.Duration) DeadLetterOption {
	return func(c *deadLetterConfig) {
		if d > 0 {
			c.publishTimeout = d
		}
	}
}

// WithErrorText also copies the error's text into HeaderDLQError, cut to
// MaxDLQErrorText bytes.
func WithErrorText() DeadLetterOption {
	return func(c *deadLetterConfig) { c.errorText = true }
}

// DeadLetter is handler middleware that publishes a message whose handler
// failed for the last time to destination on pub (any transport, so the
// dead-letter queue may live on another broker) and then settles it.
//
// The dead-lettered message keeps its body, key and headers, so its trace
// context is unchanged: a traced pub links the publish and keeps the
// original creation context, and the dead-letter consumer's process span
// joins the original trace. A failure marked with Permanent is
// dead-lettered at once, whatever WithMaxDeliveries says. It also carries
// HeaderDLQSource (the original
// destination), HeaderDLQAttempts and HeaderDLQErrorType. If the publish
// fails the message is not settled and both errors are returned, so nothing
// is lost; the publish's context is marked with RequireConfirm, so that pub
// returns nil only once its broker took the dead-lettered message. The
// publish runs on the handler context's values (its span, so a traced pub
// joins the trace) but not its deadline or cancellation, bounded by
// WithPublishTimeout instead.
func DeadLetter(pub Publisher, destination string, opts ...DeadLetterOption) HandlerMiddleware {
	cfg := deadLetterConfig{maxDeliveries: 1, publishTimeout: DefaultDeadLetterTimeout}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, msg *Message) error {
			err := Call(ctx, next, msg)
			if err == nil {
				return nil
			}
			var retry *retryableError
			if !IsPermanent(err) && (errors.As(err, &retry) ||
				cfg.maxDeliveries > 1 && msg.DeliveryCount < cfg.maxDeliveries && !msg.DeliveryCountSaturated()) {
				return err // the broker redelivers it
			}
			dead := deadLetterMessage(msg, err, cfg.errorText)
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.publishTimeout)
			defer cancel()
			if perr := pub.Publish(RequireConfirm(pctx), destination, dead); perr != nil {
				return errors.Join(err, fmt.Errorf("otelmq: dead-lettering to %s: %w", destination, perr))
			}
			return nil
		})
	}
}

func deadLetterMessage(msg *Message, err error, errorText bool) *Message {
	headers := maps.Clone(msg.Headers)
	if headers == nil {
		headers = map[string]string{}
	}
	headers[HeaderDLQSource] = msg.Destination
	headers[HeaderDLQAttempts] = strconv.Itoa(max(msg.Attempts(), 1))
	headers[HeaderDLQErrorType] = ErrorType(err)
	if errorText {
		headers[HeaderDLQError] = truncateText(err.Error(), MaxDLQErrorText)
	} else {
		// A message dead-lettered before (taken from a DLQ) carries the
		// text of that failure, which must not pass for this one's.
		delete(headers, HeaderDLQError)
	}
	// The source's ID goes along: a destination that deduplicates by ID
	// (an SQS FIFO queue, by default) then drops the copy a redelivery
	// dead-letters again.
	return &Message{ID: msg.ID, Key: msg.Key, Body: msg.Body, Headers: headers, Time: msg.Time}
}

// MaxDLQErrorText is the most of an error's text WithErrorText carries:
// texts can be long (a batch publish's error names every message), and a
// dead letter its destination refuses for good (a header past a broker's
// frame or message size) would come back for ever instead.
const MaxDLQErrorText = 4096

// truncateText cuts s to at most n bytes on a rune boundary, marking the
// cut with an ellipsis (which the n bytes include).
func truncateText(s string, n int) string {
	const ellipsis = "…"
	if len(s) <= n {
		return s
	}
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
