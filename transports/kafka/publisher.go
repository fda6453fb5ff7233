package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Publisher produces Messages to topics with the user's *kgo.Client. It is
// safe for concurrent use, as the client is.
type Publisher struct {
	cl  *kgo.Client
	cfg config
	// attrs are the destination attributes, built once: the tracing
	// middleware describes the destination on every Publish. len == cap,
	// so appending to them copies.
	attrs []attribute.KeyValue
}

var (
	_ middleware.Publisher = (*Publisher)(nil)
	_ middleware.Describer = (*Publisher)(nil)
)

// NewPublisher returns a Publisher over cl. The Publisher does not own cl:
// closing cl is the caller's job.
func NewPublisher(cl *kgo.Client, opts ...Option) *Publisher {
	cfg := newConfig(cl, opts)
	return &Publisher{cl: cl, cfg: cfg, attrs: slices.Clip(cfg.serverAttributes())}
}

// Describe names the destination by the topic.
func (p *Publisher) Describe(topic string) middleware.Destination {
	return middleware.Destination{
		System:     propagation.SystemKafka,
		Name:       topic,
		Attributes: p.attrs,
		// A function, not a closure: Describe runs on every Publish.
		MessageAttributes: producedAttributes,
	}
}

// producedAttributes describes msg, produced by Publish (sent) or about to
// be, as the Hooks describe a record on its send span: key, tombstone and,
// once produced, partition and offset, read back from the ID Publish set.
// Nil when there is nothing to say (no key, a value, not sent).
func producedAttributes(msg *middleware.Message, sent bool) []attribute.KeyValue {
	id, offset := "", int64(0)
	if sent {
		if o, ok := idOffset(msg.ID); ok {
			id, offset = msg.ID, o
		}
	}
	if id == "" && msg.Body != nil && !propagation.RecordableKey(msg.Key) {
		return nil
	}
	return appendProducedAttributes(make([]attribute.KeyValue, 0, 5), msg.Key, msg.Body == nil, id, offset)
}

// Publish produces one record per message to topic and waits until every
// record was acknowledged (per the client's acks setting). A record's
// partition is chosen by the client's partitioner from msg.Key.
//
// On success each message's ID is set to "topic/partition/offset" and a zero
// Time to the timestamp the client stamped. The error names every message
// that was not produced, by index and ID; a nil message is one of them, and
// the others are still produced.
func (p *Publisher) Publish(ctx context.Context, topic string, msgs ...*middleware.Message) error {
	var errs []indexedError
	fail := func(i int, msg *middleware.Message, err error) {
		id := ""
		if msg != nil {
			id = msg.ID
		}
		errs = append(errs, indexedError{i, fmt.Errorf("message %d (id %q): %w", i, id, err)})
	}
	if p.cl == nil {
		for i, msg := range msgs {
			fail(i, msg, errors.New("no client"))
		}
		return publishError(topic, errs)
	}

	for i, msg := range msgs {
		if msg == nil {
			fail(i, msg, middleware.Permanent(errors.New("nil message")))
		}
	}
	records, index := records(topic, msgs)
	if len(records) > 0 {
		// ProduceSync returns the results in the order the records
		// finished, not in the order of records: each result finds its
		// message through its record. The IDs of the call share one
		// string.
		results := p.cl.ProduceSync(ctx, records...)
		size := 0
		for _, res := range results {
			if res.Err == nil {
				size += idLen(res.Record.Topic, res.Record.Partition, res.Record.Offset)
			}
		}
		var sb strings.Builder
		sb.Grow(size)
		for _, res := range results {
			if res.Err == nil {
				writeRecordID(&sb, res.Record.Topic, res.Record.Partition, res.Record.Offset)
			}
		}
		ids, pos := sb.String(), 0
		for _, res := range results {
			i := recordIndex(records, res.Record)
			if i < 0 {
				continue // not one of ours: cannot happen
			}
			if index != nil {
				i = index[i]
			}
			msg := msgs[i]
			if res.Err != nil {
				err := named(res.Err)
				if len(records) == 1 && tooLarge(res.Err) {
					// Alone in the call, the record is what is too
					// large; with others it may be their batch.
					err = middleware.Permanent(err)
				}
				fail(i, msg, err)
				continue
			}
			r := res.Record
			n := idLen(r.Topic, r.Partition, r.Offset)
			msg.ID, pos = ids[pos:pos+n], pos+n
			if msg.Time.IsZero() {
				msg.Time = r.Timestamp
			}
		}
	}
	// Nil messages failed before the produce: put the errors in index order.
	sort.SliceStable(errs, func(a, b int) bool { return errs[a].index < errs[b].index })
	return publishError(topic, errs)
}

// indexedError is the failure of the message at index, kept with its
// index to be sorted; publishError joins the errors alone.
type indexedError struct {
	index int
	err   error
}

func publishError(topic string, errs []indexedError) error {
	if len(errs) == 0 {
		return nil
	}
	joined := make([]error, len(errs))
	for i, e := range errs {
		joined[i] = e.err
	}
	return fmt.Errorf("kafka: publish to %s: %d message(s) failed: %w", topic, len(errs), errors.Join(joined...))
}

// recordIndex is the position of r in recs, or -1. The records of a call
// are one array (see records), so r's offset from the first is its
// position, with no map to build per call. The pointers are only compared and subtracted as integers, and the
// result is checked, so a record from elsewhere is found by a search.
func recordIndex(recs []*kgo.Record, r *kgo.Record) int {
	if len(recs) == 0 {
		return -1
	}
	j := int((uintptr(unsafe.Pointer(r)) - uintptr(unsafe.Pointer(recs[0]))) / unsafe.Sizeof(kgo.Record{}))
	if j >= 0 && j < len(recs) && recs[j] == r {
		return j
	}
	return slices.Index(recs, r)
}
