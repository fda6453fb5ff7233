package middleware

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// shape is what every span of one operation on one destination has in
// common: its name, kind and leading attributes. Building them is a string
// concatenation and a slice per span, so they are built once and cached
// (see shapes). A shape is shared: nothing in it may be modified.
type shape struct {
	name string
	kind trace.SpanStartOption
	// attrs are the operation and destination attributes: messaging.system,
	// messaging.operation.name and .type, messaging.destination.name and
	// Destination.Attributes. len == cap, so appending to it copies.
	attrs []attribute.KeyValue
	// opts starts a span with nothing more than kind and attrs; len == cap.
	opts []trace.SpanStartOption
	// one, on a receive shape, is the attributes option of a receive of a
	// single message: attrs and messaging.batch.message_count 1.
	one trace.SpanStartOption
	// from is the Destination.Attributes the shape was built from.
	from []attribute.KeyValue
	// parts caches, per messaging.destination.partition.id value, the start
	// options of a span on one partition: kind, and attrs with the partition.
	// Copy on write; at most maxPartitions entries.
	parts atomic.Pointer[map[string][]trace.SpanStartOption]
	// once is set on a shape built for one span (the cache was full):
	// caching in it would cost more than it saves.
	once bool
}

func newShape(d Destination, typ propagation.OperationType, op string) *shape {
	attrs := make([]attribute.KeyValue, 0, 5+len(d.Attributes))
	attrs = propagation.AppendOperationAttributes(attrs, d.System, typ, op, d.Name)
	named := d.Name
	switch {
	case d.Template != "":
		attrs = append(attrs, propagation.DestinationTemplate(d.Template))
		named = d.Template
	case anonymous(d):
		// A name the broker generated (messaging.destination.anonymous) is
		// one per declaration: semconv names a span after its destination
		// only when that is low-cardinality, so the span is named after
		// the operation alone. The name stays an attribute.
		named = ""
	}
	attrs = append(attrs, d.Attributes...)
	attrs = attrs[:len(attrs):len(attrs)]
	kind := kindClient
	switch typ {
	case propagation.Send, propagation.Create:
		kind = kindProducer
	case propagation.Process:
		kind = kindConsumer
	}
	sh := &shape{
		name:  propagation.SpanName(op, named),
		kind:  kind,
		attrs: attrs,
		opts:  []trace.SpanStartOption{kind, trace.WithAttributes(attrs...)},
		from:  slices.Clone(d.Attributes),
	}
	if typ == propagation.Receive {
		sh.one = trace.WithAttributes(append(sh.with(1), propagation.BatchMessageCount(1))...)
	}
	return sh
}

// with returns a new attribute slice holding the shape's attributes, with
// room for extra more.
func (s *shape) with(extra int) []attribute.KeyValue {
	return append(make([]attribute.KeyValue, 0, len(s.attrs)+extra), s.attrs...)
}

// start returns the attributes option a span of this shape starts with,
// for a message or messages described by attrs: the shape's attributes,
// messaging.batch.message_count n when batch, and the partition
// (messaging.destination.partition.id) in attrs, the attributes "important
// for making sampling decisions" in the semantic conventions. skip is the
// index in attrs of that partition, -1 when there is none; the rest of
// attrs is for recordRest. opts, when not nil, are the span's cached start
// options: kind and attr.
func (s *shape) start(batch bool, n int, attrs []attribute.KeyValue) (attr trace.SpanStartOption, opts []trace.SpanStartOption, skip int) {
	skip = partitionIndex(attrs)
	var p attribute.KeyValue
	if skip >= 0 && !s.has(attrs[skip]) {
		p = attrs[skip]
	}
	switch {
	case batch && n == 1 && s.one != nil && p.Key == "":
		return s.one, nil, skip
	case batch:
		all := append(s.with(2), propagation.BatchMessageCount(n))
		if p.Key != "" {
			all = append(all, p)
		}
		return trace.WithAttributes(all...), nil, skip
	case p.Key == "":
		return s.opts[1], s.opts, skip
	case p.Value.Type() == attribute.STRING && !s.once:
		if opts := s.onPartition(p); opts != nil {
			return opts[1], opts, skip
		}
	}
	return trace.WithAttributes(append(s.with(1), p)...), nil, skip
}

// has reports whether kv is one of the shape's attributes, key and value:
// a message attribute that repeats a destination attribute (the consumer
// group, the queue URL) need not be recorded twice.
func (s *shape) has(kv attribute.KeyValue) bool {
	for _, a := range s.attrs {
		if a.Key == kv.Key && a.Value == kv.Value {
			return true
		}
	}
	return false
}

// maxPartitions bounds a shape's partition cache (parts). Partition IDs are
// few per destination; past the bound, start options are built per span.
const maxPartitions = 256

// onPartition returns the start options (kind and attributes) of a span of
// this shape on partition p, a messaging.destination.partition.id string
// attribute; nil when p is not cached and the cache is full.
func (s *shape) onPartition(p attribute.KeyValue) []trace.SpanStartOption {
	id := p.Value.AsString()
	for {
		old := s.parts.Load()
		if old != nil {
			if opts, ok := (*old)[id]; ok {
				return opts
			}
			if len(*old) >= maxPartitions {
				return nil
			}
		}
		all := append(s.with(1), p)
		opts := []trace.SpanStartOption{s.kind, trace.WithAttributes(all...)}
		m := make(map[string][]trace.SpanStartOption, 1+lenOf(old))
		if old != nil {
			maps.Copy(m, *old)
		}
		m[id] = opts
		if s.parts.CompareAndSwap(old, &m) {
			return opts
		}
	}
}

func lenOf(m *map[string][]trace.SpanStartOption) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// matches reports whether s was built for d's attributes (system, name and
// operation are the cache key).
func (s *shape) matches(d Destination) bool {
	return slices.Equal(s.from, d.Attributes)
}

type shapeKey struct {
	system, name, template, op string
	typ                        propagation.OperationType
}

// maxShapes bounds the cache: destination names are meant to be low
// cardinality (they name spans), but nothing enforces it. Past the bound,
// shapes are built per span as if there were no cache.
const maxShapes = 1024

// shapes caches shapes by destination and operation.
type shapes struct {
	m sync.Map // shapeKey -> *shape
	n atomic.Int32
	// template is WithDestinationTemplate's, applied to a shape's
	// destination as it is built.
	template func(Destination) string
}

// get returns the shape of operation op (of type typ) on d.
func (c *shapes) get(d Destination, typ propagation.OperationType, op string) *shape {
	k := shapeKey{system: d.System, name: d.Name, template: d.Template, op: op, typ: typ}
	if v, ok := c.m.Load(k); ok {
		if s := v.(*shape); s.matches(d) {
			return s
		}
	}
	s := newShape(templated(c.template, d), typ, op)
	if c.n.Load() >= maxShapes {
		s.once = true
		return s
	}
	if _, loaded := c.m.Swap(k, s); !loaded {
		c.n.Add(1)
	}
	return s
}
