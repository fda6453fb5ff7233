package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/middleware"
)

// named gives err, when it holds a Kafka protocol error, that error's name
// (TOPIC_AUTHORIZATION_FAILED, NOT_LEADER_FOR_PARTITION) as its error.type:
// every such error has the Go type *kerr.Error, so middleware.ErrorType
// would record that for all of them alike. A kgo client error (a record
// that timed out, a client closed) is named after its Go identifier, as
// "kgo.ErrRecordTimeout": they are plain errors.New values, which
// middleware.ErrorType could only call "_OTHER". errors.Is and errors.As see
// through the wrapper.
func named(err error) error {
	if err == nil {
		// Before ke: errors.As moves it to the heap, and a record that
		// succeeded should not pay for that.
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return middleware.NamedError(err, ke.Message)
	}
	for _, c := range clientErrors {
		if errors.Is(err, c.err) {
			return middleware.NamedError(err, c.name)
		}
	}
	return err
}

// clientErrors are kgo's exported errors that are plain values, with the
// names error.type records for them.
var clientErrors = []struct {
	err  error
	name string
}{
	{kgo.ErrRecordTimeout, "kgo.ErrRecordTimeout"},
	{kgo.ErrRecordRetries, "kgo.ErrRecordRetries"},
	{kgo.ErrMaxBuffered, "kgo.ErrMaxBuffered"},
	{kgo.ErrAborting, "kgo.ErrAborting"},
	{kgo.ErrClientClosed, "kgo.ErrClientClosed"},
}

// refusals are the protocol errors a poll can fail with that retrying does
// not cure and that leave the client nothing to consume: the broker denies
// it the group or the cluster (an ACL), or the group ID is invalid.
// TOPIC_AUTHORIZATION_FAILED is not among them: a fetch gets it per
// partition, and kgo retries it. Nor is SASL_AUTHENTICATION_FAILED:
// refreshed credentials (MSK IAM, OAUTHBEARER tokens) can fail for a
// moment.
var refusals = []*kerr.Error{
	kerr.GroupAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.InvalidGroupID,
}

// refused reports whether err holds one of refusals.
func refused(err error) bool {
	for _, r := range refusals {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// tooLarge reports whether a produce failed because what was sent is
// larger than the broker (or the client's limit) takes. The broker judges
// a whole batch, and kgo fails every record of a batch too large, so
// Publish marks the error middleware.Permanent only for a call of one
// record (as RelayHandler and DeadLetter publish), which producing again
// fails again.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) || errors.Is(err, kerr.InvalidRecord)
}
