package kafka

import (
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// recordID is the Message.ID of a record: "topic/partition/offset", which is
// unique within a cluster as long as the topic is not recreated.
func recordID(topic string, partition int32, offset int64) string {
	return topic + "/" + strconv.FormatInt(int64(partition), 10) + "/" + strconv.FormatInt(offset, 10)
}

// record converts msg to a record for topic. Headers are written in sorted
// key order so the same message always produces the same record.
func record(topic string, msg *middleware.Message) *kgo.Record {
	r := &kgo.Record{
		Topic:     topic,
		Key:       msg.Key,
		Value:     msg.Body,
		Timestamp: msg.Time,
	}
	if len(msg.Headers) > 0 {
		keys := make([]string, 0, len(msg.Headers))
		for k := range msg.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		r.Headers = make([]kgo.RecordHeader, len(keys))
		for i, k := range keys {
			r.Headers[i] = kgo.RecordHeader{Key: k, Value: []byte(msg.Headers[k])}
		}
	}
	return r
}

// message converts a record consumed by group to a Message; As reaches r.
// deliveryCount is 1 plus the times this process already handed r's offset
// to a handler that failed.
func message(r *kgo.Record, group string, deliveryCount int) *middleware.Message {
	id := recordID(r.Topic, r.Partition, r.Offset)
	msg := &middleware.Message{
		ID:            id,
		Key:           r.Key,
		Body:          r.Value,
		Headers:       make(map[string]string, len(r.Headers)),
		Time:          r.Timestamp,
		DeliveryCount: deliveryCount,
		Destination:   r.Topic,
	}
	// Later headers overwrite earlier ones: the last duplicate wins, as in
	// Carrier.Get.
	for _, h := range r.Headers {
		msg.Headers[h.Key] = string(h.Value)
	}
	msg.SetAs(func(target any) bool {
		switch t := target.(type) {
		case **kgo.Record:
			*t = r
		case *kgo.Record:
			*t = *r
		default:
			return false
		}
		return true
	})
	msg.SetAttributes(recordAttributes(r, group)...)
	return msg
}

// recordAttributes are the attributes of a consumed record: partition,
// offset, key, tombstone flag, consumer group (when not "") and message ID.
// The Subscriber and Hooks share them so both kinds of process span look
// alike.
func recordAttributes(r *kgo.Record, group string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, propagation.Partition(r.Partition), propagation.KafkaOffset(r.Offset))
	if r.Key != nil {
		attrs = append(attrs, propagation.KafkaKey(r.Key))
	}
	if r.Value == nil {
		attrs = append(attrs, propagation.KafkaTombstone(true))
	}
	if group != "" {
		attrs = append(attrs, propagation.ConsumerGroup(group))
	}
	return append(attrs, propagation.MessageID(recordID(r.Topic, r.Partition, r.Offset)))
}
