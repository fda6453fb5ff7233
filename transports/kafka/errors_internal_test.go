package kafka

import (
	"errors"
	"fmt"
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
