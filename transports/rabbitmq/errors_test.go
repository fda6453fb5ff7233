package rabbitmq

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
)

// TestNamedReplyCodes: an *amqp.Error is recorded by its reply code's AMQP
// name and stays what errors.Is and errors.As find; an unknown code keeps
// the Go type, and other errors are left alone.
func TestNamedReplyCodes(t *testing.T) {
	for err, want := range map[error]string{
		&amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange 'x'"}:              "not-found",
		fmt.Errorf("publish: %w", &amqp.Error{Code: amqp.PreconditionFailed, Reason: "..."}): "precondition-failed",
		amqp.ErrClosed:         "channel-error",
		&amqp.Error{Code: 999}: "*amqp091.Error",
	} {
		got := named(err)
		var ae *amqp.Error
		if middleware.ErrorType(got) != want || !errors.As(got, &ae) || !errors.Is(got, err) {
			t.Errorf("%v: error.type %q, want %q (errors.As %v)", err, middleware.ErrorType(got), want, errors.As(got, &ae))
		}
	}
	plain := errors.New("plain")
	if named(plain) != plain || named(nil) != nil {
		t.Error("named changed an error without an *amqp.Error")
	}
}

// TestPublishErrorType: a publish to a missing exchange fails with the
// broker's 404, recorded as not-found, not as *amqp091.Error.
func TestPublishErrorType(t *testing.T) {
	conn, _ := setup(t, nil)
	pub := NewPublisher(conn, WithExchange("missing-"+t.Name()), WithConfirms(true))
	defer pub.Close()
	err := pub.Publish(t.Context(), "key", &middleware.Message{ID: "m", Body: []byte("x")})
	if err == nil {
		t.Fatal("publish to a missing exchange succeeded")
	}
	if got := middleware.ErrorType(err); got != "not-found" {
		t.Errorf("error.type %q, want not-found (%v)", got, err)
	}
}

// TestPublishNackedErrorType: a message the broker nacks (a full queue that
// rejects publishes) fails as "nacked", not "_OTHER".
func TestPublishNackedErrorType(t *testing.T) {
	conn, q := setup(t, amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	pub := NewPublisher(conn, WithConfirms(true))
	defer pub.Close()
	err := pub.Publish(t.Context(), q, &middleware.Message{ID: "m", Body: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "nacked") {
		t.Fatalf("publish to a full reject-publish queue: %v, want a nack", err)
	}
	if got := middleware.ErrorType(err); got != "nacked" {
		t.Errorf("error.type %q, want nacked", got)
	}
}
