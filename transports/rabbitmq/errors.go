package rabbitmq

import (
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
)

// replyNames are the AMQP 0-9-1 names of the reply codes, as the
// specification spells them and semconv's error.type examples do
// ("channel-error").
var replyNames = map[int]string{
	amqp.ContentTooLarge:    "content-too-large",
	amqp.NoRoute:            "no-route",
	amqp.NoConsumers:        "no-consumers",
	amqp.ConnectionForced:   "connection-forced",
	amqp.InvalidPath:        "invalid-path",
	amqp.AccessRefused:      "access-refused",
	amqp.NotFound:           "not-found",
	amqp.ResourceLocked:     "resource-locked",
	amqp.PreconditionFailed: "precondition-failed",
	amqp.FrameError:         "frame-error",
	amqp.SyntaxError:        "syntax-error",
	amqp.CommandInvalid:     "command-invalid",
	amqp.ChannelError:       "channel-error",
	amqp.UnexpectedFrame:    "unexpected-frame",
	amqp.ResourceError:      "resource-error",
	amqp.NotAllowed:         "not-allowed",
	amqp.NotImplemented:     "not-implemented",
	amqp.InternalError:      "internal-error",
}

// named gives err, when it holds an *amqp.Error, the name of its reply code
// ("not-found" for a missing exchange, "channel-error" for a closed
// channel) as its error.type: every such error has the Go type
// *amqp.Error, so middleware.ErrorType would record that for all of them
// alike. An unknown code keeps "*amqp091.Error". errors.Is and errors.As see
// through the wrapper.
func named(err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return err
	}
	if name, ok := replyNames[ae.Code]; ok {
		return middleware.NamedError(err, name)
	}
	return err
}
