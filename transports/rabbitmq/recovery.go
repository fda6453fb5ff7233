package rabbitmq

import (
	amqp "github.com/rabbitmq/amqp091-go"
)

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
