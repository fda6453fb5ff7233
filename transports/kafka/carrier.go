package kafka

import (
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/propagation"
)

// Carrier adapts a Kafka record's headers to propagation.TextMapCarrier.
//
// Kafka headers are a list, so a key can appear more than once. Get returns
// the LAST value under a key: Set replaces instead of appending, so after it
// there is one value anyway, and clients that append (to re-inject a context
// on a forwarded record) put the newest value last. OTel Java's Kafka
// instrumentation also reads the last header; franz-go's kotel reads the
// first, so a record with duplicates can be read differently by the two.
//
// A nil header value reads as "". Set removes every header under key and
// appends one with value, keeping the other headers in order. A Carrier over
// a nil record reads nothing and writes nothing.
//
// Set does not copy value: the header's Value shares the string's memory,
// which saves an allocation per propagated field on every record. Such a
// Value must not be written in place (nothing in franz-go does); replace the
// slice instead, as Set itself does.
type Carrier struct {
	r *kgo.Record
}

var _ propagation.TextMapCarrier = Carrier{}

// NewCarrier returns a Carrier that reads and writes r.Headers.
func NewCarrier(r *kgo.Record) Carrier { return Carrier{r: r} }

// Get returns the value of the last header named key, "" when there is none.
func (c Carrier) Get(key string) string {
	if c.r == nil {
		return ""
	}
	for i := len(c.r.Headers) - 1; i >= 0; i-- {
		if c.r.Headers[i].Key == key {
			return string(c.r.Headers[i].Value)
		}
	}
	return ""
}

// Set replaces every header named key with one header holding value.
func (c Carrier) Set(key, value string) {
	if c.r == nil {
		return
	}
	n := 0
	for _, h := range c.r.Headers {
		if h.Key == key {
			n++
		}
	}
	if n == 0 {
		// The common case (injecting into a new record): add to a copy,
		// never in place. A header slice with room to spare may share its
		// array with other records (a caller that builds one slice for
		// many), and appending into it would give them this record's
		// trace context.
		h := make([]kgo.RecordHeader, len(c.r.Headers), len(c.r.Headers)+1)
		copy(h, c.r.Headers)
		c.r.Headers = append(h, kgo.RecordHeader{Key: key, Value: bytesOf(value)})
		return
	}
	// Replacing builds a new slice, so a header slice the caller shares
	// between records is never written through.
	kept := make([]kgo.RecordHeader, 0, len(c.r.Headers)-n+1)
	for _, h := range c.r.Headers {
		if h.Key != key {
			kept = append(kept, h)
		}
	}
	c.r.Headers = append(kept, kgo.RecordHeader{Key: key, Value: bytesOf(value)})
}

// bytesOf returns the bytes of s without copying them; they are read-only.
func bytesOf(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Keys returns the distinct header keys in the order they first appear.
func (c Carrier) Keys() []string {
	if c.r == nil {
		return nil
	}
	keys := make([]string, 0, len(c.r.Headers))
	seen := make(map[string]struct{}, len(c.r.Headers))
	for _, h := range c.r.Headers {
		if _, dup := seen[h.Key]; dup {
			continue
		}
		seen[h.Key] = struct{}{}
		keys = append(keys, h.Key)
	}
	return keys
}
