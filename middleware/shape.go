package middleware

import (
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
}

func newShape(d Destination, typ propagation.OperationType, op string) *shape {
	attrs := make([]attribute.KeyValue, 0, 4+len(d.Attributes))
	attrs = propagation.AppendOperationAttributes(attrs, d.System, typ, op, d.Name)
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
		name:  propagation.SpanName(op, d.Name),
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

// matches reports whether s was built for d's attributes (system, name and
// operation are the cache key).
func (s *shape) matches(d Destination) bool {
	return slices.Equal(s.from, d.Attributes)
}

type shapeKey struct {
	system, name, op string
	typ              propagation.OperationType
}

// maxShapes bounds the cache: destination names are meant to be low
// cardinality (they name spans), but nothing enforces it. Past the bound,
// shapes are built per span as if there were no cache.
const maxShapes = 1024

// shapes caches shapes by destination and operation.
type shapes struct {
	m sync.Map // shapeKey -> *shape
	n atomic.Int32
}

// get returns the shape of operation op (of type typ) on d.
func (c *shapes) get(d Destination, typ propagation.OperationType, op string) *shape {
	k := shapeKey{system: d.System, name: d.Name, op: op, typ: typ}
	if v, ok := c.m.Load(k); ok {
		if s := v.(*shape); s.matches(d) {
			return s
		}
	}
	s := newShape(d, typ, op)
	if c.n.Load() < maxShapes {
		if _, loaded := c.m.Swap(k, s); !loaded {
			c.n.Add(1)
		}
	}
	return s
}
