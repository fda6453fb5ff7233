package middleware

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// RetryOption configures Retry.
type RetryOption func(*retryConfig)

type retryConfig struct {
	attempts int
	backoff  func(attempt int) time.Duration
	inPlace  bool
}

// WithAttempts sets how many times a message is tried in all (default 3).
func WithAttempts(n int) RetryOption {
	return func(c *retryConfig) {
		if n > 0 {
			c.attempts = n
		}
	}
}

// WithBackoff sets the wait before attempt n+1 after attempt n failed
// (in-place retries only). The default is exponential from 100ms, capped at
// 5s, with full jitter.
func WithBackoff(f func(attempt int) time.Duration) RetryOption {
	return func(c *retryConfig) {
		if f != nil {
			c.backoff = f
		}
	}
}

// WithBrokerRedelivery makes Retry leave retries to the broker: a failed
// message is returned unsettled while its DeliveryCount is below the
// attempts, so the broker's own redelivery (SQS visibility timeout, RabbitMQ
// requeue, Kafka rewind) and its delay settings apply. The default retries
// in place, inside the same delivery, which works on every broker, including
// those that do not count deliveries. Where the broker's count stops growing
// (Message.DeliveryCountSaturated: a RabbitMQ classic queue reports 2 on
// every redelivery), the attempts left run in place in that delivery.
func WithBrokerRedelivery() RetryOption {
	return func(c *retryConfig) { c.inPlace = false }
}

// ExponentialBackoff returns base * 2^(attempt-1), capped at max, with full
// jitter (a random wait between zero and that), so retries from many
// consumers do not arrive together.
func ExponentialBackoff(base, maximum time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < maximum; i++ {
			if d > maximum/2 {
				// Doubling would pass maximum, or overflow to a wait of
				// zero when maximum is near the largest Duration.
				d = maximum
				break
			}
			d *= 2
		}
		d = min(d, maximum)
		if d <= 0 {
			return 0
		}
		return rand.N(d) + 1
	}
}

// AttemptKey records the attempt number on attempt spans and retry events.
const AttemptKey = attribute.Key("otelmq.retry.attempt")

// Retry is handler middleware that retries a failing message. In place (the
// default), each attempt after the first is a child span "attempt {n}" of the
// process span, so failed attempts are visible in the message's trace; the
// wait between attempts ends early when the handler's ctx ends (which the
// transports do not end when Subscribe's does: they let running handlers,
// and so their retries, finish). With WithBrokerRedelivery
// the broker redelivers instead. Either way the message's attempt count is
// what DeadLetter reports. Put Retry inside DeadLetter, so DeadLetter sees
// only the last failure: ChainHandler(h, DeadLetter(...), Retry(...)); the
// other way round the first failure is dead-lettered and Retry never runs.
// A failure marked with Permanent is not retried.
func Retry(opts ...RetryOption) HandlerMiddleware {
	cfg := retryConfig{attempts: 3, backoff: ExponentialBackoff(100*time.Millisecond, 5*time.Second), inPlace: true}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, msg *Message) error {
			if !cfg.inPlace {
				msg.attempts = max(msg.DeliveryCount, 1)
				err := Call(ctx, next, msg)
				if err == nil || msg.attempts >= cfg.attempts || IsPermanent(err) {
					return err
				}
				if !msg.DeliveryCountSaturated() {
					return &retryableError{err: err}
				}
				// The broker would redeliver it with this count forever:
				// the remaining attempts run here, so the last one fails
				// for good (and DeadLetter takes it).
				return cfg.retryInPlace(ctx, next, msg, 0, msg.attempts, err)
			}
			// Attempts of earlier deliveries count, so that a message the
			// broker redelivers (after a crash, say) reports them all.
			base := max(msg.DeliveryCount-1, 0) * cfg.attempts
			msg.attempts = base + 1
			err := Call(ctx, next, msg)
			if err == nil || IsPermanent(err) {
				return err
			}
			return cfg.retryInPlace(ctx, next, msg, base, 1, err)
		})
	}
}

// retryInPlace runs the attempts after attempt failed (with err) up to the
// last, in this delivery, each a child span "attempt {n}" of the process
// span, waiting the backoff between them; msg.attempts is base + n. It
// returns the last attempt's error, or nil once one succeeds.
func (cfg *retryConfig) retryInPlace(ctx context.Context, next Handler, msg *Message, base, attempt int, err error) error {
	process := trace.SpanFromContext(ctx)
	tracer := process.TracerProvider().Tracer(propagation.ScopeName)
	redact := redactorIn(ctx)
	for ; attempt < cfg.attempts; attempt++ {
		if ctx.Err() != nil {
			// With a zero backoff the wait below is as ready as ctx.Done,
			// and select would pick one at random.
			return err
		}
		if process.IsRecording() {
			errorType := propagation.ErrorTypeKey.String(ErrorType(err))
			if redact != nil {
				errorType = redact(errorType)
			}
			process.AddEvent("otelmq.retry", trace.WithAttributes(AttemptKey.Int(attempt), errorType))
		}
		select {
		case <-time.After(cfg.backoff(attempt)):
		case <-ctx.Done():
			return err
		}
		n := attempt + 1
		msg.attempts = base + n
		actx, span := tracer.Start(ctx, "attempt "+strconv.Itoa(n), trace.WithAttributes(AttemptKey.Int(n)))
		err = Call(actx, next, msg)
		endIn(ctx, span, err)
		if err == nil || IsPermanent(err) {
			return err
		}
	}
	return err
}

// retryableError marks an error a broker is expected to redeliver after.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// Attempts is how many times msg has been tried so far, as counted by Retry
// (in place or from the broker's delivery count); 0 before any handler ran.
func (m *Message) Attempts() int {
	if m.attempts > 0 {
		return m.attempts
	}
	return m.DeliveryCount
}
