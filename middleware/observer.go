package middleware

import (
	"context"
	"time"
)

// Observer receives the events only a transport can see: a poll that
// returned messages and the settlement of messages. Tracing and metrics
// middleware install observers in the Subscribe context; transports call
// ObserverFrom(ctx) once and report to it.
type Observer interface {
	// Received is called once per poll that returned at least one message
	// or, on a push-based destination (d.Push), once per delivery or group
	// of deliveries taken together, before any handler runs; start is when
	// the poll began or the delivery was taken. The returned context is the
	// one the transport passes to the handlers of msgs.
	Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context
	// Settled is called after the transport settled msgs with operation op
	// (propagation.OpAck, OpNack, OpDelete, OpCommit); start is when the
	// settle call began and err its outcome. ctx is the context the handler
	// got, for a settle of one message or of one poll's; a settle that
	// covers deliveries handled in several contexts (RabbitMQ's multiple
	// ack) gets the context Subscribe's handlers start from, without what
	// Received added.
	Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error)
}

// PollFailedObserver is an Observer that is also told about the polls
// that failed, which Received never sees: a receive operation that ended in
// an error (throttling, denied access, a broker or network error) still is
// an operation, with its duration and error.type, and its span.
//
// It is for pull transports only: a push delivery never polls. Transports
// report through ReportPollFailed, which skips observers that do not
// implement it. The end of the Subscribe context (the subscriber shutting
// down) is no failure: a transport does not report the poll it interrupts.
type PollFailedObserver interface {
	Observer
	// PollFailed is called once per poll of d that began at start and
	// failed with err, returning no message; the transport retries it or,
	// when err is permanent, ends Subscribe with it. ctx is the Subscribe
	// context.
	PollFailed(ctx context.Context, d Destination, start time.Time, err error)
}

// ReportPollFailed reports to obs, when it implements PollFailedObserver,
// that a poll of d which began at start failed with err. It does nothing
// when err is nil or ctx has ended: a poll that fails while the subscriber
// shuts down is taken as interrupted, not failed.
func ReportPollFailed(ctx context.Context, obs Observer, d Destination, start time.Time, err error) {
	if err == nil || ctx.Err() != nil {
		return
	}
	if o, ok := obs.(PollFailedObserver); ok {
		o.PollFailed(ctx, d, start, err)
	}
}

// SettledEachObserver is an Observer that takes, in one call, a settle
// request whose outcome differs per message: a batch delete or ack that the
// broker accepted for some entries and refused for others.
//
// Such a request is one operation, to be measured once (one duration, with
// error.type since it partly failed), while each message that was not
// settled deserves its own error (on its own settle span, in its own
// trace). Through Settled alone an observer cannot tell one request
// reported in several calls from several requests. Transports report
// through ReportSettledEach, which splits the request into Settled calls
// for observers that do not implement it.
type SettledEachObserver interface {
	Observer
	// SettledEach is called, instead of Settled, after one settle request
	// with operation op on msgs that began at start: errs[i] is the
	// outcome of msgs[i], nil for a message that was settled. ctx is the
	// context the handlers got.
	SettledEach(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, errs []error)
}

// ReportSettledEach reports one settle request on msgs whose outcome for
// msgs[i] is errs[i] (len(errs) == len(msgs)) to obs: in one SettledEach
// call when obs implements SettledEachObserver, else as Settled calls, one
// for the settled messages and one for each message that was not, with its
// error. A request with no error is one Settled call either way.
func ReportSettledEach(ctx context.Context, obs Observer, d Destination, op string, start time.Time, msgs []*Message, errs []error) {
	if countErrors(errs) == 0 {
		obs.Settled(ctx, d, op, start, msgs, nil)
		return
	}
	if o, ok := obs.(SettledEachObserver); ok {
		o.SettledEach(ctx, d, op, start, msgs, errs)
		return
	}
	settledOneByOne(ctx, obs, d, op, start, msgs, errs)
}

// settledOneByOne reports a settle request as Settled calls: the settled
// messages together, then each failed one on its own.
func settledOneByOne(ctx context.Context, obs Observer, d Destination, op string, start time.Time, msgs []*Message, errs []error) {
	if failed := countErrors(errs); failed < len(msgs) {
		settled := make([]*Message, 0, len(msgs)-failed)
		for i, msg := range msgs {
			if errs[i] == nil {
				settled = append(settled, msg)
			}
		}
		obs.Settled(ctx, d, op, start, settled, nil)
	}
	for i, msg := range msgs {
		if errs[i] != nil {
			obs.Settled(ctx, d, op, start, []*Message{msg}, errs[i])
		}
	}
}

func countErrors(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

type observerKey struct{}

// WithObserver returns ctx with o added to the observers transports report to.
func WithObserver(ctx context.Context, o Observer) context.Context {
	if o == nil {
		return ctx
	}
	prev, _ := ctx.Value(observerKey{}).(observers)
	next := make(observers, 0, len(prev)+1)
	next = append(append(next, prev...), o)
	return context.WithValue(ctx, observerKey{}, next)
}

// ObserverFrom returns the observers installed in ctx as one Observer; it is
// never nil and costs nothing when none were installed.
func ObserverFrom(ctx context.Context) Observer {
	obs, _ := ctx.Value(observerKey{}).(observers)
	switch len(obs) {
	case 0:
		return nopObserver{}
	case 1:
		return obs[0]
	}
	return obs
}

// Observed reports whether any Observer is installed in ctx: whether a
// transport has anyone to report a poll or a settlement to. Without one it
// can skip the work that only an Observer needs, such as reading the clock
// for the start of each poll and settlement.
func Observed(ctx context.Context) bool {
	obs, _ := ctx.Value(observerKey{}).(observers)
	return len(obs) > 0
}

type observers []Observer

func (os observers) Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context {
	for _, o := range os {
		ctx = o.Received(ctx, d, start, msgs)
	}
	return ctx
}

func (os observers) Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error) {
	for _, o := range os {
		o.Settled(ctx, d, op, start, msgs, err)
	}
}

// PollFailed forwards to each observer that implements PollFailedObserver.
func (os observers) PollFailed(ctx context.Context, d Destination, start time.Time, err error) {
	for _, o := range os {
		if p, ok := o.(PollFailedObserver); ok {
			p.PollFailed(ctx, d, start, err)
		}
	}
}

// SettledEach forwards to each observer as ReportSettledEach does.
func (os observers) SettledEach(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, errs []error) {
	for _, o := range os {
		ReportSettledEach(ctx, o, d, op, start, msgs, errs)
	}
}

type nopObserver struct{}

func (nopObserver) Received(ctx context.Context, _ Destination, _ time.Time, _ []*Message) context.Context {
	return ctx
}
func (nopObserver) Settled(context.Context, Destination, string, time.Time, []*Message, error) {}

func (nopObserver) PollFailed(context.Context, Destination, time.Time, error) {}

func (nopObserver) SettledEach(context.Context, Destination, string, time.Time, []*Message, []error) {
}
