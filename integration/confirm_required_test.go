package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

// The tests here use a RabbitMQ Publisher with its defaults, publisher
// confirms off: Relay and DeadLetter settle their source message on a nil
// Publish, so they mark its context (middleware.RequireConfirm) and the
// Publisher confirms that publish all the same. Unconfirmed, a publish to
// a missing exchange or an unbound routing key returns nil and the broker
// drops the message.

// relayRun relays queue "in" of src to dst's destination until stop says
// so, given the handler errors so far and src, or until the timeout, and
// returns the handler errors.
func relayRun(t *testing.T, src *memory.Broker, dst middleware.Publisher, destination string, stop func(errs []error) bool) []error {
	t.Helper()
	var (
		mu   sync.Mutex
		errs []error
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Relay's handler, as the source runs it, with its errors recorded.
	recording := middleware.SubscriberFunc(func(ctx context.Context, source string, h middleware.Handler) error {
		return src.Subscribe(ctx, source, middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			err := h.Handle(ctx, m)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return err
		}))
	})
	done := make(chan error, 1)
	go func() { done <- middleware.Relay(ctx, recording, "in", dst, destination) }()
	snapshot := func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), errs...)
	}
	for deadline := time.Now().Add(20 * time.Second); !stop(snapshot()) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Relay: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Relay did not return after its context ended")
	}
	return snapshot()
}

func publishN(t *testing.T, b *memory.Broker, queue string, n int) {
	t.Helper()
	for i := range n {
		if err := b.Publish(context.Background(), queue, middleware.NewMessage(fmt.Appendf(nil, "m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelayToMissingRabbitMQExchangeKeepsSource: Relay to an exchange that
// does not exist (never declared, or deleted under a running relay) must
// not settle the source messages, and says why. Unconfirmed, every
// Publish returned nil before the broker closed the channel with 404 and
// dropped the message, and Relay acked the source: all 5 lost.
func TestRelayToMissingRabbitMQExchangeKeepsSource(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	const n = 5
	src := memory.New()
	publishN(t, src, "in", n)
	pub := rabbitmq.NewPublisher(conn, rabbitmq.WithExchange("otelmq-no-such-exchange-"+t.Name()))
	defer pub.Close()

	errs := relayRun(t, src, pub, "orders", func(errs []error) bool {
		ready, inFlight := src.Len("in")
		return len(errs) >= 2*n || ready+inFlight == 0
	})
	if ready, inFlight := src.Len("in"); ready+inFlight != n {
		t.Errorf("source holds %d ready, %d in flight: want all %d kept", ready, inFlight, n)
	}
	if len(errs) == 0 {
		t.Fatal("Relay's handler returned no error: the publishes to a missing exchange were taken as done")
	}
	t.Logf("%d handler errors, first: %v", len(errs), errs[0])
	if !strings.Contains(errs[0].Error(), "otelmq: relaying") {
		t.Errorf("handler error %q does not come from Relay", errs[0])
	}
}

// TestDeadLetterToUnroutableRabbitMQDefault is
// TestDeadLetterToUnroutableRabbitMQ with a Publisher without WithConfirms:
// DeadLetter's publish is confirmed and mandatory anyway, so a dead-letter
// queue nothing routes to fails it and the message is kept.
func TestDeadLetterToUnroutableRabbitMQDefault(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	src := memory.New()
	if err := src.Publish(context.Background(), "in", middleware.NewMessage([]byte("poison"))); err != nil {
		t.Fatal(err)
	}
	pub := rabbitmq.NewPublisher(conn)
	defer pub.Close()
	failing := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return errors.New("bad payload") })
	h := middleware.ChainHandler(failing, middleware.DeadLetter(pub, "otelmq-no-such-queue-"+t.Name()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- src.Subscribe(ctx, "in", middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			err := h.Handle(ctx, m)
			select {
			case results <- err:
				cancel()
			default:
			}
			return err
		}))
	}()
	var dlqErr error
	select {
	case dlqErr = <-results:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler never ran")
	}
	<-done
	if dlqErr == nil {
		t.Fatal("the dead-letter publish to an unbound routing key succeeded")
	}
	if !strings.Contains(dlqErr.Error(), "returned by the broker: 312 NO_ROUTE") {
		t.Errorf("dead-letter error %q, want the message returned as unroutable", dlqErr)
	}
	if ready, inFlight := src.Len("in"); ready+inFlight != 1 {
		t.Errorf("source holds %d ready, %d in flight: want the message kept", ready, inFlight)
	}
}

// TestRelayToRabbitMQDefaultDelivers: through the confirmed publishes, a
// Relay to a bound queue delivers every message once and settles the
// source.
func TestRelayToRabbitMQDefaultDelivers(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	q := brokers.RabbitMQQueue(t, conn, nil)
	const n = 50
	src := memory.New(memory.WithConcurrency(4))
	publishN(t, src, "in", n)
	pub := rabbitmq.NewPublisher(conn)
	defer pub.Close()

	errs := relayRun(t, src, pub, q, func([]error) bool {
		ready, inFlight := src.Len("in")
		return ready+inFlight == 0
	})
	if len(errs) > 0 {
		t.Errorf("%d relay errors, first: %v", len(errs), errs[0])
	}
	if ready, inFlight := src.Len("in"); ready+inFlight != 0 {
		t.Errorf("source holds %d ready, %d in flight: want every message settled", ready, inFlight)
	}

	var mu sync.Mutex
	seen := map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- rabbitmq.NewSubscriber(conn).Subscribe(ctx, q, middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
			mu.Lock()
			seen[string(m.Body)]++
			mu.Unlock()
			return nil
		}))
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, c := range seen {
			total += c
		}
		return total
	}
	for deadline := time.Now().Add(20 * time.Second); count() < n && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show up
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Subscribe: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if body := fmt.Sprintf("m%d", i); seen[body] != 1 {
			t.Errorf("%s received %d times, want once", body, seen[body])
		}
	}
	if len(seen) != n {
		t.Errorf("received %d distinct messages, want %d", len(seen), n)
	}
}
