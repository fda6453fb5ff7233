package main

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

// rabbitPrefetch is the consumers' prefetch in every mode: enough in flight
// that the broker round trip of each ack does not pace the run.
const rabbitPrefetch = 256

// newRabbitMQ dials the broker embedded.RabbitMQ finds; without one the
// transport is skipped, saying why.
func newRabbitMQ(context.Context) (*transport, error) {
	conn, which, err := embedded.RabbitMQ()
	if err != nil || conn == nil {
		return &transport{name: "rabbitmq", skip: fmt.Sprintf("%s: %v", which, err)}, nil
	}
	// Messages go out one Publish each, as applications publish them; an
	// AMQP publish is asynchronous anyway (no confirms in any mode).
	pair := func(name string) func(context.Context, int) (middleware.Publisher, middleware.Subscriber, string, func(), error) {
		return func(context.Context, int) (middleware.Publisher, middleware.Subscriber, string, func(), error) {
			q, err := embedded.DeclareQueue(conn, "bench-"+name)
			if err != nil {
				return nil, nil, "", nil, err
			}
			pub := rabbitmq.NewPublisher(conn, rabbitmq.WithTransient())
			sub := rabbitmq.NewSubscriber(conn, rabbitmq.WithPrefetch(rabbitPrefetch))
			release := func() { _ = pub.Close(); deleteQueue(conn, q) }
			return pub, sub, q, release, nil
		}
	}
	return &transport{
		name:     "rabbitmq",
		defaultN: 20_000,
		notes: []string{
			which + "; the broker is another process, so CPU is the client's alone.",
			"transient messages, no publisher confirms, manual acks, prefetch 256 in every mode.",
			"handwritten-sdk: a producer span + W3C inject into amqp.Table, a consumer span per delivery, on the same SDK pipeline.",
		},
		modes: []mode{
			amqpMode(modeRaw, tracingNone, conn),
			otelmqMode(modeNoop, tracingNoop, 1, pair(modeNoop)),
			otelmqMode(modeSDK, tracingAlways, 1, pair(modeSDK)),
			otelmqMode(modeRatio, tracingRatio, 1, pair(modeRatio)),
			otelmqMode(modeRatioPB, tracingRatioPB, 1, pair(modeRatioPB)),
			amqpMode(modeHand, tracingAlways, conn),
		},
		targets: func(r *results) []verdict {
			vs := []verdict{noopTarget(r, 0.98)}
			x := r.ratio(modeSDK, modeHand, cpu)
			vs = append(vs, verdict{"otelmq-sdk CPU/msg <= 0.8x handwritten-sdk", fmt.Sprintf("%.2fx", x), x <= 0.8})
			a := r.med(modeSDK, allocs)
			vs = append(vs, verdict{"otelmq-sdk allocs <= 95 per message", fmt.Sprintf("%.1f", a), a <= 95})
			return vs
		},
		close: func() { _ = conn.Close() },
	}, nil
}

// deleteQueue removes a run's queue now rather than leaving it to the
// x-expires DeclareQueue sets.
func deleteQueue(conn *rabbitmq.Connection, q string) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	_, _ = ch.QueueDelete(q, false, false, false)
	_ = ch.Close()
}

// tableCarrier is the carrier a hand-written tracer defines over amqp.Table.
type tableCarrier amqp.Table

func (c tableCarrier) Get(key string) string {
	s, _ := c[key].(string)
	return s
}
func (c tableCarrier) Set(key, value string) { c[key] = value }
func (c tableCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// amqpMode is plain amqp091: a publish per message, a manual-ack consumer.
// With a provider it is tracing as a blog post writes it: a producer span
// around the publish with the context injected into the headers, and a
// consumer span around each delivery's ack.
func amqpMode(name string, tr tracing, conn *rabbitmq.Connection) mode {
	return mode{name: name, tracing: tr, build: func(ctx context.Context, rep int, tp trace.TracerProvider, cnt *counter) (*pipeline, error) {
		q, err := embedded.DeclareQueue(conn, "bench-"+name)
		if err != nil {
			return nil, err
		}
		pubCh, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		subCh, err := conn.Channel()
		if err != nil {
			_ = pubCh.Close()
			return nil, err
		}
		if err := subCh.Qos(rabbitPrefetch, 0, false); err != nil {
			return nil, err
		}
		deliveries, err := subCh.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			return nil, err
		}
		var tracer trace.Tracer
		if tp != nil {
			tracer = tp.Tracer("handwritten")
		}
		prop := otelprop.TraceContext{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for d := range deliveries {
				var span trace.Span
				if tracer != nil {
					dctx := prop.Extract(context.Background(), tableCarrier(d.Headers))
					_, span = tracer.Start(dctx, "consume "+q, trace.WithSpanKind(trace.SpanKindConsumer))
				}
				err := d.Ack(false)
				if span != nil {
					span.End()
				}
				if err != nil {
					cnt.fail(fmt.Errorf("ack: %w", err))
					return
				}
				cnt.add(1)
			}
		}()
		return &pipeline{
			publish: func(ctx context.Context, n int) error {
				for range n {
					pub := amqp.Publishing{Body: body, DeliveryMode: amqp.Transient}
					pctx := ctx
					var span trace.Span
					if tracer != nil {
						pctx, span = tracer.Start(ctx, "publish "+q, trace.WithSpanKind(trace.SpanKindProducer))
						pub.Headers = amqp.Table{}
						prop.Inject(pctx, tableCarrier(pub.Headers))
					}
					err := pubCh.PublishWithContext(pctx, "", q, false, false, pub)
					if span != nil {
						span.End()
					}
					if err != nil {
						return err
					}
				}
				return nil
			},
			stop: func() error {
				// Closing the channel ends the deliveries channel, which
				// ends the consumer goroutine.
				err := subCh.Close()
				<-done
				_ = pubCh.Close()
				deleteQueue(conn, q)
				return err
			},
		}, nil
	}}
}
