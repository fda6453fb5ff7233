package rabbitmq

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// settler is the part of an AMQP channel an acker writes to.
type settler interface {
	Ack(tag uint64, multiple bool) error
	Reject(tag uint64, requeue bool) error
}

// settlement is a handled delivery waiting to be acked or rejected.
type settlement struct {
	in     *inbound
	ctx    context.Context // the handler's, for the observers
	reject bool
}

func (s settlement) tag() uint64 { return s.in.d.DeliveryTag }

// acker settles one channel's deliveries from its own goroutine, so that a
// handler goes on to its next delivery while the broker is told about the
// last one, and coalesces acks: the deliveries whose handlers finished
// while the previous frame was being written are acked together by one
// basic.ack with multiple set, when their tags run on without a gap from
// the last tag settled. An ack frame is a write system call and, for the
// broker, a message to handle: per delivery, they were a third of a
// consumer's CPU. Nothing waits for a batch to fill, so a lone delivery is
// acked as soon as it would have been.
//
// A multiple ack settles every unsettled tag up to its own, so it is sent
// only over tags this acker settled itself: a delivery never handed to a
// handler (Subscribe stopping, a channel closing) leaves a gap, and a
// rejected delivery is rejected on its own before any ack past it. Deliveries
// past a gap are settled one by one, as they were before coalescing.
type acker struct {
	ch      settler
	requeue bool
	obs     middleware.Observer // nil: nobody to tell
	dest    middleware.Destination
	ctx     context.Context // the handlers' base context, for a settle of several

	mu      sync.Mutex
	pending []settlement
	closing bool
	wake    chan struct{} // capacity 1: the goroutine has work
	done    chan struct{} // closed when the goroutine returned

	// Owned by the goroutine.
	settledUpTo uint64       // every tag up to it is settled
	settledPast []tagRange   // tags past settledUpTo settled one by one
	run         []settlement // acks to send in one frame
}

// tagRange is the delivery tags from lo to hi, both included. The ranges in
// acker.settledPast are sorted, apart (there is an unsettled tag between
// any two) and past settledUpTo+1: however many deliveries are settled
// while a handler holds up the run, they take one range per unsettled tag
// below them, so the acker's memory is bounded by the prefetch, not by how
// long the handler runs.
type tagRange struct{ lo, hi uint64 }

// newAcker starts an acker for ch.
func newAcker(ctx context.Context, ch settler, requeue bool, obs middleware.Observer, dest middleware.Destination) *acker {
	a := &acker{
		ch: ch, requeue: requeue, obs: obs, dest: dest, ctx: ctx,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	go a.loop()
	return a
}

// settle hands in's outcome to the acker: an ack, or a reject when reject
// is set. ctx is the context the handler ran with.
func (a *acker) settle(ctx context.Context, in *inbound, reject bool) {
	a.mu.Lock()
	a.pending = append(a.pending, settlement{in: in, ctx: ctx, reject: reject})
	a.mu.Unlock()
	a.poke()
}

// poke wakes the goroutine, unless it is woken already.
func (a *acker) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// close settles everything handed in so far and stops the goroutine. Call
// it after the last settle, before the channel closes.
func (a *acker) close() {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	a.poke()
	<-a.done
}

func (a *acker) loop() {
	defer close(a.done)
	var batch []settlement
	for {
		<-a.wake
		a.mu.Lock()
		batch, a.pending = a.pending, batch[:0]
		closing := a.closing
		a.mu.Unlock()
		a.write(batch)
		clear(batch) // hold on to no delivery
		if closing {
			// close comes after the last settle, so this batch, taken
			// with closing set, held everything.
			return
		}
	}
}

// write settles batch on the channel in as few frames as its tags allow,
// and tells the observers.
func (a *acker) write(batch []settlement) {
	if len(batch) == 0 {
		return
	}
	// One handler finishes its deliveries in order; several may not.
	if !slices.IsSortedFunc(batch, bySettlementTag) {
		slices.SortFunc(batch, bySettlementTag)
	}
	for _, s := range batch {
		tag := s.tag()
		switch {
		case tag == a.next() && !s.reject:
			a.run = append(a.run, s)
			a.advance()
		case tag == a.next():
			a.flush()
			a.one(s)
			a.advance()
		default:
			// Past a gap (or, from a misbehaving caller, a tag settled
			// already): on its own, so that nothing unsettled is acked.
			a.flush()
			a.one(s)
			if tag > a.settledUpTo {
				a.settledAlone(tag)
			}
		}
	}
	a.flush()
}

func bySettlementTag(x, y settlement) int { return cmp.Compare(x.tag(), y.tag()) }

// next is the lowest tag not settled yet.
func (a *acker) next() uint64 { return a.settledUpTo + 1 }

// advance marks next settled, and the tags settled one by one right after it.
func (a *acker) advance() {
	a.settledUpTo++
	if len(a.settledPast) > 0 && a.settledPast[0].lo == a.settledUpTo+1 {
		a.settledUpTo = a.settledPast[0].hi
		a.settledPast = slices.Delete(a.settledPast, 0, 1)
	}
}

// settledAlone records tag, past next, as settled on its own.
func (a *acker) settledAlone(tag uint64) {
	// The first range that ends at tag or later.
	i, _ := slices.BinarySearchFunc(a.settledPast, tag, func(r tagRange, tag uint64) int { return cmp.Compare(r.hi, tag) })
	if i < len(a.settledPast) && a.settledPast[i].lo <= tag {
		return // recorded already
	}
	joinsPrev := i > 0 && a.settledPast[i-1].hi+1 == tag
	joinsNext := i < len(a.settledPast) && a.settledPast[i].lo == tag+1
	switch {
	case joinsPrev && joinsNext:
		a.settledPast[i-1].hi = a.settledPast[i].hi
		a.settledPast = slices.Delete(a.settledPast, i, i+1)
	case joinsPrev:
		a.settledPast[i-1].hi = tag
	case joinsNext:
		a.settledPast[i].lo = tag
	default:
		a.settledPast = slices.Insert(a.settledPast, i, tagRange{tag, tag})
	}
}

// flush acks the run of tags collected so far in one frame: every tag up
// to the run's last is settled by then, by the run or alone before it.
func (a *acker) flush() {
	n := len(a.run)
	if n == 0 {
		return
	}
	var start time.Time
	if a.obs != nil {
		start = time.Now()
	}
	err := named(a.ch.Ack(a.run[n-1].tag(), n > 1))
	if a.obs != nil {
		if n == 1 {
			a.obs.Settled(a.run[0].ctx, a.dest, propagation.OpAck, start, a.run[0].in.msgs[:], err)
		} else {
			// One settle operation over several messages, reported
			// once: the tracing middleware links them all, under one
			// of their process spans (ctx carries the caller's span,
			// which a push delivery's spans never take as parent).
			msgs := make([]*middleware.Message, n)
			for i, s := range a.run {
				msgs[i] = &s.in.msg
			}
			a.obs.Settled(a.ctx, a.dest, propagation.OpAck, start, msgs, err)
		}
	}
	clear(a.run)
	a.run = a.run[:0]
}

// one settles s alone.
func (a *acker) one(s settlement) {
	var start time.Time
	if a.obs != nil {
		start = time.Now()
	}
	op := propagation.OpAck
	var err error
	if s.reject {
		// basic.reject, not basic.nack: from RabbitMQ 4.3 only a reject
		// counts as a failed delivery (x-delivery-count, and a quorum
		// queue's delivery-limit); a nack is a return that counts nothing,
		// so a failing message would be redelivered forever. Before 4.3
		// the two are the same for one delivery.
		op = propagation.OpNack
		err = a.ch.Reject(s.tag(), a.requeue)
	} else {
		err = a.ch.Ack(s.tag(), false)
	}
	if a.obs != nil {
		a.obs.Settled(s.ctx, a.dest, op, start, s.in.msgs[:], named(err))
	}
}
