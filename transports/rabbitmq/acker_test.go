package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// settleAll hands the acker one batch, as if the handlers of these tags
// (a trailing "!" rejects) finished while the previous frame was being
// written, and returns the frames it wrote. The fake channel is the one
// thing a broker cannot show: which frames, in which order.
func settleAll(t *testing.T, a *acker, ack *fakeAck, tags ...string) []string {
	t.Helper()
	var batch []settlement
	for _, s := range tags {
		var tag uint64
		reject := false
		if n, _ := fmt.Sscanf(s, "%d!", &tag); n == 1 && s[len(s)-1] == '!' {
			reject = true
		} else if _, err := fmt.Sscanf(s, "%d", &tag); err != nil {
			t.Fatalf("bad tag %q", s)
		}
		in := newInbound(&amqp.Delivery{DeliveryTag: tag}, "q")
		batch = append(batch, settlement{in: in, ctx: context.Background(), reject: reject})
	}
	ack.mu.Lock()
	ack.frames = nil
	ack.mu.Unlock()
	a.write(batch)
	ack.mu.Lock()
	defer ack.mu.Unlock()
	return slices.Clone(ack.frames)
}

// TestAckerFrames: acks of consecutive tags from the last settled one go
// in one frame; a reject is never covered by a multiple ack; past a gap
// (a delivery still being handled, or never handed to a handler) every
// delivery is settled on its own, and once the gap is filled the run goes
// on past the tags settled alone.
func TestAckerFrames(t *testing.T) {
	ack := &fakeAck{}
	a := &acker{ch: ack, requeue: false}
	for _, step := range []struct {
		tags []string
		want []string
	}{
		{[]string{"1"}, []string{"ack 1"}},
		{[]string{"2", "3", "4"}, []string{"ack 4 multiple"}},
		{[]string{"7", "5", "6!", "8"}, []string{"ack 5", "reject 6", "ack 8 multiple"}},
		// 9 is still running: 10 and 12 alone, 11 rejected alone.
		{[]string{"10", "11!", "12"}, []string{"ack 10", "reject 11", "ack 12"}},
		// 9 finishes: the run covers 10-12 (settled already) and goes on.
		{[]string{"13", "9"}, []string{"ack 13 multiple"}},
		{[]string{"14!"}, []string{"reject 14"}},
		{[]string{"15"}, []string{"ack 15"}},
		// 16 finishes last: its ack covers itself alone, not 17 and 18
		// settled before it (an ack of those again would close the
		// channel: unknown delivery tag).
		{[]string{"17", "18"}, []string{"ack 17", "ack 18"}},
		{[]string{"16"}, []string{"ack 16"}},
		{[]string{"19"}, []string{"ack 19"}},
	} {
		if got := settleAll(t, a, ack, step.tags...); !slices.Equal(got, step.want) {
			t.Fatalf("settling %v wrote %q, want %q", step.tags, got, step.want)
		}
	}
	if a.settledUpTo != 19 || len(a.settledPast) != 0 {
		t.Fatalf("settled up to %d, and past it %v", a.settledUpTo, a.settledPast)
	}
}

// settleRecorder records the Settled calls the acker makes.
type settleRecorder struct {
	recorder
	calls []string
}

func (r *settleRecorder) Settled(_ context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	tags := make([]uint64, len(msgs))
	for i, m := range msgs {
		var dv *amqp.Delivery
		m.As(&dv)
		tags[i] = dv.DeliveryTag
	}
	r.calls = append(r.calls, fmt.Sprintf("%s %v %v", op, tags, err))
}

// TestAckerObserved: the observers get one Settled per frame, with every
// message it settled and its error, so a coalesced ack is one settle span
// linking its messages.
func TestAckerObserved(t *testing.T) {
	ack := &fakeAck{err: errors.New("channel closed")}
	obs := &settleRecorder{}
	a := &acker{ch: ack, obs: obs, dest: middleware.Destination{Name: "q"}, ctx: context.Background()}
	settleAll(t, a, ack, "1", "2", "3!", "5")
	want := []string{
		propagation.OpAck + " [1 2] channel closed",
		propagation.OpNack + " [3] channel closed",
		propagation.OpAck + " [5] channel closed",
	}
	if !slices.Equal(obs.calls, want) {
		t.Fatalf("Settled calls %q, want %q", obs.calls, want)
	}
}

// TestAckerClose: close settles everything handed in before it.
func TestAckerClose(t *testing.T) {
	ack := &fakeAck{}
	a := newAcker(context.Background(), ack, true, nil, middleware.Destination{})
	for tag := uint64(1); tag <= 100; tag++ {
		a.settle(context.Background(), newInbound(&amqp.Delivery{DeliveryTag: tag}, "q"), tag == 50)
	}
	a.close()
	if a.settledUpTo != 100 {
		t.Fatalf("settled up to %d after close, want 100", a.settledUpTo)
	}
	if _, _, rejects, requeue := ack.snapshot(); rejects != 1 || !requeue {
		t.Fatalf("%d rejects (requeue %v), want 1 with requeue", rejects, requeue)
	}
}

// frameCounter counts the settle calls an observer sees, and the messages
// they cover.
type frameCounter struct {
	mu                     sync.Mutex
	acks, acked, multiples int
	rejects                int
	errs                   []error
}

func (c *frameCounter) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	return ctx
}

func (c *frameCounter) Settled(_ context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.errs = append(c.errs, err)
	}
	if op == propagation.OpNack {
		c.rejects += len(msgs)
		return
	}
	c.acks++
	c.acked += len(msgs)
	if len(msgs) > 1 {
		c.multiples++
	}
}

// TestCoalescedAcksOnBroker: on the broker, with handlers finishing out of
// order and some deliveries rejected for a redelivery, every message is
// settled once for good: the rejected ones come back once, none is acked
// by another's multiple ack (it would never come back), none is left
// unacked (it would come back after the channel closes), and acks were
// coalesced into fewer frames than messages.
func TestCoalescedAcksOnBroker(t *testing.T) {
	conn, q := setup(t, nil)
	const n = 600
	batch := make([]*middleware.Message, n)
	for i := range batch {
		batch[i] = &middleware.Message{ID: fmt.Sprint(i)}
	}
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, batch...); err != nil {
		t.Fatal(err)
	}
	for _, concurrency := range []int{1, 4} {
		t.Run(fmt.Sprint("concurrency ", concurrency), func(t *testing.T) {
			if concurrency == 4 {
				if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, batch...); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			deliveries := map[string]int{}
			done := make(chan struct{})
			counter := &frameCounter{}
			ctx := middleware.WithObserver(t.Context(), counter)
			run := subscribe(t, ctx, NewSubscriber(conn, WithConcurrency(concurrency), WithPrefetch(100)), q, func(_ context.Context, m *middleware.Message) error {
				mu.Lock()
				deliveries[m.ID]++
				count, total := deliveries[m.ID], 0
				for _, c := range deliveries {
					total += c
				}
				mu.Unlock()
				if concurrency > 1 {
					time.Sleep(time.Duration(rand.N(1000)) * time.Microsecond)
				}
				if total == n+n/7+1 {
					close(done)
				}
				var id int
				fmt.Sscan(m.ID, &id)
				if id%7 == 0 && count == 1 {
					return errors.New("once more")
				}
				return nil
			})
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("timed out waiting for every delivery")
			}
			if err := run.stop(t); err != nil {
				t.Fatal(err)
			}
			for id, c := range deliveries {
				var i int
				fmt.Sscan(id, &i)
				if want := 1 + boolInt(i%7 == 0); c != want {
					t.Errorf("message %s delivered %d times, want %d", id, c, want)
				}
			}
			if len(deliveries) != n {
				t.Errorf("%d messages delivered, want %d", len(deliveries), n)
			}
			if d := queueDepth(t, conn, q); d != 0 {
				t.Errorf("%d messages back on the queue after Subscribe returned, want 0", d)
			}
			counter.mu.Lock()
			defer counter.mu.Unlock()
			if counter.acked != n || counter.rejects != n/7+1 || len(counter.errs) > 0 {
				t.Errorf("observers saw %d acked, %d rejected, errors %v; want %d and %d", counter.acked, counter.rejects, counter.errs, n, n/7+1)
			}
			if counter.acks >= n || counter.multiples == 0 {
				t.Errorf("%d ack frames (%d of several messages) for %d messages: nothing coalesced", counter.acks, counter.multiples, n)
			}
			t.Logf("%d messages acked in %d frames", n, counter.acks)
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAckerGapState: a delivery whose handler runs for a long time (or
// never returns: runtime.Goexit) leaves a gap that may last until the
// broker's consumer_timeout, or for ever when that is off; every delivery
// past it is settled alone meanwhile. What the acker keeps to remember
// them must not grow with their number: at ten thousand messages a
// second, one entry each is hundreds of MB in half an hour, and a pause
// to walk them all when the gap fills.
func TestAckerGapState(t *testing.T) {
	ack := &fakeAck{}
	a := &acker{ch: ack}
	const n = 50000
	batch := make([]settlement, 0, 100)
	// Tag 1 is still being handled; 2..n+1 finish, in batches of 100,
	// out of order within each, and one is rejected now and then.
	for lo := uint64(2); lo <= n+1; lo += 100 {
		batch = batch[:0]
		for tag := min(lo+99, n+1); tag >= lo; tag-- {
			in := newInbound(&amqp.Delivery{DeliveryTag: tag}, "q")
			batch = append(batch, settlement{in: in, ctx: context.Background(), reject: tag%97 == 0})
		}
		a.write(batch)
	}
	if a.settledUpTo != 0 {
		t.Fatalf("settled up to %d past an unsettled tag 1", a.settledUpTo)
	}
	if got := len(a.settledPast); got > 1 {
		t.Errorf("the acker keeps %d entries for %d tags settled past one gap, want at most 1", got, n)
	}
	ack.mu.Lock()
	frames := len(ack.frames)
	ack.mu.Unlock()
	if frames != n {
		t.Fatalf("%d frames for %d deliveries past a gap, want one each", frames, n)
	}
	// The gap fills: 1 alone, then the run goes on from n+2.
	if got := settleAll(t, a, ack, "1"); !slices.Equal(got, []string{"ack 1"}) {
		t.Fatalf("filling the gap wrote %q, want [ack 1]", got)
	}
	if a.settledUpTo != n+1 || len(a.settledPast) != 0 {
		t.Fatalf("settled up to %d (want %d), and %d entries past it", a.settledUpTo, n+1, len(a.settledPast))
	}
	want := fmt.Sprintf("ack %d multiple", n+3)
	if got := settleAll(t, a, ack, fmt.Sprint(n+2), fmt.Sprint(n+3)); !slices.Equal(got, []string{want}) {
		t.Fatalf("after the gap wrote %q, want [%s]", got, want)
	}
}

// TestAckerGaps: several gaps, filled in any order, and tags settled past
// them in any order: a multiple ack never covers an unsettled tag, and
// every tag is settled exactly once.
func TestAckerGaps(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		const n = 300
		tags := make([]uint64, n)
		for i := range tags {
			tags[i] = uint64(i + 1)
		}
		r.Shuffle(n, func(i, j int) { tags[i], tags[j] = tags[j], tags[i] })
		ack := &fakeAck{}
		a := &acker{ch: ack}
		settled := map[uint64]bool{}
		for len(tags) > 0 {
			k := min(len(tags), 1+r.IntN(8))
			var batch []settlement
			for _, tag := range tags[:k] {
				batch = append(batch, settlement{in: newInbound(&amqp.Delivery{DeliveryTag: tag}, "q"), ctx: context.Background(), reject: r.IntN(10) == 0})
			}
			handed := map[uint64]bool{}
			for tag := range settled {
				handed[tag] = true
			}
			for _, tag := range tags[:k] {
				handed[tag] = true
			}
			tags = tags[k:]
			ack.mu.Lock()
			ack.frames = nil
			ack.mu.Unlock()
			a.write(batch)
			ack.mu.Lock()
			frames := slices.Clone(ack.frames)
			ack.mu.Unlock()
			for _, f := range frames {
				var tag uint64
				var op, multiple string
				fmt.Sscan(f, &op, &tag, &multiple)
				if multiple != "" {
					for u := uint64(1); u <= tag; u++ {
						if !handed[u] {
							t.Fatalf("seed %d: %q covers tag %d, not handed in", seed, f, u)
						}
						if !settled[u] && u != tag {
							settled[u] = true // covered by this frame
						}
					}
				}
				if settled[tag] {
					t.Fatalf("seed %d: %q settles tag %d again", seed, f, tag)
				}
				settled[tag] = true
			}
		}
		if len(settled) != n || a.settledUpTo != n || len(a.settledPast) != 0 {
			t.Fatalf("seed %d: %d of %d tags settled; settled up to %d, %d entries past it", seed, len(settled), n, a.settledUpTo, len(a.settledPast))
		}
	}
}

// slowSettle is an observer whose Settled of the message with ID slow
// takes a while: the acker is busy with it when the next outcome comes in.
type slowSettle struct {
	frameCounter
	slow     string
	settling chan struct{} // closed when the slow Settled begins
}

func (o *slowSettle) Settled(ctx context.Context, d middleware.Destination, op string, start time.Time, msgs []*middleware.Message, err error) {
	o.frameCounter.Settled(ctx, d, op, start, msgs, err)
	if len(msgs) == 1 && msgs[0].ID == o.slow {
		close(o.settling)
		time.Sleep(300 * time.Millisecond)
	}
}

// TestShutdownDrainsAcker: Subscribe returns only once the acker has
// settled every handled delivery, before it closes the channel; an ack
// still queued in the acker when the channel closes would fail, and the
// broker would deliver the message again.
func TestShutdownDrainsAcker(t *testing.T) {
	conn, q := setup(t, nil)
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, &middleware.Message{ID: "first"}, &middleware.Message{ID: "second"}); err != nil {
		t.Fatal(err)
	}
	obs := &slowSettle{slow: "first", settling: make(chan struct{})}
	ctx, cancel := context.WithCancel(middleware.WithObserver(t.Context(), obs))
	defer cancel()
	err := NewSubscriber(conn).Subscribe(ctx, q, middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		if m.ID == "second" {
			<-obs.settling
			cancel() // while the acker is still telling of the first
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	acked, errs := obs.acked, obs.errs
	obs.mu.Unlock()
	if acked != 2 || len(errs) > 0 {
		t.Errorf("%d acked, errors %v by the time Subscribe returned; want both acked", acked, errs)
	}
	if d := queueDepth(t, conn, q); d != 0 {
		t.Errorf("%d message(s) back on the queue after Subscribe returned, want 0", d)
	}
}
