package kafka_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/internal/testtel"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// refuseFetches makes the next n Fetch requests c answers fail with
// TOPIC_AUTHORIZATION_FAILED on every partition they ask for: an error kgo
// does not retry internally but hands to the poll in fetches.Errors().
func refuseFetches(c *kfake.Cluster, n int64) *atomic.Int64 {
	var refused atomic.Int64
	c.ControlKey(kmsg.Fetch.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.FetchRequest)
		if refused.Load() >= n {
			c.DropControl() // this request and the next are answered normally
			return nil, nil, false
		}
		if len(req.Topics) == 0 {
			return nil, nil, false // nothing to refuse: answered normally
		}
		// Once kept, a control stays: it drops itself above.
		c.KeepControl()
		refused.Add(1)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return &refused
}

// TestFailedPollObserved: a poll whose fetches failed (the broker refused
// them) is one receive operation.duration point with error.type and one
// receive span with error status, per poll however many partitions failed,
// and every record is still handled once the fetches succeed.
//
// The cluster is a kfake of its own, not brokers.Kafka's: the test needs
// its ControlKey to make the broker refuse fetches.
func TestFailedPollObserved(t *testing.T) {
	topic := "pollfail"
	c := faultCluster(t, topic, 4)
	seeds := c.ListenAddrs()
	msgs := publishN(t, seeds, topic, 20, 8)

	tel := testtel.New(t)
	rec := tel.Spans

	const refusals = 2
	refused := refuseFetches(c, refusals)
	// Without fetch sessions every Fetch names its partitions, so the
	// refusal can answer for each of them.
	cl := newConsumer(t, seeds, topic, "pollfail-group", kgo.DisableFetchSessions())
	var got handled
	sub := tel.Subscriber(kafka.NewSubscriber(cl))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- sub.Subscribe(ctx, topic, middleware.HandlerFunc(func(_ context.Context, msg *middleware.Message) error {
			got.add(msg, true)
			return nil
		}))
	}()
	got.waitAll(t, msgs)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Subscribe = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Subscribe did not return")
	}
	if n := refused.Load(); n != refusals {
		t.Fatalf("%d Fetch requests refused, want %d", n, refusals)
	}

	failedPoints := map[string]uint64{}
	var okPoints uint64
	for _, dp := range tel.OperationPoints(t, "receive") {
		if et, ok := dp.Attributes.Value("error.type"); ok {
			failedPoints[et.AsString()] += dp.Count
			if g, _ := dp.Attributes.Value("messaging.consumer.group.name"); g.AsString() != "pollfail-group" {
				t.Errorf("failed receive point without the consumer group: %v", dp.Attributes.ToSlice())
			}
		} else {
			okPoints += dp.Count
		}
	}
	// The client may hand one refused fetch to a poll and the other to the
	// next, or both to one poll: one failed receive per poll.
	var failed uint64
	for et, n := range failedPoints {
		failed += n
		// The end of Subscribe's context is no failure.
		if et != "TOPIC_AUTHORIZATION_FAILED" {
			t.Errorf("a failed receive with error.type %q, want the Kafka error's name TOPIC_AUTHORIZATION_FAILED", et)
		}
	}
	t.Logf("failed receives by error.type: %v (%d refused fetches)", failedPoints, refusals)
	if failed < 1 || failed > refusals || okPoints == 0 {
		t.Errorf("receive points: failed by error.type %v, %d without error; want 1 to %d failed polls and the successful ones", failedPoints, okPoints, refusals)
	}

	var failedSpans uint64
	for _, s := range rec.Ended() {
		if s.Name() != "receive "+topic || s.Status().Code != codes.Error {
			continue
		}
		failedSpans++
		if s.SpanKind() != trace.SpanKindClient || !strings.Contains(s.Status().Description, "TOPIC_AUTHORIZATION_FAILED") {
			t.Errorf("failed receive span: kind %v status %+v", s.SpanKind(), s.Status())
		}
		for _, a := range s.Attributes() {
			if a.Key == "messaging.batch.message_count" {
				t.Error("a failed poll's span has messaging.batch.message_count")
			}
		}
	}
	if failedSpans != failed {
		t.Errorf("%d failed receive spans for %d failed receive points", failedSpans, failed)
	}
}

// A group the broker denies for good (an ACL) leaves the client nothing to
// consume: Subscribe returns the refusal instead of polling until its
// context ends, with the failed polls reported meanwhile.
func TestGroupRefusedEndsSubscribe(t *testing.T) {
	topic := "groupauth"
	c := faultCluster(t, topic, 1)
	seeds := c.ListenAddrs()
	publishN(t, seeds, topic, 1, 1)
	c.ControlKey(kmsg.JoinGroup.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := kreq.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil, true
	})
	cl := newConsumer(t, seeds, topic, "denied")
	tel := testtel.New(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := tel.Subscriber(kafka.NewSubscriber(cl)).Subscribe(ctx, topic, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		t.Error("a record was handled although the group is denied")
		return nil
	}))
	if ctx.Err() != nil || !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("Subscribe = %v (ctx %v), want GROUP_AUTHORIZATION_FAILED before the context ends", err, ctx.Err())
	}
	failed := 0
	for _, dp := range tel.OperationPoints(t, "receive") {
		if et, ok := dp.Attributes.Value("error.type"); ok && et.AsString() == "GROUP_AUTHORIZATION_FAILED" {
			failed += int(dp.Count)
		}
	}
	if failed == 0 {
		t.Error("the refused poll was not reported as a failed receive")
	}
}
