package rabbitmq

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// channelOf opens a channel with open (a Dialer's Channel), an amqp091
// call that waits for the broker's reply and takes no context, and returns
// when it does or ctx ends. Over a silent network (a partition, a dead
// host: no RST) such a call waits for the heartbeat timeout, three
// heartbeats, 15 s by default; a caller whose context ends first gets its
// error at once, and the channel opened after all is closed.
func channelOf(ctx context.Context, open func() (*amqp.Channel, error)) (*amqp.Channel, error) {
	var ch *amqp.Channel
	returned, err := abandonable(ctx, func() (err error) {
		ch, err = open()
		return err
	})
	if returned != nil {
		go func() {
			<-returned
			if ch != nil {
				discardChannel(ch)
			}
		}()
		return nil, err
	}
	return ch, err
}

// abandonable runs f, an amqp091 call that waits for the broker's reply,
// until it returns or ctx ends. When ctx ends first it returns returned,
// closed once f has returned (its result dropped), and ctx.Err(): what
// closes f's channel must wait for it, since amqp091 checks that a channel
// is open and then writes, so f's frame could follow a channel.close, and a
// frame on a channel the broker has closed makes it close the whole
// connection (504 "expected 'channel.open'"), with every other channel on it.
func abandonable(ctx context.Context, f func() error) (returned <-chan struct{}, err error) {
	if ctx.Done() == nil {
		return nil, f() // nothing to give up on: no goroutine
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
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
