package kafka

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Hooks traces the records of code that drives a *kgo.Client itself instead
// of using Publisher and Subscriber. Install it with kgo.WithHooks(h) on the
// producing client, the consuming client, or both; in the poll loop use
// ReceiveContext and StartProcess.
//
// On produce, each record gets a send span (PRODUCER), a child of the
// record's Context (the ctx given to Produce or ProduceSync when the record
// had none), and its creation context is written into the record headers
// through Carrier, unless the record already carries a valid traceparent
// (a relay, a retry), which is kept and linked. The span ends when kgo
// finishes the record, with the produce error if any. While the record is
// buffered, r.Context carries the send span.
//
// On fetch, each record's Context is set to one carrying the producer's
// creation context as the remote parent, so a loop that continues
// r.Context stays in the producer's trace. Baggage is not put there, because
// WithInboundBaggage must filter it first: StartProcess takes it from the
// headers and filters it.
//
// Do not also wrap a Publisher or Subscriber on the same client with
// middleware tracing, nor install kotel's tracer: each would record its own
// send and process spans. The trace context is never injected twice,
// because an existing traceparent is kept.
//
// A Hooks may serve several clients. The consumer group and the server
// address come from the clients it is installed on (kgo.HookNewClient):
// they are recorded while those clients agree on them (a producer has no
// group, which agrees with any), and left out once two clients differ.
type Hooks struct {
	tracing *middleware.Tracing
	metrics *middleware.Metrics // nil: none (NewHooksWithTracing)

	mu     sync.Mutex
	group  string
	host   string
	port   int
	mixedG bool // clients with different groups: record none
	mixedS bool // clients with different seeds: record none
	// attrs are the destination attributes the fields above give, built
	// by OnNewClient so that a record's spans do not build them again;
	// nil until the first client.
	attrs atomic.Pointer[destAttributes]
}

// destAttributes are the destination attributes of the hooks' spans; the
// slices are shared by every span and never modified.
type destAttributes struct {
	producer []attribute.KeyValue // server address and port
	consumer []attribute.KeyValue // and the consumer group
}

var (
	_ kgo.HookNewClient               = (*Hooks)(nil)
	_ kgo.HookProduceRecordBuffered   = (*Hooks)(nil)
	_ kgo.HookProduceRecordUnbuffered = (*Hooks)(nil)
	_ kgo.HookFetchRecordBuffered     = (*Hooks)(nil)
)

// NewHooks returns Hooks that record through middleware.NewTelemetry(opts...):
// spans, and the metrics described at NewHooksWithTelemetry.
func NewHooks(opts ...middleware.Option) *Hooks {
	return NewHooksWithTelemetry(middleware.NewTelemetry(opts...))
}

// NewHooksWithTelemetry returns Hooks that record spans through t.Tracing
// and metrics through t.Metrics (a nil one records none), so the hooks
// and middleware-wrapped publishers and subscribers of other topics share
// one configuration; a nil t is middleware.NewTelemetry().
//
// The metrics: each produced record is a send, with its
// messaging.client.operation.duration (from when kgo buffered the record
// to when it finished it, as its span) and messaging.client.sent.messages;
// each record ReceiveContext sees counts in
// messaging.client.consumed.messages, and a process span from StartProcess
// ended through Tracing.End (or middleware.End) records
// messaging.process.duration and, at its start, otelmq.message.queue_time.
// kgo has no hook at the start of a poll nor around a commit, so there is
// no receive or commit duration (Metrics' Sent and Consumed are there for
// code that measures those itself).
func NewHooksWithTelemetry(t *middleware.Telemetry) *Hooks {
	if t == nil {
		t = middleware.NewTelemetry()
	}
	h := NewHooksWithTracing(t.Tracing)
	h.metrics = t.Metrics
	return h
}

// NewHooksWithTracing returns Hooks that record spans through t and no
// metrics; a nil t is middleware.NewTracing().
func NewHooksWithTracing(t *middleware.Tracing) *Hooks {
	if t == nil {
		t = middleware.NewTracing()
	}
	return &Hooks{tracing: t}
}

// Tracing returns the Tracing the hooks record through.
func (h *Hooks) Tracing() *middleware.Tracing { return h.tracing }

// Metrics returns the Metrics the hooks record through, nil when none.
func (h *Hooks) Metrics() *middleware.Metrics { return h.metrics }

// OnNewClient implements kgo.HookNewClient: it learns the client's consumer
// group and first seed broker for the span attributes.
func (h *Hooks) OnNewClient(cl *kgo.Client) {
	group, _ := cl.OptValue(kgo.ConsumerGroup).(string)
	var host string
	var port int
	if seeds, ok := cl.OptValue(kgo.SeedBrokers).([]string); ok && len(seeds) > 0 {
		host, port = splitSeed(seeds[0])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if group != "" {
		switch {
		case h.group == "":
			h.group = group
		case h.group != group:
			h.mixedG = true
		}
	}
	if host != "" {
		switch {
		case h.host == "":
			h.host, h.port = host, port
		case h.host != host || h.port != port:
			h.mixedS = true
		}
	}
	h.updateAttributes()
}

// destination describes topic; consumer adds the consumer group.
func (h *Hooks) destination(topic string, consumer bool) middleware.Destination {
	d := middleware.Destination{System: propagation.SystemKafka, Name: topic}
	if a := h.attrs.Load(); a != nil {
		d.Attributes = a.producer
		if consumer {
			d.Attributes = a.consumer
		}
	}
	return d
}

// updateAttributes rebuilds h.attrs from the fields; h.mu is held.
func (h *Hooks) updateAttributes() {
	var server []attribute.KeyValue
	if !h.mixedS {
		server = config{host: h.host, port: h.port}.serverAttributes()
	}
	consumer := server
	if !h.mixedG && h.group != "" {
		consumer = append(slices.Clip(server), propagation.ConsumerGroup(h.group))
	}
	h.attrs.Store(&destAttributes{producer: slices.Clip(server), consumer: slices.Clip(consumer)})
}

// sendState is what OnProduceRecordBuffered leaves in r.Context for
// OnProduceRecordUnbuffered: a context that carries the send span and
// answers sendStateKey with itself. It is looked up under a private key
// rather than read back as the context's current span, so a hook installed
// after this one that replaces r.Context (kotel does) cannot make us end
// its span or leak ours. Being the context itself, it costs one allocation
// where a context.WithValue of a state would cost two.
type sendState struct {
	context.Context // the send span's context
	span            trace.Span
	parent          context.Context // r.Context before the send span
	start           time.Time       // when the record was buffered; zero without metrics
}

type sendStateKey struct{}

func (s *sendState) Value(key any) any {
	if key == (sendStateKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// OnProduceRecordBuffered implements kgo.HookProduceRecordBuffered: it
// starts the record's send span and injects the creation context.
func (h *Hooks) OnProduceRecordBuffered(r *kgo.Record) {
	parent := r.Context
	if parent == nil {
		parent = context.Background()
	}
	if prev, ok := parent.Value(sendStateKey{}).(*sendState); ok {
		// The record is produced again (a caller retrying a failed
		// record): the new send is a sibling of the first, not its child.
		parent = prev.parent
	}
	d := h.destination(r.Topic, false)
	// The span starts with the destination's attributes, what a sampler
	// may use; the record's are set when it is unbuffered, if it records.
	// One record per send span: the send span is the creation context, as
	// with Publisher for a single message, unless the record carries a
	// valid one already. The carrier replaces, so a stale or invalid
	// traceparent is not left next to ours.
	ctx, span := h.tracing.StartSendOne(parent, d, NewCarrier(r))
	st := &sendState{Context: ctx, span: span, parent: parent}
	if h.metrics != nil {
		st.start = time.Now()
	}
	r.Context = st
}

// OnProduceRecordUnbuffered implements kgo.HookProduceRecordUnbuffered: it
// ends the record's send span, with err as its error.
func (h *Hooks) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if r.Context == nil {
		return
	}
	st, ok := r.Context.Value(sendStateKey{}).(*sendState)
	if !ok {
		return // buffered before the hooks were installed, or not ours
	}
	err = named(err)
	if h.metrics != nil {
		// In the send span's context, as the Publisher middleware measures
		// inside its send span (exemplars point at it).
		h.metrics.Sent(st.Context, h.destination(r.Topic, false), st.start, 1, err)
	}
	if st.span.IsRecording() {
		// One call for all: each call can grow the span's attributes.
		id := ""
		if err == nil {
			id = recordID(r.Topic, r.Partition, r.Offset) // known only now
		}
		attrs := appendProducedAttributes(make([]attribute.KeyValue, 0, 5), r.Key, r.Value == nil, id, r.Offset)
		if id != "" {
			attrs = append(attrs, propagation.MessageID(id))
		}
		h.tracing.RecordAttributes(st.span, attrs...)
	}
	h.tracing.End(st.span, err)
}

// fetched is what OnFetchRecordBuffered leaves in r.Context: a context
// that carries the creation context as the remote span context and
// answers creationKey with itself, so ReceiveContext does not parse the
// headers again even if a later hook replaced r.Context's span. Being the
// context itself, it costs one allocation where a context.WithValue of the
// span context would cost two.
type fetched struct {
	context.Context
	creation trace.SpanContext // invalid when the headers hold none
	// dropped is what the propagation limits cut from the trace context,
	// for StartProcess to record on the process span.
	dropped []propagation.Dropped
	// otherBaggage is set when the extraction found baggage although the
	// baggage header was hidden from it (a propagator that carries baggage
	// in other headers, or baggage already in r.Context): StartProcess then
	// extracts the headers again rather than read the baggage header alone.
	otherBaggage bool
}

type creationKey struct{}

func (f *fetched) Value(key any) any {
	if key == (creationKey{}) {
		return f
	}
	return f.Context.Value(key)
}

// OnFetchRecordBuffered implements kgo.HookFetchRecordBuffered: it puts the
// record's creation context in r.Context as the remote parent.
func (h *Hooks) OnFetchRecordBuffered(r *kgo.Record) {
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	// Only the span context is taken here: the baggage is read (and
	// filtered) by StartProcess, and parsing a large baggage header for
	// every fetched record would be wasted when nobody uses it.
	out, dropped := h.tracing.Propagator().ExtractDropped(ctx, noBaggage{NewCarrier(r)})
	otherBaggage := baggage.FromContext(out).Len() > 0
	sc := trace.SpanContextFromContext(out)
	switch {
	case !sc.IsRemote():
		sc = trace.SpanContext{}
	case baggage.FromContext(ctx).Len() == 0 && baggage.FromContext(out).Len() == 0:
		// out is ctx with sc as its remote span context: use it rather
		// than add sc to ctx again.
		ctx = out
	default:
		// The baggage of out is not ctx's: a propagator found some in
		// other headers (unfiltered), or replaced ctx's.
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	r.Context = &fetched{Context: ctx, creation: sc, dropped: dropped, otherBaggage: otherBaggage}
}

// noBaggage hides the baggage header from the fetch hook's extraction.
type noBaggage struct{ Carrier }

func (c noBaggage) Get(key string) string {
	if key == propagation.BaggageKey {
		return ""
	}
	return c.Carrier.Get(key)
}

// onlyBaggage shows StartProcess's extraction the baggage header alone:
// the fetch hook extracted the rest.
type onlyBaggage struct{ Carrier }

func (c onlyBaggage) Get(key string) string {
	if key != propagation.BaggageKey {
		return ""
	}
	return c.Carrier.Get(key)
}

func (c onlyBaggage) Keys() []string {
	if c.Get(propagation.BaggageKey) == "" {
		return nil
	}
	return []string{propagation.BaggageKey}
}

func (onlyBaggage) Set(string, string) {}

// fetchedOf returns what the fetch hook stored in r.Context, nil when it
// did not run on r (or a later hook replaced r.Context).
func fetchedOf(r *kgo.Record) *fetched {
	if r.Context == nil {
		return nil
	}
	f, _ := r.Context.Value(creationKey{}).(*fetched)
	return f
}

// creation returns r's creation context: the one the fetch hook stored, else
// the one in its headers; invalid when none.
func (h *Hooks) creation(r *kgo.Record) trace.SpanContext {
	if f := fetchedOf(r); f != nil {
		return f.creation
	}
	if sc, _, _ := h.tracing.Propagator().ExtractSpanContext(noBaggage{NewCarrier(r)}); sc.IsRemote() {
		return sc
	}
	return trace.SpanContext{}
}

// ReceiveContext records the receive span (CLIENT) of one poll, linking the
// creation context of each of its records, and returns ctx carrying it:
// pass that ctx to StartProcess, so that a record without a creation
// context is a child of the poll and, with
// middleware.ParentMessageLinkReceive, every process span links it. A
// poll without records is not a receive and returns ctx unchanged.
//
// The span is named by the topic when all records share one, else
// "receive". kgo has no hook at the start of a poll, so the span starts
// when ReceiveContext is called and has no duration; it marks the poll and
// groups the records, it does not time it.
func (h *Hooks) ReceiveContext(ctx context.Context, fetches kgo.Fetches) context.Context {
	records := fetches.Records()
	if len(records) == 0 {
		return ctx
	}
	topic := records[0].Topic
	creations := make([]trace.SpanContext, 0, len(records))
	for _, r := range records {
		if r.Topic != topic {
			topic = ""
		}
		creations = append(creations, h.creation(r))
	}
	if h.metrics != nil {
		h.countConsumed(ctx, records)
	}
	return h.tracing.StartReceive(ctx, h.destination(topic, true), time.Now(), creations)
}

// countConsumed adds records to messaging.client.consumed.messages, per
// topic: a poll's records come grouped by topic and partition, so a run of
// one topic is one measurement.
func (h *Hooks) countConsumed(ctx context.Context, records []*kgo.Record) {
	for start := 0; start < len(records); {
		end := start + 1
		for end < len(records) && records[end].Topic == records[start].Topic {
			end++
		}
		h.metrics.Consumed(ctx, h.destination(records[start].Topic, true), time.Time{}, end-start)
		start = end
	}
}

// StartProcess starts the process span (CONSUMER) of r, parented on its
// creation context per middleware.WithProcessParent, with r's partition,
// offset, key, message ID and body size, and the consumer group when known.
// The returned ctx carries the span and the producer's baggage (filtered by
// middleware.WithInboundBaggage). End the span it returns (not the one in
// ctx: see middleware.Metrics.TimeProcess) with h.Tracing().End, which
// puts its error text through the redactor and, with metrics (NewHooks,
// NewHooksWithTelemetry), records messaging.process.duration with the
// error's error.type; the queue time from r.Timestamp is recorded here.
//
// The allow-listed headers (middleware.WithHeaderAllowList) are recorded
// as messaging.header.<name>, as on the Subscriber's process spans. There
// is no otelmq.message.delivery_count: Kafka does not count deliveries, and
// only the Subscriber counts a record's failed attempts.
//
// Pass the poll's context, ideally from ReceiveContext, not r.Context: the
// process span would take the creation context in r.Context for the
// receive and link it twice.
//
// Producing r itself again from inside its process span (forwarding the
// fetched record) parents the new send span on r.Context, which the fetch
// hook set to r's creation context, not on the process span: set
// r.Context = nil (or to the ctx returned here) before producing it, or
// produce a new record, for a send span that is a child of the process
// span. r's old traceparent is kept in its headers either way (see
// Hooks), so the consumer of the forward continues r's creation context.
func (h *Hooks) StartProcess(ctx context.Context, r *kgo.Record) (context.Context, trace.Span) {
	// The span starts with the attributes a sampler may use: the
	// destination's (the group is one, as on the Subscriber's spans) and
	// the partition; the record's others are built only if it records.
	d := h.destination(r.Topic, true)
	partition := propagation.Partition(r.Partition)
	var span trace.Span
	if f := fetchedOf(r); f != nil && !f.otherBaggage {
		// The fetch hook extracted the creation context: only the baggage
		// header, which it left for WithInboundBaggage, is still to read.
		var bg baggage.Baggage
		var dropped []propagation.Dropped
		if hasHeader(r, propagation.BaggageKey) {
			var out context.Context
			out, dropped = h.tracing.Propagator().ExtractDropped(context.Background(), onlyBaggage{NewCarrier(r)})
			bg = baggage.FromContext(out)
		}
		ctx, span = h.tracing.StartProcessFrom(ctx, d, f.creation, bg, partition)
		propagation.AddDroppedEvents(span, f.dropped)
		propagation.AddDroppedEvents(span, dropped)
		// StartProcess records the allow-listed headers itself; this
		// path has no carrier of its own.
		h.tracing.RecordHeaders(span, NewCarrier(r))
	} else {
		ctx, span = h.tracing.StartProcess(ctx, d, NewCarrier(r), partition)
	}
	if span.IsRecording() {
		h.tracing.RecordAttributes(span, recordAttributes(r, partition, h.tracing.RecordsBodySize())...)
	}
	if h.metrics != nil {
		span = h.metrics.TimeProcess(ctx, span, d, r.Timestamp)
	}
	return ctx, span
}

// recordAttributes are the attributes of r's process span beside the
// destination's and partition: offset, key, tombstone flag, message ID
// and, when bodySize, body size.
func recordAttributes(r *kgo.Record, partition attribute.KeyValue, bodySize bool) []attribute.KeyValue {
	// The message ID and the key share one string.
	var sb strings.Builder
	sb.Grow(idLen(r.Topic, r.Partition, r.Offset) + len(r.Key))
	writeRecordID(&sb, r.Topic, r.Partition, r.Offset)
	n := sb.Len()
	sb.Write(r.Key)
	s := sb.String()
	id, key := s[:n], s[n:]
	all := appendRecordAttributes(make([]attribute.KeyValue, 0, 7), factsOf(r), partition, attribute.KeyValue{}, id, key)
	if bodySize {
		all = append(all, propagation.BodySize(len(r.Value)))
	}
	// appendRecordAttributes, shared with the Subscriber, starts with the
	// partition, which the span has already.
	attrs := all[:0]
	for _, kv := range all {
		if kv.Key != partition.Key {
			attrs = append(attrs, kv)
		}
	}
	return attrs
}

// hasHeader reports whether r has a header named key.
func hasHeader(r *kgo.Record, key string) bool {
	for _, hd := range r.Headers {
		if hd.Key == key {
			return true
		}
	}
	return false
}
