package brokers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/testcontainers/testcontainers-go"
	tcrabbitmq "github.com/testcontainers/testcontainers-go/modules/rabbitmq"
)

// localRabbitMQ is the broker installed on developer machines and CI images
// (Debian rabbitmq-server); only loopback is tried without AMQP_URL.
const localRabbitMQ = "amqp://guest:guest@127.0.0.1:5672/"

// rabbitMQImage is pinned so container runs are reproducible.
const rabbitMQImage = "rabbitmq:3.13-management-alpine"

var (
	rabbitOnce sync.Once
	rabbitURL  string
	rabbitErr  error
	// rabbitContainer is shared by every test in the process: starting one
	// per test would cost seconds each. It is left to the testcontainers
	// reaper (Ryuk) to remove when the process exits.
	rabbitContainer *tcrabbitmq.RabbitMQContainer
)

// RabbitMQURL returns the AMQP URL of a RabbitMQ broker: AMQP_URL when set,
// else a container when UseContainers says so, else the local broker on
// 127.0.0.1:5672 when it answers. Without one the test is skipped (failed
// under CI=true) through Unavailable.
func RabbitMQURL(t testing.TB) string {
	t.Helper()
	rabbitOnce.Do(func() { rabbitURL, rabbitErr = findRabbitMQ() })
	if rabbitErr != nil {
		Unavailable(t, "RabbitMQ", rabbitErr)
	}
	return rabbitURL
}

func findRabbitMQ() (u string, err error) {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u, nil
	}
	use, derr := UseContainers()
	if use {
		return startRabbitMQContainer()
	}
	if err := probeAMQP(localRabbitMQ); err != nil {
		if derr != nil {
			err = errors.Join(err, derr)
		}
		return "", fmt.Errorf("local RabbitMQ at 127.0.0.1:5672: %w", err)
	}
	return localRabbitMQ, nil
}

func startRabbitMQContainer() (u string, err error) {
	defer mustRecover(&err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := tcrabbitmq.Run(ctx, rabbitMQImage)
	if err != nil {
		// Run returns a typed-nil container on failure; CleanupContainer
		// copes with that.
		_ = testcontainers.TerminateContainer(c)
		return "", fmt.Errorf("rabbitmq container: %w", err)
	}
	rabbitContainer = c
	u, err = c.AmqpURL(ctx)
	if err != nil {
		return "", fmt.Errorf("rabbitmq container url: %w", err)
	}
	return u, probeAMQP(u)
}

// probeAMQP checks that a broker accepts a TCP connection and the AMQP
// handshake within a few seconds, so a dead port skips quickly instead of
// hanging on the client's default timeouts.
func probeAMQP(rawURL string) error {
	pu, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	host := pu.Host
	if pu.Port() == "" {
		host = net.JoinHostPort(pu.Hostname(), "5672")
	}
	nc, err := net.DialTimeout("tcp", host, 3*time.Second)
	if err != nil {
		return err
	}
	_ = nc.Close()
	conn, err := amqp.DialConfig(rawURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return err
	}
	return conn.Close()
}

// RabbitMQ returns a connection to the broker chosen by RabbitMQURL, closed
// when the test ends.
func RabbitMQ(t testing.TB) *amqp.Connection {
	t.Helper()
	u := RabbitMQURL(t)
	conn, err := amqp.DialConfig(u, amqp.Config{
		Dial:       amqp.DefaultDial(5 * time.Second),
		Properties: amqp.Table{"connection_name": "test " + t.Name()},
	})
	if err != nil {
		Unavailable(t, "RabbitMQ", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// RabbitMQQueue declares a durable, uniquely named queue with args and
// deletes it when the test ends. on is a *amqp.Connection, a *amqp.Channel
// or anything with Channel() (*amqp.Channel, error). The queue also expires
// after ten idle minutes (x-expires, unless args set it) so an interrupted
// run does not leave queues behind.
func RabbitMQQueue(t testing.TB, on any, args amqp.Table) string {
	t.Helper()
	open := func() (*amqp.Channel, bool, error) {
		switch v := on.(type) {
		case *amqp.Channel:
			return v, false, nil
		case interface{ Channel() (*amqp.Channel, error) }:
			ch, err := v.Channel()
			return ch, true, err
		default:
			return nil, false, fmt.Errorf("RabbitMQQueue: %T is neither a channel nor a connection", on)
		}
	}
	ch, owned, err := open()
	if err != nil {
		t.Fatalf("RabbitMQQueue: %v", err)
	}
	a := amqp.Table{}
	for k, v := range args {
		a[k] = v
	}
	if _, ok := a["x-expires"]; !ok {
		a["x-expires"] = int32(10 * time.Minute / time.Millisecond)
	}
	name := "otelmq-test-" + randomSuffix()
	if _, err := ch.QueueDeclare(name, true, false, false, false, a); err != nil {
		t.Fatalf("RabbitMQQueue: declare %s: %v", name, err)
	}
	if owned {
		_ = ch.Close()
	}
	t.Cleanup(func() {
		// The channel or connection the queue was declared on may be
		// closed by now (tests close them on purpose); then use a fresh
		// connection. If even that fails, x-expires removes the queue.
		ch, owned, err := open()
		if err != nil || ch.IsClosed() {
			if owned && err == nil {
				_ = ch.Close()
			}
			conn, derr := amqp.DialConfig(rabbitURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
			if derr != nil {
				return
			}
			defer conn.Close()
			if ch, err = conn.Channel(); err != nil {
				return
			}
			owned = true
		}
		if owned {
			defer ch.Close()
		}
		_, _ = ch.QueueDelete(name, false, false, false)
	})
	return name
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
