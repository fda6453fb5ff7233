package kafka

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPollError: a poll's errors are joined once each, the end of the
// poll's context and a closed client are no failures, and a poll without
// errors costs no allocation.
func TestPollError(t *testing.T) {
	part := func(p int32, err error) kgo.FetchPartition {
		return kgo.FetchPartition{Partition: p, Err: err, Records: []*kgo.Record{{Partition: p}}}
	}
	fetches := func(parts ...kgo.FetchPartition) kgo.Fetches {
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: parts}}}}
	}

	ok := fetches(part(0, nil), part(1, nil))
	if err := pollError(ok); err != nil {
		t.Errorf("pollError of a poll without errors = %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = pollError(ok) }); n != 0 {
		t.Errorf("pollError allocates %v times on a poll without errors", n)
	}

	ended := append(fetches(part(0, nil)), kgo.NewErrFetch(context.Canceled)...)
	ended = append(ended, kgo.NewErrFetch(context.DeadlineExceeded)...)
	ended = append(ended, kgo.NewErrFetch(kgo.ErrClientClosed)...)
	if err := pollError(ended); err != nil {
		t.Errorf("pollError of an interrupted poll = %v, want nil", err)
	}

	failed := fetches(part(0, kerr.TopicAuthorizationFailed), part(1, nil), part(2, kerr.TopicAuthorizationFailed), part(3, kerr.UnknownServerError))
	err := pollError(failed)
	if !errors.Is(err, kerr.TopicAuthorizationFailed) || !errors.Is(err, kerr.UnknownServerError) {
		t.Fatalf("pollError = %v, want both errors", err)
	}
	if joined, _ := err.(interface{ Unwrap() []error }); joined == nil || len(joined.Unwrap()) != 2 {
		t.Errorf("pollError = %q, want each distinct error once", err)
	}
}
