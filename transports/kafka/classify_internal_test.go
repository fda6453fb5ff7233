package kafka

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/propagation"
)

// TestRefused: the poll errors that end a Subscribe are the ones retrying
// cannot cure (the group or cluster denied, an invalid group ID), wrapped
// or not; a per-partition topic denial, a SASL failure and transient
// errors are retried.
func TestRefused(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{kerr.GroupAuthorizationFailed, true},
		{kerr.ClusterAuthorizationFailed, true},
		{kerr.InvalidGroupID, true},
		{fmt.Errorf("poll: %w", kerr.InvalidGroupID), true},
		{kerr.TopicAuthorizationFailed, false},
		{kerr.SaslAuthenticationFailed, false},
		{kerr.NotLeaderForPartition, false},
		{errors.New("dial tcp: connection refused"), false},
	} {
		if got := refused(tt.err); got != tt.want {
			t.Errorf("refused(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestTooLarge: a produce failed for what was sent when the broker says
// the message or the record batch is too large, or the record invalid,
// wrapped or not (Publish marks those Permanent for a single record);
// other produce errors are not.
func TestTooLarge(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{kerr.MessageTooLarge, true},
		{kerr.RecordListTooLarge, true},
		{kerr.InvalidRecord, true},
		{fmt.Errorf("produce: %w", kerr.InvalidRecord), true},
		{kerr.NotEnoughReplicas, false},
		{kgo.ErrRecordTimeout, false},
	} {
		if got := tooLarge(tt.err); got != tt.want {
			t.Errorf("tooLarge(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestEmptyValueIsNoTombstone: a tombstone is a record with a nil value;
// an empty value is an ordinary (empty) message and is not recorded as a
// tombstone.
func TestEmptyValueIsNoTombstone(t *testing.T) {
	recs := []*kgo.Record{
		{Topic: "orders", Partition: 1, Offset: 5, Value: []byte{}},
		{Topic: "orders", Partition: 1, Offset: 6, Value: nil},
	}
	msgs := messages(recs, "")
	tombstone := propagation.KafkaTombstone(true)
	for i, want := range []bool{false, true} {
		got := slices.ContainsFunc(msgs[i].Attributes(), func(a attribute.KeyValue) bool { return a.Key == tombstone.Key })
		if got != want {
			t.Errorf("record with value %#v: tombstone attribute %v, want %v (attributes %v)", recs[i].Value, got, want, msgs[i].Attributes())
		}
		if (msgs[i].Body == nil) != want {
			t.Errorf("record with value %#v: body %#v", recs[i].Value, msgs[i].Body)
		}
	}
}
