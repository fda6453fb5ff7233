// Command orders is otelmq's main demo: one trace per order across three
// brokers and five services.
//
//	HTTP POST /orders (orders-api)
//	  -> SQS "orders"            -> payment      (authorises, publishes)
//	  -> RabbitMQ "payments"     -> fraud-check  (scores, publishes)
//	  -> Kafka "orders-approved" -> fulfilment   (ships)
//
// One order fails the fraud check: Retry tries it twice, then DeadLetter
// moves it to an SQS dead-letter queue, where dlq-handler picks it up, still
// in the order's trace. SQS (goaws) and Kafka (kfake) run in this process;
// RabbitMQ is AMQP_URL or a local broker, a container when Docker answers,
// else the in-memory transport. When every order is handled, each order's
// trace is printed as a waterfall, with a check that all its spans share one
// trace ID.
//
//	go run ./examples/orders [-orders 3] [-fail 3] [-batch] [-parent message|receive|none]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
	"github.com/otelmq/otelmq/transports/kafka"
	"github.com/otelmq/otelmq/transports/memory"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

func main() {
	cfg := config{}
	var parent string
	flag.IntVar(&cfg.orders, "orders", 3, "number of orders to place")
	flag.IntVar(&cfg.fail, "fail", 3, "the order that fails the fraud check and is dead-lettered (0: none)")
	flag.BoolVar(&cfg.batch, "batch", false, "place all orders in one request, published to SQS as one batch")
	flag.StringVar(&parent, "parent", "message", "parent of process spans: message, both (message, linking the receive span), receive or none")
	flag.Parse()
	p, err := parseParent(parent)
	if err != nil {
		log.Fatal(err)
	}
	cfg.parent, cfg.logs = p, os.Stderr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

type config struct {
	orders int
	fail   int
	batch  bool
	parent middleware.ProcessParent
	// logs receives the services' slog output (with trace_id and span_id).
	logs io.Writer
}

func parseParent(s string) (middleware.ProcessParent, error) {
	switch s {
	case "message":
		return middleware.ParentMessage, nil
	case "both":
		return middleware.ParentMessageLinkReceive, nil
	case "receive":
		return middleware.ParentReceive, nil
	case "none":
		return middleware.ParentNone, nil
	}
	return 0, fmt.Errorf("-parent %q: want message, both, receive or none", s)
}

// The services, each with its own TracerProvider so spans carry its
// service.name, as they would from separate processes.
const (
	svcAPI         = "orders-api"
	svcPayment     = "payment"
	svcFraud       = "fraud-check"
	svcFulfilment  = "fulfilment"
	svcDeadLetters = "dlq-handler"
)

// headerOrderID travels on every message of an order. It is allow-listed
// (WithHeaderAllowList), so process spans record it as
// messaging.header.order-id: an order number is not sensitive, and it lets
// the report find an order's process spans even when -parent puts them in
// other traces.
const headerOrderID = "order-id"

const attrOrderHeader = attribute.Key(middleware.HeaderAttributePrefix + headerOrderID)

// order is the request and message body. No payment data travels: bodies
// are never recorded in spans, but examples get copied.
type order struct {
	ID          int    `json:"id"`
	Item        string `json:"item"`
	AmountCents int    `json:"amount_cents"`
}

// report is what run found, for the test to check shapes on.
type report struct {
	rabbit string
	spans  []sdktrace.ReadOnlySpan
	orders []orderReport
}

type orderReport struct {
	id      int
	outcome string // "fulfilled" or "dead-lettered"
	spans   []sdktrace.ReadOnlySpan
	traces  []trace.TraceID // distinct trace IDs among spans, the order's own first
}

type outcome struct {
	id   int
	what string
}

// fraudRejected is the fraud check's verdict. ErrorType gives spans and the
// dead-letter header a meaningful error.type instead of "_OTHER".
type fraudRejected struct{ id int }

func (e fraudRejected) Error() string {
	return "order " + strconv.Itoa(e.id) + ": fraud score above threshold"
}
func (e fraudRejected) ErrorType() string { return "fraud_rejected" }

func run(ctx context.Context, cfg config, out io.Writer) (*report, error) {
	if cfg.orders < 1 {
		return nil, errors.New("-orders must be at least 1")
	}
	if cfg.logs == nil {
		cfg.logs = io.Discard
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// One recorder behind every service's provider: the waterfall needs all
	// spans in one place, as a tracing backend would have them.
	recorder := tracetest.NewSpanRecorder()
	exporter := otlpProcessor(out)
	providers := map[string]*sdktrace.TracerProvider{}
	for _, name := range []string{svcAPI, svcPayment, svcFraud, svcFulfilment, svcDeadLetters} {
		opts := []sdktrace.TracerProviderOption{
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
			sdktrace.WithSpanProcessor(recorder),
		}
		if exporter != nil {
			opts = append(opts, sdktrace.WithSpanProcessor(exporter))
		}
		providers[name] = sdktrace.NewTracerProvider(opts...)
	}
	shutdown := func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		for _, tp := range providers {
			_ = tp.Shutdown(sctx)
		}
	}
	defer shutdown()
	telemetry := func(service string) *middleware.Telemetry {
		return middleware.NewTelemetry(
			middleware.WithTracerProvider(providers[service]),
			middleware.WithProcessParent(cfg.parent),
			middleware.WithHeaderAllowList(headerOrderID),
		)
	}
	// One handler for all services: a slog handler serializes its own
	// writes, so services sharing one writer must share the handler.
	// NewLogHandler adds trace_id and span_id to every record logged with a
	// span's context, so logs and traces link up.
	logHandler := middleware.NewLogHandler(slog.NewTextHandler(cfg.logs, nil))
	logger := func(service string) *slog.Logger {
		return slog.New(logHandler).With("service", service)
	}

	// Brokers.
	sqsClient, createQueue, closeSQS, err := embedded.StartSQS()
	if err != nil {
		return nil, err
	}
	defer closeSQS()
	ordersQueue, err := createQueue(ctx, "orders", nil)
	if err != nil {
		return nil, err
	}
	dlqQueue, err := createQueue(ctx, "orders-dlq", nil)
	if err != nil {
		return nil, err
	}
	const approvedTopic = "orders-approved"
	seeds, closeKafka, err := embedded.StartKafka(approvedTopic)
	if err != nil {
		return nil, err
	}
	defer closeKafka()

	var (
		rabbitPub   middleware.Publisher
		rabbitSub   middleware.Subscriber
		paymentsDst = "payments"
	)
	conn, rabbitWhich, rerr := embedded.RabbitMQ()
	if conn != nil {
		defer conn.Close()
		if paymentsDst, err = embedded.DeclareQueue(conn, "payments"); err != nil {
			return nil, err
		}
		pub := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
		defer pub.Close()
		rabbitPub, rabbitSub = pub, rabbitmq.NewSubscriber(conn)
	} else {
		// The demo must run anywhere: without a RabbitMQ this hop is the
		// in-memory transport, traced by the same middleware.
		mem := memory.New()
		rabbitPub, rabbitSub = mem, mem
		logger("demo").Debug("no RabbitMQ", "reason", rerr)
	}

	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ConsumeTopics(approvedTopic),
		kgo.ConsumerGroup(svcFulfilment),
		kgo.DisableAutoCommit(), // the Subscriber commits only handled records
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()

	fmt.Fprintf(out, "hop 1  orders-api  -> payment      SQS:      goaws in process, %s\n", hostOfURL(ordersQueue))
	fmt.Fprintf(out, "hop 2  payment     -> fraud-check  %s\n", rabbitWhich)
	fmt.Fprintf(out, "hop 3  fraud-check -> fulfilment   Kafka:    kfake in process, %s\n", strings.Join(seeds, ","))
	fmt.Fprintf(out, "dlq    fraud-check -> dlq-handler  SQS:      goaws in process, %s (dead letters)\n", hostOfURL(dlqQueue))

	// Services. Each has its own telemetry, publishers and subscribers.
	outcomes := make(chan outcome, 4*cfg.orders)
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	var wg sync.WaitGroup
	subErrs := make(chan error, 4)
	subscribe := func(name string, sub middleware.Subscriber, src string, h middleware.Handler) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sub.Subscribe(subCtx, src, h); err != nil {
				subErrs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	sqsSub := func(service string) middleware.Subscriber {
		// A short long-poll wait so the demo shuts down quickly; a failed
		// message comes back at once instead of after the visibility timeout.
		return telemetry(service).Subscriber(awssqs.NewSubscriber(sqsClient,
			awssqs.WithWaitTime(time.Second), awssqs.WithRetryVisibility(0)))
	}

	// payment: SQS -> RabbitMQ.
	{
		tel, log := telemetry(svcPayment), logger(svcPayment)
		tracer := providers[svcPayment].Tracer("payment")
		pub := tel.Publisher(rabbitPub)
		subscribe(svcPayment, sqsSub(svcPayment), ordersQueue, middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			var o order
			if err := json.Unmarshal(msg.Body, &o); err != nil {
				return fmt.Errorf("payment: bad order: %w", err)
			}
			ctx, span := tracer.Start(ctx, "authorise payment")
			time.Sleep(3 * time.Millisecond) // the card network
			span.End()
			log.InfoContext(ctx, "payment authorised", "order", o.ID)
			next := middleware.NewMessage(msg.Body)
			next.Headers[headerOrderID] = msg.Headers[headerOrderID]
			return pub.Publish(ctx, paymentsDst, next)
		}))
	}

	// fraud-check: RabbitMQ -> Kafka, or the SQS dead-letter queue.
	{
		tel, log := telemetry(svcFraud), logger(svcFraud)
		tracer := providers[svcFraud].Tracer("fraud-check")
		kafkaPub := tel.Publisher(kafka.NewPublisher(producer))
		dlqPub := tel.Publisher(awssqs.NewPublisher(sqsClient))
		check := middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			var o order
			if err := json.Unmarshal(msg.Body, &o); err != nil {
				return fmt.Errorf("fraud-check: bad order: %w", err)
			}
			ctx, span := tracer.Start(ctx, "score order")
			time.Sleep(2 * time.Millisecond)
			if o.ID == cfg.fail {
				err := fraudRejected{id: o.ID}
				tel.Tracing.End(span, err)
				log.WarnContext(ctx, "order rejected", "order", o.ID, "attempt", msg.Attempts())
				return err
			}
			span.End()
			next := middleware.NewMessage(msg.Body)
			next.Key = []byte(strconv.Itoa(o.ID))
			next.Headers[headerOrderID] = msg.Headers[headerOrderID]
			return kafkaPub.Publish(ctx, approvedTopic, next)
		})
		// DeadLetter outside Retry: after the second failed attempt the
		// message goes to the dead-letter queue, keeping its trace context,
		// and is acked here.
		h := middleware.ChainHandler(check,
			middleware.DeadLetter(dlqPub, dlqQueue),
			middleware.Retry(middleware.WithAttempts(2), middleware.WithBackoff(func(int) time.Duration { return 20 * time.Millisecond })),
		)
		subscribe(svcFraud, tel.Subscriber(rabbitSub), paymentsDst, h)
	}

	// fulfilment: Kafka.
	{
		tel, log := telemetry(svcFulfilment), logger(svcFulfilment)
		tracer := providers[svcFulfilment].Tracer("fulfilment")
		subscribe(svcFulfilment, tel.Subscriber(kafka.NewSubscriber(consumer)), approvedTopic, middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			id, _ := strconv.Atoi(msg.Headers[headerOrderID])
			ctx, span := tracer.Start(ctx, "ship order")
			time.Sleep(4 * time.Millisecond)
			span.End()
			log.InfoContext(ctx, "order shipped", "order", id)
			outcomes <- outcome{id, "fulfilled"}
			return nil
		}))
	}

	// dlq-handler: the SQS dead-letter queue.
	{
		log := logger(svcDeadLetters)
		tracer := providers[svcDeadLetters].Tracer("dlq-handler")
		subscribe(svcDeadLetters, sqsSub(svcDeadLetters), dlqQueue, middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			id, _ := strconv.Atoi(msg.Headers[headerOrderID])
			ctx, span := tracer.Start(ctx, "open incident")
			span.End()
			log.WarnContext(ctx, "dead letter", "order", id,
				"attempts", msg.Headers[middleware.HeaderDLQAttempts],
				"error_type", msg.Headers[middleware.HeaderDLQErrorType])
			outcomes <- outcome{id, "dead-lettered"}
			return nil
		}))
	}

	// orders-api: the HTTP entry point, publishing to SQS.
	var anchors sync.Map // order ID -> trace.SpanContext the order's spans hang from
	srv := httptest.NewServer(ordersAPI(cfg, telemetry(svcAPI).Publisher(awssqs.NewPublisher(sqsClient)),
		ordersQueue, providers[svcAPI], logger(svcAPI), &anchors))
	defer srv.Close()

	var all []order
	for i := 1; i <= cfg.orders; i++ {
		all = append(all, order{ID: i, Item: "book-" + strconv.Itoa(i), AmountCents: 1000 + 250*i})
	}
	if cfg.batch {
		if err := post(ctx, srv.URL+"/orders", all); err != nil {
			return nil, err
		}
	} else {
		for _, o := range all {
			if err := post(ctx, srv.URL+"/orders", []order{o}); err != nil {
				return nil, err
			}
		}
	}

	// Wait until every order was fulfilled or dead-lettered. Delivery is at
	// least once, so an order may be reported twice; the first counts.
	done := map[int]string{}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for len(done) < cfg.orders {
		select {
		case o := <-outcomes:
			if _, dup := done[o.id]; !dup && o.id >= 1 && o.id <= cfg.orders {
				done[o.id] = o.what
			}
		case err := <-subErrs:
			return nil, err
		case <-timeout.C:
			return nil, fmt.Errorf("only %d of %d orders handled within 30s", len(done), cfg.orders)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// Stop the services; Subscribe returns after the running handlers have
	// settled their messages, so every settle span has ended after Wait.
	srv.Close()
	stopSubs()
	wg.Wait()
	shutdown()

	rep := &report{rabbit: rabbitWhich, spans: recorder.Ended()}
	for i := 1; i <= cfg.orders; i++ {
		anchor, _ := anchors.Load(i)
		sc, _ := anchor.(trace.SpanContext)
		spans, traces := orderSpans(rep.spans, i, sc)
		rep.orders = append(rep.orders, orderReport{id: i, outcome: done[i], spans: spans, traces: traces})
	}
	printed := map[trace.TraceID]bool{}
	for _, o := range rep.orders {
		fmt.Fprintf(out, "\norder %d: %s\n", o.id, o.outcome)
		for _, id := range o.traces {
			if printed[id] {
				fmt.Fprintf(out, "trace %s: printed above\n", id)
				continue
			}
			printed[id] = true
			printWaterfall(out, id, rep.spans)
		}
	}
	fmt.Fprintln(out)
	var broken []int
	for _, o := range rep.orders {
		switch {
		case len(o.traces) == 1:
			fmt.Fprintf(out, "order %d: %d spans, 1 trace id OK\n", o.id, len(o.spans))
		case cfg.parent == middleware.ParentReceive || cfg.parent == middleware.ParentNone:
			fmt.Fprintf(out, "order %d: %d spans in %d traces, joined by links (-parent %s)\n",
				o.id, len(o.spans), len(o.traces), parentName(cfg.parent))
		default:
			fmt.Fprintf(out, "order %d: %d spans in %d traces: BROKEN\n", o.id, len(o.spans), len(o.traces))
			broken = append(broken, o.id)
		}
	}
	if len(broken) > 0 {
		return rep, fmt.Errorf("orders %v are split across traces", broken)
	}
	return rep, nil
}

// ordersAPI serves POST /orders: a JSON array of orders, published to queue
// in one Publish call (a batch when there are several).
func ordersAPI(cfg config, pub middleware.Publisher, queue string, tp trace.TracerProvider, log *slog.Logger, anchors *sync.Map) http.Handler {
	tracer := tp.Tracer("orders-api")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var orders []order
		if err := json.NewDecoder(r.Body).Decode(&orders); err != nil || len(orders) == 0 {
			http.Error(w, "want a JSON array of orders", http.StatusBadRequest)
			return
		}
		_, span := tracer.Start(ctx, "store orders", trace.WithAttributes(attribute.Int("app.order.count", len(orders))))
		time.Sleep(time.Millisecond) // the database
		span.End()
		msgs := make([]*middleware.Message, len(orders))
		for i, o := range orders {
			body, _ := json.Marshal(o)
			msgs[i] = middleware.NewMessage(body)
			msgs[i].Headers[headerOrderID] = strconv.Itoa(o.ID)
		}
		if err := pub.Publish(ctx, queue, msgs...); err != nil {
			log.ErrorContext(ctx, "publish failed", "error", err)
			http.Error(w, "could not queue the orders", http.StatusServiceUnavailable)
			return
		}
		for i, o := range orders {
			// One order per request: the order is the whole request's
			// trace. A batch: each order's create span.
			anchor := trace.SpanContextFromContext(ctx)
			if len(orders) > 1 {
				anchor = msgs[i].CreationContext()
			}
			anchors.Store(o.ID, anchor)
			log.InfoContext(ctx, "order accepted", "order", o.ID)
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return otelhttp.NewHandler(mux, "orders-api", otelhttp.WithTracerProvider(tp))
}

func post(ctx context.Context, url string, orders []order) error {
	body, _ := json.Marshal(orders)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST /orders: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /orders: %s", res.Status)
	}
	return nil
}

// orderSpans finds the spans of order id: those above and below its anchor
// (the request's server span, or the order's create span in a batch), and
// the process spans tagged with its order-id header with what is above and
// below them. Parent links never cross traces, so with the default
// -parent message all of them share the anchor's trace ID; with receive or
// none the process spans start or join other traces, which traces shows.
func orderSpans(all []sdktrace.ReadOnlySpan, id int, anchor trace.SpanContext) ([]sdktrace.ReadOnlySpan, []trace.TraceID) {
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	for _, s := range all {
		byID[s.SpanContext().SpanID()] = s
		if s.Parent().IsValid() {
			children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
		}
	}
	in := map[trace.SpanID]bool{}
	var down func(trace.SpanID)
	down = func(sid trace.SpanID) {
		for _, c := range children[sid] {
			if !in[c.SpanContext().SpanID()] {
				in[c.SpanContext().SpanID()] = true
				down(c.SpanContext().SpanID())
			}
		}
	}
	up := func(sid trace.SpanID) {
		s, ok := byID[sid]
		for ok && s.Parent().IsValid() {
			if s, ok = byID[s.Parent().SpanID()]; ok {
				in[s.SpanContext().SpanID()] = true
			}
		}
	}
	seeds := []trace.SpanID{}
	if anchor.IsValid() {
		seeds = append(seeds, anchor.SpanID())
	}
	want := strconv.Itoa(id)
	for _, s := range all {
		for _, kv := range s.Attributes() {
			if kv.Key == attrOrderHeader && kv.Value.AsString() == want {
				seeds = append(seeds, s.SpanContext().SpanID())
			}
		}
	}
	for _, sid := range seeds {
		if _, ok := byID[sid]; ok {
			in[sid] = true
		}
		up(sid)
		down(sid)
	}
	var spans []sdktrace.ReadOnlySpan
	var traces []trace.TraceID
	seen := map[trace.TraceID]bool{}
	if anchor.IsValid() {
		traces, seen[anchor.TraceID()] = append(traces, anchor.TraceID()), true
	}
	for _, s := range all {
		if !in[s.SpanContext().SpanID()] {
			continue
		}
		spans = append(spans, s)
		if tid := s.SpanContext().TraceID(); !seen[tid] {
			seen[tid] = true
			traces = append(traces, tid)
		}
	}
	return spans, traces
}

func parentName(p middleware.ProcessParent) string {
	switch p {
	case middleware.ParentReceive:
		return "receive"
	case middleware.ParentNone:
		return "none"
	case middleware.ParentMessageLinkReceive:
		return "both"
	}
	return "message"
}

// hostOfURL is the scheme and host of a queue URL.
func hostOfURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
			return u[:i+3+j] + " (queue " + u[i+3+j+1:] + ")"
		}
	}
	return u
}

// otlpProcessor exports every span over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, configured by the standard OTEL_*
// environment variables (docker compose -f examples/collector/docker-compose.yaml
// up gives a collector, Tempo and Grafana to send them to). Each stage's
// provider carries its own service.name, so the backend shows five services.
func otlpProcessor(out io.Writer) sdktrace.SpanProcessor {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return nil
	}
	exp, err := otlptracehttp.New(context.Background())
	if err != nil {
		fmt.Fprintf(out, "OTLP export disabled: %v\n", err)
		return nil
	}
	fmt.Fprintf(out, "OTLP: exporting to %s\n", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	return sdktrace.NewBatchSpanProcessor(exp)
}
