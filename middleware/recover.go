package middleware

import (
	"context"
	"fmt"
	"runtime/debug"
)

// PanicError is the error a recovered handler panic becomes.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("otelmq: handler panicked: %v", e.Value) }

// Call runs h on msg and turns a panic into a *PanicError. Transports call
// handlers only through Call, so the handler contract holds with or without
// middleware.
func Call(ctx context.Context, h Handler, msg *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return h.Handle(ctx, msg)
}

// Recover is handler middleware that turns a panic into a *PanicError.
func Recover(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, msg *Message) error { return Call(ctx, next, msg) })
}
