package rabbitmq

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
)

// TestPublishConfirmRequired: with confirms off, a Publish whose context
// requires confirms goes through a second channel, in confirm mode, opened
// at the first such call: an unroutable message fails there, while the
// unmarked publishes stay unconfirmed on the first channel.
func TestPublishConfirmRequired(t *testing.T) {
	conn, q := setup(t, nil)
	pub := NewPublisher(conn)
	defer pub.Close()
	ctx := t.Context()
	marked := middleware.RequireConfirm(ctx)
	unroutable := "nowhere-" + t.Name()

	// Unmarked: unconfirmed as ever, so the broker drops it unseen.
	if err := pub.Publish(ctx, unroutable, &middleware.Message{ID: "dropped"}); err != nil {
		t.Fatalf("unconfirmed publish to an unbound routing key: %v", err)
	}
	if pub.returns != nil || pub.confirmed.ch != nil {
		t.Fatal("an unmarked Publish put a channel in confirm mode")
	}

	err := pub.Publish(marked, unroutable, &middleware.Message{ID: "lost"})
	if err == nil || !strings.Contains(err.Error(), "returned by the broker: 312 NO_ROUTE") || !strings.Contains(err.Error(), `id "lost"`) {
		t.Fatalf("marked publish to an unbound routing key: %v, want it returned", err)
	}
	if got := middleware.ErrorType(err); got != "no-route" {
		t.Errorf("returned message's error.type %q, want no-route", got)
	}
	first := pub.confirmed.ch
	if first == nil || pub.confirmed.returns == nil {
		t.Fatal("no confirm channel with a returns reader after a marked Publish")
	}
	if err := pub.Publish(marked, q, &middleware.Message{ID: "kept", Body: []byte("kept")}); err != nil {
		t.Fatalf("marked publish to a bound queue: %v", err)
	}
	if pub.confirmed.ch != first {
		t.Fatal("the confirm channel was not reused")
	}
	if err := pub.Publish(ctx, q, &middleware.Message{ID: "plain", Body: []byte("plain")}); err != nil {
		t.Fatalf("unmarked publish to a bound queue: %v", err)
	}
	if pub.returns != nil {
		t.Fatal("the unconfirmed channel got a returns reader")
	}
	got := make(chan *middleware.Message, 4)
	subscribe(t, ctx, NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	ids := map[string]bool{}
	for _, m := range receive(t, got, 2, 10*time.Second) {
		ids[m.ID] = true
	}
	if !ids["kept"] || !ids["plain"] {
		t.Fatalf("received %v, want kept and plain", ids)
	}
	quiet(t, got, 200*time.Millisecond)

	// Close closes both channels and ends the confirm channel's reader.
	r := pub.confirmed.returns
	if err := pub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-r.done:
	default:
		t.Fatal("the confirm channel's returns reader is running after Close")
	}
	if !first.IsClosed() || pub.confirmed.ch != nil || pub.ch != nil {
		t.Fatal("a channel is open after Close")
	}
}

// TestPublishConfirmRequiredReopens: the broker closes the confirm channel
// on a publish to a missing exchange; that publish fails, and the next
// marked one opens a new confirm channel.
func TestPublishConfirmRequiredReopens(t *testing.T) {
	conn, q := setup(t, nil)
	pub := NewPublisher(conn, WithExchange("otelmq-no-such-exchange"))
	defer pub.Close()
	marked := middleware.RequireConfirm(t.Context())
	err := pub.Publish(marked, q, &middleware.Message{ID: "lost"})
	if err == nil {
		t.Fatal("marked publish to a missing exchange succeeded")
	}
	// The broker's reason, not only that the channel closed.
	var reason *amqp.Error
	if !errors.As(err, &reason) || reason.Code != amqp.NotFound {
		t.Errorf("error %q does not carry the broker's 404 NOT_FOUND", err)
	}
	old := pub.confirmed.returns
	eventually(t, 10*time.Second, "the returns reader of the closed confirm channel to end", func() bool {
		select {
		case <-old.done:
			return true
		default:
			return false
		}
	})

	pub.cfg.exchange = ""
	if err := pub.Publish(marked, q, &middleware.Message{ID: "ok"}); err != nil {
		t.Fatalf("marked publish on a new confirm channel: %v", err)
	}
	if pub.confirmed.ch == nil || pub.confirmed.ch.IsClosed() || pub.confirmed.returns == old {
		t.Fatal("no new confirm channel")
	}
	if n := queueDepth(t, conn, q); n != 1 {
		t.Fatalf("queue holds %d messages, want 1", n)
	}
}

// TestPublishConfirmRequiredWithConfirms: with confirms on every Publish is
// confirmed on the one channel; a marked one opens no second.
func TestPublishConfirmRequiredWithConfirms(t *testing.T) {
	conn, q := setup(t, nil)
	pub := NewPublisher(conn, WithConfirms(true))
	defer pub.Close()
	if err := pub.Publish(middleware.RequireConfirm(t.Context()), q, &middleware.Message{ID: "m"}); err != nil {
		t.Fatal(err)
	}
	if pub.ch == nil || pub.returns == nil || pub.confirmed.ch != nil {
		t.Fatal("with confirms on, a marked Publish did not use the Publisher's confirm channel alone")
	}
}
