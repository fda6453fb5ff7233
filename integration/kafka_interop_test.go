package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kotel"
	otelprop "go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// Interop of the Kafka transport with what else produces and consumes Kafka
// records: franz-go's own OpenTelemetry plugin (kotel) on either side,
// clients of other languages that write a bare W3C traceparent header,
// hostile headers, and broker faults injected with kfake.

// kotelTracer is a kotel tracer recording to tp. kotel's propagator defaults
// to the global one, which is a no-op unless the application sets one: the
// W3C propagator is passed explicitly, as an application would install it.
func kotelTracer(tp trace.TracerProvider) (*kotel.Tracer, []kgo.Hook) {
	kt := kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(otelprop.TraceContext{}))
	return kt, kotel.NewKotel(kotel.WithTracer(kt)).Hooks()
}

func kafkaClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// kafkaGroupClient is a consumer built as the Kafka transport documents.
func kafkaGroupClient(t *testing.T, seeds []string, topic, group string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return kafkaClient(t, seeds, append([]kgo.Opt{
		kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, opts...)...)
}

// kafkaSpan waits for the one ended span named name.
func kafkaSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var found []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == name {
				found = append(found, s)
			}
		}
		switch {
		case len(found) == 1:
			return found[0]
		case len(found) > 1:
			t.Fatalf("%d spans named %q, want 1", len(found), name)
		case time.Now().After(deadline):
			t.Fatalf("no span named %q; have %q", name, spanNames(rec.Ended()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKafkaKotelProducer: a record produced under kotel's hooks is
// continued by the traced Subscriber, whose process span is a child of
// kotel's publish span.
func TestKafkaKotelProducer(t *testing.T) {
	rec, tp := newRecorder()
	topic := unique(t, "kotel-in")
	seeds := brokers.Kafka(t, topic)
	_, hooks := kotelTracer(tp)
	producer := kafkaClient(t, seeds, kgo.WithHooks(hooks...))

	ctx, root := tp.Tracer("app").Start(t.Context(), "root")
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	root.End()
	publish := kafkaSpan(t, rec, topic+" publish")
	if publish.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("kotel publish span is not in the root's trace")
	}

	sub := middleware.NewTracing(middleware.WithTracerProvider(tp)).
		Subscriber(kafka.NewSubscriber(kafkaGroupClient(t, seeds, topic, unique(t, "g"))))
	got := make(chan trace.SpanContext, 1)
	stop := RunSubscriber(t, context.Background(), sub, topic, middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		got <- trace.SpanContextFromContext(ctx)
		return nil
	}))
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the record was not handled")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	process := kafkaSpan(t, rec, "process "+topic)
	if process.Parent().SpanID() != publish.SpanContext().SpanID() || process.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Errorf("process span parent %v in trace %v, want kotel's publish span %v in trace %v",
			process.Parent().SpanID(), process.SpanContext().TraceID(), publish.SpanContext().SpanID(), root.SpanContext().TraceID())
	}
}

// TestKafkaKotelConsumer: a record published through the traced Publisher
// is continued by a kotel consumer: kotel's receive span is a child of our
// send span and its process span is in the same trace.
func TestKafkaKotelConsumer(t *testing.T) {
	rec, tp := newRecorder()
	topic := unique(t, "kotel-out")
	seeds := brokers.Kafka(t, topic)
	pub := middleware.NewTracing(middleware.WithTracerProvider(tp)).Publisher(kafka.NewPublisher(kafkaClient(t, seeds)))
	ctx, root := tp.Tracer("app").Start(t.Context(), "root")
	if err := pub.Publish(ctx, topic, middleware.NewMessage([]byte("b"))); err != nil {
		t.Fatal(err)
	}
	root.End()
	send := kafkaSpan(t, rec, "send "+topic)

	kt, hooks := kotelTracer(tp)
	consumer := kafkaClient(t, seeds, kgo.WithHooks(hooks...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	pollCtx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var traceparents int
	for n := 0; n == 0; {
		fetches := consumer.PollFetches(pollCtx)
		if pollCtx.Err() != nil {
			t.Fatal("no record polled")
		}
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			for _, h := range r.Headers {
				if h.Key == "traceparent" {
					traceparents++
				}
			}
			_, span := kt.WithProcessSpan(r)
			span.End()
		})
	}
	// kotel reads the first of duplicate headers, otelmq the last; the
	// Publisher writes one, so they cannot disagree.
	if traceparents != 1 {
		t.Errorf("%d traceparent headers, want 1", traceparents)
	}
	receive := kafkaSpan(t, rec, topic+" receive")
	process := kafkaSpan(t, rec, topic+" process")
	if receive.Parent().SpanID() != send.SpanContext().SpanID() {
		t.Errorf("kotel receive span parent %v, want our send span %v", receive.Parent().SpanID(), send.SpanContext().SpanID())
	}
	if process.SpanContext().TraceID() != root.SpanContext().TraceID() || process.Parent().SpanID() != receive.SpanContext().SpanID() {
		t.Errorf("kotel process span parent %v in trace %v, want kotel's receive span in trace %v",
			process.Parent().SpanID(), process.SpanContext().TraceID(), root.SpanContext().TraceID())
	}
}

// TestKafkaForeignTraceparent: a client of another language that writes a
// bare traceparent header is joined; what otelmq writes is a bare
// traceparent header any W3C propagator reads.
func TestKafkaForeignTraceparent(t *testing.T) {
	rec, tp := newRecorder()
	topic := unique(t, "foreign")
	seeds := brokers.Kafka(t, topic)
	raw := kafkaClient(t, seeds)
	foreign := &kgo.Record{Topic: topic, Value: []byte("in"), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(w3cTraceparent)}}}
	if err := raw.ProduceSync(t.Context(), foreign).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tracing := middleware.NewTracing(middleware.WithTracerProvider(tp))
	got := make(chan trace.SpanContext, 1)
	stop := RunSubscriber(t, context.Background(), tracing.Subscriber(kafka.NewSubscriber(kafkaGroupClient(t, seeds, topic, unique(t, "g")))), topic,
		middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			got <- trace.SpanContextFromContext(ctx)
			return nil
		}))
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the foreign record was not handled")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	process := kafkaSpan(t, rec, "process "+topic)
	if process.SpanContext().TraceID() != mustTraceID(t, w3cTraceID) || process.Parent().SpanID() != mustSpanID(t, w3cSpanID) {
		t.Errorf("process span %v parent %v, want a child of the foreign %s", process.SpanContext().TraceID(), process.Parent().SpanID(), w3cTraceparent)
	}

	// The other way: a record otelmq publishes, read with nothing but the
	// OpenTelemetry W3C propagator over a map of its headers.
	pub := tracing.Publisher(kafka.NewPublisher(raw))
	if err := pub.Publish(t.Context(), topic, middleware.NewMessage([]byte("out"))); err != nil {
		t.Fatal(err)
	}
	send := kafkaSpan(t, rec, "send "+topic)
	consumer := kafkaClient(t, seeds, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for found := false; !found; {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the published record was not polled")
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if string(r.Value) != "out" {
				return
			}
			found = true
			headers := otelprop.MapCarrier{}
			for _, h := range r.Headers {
				headers[h.Key] = string(h.Value)
			}
			sc := trace.SpanContextFromContext(otelprop.TraceContext{}.Extract(context.Background(), headers))
			if sc.SpanID() != send.SpanContext().SpanID() || sc.TraceID() != send.SpanContext().TraceID() {
				t.Errorf("W3C propagator read %v from headers %v, want the send span %v", sc, headers, send.SpanContext())
			}
		})
	}
}

// TestKafkaHostileHeaders produces records with headers a careless or
// hostile producer may write: each reaches the handler exactly once and
// nothing panics. Of duplicate traceparent headers the LAST is the one
// read (Carrier.Get), whether or not it is valid.
func TestKafkaHostileHeaders(t *testing.T) {
	const (
		tpA = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-aaaaaaaaaaaaaaaa-01"
		tpB = "00-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bbbbbbbbbbbbbbbb-01"
	)
	rec, tp := newRecorder()
	topic := unique(t, "hostile")
	seeds := brokers.Kafka(t, topic)
	header := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	var bigState, bigBaggage strings.Builder
	for i := 0; bigState.Len() < 10<<10; i++ {
		fmt.Fprintf(&bigState, "v%d=%016x,", i, i)
	}
	for i := 0; bigBaggage.Len() < 100<<10; i++ {
		fmt.Fprintf(&bigBaggage, "k%d=%032d,", i, i)
	}
	cases := map[string]struct {
		headers []kgo.RecordHeader
		parent  string // expected parent traceparent, "" for none
	}{
		"valid-then-invalid": {[]kgo.RecordHeader{header("traceparent", tpA), header("traceparent", "not-a-traceparent")}, ""},
		"invalid-then-valid": {[]kgo.RecordHeader{header("traceparent", "00-garbage"), header("traceparent", tpB)}, tpB},
		"nil-values":         {[]kgo.RecordHeader{{Key: "traceparent"}, {Key: "tracestate"}, {Key: "baggage"}, {Key: "x"}}, ""},
		"10KB-tracestate":    {[]kgo.RecordHeader{header("traceparent", tpA), header("tracestate", strings.TrimSuffix(bigState.String(), ","))}, tpA},
		"100KB-baggage":      {[]kgo.RecordHeader{header("traceparent", tpB), header("baggage", strings.TrimSuffix(bigBaggage.String(), ","))}, tpB},
	}
	producer := kafkaClient(t, seeds)
	for name, c := range cases {
		if err := producer.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte(name), Headers: c.headers}).FirstErr(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	var mu sync.Mutex
	seen := map[string]int{}
	parents := map[string]trace.SpanContext{}
	sub := middleware.NewTracing(middleware.WithTracerProvider(tp)).
		Subscriber(kafka.NewSubscriber(kafkaGroupClient(t, seeds, topic, unique(t, "g"))))
	stop := RunSubscriber(t, context.Background(), sub, topic, middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		mu.Lock()
		defer mu.Unlock()
		seen[string(msg.Body)]++
		parents[string(msg.Body)] = trace.SpanContextFromContext(ctx)
		return nil
	}))
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == len(cases) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %v, want all of %d cases", seen, len(cases))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // room for a wrong redelivery
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	processParent := map[string]trace.SpanContext{} // body -> parent of its process span
	for _, s := range rec.Ended() {
		if s.Name() != "process "+topic {
			continue
		}
		for body, sc := range parents {
			if s.SpanContext().SpanID() == sc.SpanID() {
				processParent[body] = s.Parent()
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for name, c := range cases {
		if seen[name] != 1 {
			t.Errorf("%s: handled %d times, want 1", name, seen[name])
		}
		parent := processParent[name]
		if c.parent == "" {
			if parent.TraceID().String() == tpA[3:35] {
				t.Errorf("%s: process span continued the overridden %s", name, tpA)
			}
			continue
		}
		if want := c.parent[3:35] + "-" + c.parent[36:52]; parent.TraceID().String()+"-"+parent.SpanID().String() != want {
			t.Errorf("%s: process span parent %v/%v, want %s", name, parent.TraceID(), parent.SpanID(), want)
		}
	}
}

// faultCluster is a kfake cluster the test controls, with topic seeded.
func faultCluster(t *testing.T, topic string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(brokers.KafkaPartitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// failProduce answers one Produce request with code for every partition.
func failProduce(c *kfake.Cluster, code int16, calls *atomic.Int32) {
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		calls.Add(1)
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// TestKafkaProduceFaults: a non-retriable produce error reaches the
// Publish caller; a retriable one is retried by kgo and Publish succeeds.
func TestKafkaProduceFaults(t *testing.T) {
	t.Run("non-retriable", func(t *testing.T) {
		topic := unique(t, "fault")
		c := faultCluster(t, topic)
		var calls atomic.Int32
		failProduce(c, kerr.InvalidRecord.Code, &calls)
		pub := kafka.NewPublisher(kafkaClient(t, c.ListenAddrs()))
		err := pub.Publish(t.Context(), topic, middleware.NewMessage([]byte("x")))
		if !errors.Is(err, kerr.InvalidRecord) {
			t.Fatalf("Publish = %v, want INVALID_RECORD", err)
		}
		if calls.Load() != 1 {
			t.Errorf("%d produce requests failed, want 1", calls.Load())
		}
	})
	t.Run("retriable", func(t *testing.T) {
		topic := unique(t, "fault")
		c := faultCluster(t, topic)
		var calls atomic.Int32
		for range 3 {
			failProduce(c, kerr.NotLeaderForPartition.Code, &calls)
		}
		// NOT_LEADER makes kgo refresh metadata before retrying, which it
		// does at most every MetadataMinAge (5s by default).
		pub := kafka.NewPublisher(kafkaClient(t, c.ListenAddrs(), kgo.MetadataMinAge(50*time.Millisecond)))
		msg := middleware.NewMessage([]byte("x"))
		if err := pub.Publish(t.Context(), topic, msg); err != nil {
			t.Fatalf("Publish = %v, want success after retries", err)
		}
		if calls.Load() != 3 || msg.ID == "" {
			t.Errorf("%d produce requests failed (want 3), ID %q", calls.Load(), msg.ID)
		}
	})
}

// TestKafkaCommitFault fails the first offset commit: no record is lost.
// The Subscriber reports the failure and goes on; the records of the failed
// commit are covered by a later commit of their partition or, when there
// is none, delivered again to the next member of the group.
func TestKafkaCommitFault(t *testing.T) {
	topic := unique(t, "commit")
	c := faultCluster(t, topic)
	seeds := c.ListenAddrs()
	var failed atomic.Int32
	// The first commit fails; the others go through.
	brokers.RefuseCommits(c, kerr.OffsetMetadataTooLarge.Code, func() bool { return failed.CompareAndSwap(0, 1) })

	const n = 40
	msgs := make([]*middleware.Message, n)
	for i := range msgs {
		msgs[i] = middleware.NewMessage(fmt.Appendf(nil, "%d", i))
		msgs[i].Key = fmt.Appendf(nil, "key-%d", i%8)
	}
	if err := kafka.NewPublisher(kafkaClient(t, seeds)).Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	handled := map[string]int{}
	handler := middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		mu.Lock()
		defer mu.Unlock()
		handled[msg.ID]++
		return nil
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	group := unique(t, "g")
	// Small polls: several commits, the first of which fails.
	stop := RunSubscriber(t, context.Background(), kafka.NewSubscriber(kafkaGroupClient(t, seeds, topic, group), kafka.WithMaxPollRecords(5)), topic, handler)
	deadline := time.Now().Add(20 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d records", count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 1 {
		t.Fatalf("%d commits failed, want 1", failed.Load())
	}

	// A second member of the group gets what was not committed, if
	// anything, and afterwards the group has committed every record.
	cl := kafkaGroupClient(t, seeds, topic, group)
	stop = RunSubscriber(t, context.Background(), kafka.NewSubscriber(cl), topic, handler)
	admin := kafkaClient(t, seeds)
	deadline = time.Now().Add(20 * time.Second)
	for {
		total := committedTotal(t, admin, group, topic)
		if total == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group committed %d of %d records", total, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		if handled[m.ID] == 0 {
			t.Errorf("%s was never handled", m.ID)
		}
	}
}

// committedTotal is the sum of the group's committed offsets over topic's
// partitions: the number of records committed, as offsets start at 0.
func committedTotal(t *testing.T, cl *kgo.Client, group, topic string) int64 {
	t.Helper()
	resps, err := kadm.NewClient(cl).FetchOffsets(t.Context(), group)
	if err != nil {
		return 0 // the coordinator may still be loading; try again
	}
	var total int64
	for _, r := range resps.Sorted() {
		if r.Topic == topic && r.Err == nil && r.At > 0 {
			total += r.At
		}
	}
	return total
}
