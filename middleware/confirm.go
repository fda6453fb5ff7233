package middleware

import "context"

// confirmKey is the context key of RequireConfirm's mark.
type confirmKey struct{}

// RequireConfirm marks ctx for Publish: a Publisher given a context so
// marked must return nil only once the broker has taken responsibility for
// every message of the call, so that the caller may settle what it
// published them for. Relay, RelayHandler and DeadLetter mark the context
// of their Publish, because they settle the source message when it
// returns nil: a message the broker never took would be lost.
//
// Publishers whose Publish always waits for the broker's acknowledgement
// satisfy the contract without looking at the mark: the SQS transport
// (SendMessage), the Kafka transport (ProduceSync, per the client's acks
// setting: a client with kgo.NoAck gets no acknowledgement to wait for) and
// the in-memory broker. The RabbitMQ Publisher publishes without publisher
// confirms unless WithConfirms is on; a marked Publish goes through a
// channel in confirm mode all the same, waits for the confirms and fails
// the messages the broker returned as unroutable. A Publisher that wraps
// another must hand it ctx, or a context derived from it, to keep the mark.
func RequireConfirm(ctx context.Context) context.Context {
	return context.WithValue(ctx, confirmKey{}, true)
}

// ConfirmRequired reports whether ctx was marked with RequireConfirm. It
// does not allocate, so a Publisher can check it on every call.
func ConfirmRequired(ctx context.Context) bool {
	required, _ := ctx.Value(confirmKey{}).(bool)
	return required
}
