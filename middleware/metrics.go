package middleware

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// Metric names: the four semantic-convention messaging metrics and the
// library's own queue time.
const (
	MetricOperationDuration = "messaging.client.operation.duration"
	MetricSentMessages      = "messaging.client.sent.messages"
	MetricConsumedMessages  = "messaging.client.consumed.messages"
	MetricProcessDuration   = "messaging.process.duration"
	// MetricQueueTime is the time from the producer's or broker's timestamp
	// to the start of processing, clamped at zero because producer and
	// consumer clocks can disagree.
	MetricQueueTime = "otelmq.message.queue_time"
)

// durationBuckets are the semantic conventions' advice for messaging
// durations, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// Metrics is the metrics middleware: the four semconv messaging metrics and
// otelmq.message.queue_time. It is safe for concurrent use.
//
// A measurement's attributes are the same for every message of a
// destination, so a Metrics builds them once per destination and operation
// (for up to 1024 of them) and a successful operation allocates nothing;
// a failed one builds its attributes with error.type.
type Metrics struct {
	cfg       config
	opDur     metric.Float64Histogram
	sent      metric.Int64Counter
	consumed  metric.Int64Counter
	procDur   metric.Float64Histogram
	queueTime metric.Float64Histogram
	sets      metricSets
	// noop is set when the provider given is OpenTelemetry's no-op one:
	// nothing is ever recorded, so the middleware steps aside (a failed
	// operation would otherwise still build its attribute set).
	noop bool
}

// NewMetrics returns metrics middleware configured by opts.
func NewMetrics(opts ...Option) *Metrics {
	cfg := newConfig(opts)
	mp := cfg.meterProvider
	if mp == nil {
		mp = otel.GetMeterProvider() // delegates to a provider installed later
	}
	meter := mp.Meter(propagation.ScopeName, metric.WithSchemaURL(propagation.SchemaURL))
	m := &Metrics{cfg: cfg, noop: isNoopMeter(cfg.meterProvider)}
	m.sets.cfg = &m.cfg
	// Instrument errors only come from invalid names, which are constants;
	// the API returns usable no-op instruments alongside any error.
	m.opDur, _ = meter.Float64Histogram(MetricOperationDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of a messaging operation initiated by a producer or consumer client."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	m.sent, _ = meter.Int64Counter(MetricSentMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages producer attempted to send to the broker."))
	m.consumed, _ = meter.Int64Counter(MetricConsumedMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages that were delivered to the application."))
	m.procDur, _ = meter.Float64Histogram(MetricProcessDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of processing operation."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	m.queueTime, _ = meter.Float64Histogram(MetricQueueTime, metric.WithUnit("s"),
		metric.WithDescription("Time from the message's producer or broker timestamp to the start of processing, clamped at zero."),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
	return m
}

// Publisher wraps next: messaging.client.operation.duration and
// messaging.client.sent.messages per publish.
func (m *Metrics) Publisher(next Publisher) Publisher {
	if m.noop {
		return next
	}
	return &meteredPublisher{next: next, m: m}
}

type meteredPublisher struct {
	next Publisher
	m    *Metrics
}

func (p *meteredPublisher) Describe(dest string) Destination { return Describe(p.next, dest) }

func (p *meteredPublisher) Publish(ctx context.Context, dest string, msgs ...*Message) error {
	start := time.Now()
	published := false
	defer func() {
		if !published {
			// The Publisher below panicked: the send is measured, with
			// error.type "panic" as its span has, and the panic goes on.
			r := recover()
			p.record(ctx, dest, start, len(msgs), &publishPanic{value: r})
			if r != nil {
				panic(r)
			}
		}
	}()
	err := p.next.Publish(ctx, dest, msgs...)
	published = true
	p.record(ctx, dest, start, len(msgs), err)
	return err
}

// record measures a send of n messages to dest that began at start and
// ended with err.
func (p *meteredPublisher) record(ctx context.Context, dest string, start time.Time, n int, err error) {
	p.m.Sent(ctx, Describe(p.next, dest), start, n, err)
}

// Sent records a send of n messages to d that began at start and ended
// with err: messaging.client.operation.duration and
// messaging.client.sent.messages (the messages the producer attempted to
// send, failed or not). The Publisher middleware calls it; so does native
// instrumentation (kafka.Hooks, awssqs.Instrumentation), and so may code
// that publishes through a client of its own. A nil m records nothing, as
// for Consumed and TimeProcess.
func (m *Metrics) Sent(ctx context.Context, d Destination, start time.Time, n int, err error) {
	if m == nil || m.noop {
		return
	}
	set := m.attributes(d, propagation.Send, "send", err)
	m.opDur.Record(ctx, time.Since(start).Seconds(), set.record...)
	m.sent.Add(ctx, int64(n), set.add...)
}

// Consumed records a receive of n messages of d, handed to the
// application: messaging.client.consumed.messages and, from start, the
// receive's messaging.client.operation.duration, unless start is zero
// (native instrumentation that sees messages arrive but not when the poll
// began) or d is push-based (see Received, which calls it).
func (m *Metrics) Consumed(ctx context.Context, d Destination, start time.Time, n int) {
	if m == nil || m.noop {
		return
	}
	set := m.sets.get(d, propagation.Receive, "receive")
	if !d.Push && !start.IsZero() {
		m.opDur.Record(ctx, time.Since(start).Seconds(), set.record...)
	}
	m.consumed.Add(ctx, int64(n), set.add...)
}

// Subscriber wraps next: installs m as an Observer and records
// messaging.process.duration and the queue time per message.
func (m *Metrics) Subscriber(next Subscriber) Subscriber {
	if m.noop {
		return next
	}
	return &meteredSubscriber{next: next, m: m}
}

// isNoopMeter recognizes the no-op provider by type. The global provider is
// never treated as no-op: it may delegate to an SDK installed later.
func isNoopMeter(mp metric.MeterProvider) bool {
	switch mp.(type) {
	case noopmetric.MeterProvider, *noopmetric.MeterProvider:
		return true
	}
	return false
}

type meteredSubscriber struct {
	next Subscriber
	m    *Metrics
}

func (s *meteredSubscriber) Describe(src string) Destination { return Describe(s.next, src) }

func (s *meteredSubscriber) Subscribe(ctx context.Context, src string, h Handler) error {
	d := Describe(s.next, src)
	ok := s.m.sets.get(d, propagation.Process, "process")
	return s.next.Subscribe(WithObserver(ctx, s.m), src, HandlerFunc(func(ctx context.Context, msg *Message) error {
		start := time.Now()
		s.m.queued(ctx, ok, start, msg.Time)
		err := Call(ctx, h, msg)
		s.m.processed(ctx, d, ok, start, err)
		return err
	}))
}

// queued records the queue time of a message stamped at produced (zero:
// unknown) whose processing starts at start; ok is d's process set.
func (m *Metrics) queued(ctx context.Context, ok *metricSet, start, produced time.Time) {
	if !produced.IsZero() {
		m.queueTime.Record(ctx, max(start.Sub(produced), 0).Seconds(), ok.record...)
	}
}

// processed records the process duration of a message of d whose
// processing began at start and ended with err; ok is d's process set.
func (m *Metrics) processed(ctx context.Context, d Destination, ok *metricSet, start time.Time, err error) {
	set := ok
	if err != nil {
		set = newMetricSet(m.cfg.metricAttributes(d, propagation.Process, "process", err))
	}
	m.procDur.Record(ctx, time.Since(start).Seconds(), set.record...)
}

// TimeProcess measures the processing of one message of d for native
// instrumentation, whose process span, started in ctx, span is: it
// records otelmq.message.queue_time from produced (the message's producer
// or broker timestamp; zero: none) now, and returns a span in place of
// span whose end records messaging.process.duration, once, with the error
// given to Tracing.End or End. Ended with its End method alone, the
// duration is a failure when the returned span was given an error status
// or an error.type attribute: error.type is that attribute's value, else
// _OTHER. The Subscriber middleware measures its messages itself;
// kafka.Hooks, awssqs.Instrumentation and rabbitmq.Channel call this.
//
// ctx keeps span, not the returned one: spans started under ctx (a send
// or settle inside the processing) may hand the span in ctx back as their
// own when they do not record (the no-op tracer does), and their end must
// not end the measurement. So end the returned span, not the one
// trace.SpanFromContext finds in ctx, which records no duration.
func (m *Metrics) TimeProcess(ctx context.Context, span trace.Span, d Destination, produced time.Time) trace.Span {
	if m == nil || m.noop {
		return span
	}
	t := &timedSpan{Span: span, m: m, ctx: ctx, d: d, start: time.Now()}
	m.queued(ctx, m.sets.get(d, propagation.Process, "process"), t.start, produced)
	return t
}

// timedSpan is a process span whose end records the process duration.
type timedSpan struct {
	trace.Span
	m     *Metrics
	ctx   context.Context
	d     Destination
	start time.Time
	err   atomic.Pointer[error] // what End was given, set before the span ends
	ended atomic.Bool

	// What the span's own methods said of a failure, for a span ended with
	// its End method alone (a handler that set an error status, or
	// error.type, and ended the span itself): the status code, kept with
	// the SDK's precedence (Ok is final, Unset changes nothing), and the
	// last error.type attribute set.
	mu        sync.Mutex
	status    codes.Code
	errorType string
}

// errStatus is the failure of a process span ended with an error status
// and no error: its error.type is the one set on the span, else _OTHER.
var errStatus = errors.New("otelmq: process span ended with an error status")

// SetStatus passes the status on and keeps its code for End.
func (t *timedSpan) SetStatus(code codes.Code, description string) {
	t.mu.Lock()
	if t.status != codes.Ok && code != codes.Unset {
		t.status = code
	}
	t.mu.Unlock()
	t.Span.SetStatus(code, description)
}

// SetAttributes passes the attributes on and keeps error.type for End.
func (t *timedSpan) SetAttributes(kv ...attribute.KeyValue) {
	for _, a := range kv {
		if a.Key == propagation.ErrorTypeKey && a.Value.Type() == attribute.STRING {
			t.mu.Lock()
			t.errorType = a.Value.AsString()
			t.mu.Unlock()
		}
	}
	t.Span.SetAttributes(kv...)
}

func (t *timedSpan) End(opts ...trace.SpanEndOption) {
	if t.ended.CompareAndSwap(false, true) {
		var err error
		if p := t.err.Load(); p != nil {
			err = *p
		} else {
			err = t.failure()
		}
		t.m.processed(t.ctx, t.d, t.m.sets.get(t.d, propagation.Process, "process"), t.start, err)
	}
	t.Span.End(opts...)
}

// failure is the error a span ended without one failed with, by its status
// and error.type (semconv sets error.type only on a failure), or nil.
func (t *timedSpan) failure() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.status == codes.Ok:
		return nil
	case t.errorType != "":
		return NamedError(errStatus, t.errorType)
	case t.status == codes.Error:
		return NamedError(errStatus, "_OTHER")
	}
	return nil
}

// Received implements Observer: consumed messages, and the receive duration
// of a poll. A push delivery (d.Push) is no receive operation: semconv's
// receive is a pull, the duration should match a span and there is none,
// and a push transport's start can include the wait for a message.
func (m *Metrics) Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context {
	m.Consumed(ctx, d, start, len(msgs))
	return ctx
}

// Settled implements Observer: settle operation duration.
func (m *Metrics) Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error) {
	if m.noop {
		return
	}
	m.opDur.Record(ctx, time.Since(start).Seconds(), m.attributes(d, propagation.Settle, op, err).record...)
}

// PollFailed implements PollFailedObserver: the receive duration of a poll
// that failed, with error.type, and no consumed messages. A push
// destination has no receive operation (see Received).
func (m *Metrics) PollFailed(ctx context.Context, d Destination, start time.Time, err error) {
	if d.Push || m.noop {
		return
	}
	m.opDur.Record(ctx, time.Since(start).Seconds(), m.attributes(d, propagation.Receive, "receive", err).record...)
}

// SettledEach implements SettledEachObserver: one settle operation duration
// for the whole request, however many of its messages failed, with the
// error.type of the first typed error among them (see ErrorType).
func (m *Metrics) SettledEach(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, errs []error) {
	if m.noop {
		return
	}
	m.opDur.Record(ctx, time.Since(start).Seconds(), m.attributes(d, propagation.Settle, op, errors.Join(errs...)).record...)
}

// attributes returns the attribute set of operation op (of type typ) on d
// that ended with err: cached when err is nil, built per call with
// error.type otherwise (errors are rare, and their types unbounded).
func (m *Metrics) attributes(d Destination, typ propagation.OperationType, op string, err error) *metricSet {
	if err == nil {
		return m.sets.get(d, typ, op)
	}
	return newMetricSet(m.cfg.metricAttributes(d, typ, op, err))
}

// metricAttributes keeps the destination attributes whose cardinality is
// bounded (server, consumer group), never per-message ones; the
// destination's template (WithDestinationTemplate) replaces its name, the
// name of an anonymous destination (messaging.destination.anonymous: a
// name the broker generated, one per declaration) is left out, and every
// attribute goes through the redactor, as on spans.
func (c *config) metricAttributes(d Destination, typ propagation.OperationType, op string, err error) attribute.Set {
	d = templated(c.template, d)
	// semconv records the name only when its cardinality is known to be
	// low: a template says it is not, and so does a name the broker
	// generated.
	name := d.Name
	if d.Template != "" || anonymous(d) {
		name = ""
	}
	var template []attribute.KeyValue
	if d.Template != "" {
		template = []attribute.KeyValue{propagation.DestinationTemplate(d.Template)}
	}
	attrs := propagation.OperationAttributes(d.System, typ, op, name, template...)
	for _, a := range d.Attributes {
		switch a.Key {
		case propagation.ServerAddressKey, propagation.ServerPortKey, propagation.ConsumerGroupKey:
			attrs = append(attrs, a)
		}
	}
	if err != nil {
		attrs = append(attrs, propagation.ErrorTypeKey.String(ErrorType(err)))
	}
	if c.redact != nil {
		kept := attrs[:0]
		for _, a := range attrs {
			if a = c.redact(a); a.Key != "" {
				kept = append(kept, a)
			}
		}
		attrs = kept
	}
	return attribute.NewSet(attrs...)
}

// anonymous reports whether d says its name was generated by the broker
// (messaging.destination.anonymous true); where d repeats the attribute
// the last one counts.
func anonymous(d Destination) bool {
	anon := false
	for _, a := range d.Attributes {
		if a.Key == propagation.DestinationAnonymousKey {
			anon = a.Value.Type() == attribute.BOOL && a.Value.AsBool()
		}
	}
	return anon
}

// metricKey is everything metricAttributes builds a set from when there is
// no error: the operation, the destination's system and name (none for an
// anonymous destination, so that its generated names share one entry), and
// the destination attributes it keeps. Two destinations with the same key
// have equal sets.
type metricKey struct {
	system, name, template, op string
	typ                        propagation.OperationType
	address, group             string
	port                       int64
	has                        uint8 // hasAddress, hasPort, hasGroup, isAnonymous: which attributes d carries
}

const (
	hasAddress = 1 << iota
	hasPort
	hasGroup
	isAnonymous
)

// newMetricKey returns the key of operation op (of type typ) on d. Where d
// repeats an attribute the last one counts, as in attribute.NewSet. ok is
// false when a kept attribute has a type no transport gives it (a string
// address and consumer group, an integer port): that set is not cached.
func newMetricKey(d Destination, typ propagation.OperationType, op string) (k metricKey, ok bool) {
	k = metricKey{system: d.System, name: d.Name, template: d.Template, op: op, typ: typ}
	for _, a := range d.Attributes {
		switch a.Key {
		case propagation.ServerAddressKey:
			if a.Value.Type() != attribute.STRING {
				return k, false
			}
			k.address, k.has = a.Value.AsString(), k.has|hasAddress
		case propagation.ServerPortKey:
			if a.Value.Type() != attribute.INT64 {
				return k, false
			}
			k.port, k.has = a.Value.AsInt64(), k.has|hasPort
		case propagation.ConsumerGroupKey:
			if a.Value.Type() != attribute.STRING {
				return k, false
			}
			k.group, k.has = a.Value.AsString(), k.has|hasGroup
		case propagation.DestinationAnonymousKey:
			k.has &^= isAnonymous
			if a.Value.Type() == attribute.BOOL && a.Value.AsBool() {
				k.has |= isAnonymous
			}
		}
	}
	if k.has&isAnonymous != 0 {
		// Its generated names share the sets (and a template
		// WithDestinationTemplate gives them: the first one's).
		k.name = ""
	}
	return k, true
}

// maxMetricSets bounds the cache: destinations are meant to be few (their
// names are metric attributes), but nothing enforces it. Past the bound,
// sets are built per measurement as if there were no cache.
const maxMetricSets = 1024

// metricSet is an attribute set as the options of a measurement, ready to
// pass to Record and Add: a variadic call on an instrument (an interface)
// allocates its option slice, passing an existing slice does not. Cached
// sets are shared, so nothing may modify the slices (len == cap, so an
// append copies).
type metricSet struct {
	record []metric.RecordOption
	add    []metric.AddOption
}

func newMetricSet(set attribute.Set) *metricSet {
	opt := metric.WithAttributeSet(set)
	return &metricSet{record: []metric.RecordOption{opt}, add: []metric.AddOption{opt}}
}

// metricSets caches, per metricKey, the attribute set without error.type:
// building it is a slice, a sort, a hash and the options per measurement,
// the same for every message of a destination.
//
// The cache is indexed by destination name, then searched: hashing the
// whole key (six strings) per lookup costs more than comparing it with the
// few operations of one destination (send; receive, process and a settle
// or two), whose strings are mostly the very ones the cache holds. The map
// is copied on write, so a lookup takes no lock; a write copies it (at most
// maxMetricSets entries), once per destination and operation.
type metricSets struct {
	m  atomic.Pointer[metricSetMap]
	mu sync.Mutex // serializes writers
	// cfg is the Metrics' configuration: the template and redactor sets
	// are built with.
	cfg *config
}

type metricSetMap struct {
	byName map[string][]metricSetEntry
	n      int // entries in all
}

type metricSetEntry struct {
	key metricKey
	set *metricSet
}

// get returns the attribute set of operation op (of type typ) on d without
// an error.
func (c *metricSets) get(d Destination, typ propagation.OperationType, op string) *metricSet {
	k, ok := newMetricKey(d, typ, op)
	if !ok {
		return newMetricSet(c.cfg.metricAttributes(d, typ, op, nil))
	}
	m := c.m.Load()
	if s := m.lookup(k); s != nil {
		return s
	}
	if m != nil && m.n >= maxMetricSets {
		return newMetricSet(c.cfg.metricAttributes(d, typ, op, nil)) // full: no lock to take
	}
	return c.add(k, d)
}

func (m *metricSetMap) lookup(k metricKey) *metricSet {
	if m == nil {
		return nil
	}
	for _, e := range m.byName[k.name] {
		if e.key == k {
			return e.set
		}
	}
	return nil
}

// add builds the set of k (of d) and caches it unless the cache is full.
func (c *metricSets) add(k metricKey, d Destination) *metricSet {
	set := newMetricSet(c.cfg.metricAttributes(d, k.typ, k.op, nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if s := old.lookup(k); s != nil {
		return s // another goroutine added it first
	}
	next := &metricSetMap{n: 1}
	if old != nil {
		if old.n >= maxMetricSets {
			return set
		}
		next.n += old.n
		next.byName = make(map[string][]metricSetEntry, len(old.byName)+1)
		for name, es := range old.byName {
			next.byName[name] = es // never modified: appended to as a copy
		}
	} else {
		next.byName = make(map[string][]metricSetEntry, 1)
	}
	es := next.byName[k.name]
	next.byName[k.name] = append(es[:len(es):len(es)], metricSetEntry{key: k, set: set})
	c.m.Store(next)
	return set
}

// len is the number of cached sets.
func (c *metricSets) len() int {
	if m := c.m.Load(); m != nil {
		return m.n
	}
	return 0
}
