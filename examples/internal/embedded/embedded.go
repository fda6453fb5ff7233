// Package embedded starts the brokers the examples run on, inside the
// example's own process where possible, so `go run ./examples/...` works on a
// machine with nothing installed: Kafka on kfake, SQS on goaws, and RabbitMQ
// from AMQP_URL, a local broker, or a testcontainers container.
//
// It copies the few lines it needs from integration/brokers rather than
// importing it, because that package imports testing and is meant for tests.
// Only loopback addresses are used unless AMQP_URL names another.
package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/testcontainers/testcontainers-go"
	tcrabbitmq "github.com/testcontainers/testcontainers-go/modules/rabbitmq"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/otelmq/otelmq/integration/brokers/docker"
	"github.com/otelmq/otelmq/integration/brokers/goaws"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

// StartKafka starts an in-process Kafka cluster (kfake, one broker on
// 127.0.0.1) with each topic created with one partition, so records of a
// topic arrive in order. It returns the seed brokers and a func that shuts
// the cluster down.
func StartKafka(topics ...string) (seeds []string, closeFn func(), err error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		return nil, nil, fmt.Errorf("starting kfake: %w", err)
	}
	return c.ListenAddrs(), c.Close, nil
}

// StartSQS returns a client for goaws served on a loopback port, a func that
// creates a queue (its name made unique, so runs in one process do not share
// messages) and returns its URL, and a func that deletes the queues created
// through it.
//
// goaws keeps its queues in package globals, so its server is started once
// and lives until the process exits; closeFn only removes this caller's
// queues.
func StartSQS() (client *sqs.Client, createQueue func(ctx context.Context, name string, attrs map[string]string) (string, error), closeFn func(), err error) {
	goawsURL, err := goaws.Start()
	if err != nil {
		return nil, nil, nil, err
	}
	client = sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(goawsURL),
		// goaws checks no signature; the SDK insists on credentials.
		Credentials: credentials.NewStaticCredentialsProvider("demo", "demo", ""),
	})
	var (
		mu   sync.Mutex
		urls []string
	)
	createQueue = func(ctx context.Context, name string, attrs map[string]string) (string, error) {
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-" + suffix()), Attributes: attrs})
		if err != nil {
			return "", fmt.Errorf("creating SQS queue %s: %w", name, err)
		}
		mu.Lock()
		urls = append(urls, aws.ToString(out.QueueUrl))
		mu.Unlock()
		return aws.ToString(out.QueueUrl), nil
	}
	closeFn = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		mu.Lock()
		defer mu.Unlock()
		for _, u := range urls {
			_, _ = client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
		urls = nil
	}
	return client, createQueue, closeFn, nil
}

// DefaultAMQPURL is the broker tried when AMQP_URL is not set: a RabbitMQ
// installed on this machine with its default guest account, which only
// accepts loopback connections.
const DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// rabbitMQImage is pinned so container runs are reproducible.
const rabbitMQImage = "rabbitmq:3.13-management-alpine"

var (
	rabbitOnce  sync.Once
	rabbitURL   string
	rabbitWhich string
	rabbitErr   error
)

// RabbitMQ finds a RabbitMQ broker and dials it: AMQP_URL (default
// DefaultAMQPURL) when it answers within 2 s, else a testcontainers
// container when a Docker engine answers (OTELMQ_TESTCONTAINERS=0 turns that
// off), else none. which says in words what was found, for the demo's
// output. With no broker, conn is nil and err says why: callers then use the
// in-memory transport for that hop. Close conn when done. The broker is
// looked for once per process.
func RabbitMQ() (conn *rabbitmq.Connection, which string, err error) {
	rabbitOnce.Do(func() { rabbitURL, rabbitWhich, rabbitErr = findRabbitMQ() })
	if rabbitErr != nil {
		return nil, rabbitWhich, rabbitErr
	}
	conn, err = rabbitmq.Dial(rabbitURL, rabbitmq.WithAMQPConfig(amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)}))
	if err != nil {
		return nil, "in-memory (RabbitMQ at " + redactURL(rabbitURL) + " refused: " + err.Error() + ")", err
	}
	return conn, rabbitWhich, nil
}

func findRabbitMQ() (u, which string, err error) {
	u, source := os.Getenv("AMQP_URL"), "AMQP_URL"
	if u == "" {
		u, source = DefaultAMQPURL, "local broker; AMQP_URL unset"
	}
	probeErr := probeAMQP(u, 2*time.Second)
	if probeErr == nil {
		return u, "RabbitMQ: " + hostOf(u) + " (" + source + ")", nil
	}
	if os.Getenv("OTELMQ_TESTCONTAINERS") == "0" {
		return "", "in-memory (no RabbitMQ reachable; containers turned off)", probeErr
	}
	if derr := docker.Available(); derr != nil {
		return "", "in-memory (no RabbitMQ reachable, no Docker)", fmt.Errorf("%w; %w", probeErr, derr)
	}
	cu, cerr := startContainer()
	if cerr != nil {
		return "", "in-memory (no RabbitMQ reachable; container failed)", fmt.Errorf("%w; %w", probeErr, cerr)
	}
	return cu, "RabbitMQ: " + hostOf(cu) + " (testcontainers " + rabbitMQImage + ")", nil
}

// startContainer starts RabbitMQ in a container left to the testcontainers
// reaper to remove when the process exits. Pulling the image the first time
// takes a while; later runs start in seconds.
func startContainer() (u string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := tcrabbitmq.Run(ctx, rabbitMQImage)
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return "", fmt.Errorf("rabbitmq container: %w", err)
	}
	u, err = c.AmqpURL(ctx)
	if err != nil {
		return "", fmt.Errorf("rabbitmq container url: %w", err)
	}
	return u, probeAMQP(u, 5*time.Second)
}

// probeAMQP checks that a broker accepts a TCP connection and the AMQP
// handshake within timeout, so a dead port falls back quickly instead of
// waiting for the client's default timeouts.
func probeAMQP(rawURL string, timeout time.Duration) error {
	pu, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	host := pu.Host
	if pu.Port() == "" {
		host = net.JoinHostPort(pu.Hostname(), "5672")
	}
	nc, err := net.DialTimeout("tcp", host, timeout)
	if err != nil {
		return err
	}
	_ = nc.Close()
	conn, err := amqp.DialConfig(rawURL, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err != nil {
		return err
	}
	return conn.Close()
}

// DeclareQueue declares a queue named name plus a random suffix on conn and
// returns its name. The queue is removed by the broker after a minute
// unused (x-expires), so demo runs leave nothing behind and never read
// each other's messages.
func DeclareQueue(conn rabbitmq.Dialer, name string) (string, error) {
	ch, err := conn.Channel()
	if err != nil {
		return "", err
	}
	defer ch.Close()
	full := name + "-" + suffix()
	_, err = ch.QueueDeclare(full, false, false, false, false, amqp.Table{"x-expires": int32(time.Minute / time.Millisecond)})
	if err != nil {
		return "", fmt.Errorf("declaring RabbitMQ queue %s: %w", full, err)
	}
	return full, nil
}

// hostOf is the host:port of an AMQP URL, without the credentials, which are
// never printed.
func hostOf(rawURL string) string {
	pu, err := url.Parse(rawURL)
	if err != nil {
		return "?"
	}
	if pu.Port() == "" {
		return net.JoinHostPort(pu.Hostname(), "5672")
	}
	return pu.Host
}

func redactURL(rawURL string) string { return hostOf(rawURL) }

func suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NoBrokerError means an example that needs RabbitMQ found none: Which says
// in words what was tried (as RabbitMQ's which), Err why it failed. The
// examples print "skipped" for it; their tests skip, or fail under CI=true.
type NoBrokerError struct {
	Which string
	Err   error
}

func (e *NoBrokerError) Error() string { return e.Which + ": " + e.Err.Error() }

func (e *NoBrokerError) Unwrap() error { return e.Err }
