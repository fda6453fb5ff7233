// Command rabbitmq shows the three ways to trace RabbitMQ with otelmq:
//
//  1. the unified API: rabbitmq.NewPublisher / rabbitmq.NewSubscriber
//     wrapped in middleware.Telemetry;
//  2. native-client instrumentation: rabbitmq.WrapChannel around an
//     *amqp.Channel, for code that uses amqp091-go directly;
//  3. manual propagation: rabbitmq.Carrier over the AMQP header table with
//     propagation.Inject/Extract.
//
// It needs a RabbitMQ broker: AMQP_URL, else 127.0.0.1:5672, else a
// container when Docker answers. Without one it says so and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/examples/internal/show"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

func main() {
	flag.Parse() // takes no flags; -h says so instead of running
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, os.Stdout)
	var no *embedded.NoBrokerError
	if errors.As(err, &no) {
		fmt.Println("skipped:", no.Which)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer) error {
	conn, which, err := embedded.RabbitMQ()
	if conn == nil {
		return &embedded.NoBrokerError{Which: which, Err: err}
	}
	defer conn.Close()
	fmt.Fprintln(w, which)

	if err := show.Section(w, "\n1. unified API (rabbitmq.Publisher/Subscriber + middleware.Telemetry)", func(tp trace.TracerProvider) error {
		queue, err := embedded.DeclareQueue(conn, "unified")
		if err != nil {
			return err
		}
		tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))
		pub := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
		defer pub.Close()
		pctx, span := tp.Tracer("example").Start(ctx, "place order")
		err = tel.Publisher(pub).Publish(pctx, queue, middleware.NewMessage([]byte(`{"order":1}`)))
		span.End()
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		handled := false
		err = tel.Subscriber(rabbitmq.NewSubscriber(conn)).Subscribe(sctx, queue, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			handled = true
			cancel() // one message is enough; Subscribe acks it and returns
			return nil
		}))
		if err == nil && !handled {
			err = fmt.Errorf("no message on %s", queue)
		}
		return err
	}); err != nil {
		return err
	}

	if err := show.Section(w, "\n2. native client: rabbitmq.WrapChannel around *amqp.Channel", func(tp trace.TracerProvider) error {
		queue, err := embedded.DeclareQueue(conn, "native")
		if err != nil {
			return err
		}
		raw, err := conn.Channel()
		if err != nil {
			return err
		}
		ch := rabbitmq.WrapChannel(raw, middleware.WithTracerProvider(tp))
		defer ch.Close()
		pctx, span := tp.Tracer("example").Start(ctx, "place order")
		err = ch.PublishWithContext(pctx, "", queue, false, false, amqp.Publishing{Body: []byte(`{"order":2}`)})
		span.End()
		if err != nil {
			return err
		}
		deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		select {
		case d := <-deliveries:
			pctx, span := ch.StartProcess(ctx, d)
			err := ch.Ack(pctx, d, false)
			ch.Tracing().End(span, err)
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("no delivery on %s", queue)
		}
	}); err != nil {
		return err
	}

	return show.Section(w, "\n3. manual: rabbitmq.Carrier with propagation.Inject/Extract", func(tp trace.TracerProvider) error {
		queue, err := embedded.DeclareQueue(conn, "manual")
		if err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		tracer := tp.Tracer("example")
		pctx, span := tracer.Start(ctx, "send manual", trace.WithSpanKind(trace.SpanKindProducer))
		msg := amqp.Publishing{Body: []byte(`{"order":3}`), Headers: amqp.Table{}}
		propagation.Inject(pctx, rabbitmq.NewCarrier(&msg.Headers)) // traceparent in the header table
		err = ch.PublishWithContext(pctx, "", queue, false, false, msg)
		span.End()
		if err != nil {
			return err
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			d, ok, err := ch.Get(queue, false)
			if err != nil {
				return err
			}
			if ok {
				cctx := propagation.Extract(ctx, rabbitmq.NewCarrier(&d.Headers))
				_, span := tracer.Start(cctx, "process manual", trace.WithSpanKind(trace.SpanKindConsumer))
				err := d.Ack(false)
				span.End()
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no message on %s", queue)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
