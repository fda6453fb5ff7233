package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelmq/otelmq/propagation"
)

// The tests in this file are internal: they look at the attribute-set cache
// (Metrics.sets) beside what the metrics record.

func newTestMetrics(t *testing.T) (*Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return NewMetrics(WithMeterProvider(mp)), reader
}

// point is one data point of any of the metrics: its attributes and its
// count (a histogram's count, a counter's value).
type point struct {
	attrs attribute.Set
	n     int64
}

func collectPoints(t *testing.T, reader *sdkmetric.ManualReader) map[string][]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					got[m.Name] = append(got[m.Name], point{dp.Attributes, int64(dp.Count)})
				}
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					got[m.Name] = append(got[m.Name], point{dp.Attributes, dp.Value})
				}
			default:
				t.Fatalf("%s: unexpected aggregation %T", m.Name, m.Data)
			}
		}
	}
	return got
}

// find returns the count of the point of name whose attributes are want
// exactly, or -1.
func find(points map[string][]point, name string, want attribute.Set) int64 {
	for _, p := range points[name] {
		if p.attrs.Equals(&want) {
			return p.n
		}
	}
	return -1
}

func wantSet(d Destination, typ propagation.OperationType, op string, errType string) attribute.Set {
	attrs := propagation.OperationAttributes(d.System, typ, op, d.Name)
	for _, a := range d.Attributes {
		switch a.Key {
		case propagation.ServerAddressKey, propagation.ServerPortKey, propagation.ConsumerGroupKey:
			attrs = append(attrs, a)
		}
	}
	if errType != "" {
		attrs = append(attrs, propagation.ErrorTypeKey.String(errType))
	}
	return attribute.NewSet(attrs...)
}

// describedPublisher is a Publisher and Describer with a fixed Destination
// per name, failing with err.
type describedPublisher struct {
	dests map[string]Destination
	err   error
}

func (p *describedPublisher) Describe(name string) Destination { return p.dests[name] }

func (p *describedPublisher) Publish(context.Context, string, ...*Message) error { return p.err }

// TestMetricsCacheNoCrossTalk: destinations that differ in name, system, a
// kept attribute (another cluster, another consumer group), or operations
// that differ in name or type, get their own attribute sets, each recorded
// once per call, however the calls interleave; attributes the metrics do
// not keep do not make a set of their own.
func TestMetricsCacheNoCrossTalk(t *testing.T) {
	m, reader := newTestMetrics(t)
	base := Destination{System: propagation.SystemKafka, Name: "orders", Attributes: []attribute.KeyValue{
		propagation.ServerAddress("a.example"), propagation.ServerPort(9092), propagation.ConsumerGroup("billing"),
	}}
	with := func(f func(*Destination)) Destination {
		d := base
		d.Attributes = append([]attribute.KeyValue(nil), base.Attributes...)
		f(&d)
		return d
	}
	dests := []Destination{
		base,
		with(func(d *Destination) { d.Name = "invoices" }),
		with(func(d *Destination) { d.System = propagation.SystemRabbitMQ }),
		with(func(d *Destination) { d.Attributes[0] = propagation.ServerAddress("b.example") }),
		with(func(d *Destination) { d.Attributes[1] = propagation.ServerPort(9093) }),
		with(func(d *Destination) { d.Attributes[2] = propagation.ConsumerGroup("audit") }),
		with(func(d *Destination) { d.Attributes = d.Attributes[:2] }), // no group
		with(func(d *Destination) { d.Attributes = nil }),
		{System: propagation.SystemKafka, Name: ""}, // no name: no messaging.destination.name
	}
	ctx := context.Background()
	const rounds = 3
	for range rounds {
		for _, d := range dests {
			m.Received(ctx, d, time.Now(), make([]*Message, 2))
			m.Settled(ctx, d, propagation.OpCommit, time.Now(), nil, nil)
			m.Settled(ctx, d, propagation.OpAck, time.Now(), nil, nil)
			// Not kept in metrics: the same sets as d.
			d.Attributes = append(d.Attributes[:len(d.Attributes):len(d.Attributes)], propagation.ClientID("c1"))
			m.Received(ctx, d, time.Now(), make([]*Message, 1))
		}
	}
	points := collectPoints(t, reader)
	if n, want := len(points[MetricOperationDuration]), 3*len(dests); n != want {
		t.Errorf("%d operation duration points, want %d (one per destination and operation)", n, want)
	}
	if n, want := len(points[MetricConsumedMessages]), len(dests); n != want {
		t.Errorf("%d consumed points, want %d", n, want)
	}
	for _, d := range dests {
		for _, c := range []struct {
			typ  propagation.OperationType
			op   string
			want int64
		}{{propagation.Receive, "receive", 2 * rounds}, {propagation.Settle, propagation.OpCommit, rounds}, {propagation.Settle, propagation.OpAck, rounds}} {
			if n := find(points, MetricOperationDuration, wantSet(d, c.typ, c.op, "")); n != c.want {
				t.Errorf("%+v %s: %d operation durations, want %d", d, c.op, n, c.want)
			}
		}
		if n := find(points, MetricConsumedMessages, wantSet(d, propagation.Receive, "receive", "")); n != 3*rounds {
			t.Errorf("%+v: %d consumed, want %d", d, n, 3*rounds)
		}
	}
	// Each destination's options are cached once, shared by its calls.
	if n, want := m.sets.len(), 3*len(dests); n != want {
		t.Errorf("%d cached sets, want %d", n, want)
	}
	if a, b := m.sets.get(dests[0], propagation.Receive, "receive"), m.sets.get(with(func(*Destination) {}), propagation.Receive, "receive"); a != b {
		t.Error("equal destinations got different cached sets")
	}
}

// TestMetricsCachedSetsEqualBuilt: what the cache returns is the set
// metricAttributes builds, including for a destination repeating an
// attribute (the last one counts) and for one with a kept attribute of an
// unusual type (not cached, still right).
func TestMetricsCachedSetsEqualBuilt(t *testing.T) {
	c := metricSets{cfg: &config{}}
	for _, d := range []Destination{
		{System: "s", Name: "n"},
		{System: "s", Name: "n", Attributes: []attribute.KeyValue{propagation.ServerAddress("x"), propagation.ServerAddress("y")}},
		{System: "s", Name: "n", Attributes: []attribute.KeyValue{propagation.ServerPort(1), propagation.ClientID("id"), propagation.ServerPort(2)}},
		{System: "s", Name: "n", Attributes: []attribute.KeyValue{propagation.ServerAddress("")}}, // present but empty
		{System: "s", Name: "n", Attributes: []attribute.KeyValue{propagation.ServerPortKey.String("5672")}},
		{System: "s", Name: "n", Attributes: []attribute.KeyValue{propagation.ConsumerGroupKey.Int(7)}},
		{System: "s", Name: "n", Attributes: []attribute.KeyValue{propagation.ServerAddressKey.StringSlice([]string{"a", "b"})}},
	} {
		for range 2 { // the second get is a cache hit, if cached
			got := c.get(d, propagation.Receive, "receive")
			want := newMetricSet(c.cfg.metricAttributes(d, propagation.Receive, "receive", nil))
			if g, w := attrSetOf(got), attrSetOf(want); !g.Equals(&w) {
				t.Errorf("%v: cached %v, built %v", d.Attributes, g.ToSlice(), w.ToSlice())
			}
		}
	}
	// "n" and "n" with an empty server.address are different sets.
	if n := c.len(); n != 4 {
		t.Errorf("%d cached sets, want 4 (the unusual types are not cached)", n)
	}
}

// attrSetOf reads back the attribute set of s's options.
func attrSetOf(s *metricSet) attribute.Set {
	return metric.NewRecordConfig(s.record).Attributes()
}

// TestMetricsErrorType: a failed operation records error.type on its own
// data point, the cache is not involved (error types are unbounded), and the
// next successful operation has no error.type.
func TestMetricsErrorType(t *testing.T) {
	m, reader := newTestMetrics(t)
	d := Destination{System: propagation.SystemRabbitMQ, Name: "ex:rk:q", Attributes: []attribute.KeyValue{propagation.ServerAddress("mq.example")}}
	ctx := context.Background()
	boom := errors.New("boom")

	pub := m.Publisher(&describedPublisher{dests: map[string]Destination{"ex:rk:q": d}, err: boom})
	if err := pub.Publish(ctx, "ex:rk:q", NewMessage(nil), NewMessage(nil)); err != boom {
		t.Fatalf("Publish: %v", err)
	}
	m.Settled(ctx, d, propagation.OpNack, time.Now(), nil, boom)
	m.Settled(ctx, d, propagation.OpAck, time.Now(), nil, nil)
	ok := m.Publisher(&describedPublisher{dests: map[string]Destination{"ex:rk:q": d}})
	if err := ok.Publish(ctx, "ex:rk:q", NewMessage(nil)); err != nil {
		t.Fatal(err)
	}

	// Process: a handler error and a panic, then a success.
	var handle Handler
	sub := m.Subscriber(SubscriberFunc(func(_ context.Context, _ string, h Handler) error { handle = h; return nil }))
	calls := 0
	if err := sub.Subscribe(ctx, "ex:rk:q", HandlerFunc(func(context.Context, *Message) error {
		calls++
		switch calls {
		case 1:
			return boom
		case 2:
			panic("oops")
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = handle.Handle(ctx, NewMessage(nil))
	}
	// The subscriber's Describe is not a Describer: System "unknown".
	pd := Destination{System: "unknown", Name: "ex:rk:q"}

	points := collectPoints(t, reader)
	errType := ErrorType(boom)
	for _, c := range []struct {
		metric string
		set    attribute.Set
		want   int64
	}{
		{MetricOperationDuration, wantSet(d, propagation.Send, "send", errType), 1},
		{MetricSentMessages, wantSet(d, propagation.Send, "send", errType), 2},
		{MetricOperationDuration, wantSet(d, propagation.Send, "send", ""), 1},
		{MetricSentMessages, wantSet(d, propagation.Send, "send", ""), 1},
		{MetricOperationDuration, wantSet(d, propagation.Settle, propagation.OpNack, errType), 1},
		{MetricOperationDuration, wantSet(d, propagation.Settle, propagation.OpAck, ""), 1},
		{MetricProcessDuration, wantSet(pd, propagation.Process, "process", errType), 1},
		{MetricProcessDuration, wantSet(pd, propagation.Process, "process", "panic"), 1},
		{MetricProcessDuration, wantSet(pd, propagation.Process, "process", ""), 1},
	} {
		if n := find(points, c.metric, c.set); n != c.want {
			t.Errorf("%s %v: %d, want %d (points: %v)", c.metric, c.set.ToSlice(), n, c.want, points[c.metric])
		}
	}
	if n := len(points[MetricOperationDuration]); n != 4 {
		t.Errorf("%d operation duration points, want 4", n)
	}
	// Cached: send, ack and process without error; nothing with error.type.
	if n := m.sets.len(); n != 3 {
		t.Errorf("%d cached sets, want 3", n)
	}
}

// TestMetricsCacheBounded: past maxMetricSets destinations the cache stops
// growing, and the sets of further destinations are still right.
func TestMetricsCacheBounded(t *testing.T) {
	m, reader := newTestMetrics(t)
	ctx := context.Background()
	const extra = 50
	dest := func(i int) Destination { return Destination{System: "s", Name: fmt.Sprintf("q%d", i)} }
	for i := range maxMetricSets + extra {
		m.Settled(ctx, dest(i), propagation.OpAck, time.Now(), nil, nil)
	}
	if n := m.sets.len(); n != maxMetricSets {
		t.Fatalf("%d cached sets, want the bound %d", n, maxMetricSets)
	}
	// Cached and uncached destinations record alike.
	for _, i := range []int{0, maxMetricSets - 1, maxMetricSets, maxMetricSets + extra - 1} {
		m.Settled(ctx, dest(i), propagation.OpAck, time.Now(), nil, nil)
	}
	points := collectPoints(t, reader)
	if n, want := len(points[MetricOperationDuration]), maxMetricSets+extra; n != want {
		t.Fatalf("%d points, want %d", n, want)
	}
	for _, i := range []int{0, 1, maxMetricSets - 1, maxMetricSets, maxMetricSets + extra - 1} {
		want := int64(1)
		if i != 1 {
			want = 2
		}
		if n := find(points, MetricOperationDuration, wantSet(dest(i), propagation.Settle, propagation.OpAck, "")); n != want {
			t.Errorf("destination %d: %d, want %d", i, n, want)
		}
	}
	if n := m.sets.len(); n != maxMetricSets {
		t.Fatalf("%d cached sets after more calls, want %d", n, maxMetricSets)
	}
}

// TestMetricsCacheConcurrent: goroutines racing to add the same and
// different keys, past the bound, leave one set per key, within the bound.
func TestMetricsCacheConcurrent(t *testing.T) {
	c := metricSets{cfg: &config{}}
	const workers, keys = 4, maxMetricSets/2 + 10
	got := make([][]*metricSet, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range keys {
				// Workers share the first keys and each adds keys of its own:
				// keys + (workers-1)*(keys-keys/2) > maxMetricSets in all.
				name := fmt.Sprintf("q%d", i)
				if i >= keys/2 {
					name = fmt.Sprintf("w%d-q%d", w, i)
				}
				got[w] = append(got[w], c.get(Destination{System: "s", Name: name}, propagation.Receive, "receive"))
			}
		})
	}
	wg.Wait()
	if n := c.len(); n != maxMetricSets {
		t.Fatalf("%d cached sets, want the bound %d", n, maxMetricSets)
	}
	for i := range keys / 2 {
		for w := 1; w < workers; w++ {
			if got[w][i] != got[0][i] {
				t.Fatalf("key %d: workers got different sets", i)
			}
		}
	}
}

// TestMetricsNoAllocs: with the sets cached, recording a publish, a poll,
// a settlement and a process allocates nothing, with the SDK or the no-op
// MeterProvider.
func TestMetricsNoAllocs(t *testing.T) {
	sdk, _ := newTestMetrics(t)
	for name, m := range map[string]*Metrics{
		"sdk":  sdk,
		"noop": NewMetrics(WithMeterProvider(metricnoop.NewMeterProvider())),
	} {
		d := Destination{System: propagation.SystemKafka, Name: "orders", Attributes: []attribute.KeyValue{
			propagation.ServerAddress("k.example"), propagation.ServerPort(9092), propagation.ConsumerGroup("billing"), propagation.ClientID("c"),
		}}
		ctx := context.Background()
		pub := m.Publisher(&describedPublisher{dests: map[string]Destination{"orders": d}})
		var handle Handler
		sub := m.Subscriber(SubscriberFunc(func(_ context.Context, _ string, h Handler) error { handle = h; return nil }))
		_ = sub.Subscribe(ctx, "orders", HandlerFunc(func(context.Context, *Message) error { return nil }))
		msg := NewMessage(nil)
		msg.Time = time.Now()
		msgs := []*Message{msg}
		n := testing.AllocsPerRun(100, func() {
			_ = pub.Publish(ctx, "orders", msgs...)
			m.Received(ctx, d, time.Now(), msgs)
			_ = handle.Handle(ctx, msg)
			m.Settled(ctx, d, propagation.OpCommit, time.Now(), msgs, nil)
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per message", name, n)
		}
	}
}

// TestMetricsNoopProviderStepsAside: with OpenTelemetry's no-op provider
// nothing is recorded, so the middleware wraps nothing and a failed
// operation builds no attribute set (19 allocations each before).
func TestMetricsNoopProviderStepsAside(t *testing.T) {
	m := NewMetrics(WithMeterProvider(metricnoop.NewMeterProvider()))
	pub := PublisherFunc(func(context.Context, string, ...*Message) error { return nil })
	sub := SubscriberFunc(func(context.Context, string, Handler) error { return nil })
	if _, wrapped := m.Publisher(pub).(*meteredPublisher); wrapped {
		t.Error("a no-op provider's Publisher is wrapped")
	}
	if _, wrapped := m.Subscriber(sub).(*meteredSubscriber); wrapped {
		t.Error("a no-op provider's Subscriber is wrapped")
	}
	d := Destination{System: propagation.SystemRabbitMQ, Name: "q"}
	failed := errors.New("nack failed")
	msgs := []*Message{NewMessage(nil)}
	if n := testing.AllocsPerRun(100, func() {
		m.Settled(context.Background(), d, propagation.OpNack, time.Now(), msgs, failed)
		m.PollFailed(context.Background(), d, time.Now(), failed)
	}); n != 0 {
		t.Errorf("failed operations allocate %.0f times with a no-op provider", n)
	}
}

// TestMetricsAnonymousDestinations: the name of a destination the broker
// named (messaging.destination.anonymous, a RabbitMQ server-named queue)
// is one per declaration, so metrics leave it out: every such queue of a
// system adds to one data point and one cached set, and its name reaches
// no metric. Marked false, or not marked, the name is kept.
func TestMetricsAnonymousDestinations(t *testing.T) {
	m, reader := newTestMetrics(t)
	ctx := context.Background()
	server := propagation.ServerAddress("mq.example")
	gen := func(name string, anon ...attribute.KeyValue) Destination {
		return Destination{System: propagation.SystemRabbitMQ, Name: name, Attributes: append([]attribute.KeyValue{server}, anon...)}
	}
	for _, d := range []Destination{
		gen("amq.gen-JzTY20BRgKO-HjmUJj0wLg", propagation.DestinationAnonymous(true)),
		gen("amq.gen-9kPq2mT8cR1-xs0aLw7yNQ", propagation.DestinationAnonymous(true)),
		gen("orders", propagation.DestinationAnonymous(false)),
		gen("orders"),
	} {
		m.Received(ctx, d, time.Now(), make([]*Message, 1))
		m.Settled(ctx, d, propagation.OpAck, time.Now(), nil, errors.New("channel closed"))
	}
	points := collectPoints(t, reader)
	for _, ps := range points {
		for _, p := range ps {
			for _, kv := range p.attrs.ToSlice() {
				if strings.Contains(kv.Value.Emit(), "amq.gen-") {
					t.Errorf("a generated queue name is a metric attribute: %s=%s", kv.Key, kv.Value.Emit())
				}
			}
		}
	}
	noName := attribute.NewSet(append(propagation.OperationAttributes(propagation.SystemRabbitMQ, propagation.Receive, "receive", ""), server)...)
	if n := find(points, MetricConsumedMessages, noName); n != 2 {
		t.Errorf("consumed from the generated queues: %d, want 2 on one point without a name (points: %v)", n, points[MetricConsumedMessages])
	}
	if n := find(points, MetricConsumedMessages, wantSet(gen("orders"), propagation.Receive, "receive", "")); n != 2 {
		t.Errorf("consumed from orders: %d, want 2 with its name", n)
	}
	if n := m.sets.len(); n != 2 {
		t.Errorf("%d cached sets, want 2 (the generated queues share one)", n)
	}
}
