package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// countingExporter discards spans but counts them, so a soak pays for the
// full span pipeline (batch processor, export) without keeping the spans in
// memory the way a recorder would.
type countingExporter struct{ n atomic.Int64 }

func (e *countingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.n.Add(int64(len(spans)))
	return nil
}

func (e *countingExporter) Shutdown(context.Context) error { return nil }

// batchedTracerProvider is an SDK provider with a batch span processor into
// a counting, discarding exporter, shut down (and so flushed) at t's end
// unless the test shuts it down first.
func batchedTracerProvider(t *testing.T) (*sdktrace.TracerProvider, *countingExporter) {
	exp := &countingExporter{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

// chaos is a handler that fails a seeded-random share of its calls and
// counts, per message index, the calls that returned nil. Bodies are
// prefix + index.
type chaos struct {
	prefix            string
	failPct, panicPct int // out of 100; the panic share comes first

	mu       sync.Mutex
	rng      *rand.Rand
	ok       []int32
	distinct int
	calls    int
	failures int
	panics   int
	foreign  int
	// late counts calls made by a generation whose Subscribe had already
	// returned: Subscribe promises to drain its handlers before returning.
	late    int
	stopped map[int]bool
	// first is when the first call came, last the latest, and maxGap the
	// longest pause between two calls: where a transport stalls.
	first, last time.Time
	maxGap      time.Duration
}

func newChaos(prefix string, n, failPct, panicPct int, seed uint64) *chaos {
	return &chaos{prefix: prefix, failPct: failPct, panicPct: panicPct,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ok: make([]int32, n), stopped: map[int]bool{}}
}

func (c *chaos) body(i int) string { return c.prefix + strconv.Itoa(i) }

// handler returns the handler of one subscriber generation.
func (c *chaos) handler(gen int) middleware.Handler {
	return middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
		i, err := strconv.Atoi(strings.TrimPrefix(string(m.Body), c.prefix))
		c.mu.Lock()
		c.calls++
		now := time.Now()
		if c.first.IsZero() {
			c.first = now
		} else if gap := now.Sub(c.last); gap > c.maxGap {
			c.maxGap = gap
		}
		c.last = now
		if c.stopped[gen] {
			c.late++
		}
		if err != nil || i < 0 || i >= len(c.ok) {
			// Not ours; settle it so it cannot loop, and fail the test later.
			c.foreign++
			c.mu.Unlock()
			return nil
		}
		roll := c.rng.IntN(100)
		switch {
		case roll < c.panicPct:
			c.panics++
			c.mu.Unlock()
			panic(fmt.Sprintf("chaos: panic on %s", m.Body))
		case roll < c.panicPct+c.failPct:
			c.failures++
			c.mu.Unlock()
			return fmt.Errorf("chaos: failure on %s", m.Body)
		}
		if c.ok[i] == 0 {
			c.distinct++
		}
		c.ok[i]++
		c.mu.Unlock()
		return nil
	})
}

func (c *chaos) markStopped(gen int) {
	c.mu.Lock()
	c.stopped[gen] = true
	c.mu.Unlock()
}

func (c *chaos) progress() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.distinct
}

// waitDistinct waits until n distinct messages were handled successfully,
// failing the test at the deadline or when Subscribe returns early.
func (c *chaos) waitDistinct(t *testing.T, n int, deadline time.Time, errc <-chan error) {
	t.Helper()
	for {
		got := c.progress()
		if got >= n {
			return
		}
		select {
		case err := <-errc:
			t.Fatalf("Subscribe returned before %d messages were handled (%d were): %v", n, got, err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages handled successfully by the deadline", got, n)
		}
	}
}

// summary returns the distinct successes, the successful handlings beyond
// the first per message, and the missing message indexes (up to 10).
func (c *chaos) summary() (distinct, duplicates int, missing []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.ok {
		switch {
		case n == 0:
			if len(missing) < 10 {
				missing = append(missing, i)
			}
		case n > 1:
			duplicates += int(n - 1)
		}
	}
	return c.distinct, duplicates, missing
}

// running is a Subscribe call in the background.
type running struct {
	cancel context.CancelFunc
	errc   chan error
}

func startSubscribe(sub middleware.Subscriber, source string, h middleware.Handler) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- sub.Subscribe(ctx, source, h) }()
	return r
}

// stop cancels the Subscribe and requires it to return nil within limit.
func (r *running) stop(t *testing.T, limit time.Duration) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.errc:
		if err != nil {
			t.Fatalf("Subscribe returned %v after cancel, want nil", err)
		}
	case <-time.After(limit):
		t.Fatalf("Subscribe did not return within %s of cancel", limit)
	}
}

// publishAll publishes bodies 0..n-1 in batches through pub.
func publishAll(t *testing.T, pub middleware.Publisher, dest string, c *chaos, n, batch int) {
	t.Helper()
	ctx := context.Background()
	for lo := 0; lo < n; lo += batch {
		msgs := make([]*middleware.Message, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			msgs = append(msgs, middleware.NewMessage([]byte(c.body(i))))
		}
		if err := pub.Publish(ctx, dest, msgs...); err != nil {
			t.Fatalf("publishing messages %d..%d: %v", lo, lo+len(msgs)-1, err)
		}
	}
}

// TestSoakAtLeastOnce pushes thousands of messages through each transport
// with tracing on, a handler that fails 10% and panics 1% of the time, and a
// consumer restart half-way, and requires every message to be handled
// successfully at least once.
func TestSoakAtLeastOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test (about a minute per transport): skipped under -short only; CI runs it")
	}
	for name, h := range harnesses() {
		t.Run(name, func(t *testing.T) {
			n := 10_000
			setup := h.Setup
			switch name {
			case "kafka":
				setup = func(t *testing.T) Env { return kafkaEnvWith(t, kafka.WithRetryBackoff(0)) }
			}
			soak(t, setup, n)
		})
	}
}

func soak(t *testing.T, setup func(*testing.T) Env, n int) {
	// Per subtest, both phases. A guard against a hang, not a speed test:
	// alone on 2 cores the slowest subtest takes about 40 s, and a machine
	// busy with other work has stretched it to 80 s.
	const timeout = 180 * time.Second
	env := setup(t)
	tp, exp := batchedTracerProvider(t)
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp))
	pub := tr.Publisher(env.Publisher)

	c := newChaos("soak-", n, 10, 1, 20260101)
	start := time.Now()
	publishAll(t, pub, env.Destination, c, n, 100)
	published := time.Since(start)

	deadline := time.Now().Add(timeout)
	first := startSubscribe(tr.Subscriber(env.Subscriber), env.Source, c.handler(1))
	c.waitDistinct(t, n/2, deadline, first.errc)
	first.stop(t, 30*time.Second)
	c.markStopped(1)
	atStop := c.progress()
	half := time.Since(start)

	next := env.Subscriber
	if env.NewSubscriber != nil {
		next = env.NewSubscriber(t) // Kafka: a client that left cannot rejoin
	}
	second := startSubscribe(tr.Subscriber(next), env.Source, c.handler(2))
	c.waitDistinct(t, n, deadline, second.errc)
	second.stop(t, 30*time.Second)
	c.markStopped(2)
	elapsed := time.Since(start)

	if err := tp.Shutdown(context.Background()); err != nil {
		t.Errorf("tracer provider shutdown: %v", err)
	}
	distinct, dups, missing := c.summary()
	c.mu.Lock()
	calls, failures, panics, foreign, late := c.calls, c.failures, c.panics, c.foreign, c.late
	firstCall, maxGap := c.first.Sub(start), c.maxGap
	c.mu.Unlock()
	t.Logf("%d messages: %d handled ok (%d by the first subscriber at its stop), %d duplicates, %d handler calls (%d failed, %d panicked); spans exported %d",
		n, distinct, atStop, dups, calls, failures, panics, exp.n.Load())
	t.Logf("elapsed %s (publish %s, first handler call at %s, first subscriber stopped at %s, longest pause between handler calls %s)",
		elapsed.Round(time.Millisecond), published.Round(time.Millisecond), firstCall.Round(time.Millisecond),
		half.Round(time.Millisecond), maxGap.Round(time.Millisecond))
	if distinct != n {
		t.Errorf("%d of %d messages never handled successfully; first missing: %v", n-distinct, n, missing)
	}
	if foreign > 0 {
		t.Errorf("%d deliveries of messages nobody published", foreign)
	}
	if late > 0 {
		t.Errorf("%d handler calls after their Subscribe returned", late)
	}
	if failures == 0 || panics == 0 {
		t.Errorf("the chaos did not happen: %d failures, %d panics", failures, panics)
	}
	if exp.n.Load() == 0 {
		t.Error("no span reached the exporter")
	}
}
