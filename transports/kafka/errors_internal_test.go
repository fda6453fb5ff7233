package kafka

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/middleware"
)

// TestNamedProtocolErrors: a Kafka protocol error is recorded by its name,
// where its Go type is the same for all of them, and stays what errors.Is
// finds; any other error is left as it is.
func TestNamedProtocolErrors(t *testing.T) {
	wrapped := fmt.Errorf("message 0: %w", kerr.NotLeaderForPartition)
	err := named(wrapped)
	if got := middleware.ErrorType(fmt.Errorf("publish: %w", err)); got != "NOT_LEADER_FOR_PARTITION" {
		t.Errorf("error.type %q, want NOT_LEADER_FOR_PARTITION", got)
	}
	if !errors.Is(err, kerr.NotLeaderForPartition) || err.Error() != wrapped.Error() {
		t.Errorf("named(%v) = %v: lost the error or changed its text", wrapped, err)
	}
	// A publish error keeps the type of what failed, not of the
	// transport's own bookkeeping around it.
	if got := middleware.ErrorType(publishError("t", []indexedError{{0, named(kerr.MessageTooLarge)}})); got != "MESSAGE_TOO_LARGE" {
		t.Errorf("publish error.type %q, want MESSAGE_TOO_LARGE", got)
	}
	if got := middleware.ErrorType(publishError("t", []indexedError{{0, kgo.ErrRecordTimeout}})); got != "_OTHER" {
		t.Errorf("publish error.type %q, want _OTHER for a plain error", got)
	}
	other := errors.New("dial tcp: connection refused")
	if named(other) != other || named(nil) != nil {
		t.Error("named changed an error that holds no Kafka protocol error")
	}
}

// TestNamedClientErrors: kgo's plain client errors are recorded by their Go
// identifiers, not as "_OTHER", and stay what errors.Is finds.
func TestNamedClientErrors(t *testing.T) {
	for _, want := range []error{kgo.ErrRecordTimeout, kgo.ErrRecordRetries, kgo.ErrMaxBuffered, kgo.ErrAborting, kgo.ErrClientClosed} {
		err := named(fmt.Errorf("message 3: %w", want))
		got := middleware.ErrorType(fmt.Errorf("publish: %w", err))
		if !strings.HasPrefix(got, "kgo.Err") || !errors.Is(err, want) {
			t.Errorf("%v: error.type %q (want kgo.Err...), errors.Is %v", want, got, errors.Is(err, want))
		}
	}
	if got := middleware.ErrorType(named(kgo.ErrRecordTimeout)); got != "kgo.ErrRecordTimeout" {
		t.Errorf("error.type %q, want kgo.ErrRecordTimeout", got)
	}
	// A protocol error wins over the client error that carries it.
	if got := middleware.ErrorType(named(errors.Join(kgo.ErrRecordRetries, kerr.NotLeaderForPartition))); got != "NOT_LEADER_FOR_PARTITION" {
		t.Errorf("error.type %q, want NOT_LEADER_FOR_PARTITION", got)
	}
}

// TestNamedNilAllocatesNothing: the hooks call named for every produced
// record, nearly all of which succeed.
func TestNamedNilAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if named(nil) != nil {
			t.Fatal("named(nil) != nil")
		}
	}); n != 0 {
		t.Errorf("named(nil) allocates %v times", n)
	}
}
