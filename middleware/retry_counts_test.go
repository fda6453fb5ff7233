package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/otelmq/otelmq/middleware"
)

// failingRecorder is a handler that always fails, recording the Attempts
// each call saw, and a dead-letter publisher that keeps what it is given.
type failingRecorder struct {
	attempts []int
	dead     []*middleware.Message
}

func (f *failingRecorder) Handle(_ context.Context, m *middleware.Message) error {
	f.attempts = append(f.attempts, m.Attempts())
	return errDeclined
}

func (f *failingRecorder) Publish(_ context.Context, _ string, msgs ...*middleware.Message) error {
	f.dead = append(f.dead, msgs...)
	return nil
}

// TestRetryDefaults: without WithAttempts a message is tried 3 times in
// all, in place or by the broker's redelivery.
func TestRetryDefaults(t *testing.T) {
	noWait := middleware.WithBackoff(func(int) time.Duration { return 0 })
	f := &failingRecorder{}
	msg := middleware.NewMessage(nil)
	msg.DeliveryCount = 1
	h := middleware.ChainHandler(f, middleware.DeadLetter(f, "dlq"), middleware.Retry(noWait))
	if err := h.Handle(context.Background(), msg); err != nil {
		t.Fatalf("dead-lettered message returned %v", err)
	}
	if !slices.Equal(f.attempts, []int{1, 2, 3}) || len(f.dead) != 1 || f.dead[0].Headers[middleware.HeaderDLQAttempts] != "3" {
		t.Fatalf("in place: attempts %v, %d dead-lettered; want [1 2 3] and one with attempts 3", f.attempts, len(f.dead))
	}

	for count, wantDead := range map[int]bool{1: false, 2: false, 3: true} {
		f := &failingRecorder{}
		msg := middleware.NewMessage(nil)
		msg.DeliveryCount = count
		h := middleware.ChainHandler(f, middleware.DeadLetter(f, "dlq"), middleware.Retry(middleware.WithBrokerRedelivery()))
		err := h.Handle(context.Background(), msg)
		if dead := len(f.dead) == 1; dead != wantDead || (err == nil) != wantDead {
			t.Errorf("broker redelivery, delivery %d: dead-lettered %v (err %v), want %v", count, dead, err, wantDead)
		}
	}
}

// TestRetryBrokerRedeliveryLastAttempt: with broker redelivery the failure
// on the delivery that is the last attempt is final (DeadLetter takes it),
// and earlier ones are left to the broker; the handler runs once per
// delivery either way.
func TestRetryBrokerRedeliveryLastAttempt(t *testing.T) {
	for count := 1; count <= 4; count++ {
		f := &failingRecorder{}
		msg := middleware.NewMessage(nil)
		msg.DeliveryCount = count
		h := middleware.ChainHandler(f, middleware.DeadLetter(f, "dlq"),
			middleware.Retry(middleware.WithAttempts(3), middleware.WithBrokerRedelivery()))
		err := h.Handle(context.Background(), msg)
		wantDead := count >= 3
		if dead := len(f.dead) == 1; dead != wantDead {
			t.Errorf("delivery %d of 3: dead-lettered %v (err %v), want %v", count, dead, err, wantDead)
		}
		if !wantDead && !errors.Is(err, errDeclined) {
			t.Errorf("delivery %d of 3 returned %v, want the failure for the broker to redeliver", count, err)
		}
		if !slices.Equal(f.attempts, []int{count}) {
			t.Errorf("delivery %d of 3: attempts %v, want [%d]", count, f.attempts, count)
		}
	}
}

// TestRetryInPlaceCountsEarlierDeliveries: a message the broker redelivers
// to an in-place Retry (after a crash, say) counts the attempts of its
// earlier deliveries, and DeadLetter reports them all.
func TestRetryInPlaceCountsEarlierDeliveries(t *testing.T) {
	noWait := middleware.WithBackoff(func(int) time.Duration { return 0 })
	f := &failingRecorder{}
	msg := middleware.NewMessage(nil)
	msg.DeliveryCount = 2
	h := middleware.ChainHandler(f, middleware.DeadLetter(f, "dlq"), middleware.Retry(middleware.WithAttempts(3), noWait))
	if err := h.Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.attempts, []int{4, 5, 6}) {
		t.Errorf("second delivery of 3 attempts each: attempts %v, want [4 5 6]", f.attempts)
	}
	if len(f.dead) != 1 || f.dead[0].Headers[middleware.HeaderDLQAttempts] != "6" {
		t.Errorf("dead-lettered %d, want one with attempts 6", len(f.dead))
	}
}

// TestRetryEventsAndAttemptSpans: each in-place retry leaves an
// otelmq.retry event on the process span, naming the attempt that failed
// and its error.type, and each attempt after the first is a span carrying
// its number and, when it failed, its error.
func TestRetryEventsAndAttemptSpans(t *testing.T) {
	h := newHarness(t)
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	calls := 0
	retry := middleware.Retry(middleware.WithAttempts(3), middleware.WithBackoff(func(int) time.Duration { return 0 }))
	h.consume("q", 1, retry(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		if calls++; calls < 3 {
			return middleware.NamedError(errDeclined, "declined")
		}
		return nil
	})).Handle)

	var events []string
	for _, e := range h.one("process q").Events() {
		if e.Name != "otelmq.retry" {
			continue
		}
		var attempt int64
		var errorType string
		for _, a := range e.Attributes {
			switch a.Key {
			case middleware.AttemptKey:
				attempt = a.Value.AsInt64()
			case "error.type":
				errorType = a.Value.AsString()
			}
		}
		events = append(events, fmt.Sprintf("%d:%s", attempt, errorType))
	}
	if !slices.Equal(events, []string{"1:declined", "2:declined"}) {
		t.Errorf("retry events %v, want [1:declined 2:declined]", events)
	}
	a2, a3 := h.one("attempt 2"), h.one("attempt 3")
	if v, _ := attr(a2, string(middleware.AttemptKey)); v.AsInt64() != 2 {
		t.Errorf("attempt 2 span: attempt %v", v.Emit())
	}
	if v, _ := attr(a3, string(middleware.AttemptKey)); v.AsInt64() != 3 {
		t.Errorf("attempt 3 span: attempt %v", v.Emit())
	}
	if v, _ := attr(a2, "error.type"); a2.Status().Code != codes.Error || v.AsString() != "declined" {
		t.Errorf("failed attempt 2 span: status %v, error.type %q", a2.Status(), v.AsString())
	}
	if a3.Status().Code == codes.Error {
		t.Errorf("successful attempt 3 span has status %v", a3.Status())
	}
}

// TestRetryEventErrorTypeRedacted: the error.type of a retry event goes
// through the Tracing's redactor, as the process span's does.
func TestRetryEventErrorTypeRedacted(t *testing.T) {
	h := newHarness(t, middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == "error.type" {
			return kv.Key.String("redacted")
		}
		return kv
	}))
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	calls := 0
	retry := middleware.Retry(middleware.WithAttempts(2), middleware.WithBackoff(func(int) time.Duration { return 0 }))
	h.consume("q", 1, retry(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		if calls++; calls < 2 {
			return middleware.NamedError(errDeclined, "card-4111-declined")
		}
		return nil
	})).Handle)
	n := 0
	for _, e := range h.one("process q").Events() {
		for _, a := range e.Attributes {
			if a.Key == "error.type" {
				n++
				if a.Value.AsString() != "redacted" {
					t.Errorf("event %s records error.type %q past the redactor", e.Name, a.Value.AsString())
				}
			}
		}
	}
	if n != 1 {
		t.Errorf("%d events with error.type, want the one retry event", n)
	}
}

// TestRetryStopsAtPermanentLaterAttempt: in place, a failure marked
// Permanent on an attempt after the first ends the retries there.
func TestRetryStopsAtPermanentLaterAttempt(t *testing.T) {
	calls := 0
	h := middleware.Retry(middleware.WithAttempts(5), middleware.WithBackoff(func(int) time.Duration { return 0 }))(
		middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			if calls++; calls == 1 {
				return errDeclined
			}
			return middleware.Permanent(errDeclined)
		}))
	err := h.Handle(context.Background(), middleware.NewMessage(nil))
	if calls != 2 || !middleware.IsPermanent(err) {
		t.Fatalf("handler ran %d times, returned %v; want 2 and the permanent failure", calls, err)
	}
}

// TestDeadLetterWaitsForMaxDeliveries: with WithMaxDeliveries(3) the
// failures of deliveries 1 and 2 are left to the broker and that of
// delivery 3 is dead-lettered.
func TestDeadLetterWaitsForMaxDeliveries(t *testing.T) {
	for count := 1; count <= 3; count++ {
		f := &failingRecorder{}
		msg := middleware.NewMessage(nil)
		msg.DeliveryCount = count
		err := middleware.DeadLetter(f, "dlq", middleware.WithMaxDeliveries(3))(f).Handle(context.Background(), msg)
		wantDead := count == 3
		if dead := len(f.dead) == 1; dead != wantDead || (err == nil) != wantDead {
			t.Errorf("delivery %d of 3: dead-lettered %v (err %v), want %v", count, dead, err, wantDead)
		}
	}
}
