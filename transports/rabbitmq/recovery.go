package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrAMQPRecovery is what Subscribe and Publish return on an
// *amqp.Connection dialed with amqp.Config.Recovery. amqp091's recovery
// reopens a channel in place, with delivery tags starting again at 1, so
// an ack meant for a delivery of the old channel would settle one of the
// new; and publisher confirm tags start again at 1 too, and a message
// published while the channel reopens (after channel.open, before
// confirm.select) gets a tag from amqp091 but none from the broker, which
// shifts every later confirm onto the message before it. Measured with
// confirms, 4 goroutines publishing and the connection force-closed
// mid-stream, 11 runs: no Publish returned nil for a message missing from
// the queue (20,206 returned nil in the 9 runs that finished), but in 3
// runs every Publish after the recovery failed
// waiting for its confirm, which came only with the next message; in 7 the
// Publisher's new channel was refused (504, connection not open) for the
// rest of the run, as it raced amqp091's redial; 1 recovered cleanly.
// Dial's Connection reconnects instead, and Publisher and Subscriber open
// new channels themselves.
//
// Behind a Dialer of your own, the connection is found on the channel
// Publish or Subscribe opens only when its topology recovery is on (the
// default of an amqp.Recovery): amqp091 then tracks the channel's prefetch.
// With TopologyRecoveryMode set to TopologyRecoveryDisabled, channels are
// still reopened in place but an *amqp.Channel does not tell: no exported
// method reports it short of Channel.Reconnect, which acts.
var ErrAMQPRecovery = errors.New("rabbitmq: amqp091's automatic recovery is not supported (it reopens channels in place, restarting delivery and confirm tags); use rabbitmq.Dial, which reconnects")

// recoveryEnabled reports whether conn is an *amqp.Connection dialed with
// amqp.Config.Recovery.
func recoveryEnabled(conn Dialer) bool {
	c, ok := conn.(*amqp.Connection)
	return ok && c != nil && c.IsRecoveryEnabled()
}

// tracksTopology reports whether amqp091 records ch's topology for its
// automatic recovery, which tells a channel from a Dialer we cannot see
// through (it does not expose its connection). Call it after a successful
// Qos on ch: amqp091 records the prefetch only when the connection has
// topology recovery on, the default of an amqp.Recovery. A Recovery with
// TopologyRecoveryMode TopologyRecoveryDisabled still reopens channels in
// place and goes unseen: no exported method or harmless behaviour of an
// *amqp.Channel reveals it (Channel.Reconnect does, but it is an action,
// which may reopen the channel and run recovery callbacks).
func tracksTopology(ch *amqp.Channel) bool {
	return ch.TopologyConfiguration(false).Qos != nil
}

// checkRecovery refuses ch, just opened on conn, when amqp091 would
// recover it in place (ErrAMQPRecovery), and then closes it. An *amqp.Connection was checked
// before the channel was opened and Dial's Connection turns recovery off;
// any other Dialer costs a basic.qos round trip per channel, to see
// whether amqp091 tracks it (tracksTopology). The prefetch it sets, 0, is
// the default (no limit), and matters only to consumers.
func checkRecovery(ctx context.Context, conn Dialer, ch *amqp.Channel) error {
	switch conn.(type) {
	case *amqp.Connection, *Connection:
		return nil
	}
	if err := setupChannel(ctx, ch, func() error { return ch.Qos(0, 0, false) }); err != nil {
		return fmt.Errorf("rabbitmq: checking for amqp091's recovery: %w", err)
	}
	if tracksTopology(ch) {
		go discardChannel(ch)
		return ErrAMQPRecovery
	}
	return nil
}
