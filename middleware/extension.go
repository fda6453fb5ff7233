package middleware

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// ExtensionFailedEventName is the span event RecordExtensionFailed adds to
// a message's process span.
const ExtensionFailedEventName = "otelmq.visibility_extension.failed"

// RecordExtensionFailed is for transports that keep a message hidden from
// other consumers while they hold it by extending a lease on it (an SQS
// visibility timeout, see awssqs.WithVisibilityExtension): it records that
// an extension for msg failed with err, so that unless a later one lands
// in time the broker may deliver msg again, to another consumer or to
// this one, while its handler still runs.
//
// The record is an ExtensionFailedEventName event with err's error.type
// (see ErrorType) on msg's process span, when the tracing middleware
// started one and it is recording; nothing else. There is none for a
// message whose handler has not started yet (it has no process span) or
// whose process span has ended. err's text is not recorded: error texts
// can hold message data, and are span status descriptions only. ctx is
// the context the transport hands msg's handler (what the observers'
// Received returned): the redactor (WithRedactor) of the tracing
// middleware it went through sees error.type, as it does on Retry's
// events.
//
// It is safe to call from any goroutine while msg's handler runs.
func RecordExtensionFailed(ctx context.Context, msg *Message, err error) {
	if msg == nil || err == nil {
		return
	}
	span := msg.processSpan()
	if span == nil || !span.IsRecording() {
		return
	}
	errorType := propagation.ErrorTypeKey.String(ErrorType(err))
	if redact := redactorIn(ctx); redact != nil {
		errorType = redact(errorType)
	}
	var opts []trace.EventOption
	if errorType.Key != "" {
		opts = append(opts, trace.WithAttributes(errorType))
	}
	span.AddEvent(ExtensionFailedEventName, opts...)
}
