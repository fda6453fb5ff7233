package awssqs

import (
	"errors"

	"github.com/otelmq/otelmq/middleware"
)

// sdkWrappers are the error types the AWS SDK wraps every failed call in,
// as middleware.ErrorType names them: they say that a call failed, not why.
var sdkWrappers = map[string]bool{
	"*smithy.OperationError":  true,
	"*retry.MaxAttemptsError": true,
	"*http.ResponseError":     true, // aws-sdk-go-v2's and smithy-go's
	"*http.RequestSendError":  true,
	"*url.Error":              true,
}

// named gives err, when it failed without an answer from SQS (no API error
// code: a refused connection, a DNS or TLS failure), the error.type of the
// cause under the SDK's wrappers, such as "*net.OpError", instead of
// "*smithy.OperationError", which every failed call has. An error SQS
// answered with is already named by its code ("ThrottlingException"), and
// a context error by middleware.ErrorType ("timeout"); both are left as
// they are. errors.Is and errors.As see through the wrapper.
func named(err error) error {
	if err == nil || !sdkWrappers[middleware.ErrorType(err)] {
		return err
	}
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		if t := middleware.ErrorType(e); !sdkWrappers[t] && t != "_OTHER" {
			return middleware.NamedError(err, t)
		}
	}
	return err
}
