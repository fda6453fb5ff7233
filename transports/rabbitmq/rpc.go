package rabbitmq

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rpc runs f, an amqp091 call that waits for the broker's reply and takes
// no context (channel.open, confirm.select, basic.qos, basic.consume), and
// returns when f does or ctx ends. Over a silent network (a partition, a
// dead host: no RST) such a call waits for the heartbeat timeout, three
// heartbeats, 15 s by default; a caller whose context ends first gets its
// error at once, and f goes on in the background until the connection
// answers or dies, its result handed to discard.
func rpc[T any](ctx context.Context, f func() (T, error), discard func(T)) (T, error) {
	if ctx.Done() == nil {
		return f() // nothing to give up on: no goroutine
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil && discard != nil {
				discard(r.v)
			}
		}()
		var zero T
		return zero, ctx.Err()
	}
}

// abandonable runs f, an amqp091 call that waits for the broker's reply,
// until it returns or ctx ends. When ctx ends first it returns returned,
// closed once f has returned (its result dropped), and ctx.Err(): what
// closes f's channel must wait for it, since amqp091 checks that a channel
// is open and then writes, so f's frame could follow a channel.close, and a
// frame on a channel the broker has closed makes it close the whole
// connection (504 "expected 'channel.open'"), with every other channel on it.
func abandonable(ctx context.Context, f func() error) (returned <-chan struct{}, err error) {
	done := make(chan error, 1)
	go func() { done <- f() }() // once per channel set up: no fast path
	select {
	case err := <-done:
		return nil, err
	case <-ctx.Done():
		c := make(chan struct{})
		go func() {
			<-done
			close(c)
		}()
		return c, ctx.Err()
	}
}

// setupChannel runs f, a call that sets up ch (confirm.select, basic.qos),
// until it returns or ctx ends; when f fails, or ctx ends first, ch is
// closed, since its opener no longer wants it, but only once f returned
// (see abandonable).
func setupChannel(ctx context.Context, ch *amqp.Channel, f func() error) error {
	returned, err := abandonable(ctx, f)
	switch {
	case returned != nil:
		go func() {
			<-returned
			discardChannel(ch)
		}()
	case err != nil:
		go discardChannel(ch) // it may wait for the broker as long as f
	}
	return err
}

// discardChannel closes a channel its opener no longer wants.
func discardChannel(ch *amqp.Channel) { _ = ch.Close() }

// closeWait bounds how long closing a channel waits for the broker's
// close-ok when it can stop waiting (Subscribe's end): a healthy broker
// answers in milliseconds, a silent network only at the heartbeat timeout.
// The close itself is sent either way.
const closeWait = time.Second

// closeChannel closes ch, waiting at most closeWait for the broker to
// confirm it.
func closeChannel(ch *amqp.Channel) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ch.Close()
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
