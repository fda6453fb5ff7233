package middleware

import "errors"

// Permanent marks err as a failure that handling the message again cannot
// cure: the destination refuses the message for good (a header name it
// cannot carry, a body it does not take, a record too large), or the
// message itself is malformed. Retry does not retry it, and DeadLetter
// dead-letters it at once, whatever WithMaxDeliveries says; without
// DeadLetter the broker redelivers it like any failure, for ever. The
// transports mark their own refusals of a message so (each transport's doc
// lists them); a handler may mark its own. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err's tree holds an error marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
