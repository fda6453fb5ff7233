package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Publisher produces Messages to topics with the user's *kgo.Client. It is
// safe for concurrent use, as the client is.
type Publisher struct {
	cl  *kgo.Client
	cfg config
}

var (
	_ middleware.Publisher = (*Publisher)(nil)
	_ middleware.Describer = (*Publisher)(nil)
)

// NewPublisher returns a Publisher over cl. The Publisher does not own cl:
// closing cl is the caller's job.
func NewPublisher(cl *kgo.Client, opts ...Option) *Publisher {
	return &Publisher{cl: cl, cfg: newConfig(cl, opts)}
}

// Describe names the destination by the topic.
func (p *Publisher) Describe(topic string) middleware.Destination {
	return middleware.Destination{
		System:     propagation.SystemKafka,
		Name:       topic,
		Attributes: p.cfg.serverAttributes(),
	}
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

	records := make([]*kgo.Record, 0, len(msgs))
	index := make([]int, 0, len(msgs)) // records[j] is msgs[index[j]]
	for i, msg := range msgs {
		if msg == nil {
			fail(i, msg, errors.New("nil message"))
			continue
		}
		records = append(records, record(topic, msg))
		index = append(index, i)
	}
	if len(records) > 0 {
		// ProduceSync returns the results in the order of records.
		for j, res := range p.cl.ProduceSync(ctx, records...) {
			msg := msgs[index[j]]
			if res.Err != nil {
				fail(index[j], msg, res.Err)
				continue
			}
			r := res.Record
			msg.ID = recordID(r.Topic, r.Partition, r.Offset)
			if msg.Time.IsZero() {
				msg.Time = r.Timestamp
			}
		}
	}
	// Nil messages failed before the produce: put the errors in index order.
	sort.SliceStable(errs, func(a, b int) bool { return errs[a].index < errs[b].index })
	return publishError(topic, errs)
}

// indexedError is the failure of the message at index.
type indexedError struct {
	index int
	err   error
}

func (e indexedError) Error() string { return e.err.Error() }
func (e indexedError) Unwrap() error { return e.err }

func publishError(topic string, errs []indexedError) error {
	if len(errs) == 0 {
		return nil
	}
	joined := make([]error, len(errs))
	for i, e := range errs {
		joined[i] = e
	}
	return fmt.Errorf("kafka: publish to %s: %d message(s) failed: %w", topic, len(errs), errors.Join(joined...))
}
