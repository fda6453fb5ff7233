package middleware

// NamedError returns err recorded under errorType as its error.type, on
// spans and metrics alike (see ErrorType): for an error whose Go type says
// nothing (an errors.New value, a wrapper every failure of a client has)
// and that cannot be given an ErrorType method. errors.Is and errors.As see
// through it, and its text is err's. NamedError(nil, t) is nil, and
// NamedError(err, "") is err: an empty error.type would say less than err.
func NamedError(err error, errorType string) error {
	if err == nil || errorType == "" {
		return err
	}
	return &namedError{err: err, name: errorType}
}

type namedError struct {
	err  error
	name string
}

func (e *namedError) Error() string     { return e.err.Error() }
func (e *namedError) Unwrap() error     { return e.err }
func (e *namedError) ErrorType() string { return e.name }
