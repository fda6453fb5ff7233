package kafka

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// recordID is the Message.ID of a record: "topic/partition/offset", which is
// unique within a cluster as long as the topic is not recreated.
func recordID(topic string, partition int32, offset int64) string {
	var sb strings.Builder
	sb.Grow(idLen(topic, partition, offset))
	writeRecordID(&sb, topic, partition, offset)
	return sb.String()
}

// writeRecordID writes recordID(topic, partition, offset) to sb.
func writeRecordID(sb *strings.Builder, topic string, partition int32, offset int64) {
	var buf [20]byte
	sb.WriteString(topic)
	sb.WriteByte('/')
	sb.Write(strconv.AppendInt(buf[:0], int64(partition), 10))
	sb.WriteByte('/')
	sb.Write(strconv.AppendInt(buf[:0], offset, 10))
}

// idPartition returns the partition part of an ID built by recordID, so
// the partition attribute shares the ID's bytes. It reads the ID from the
// end: the offset and partition hold no '/'.
func idPartition(id string) string {
	rest, _, _ := cutLast(id)
	_, partition, _ := cutLast(rest)
	return partition
}

// appendProducedAttributes appends what a send or create span records of
// one record beside its destination, as the Publisher and the Hooks both
// describe it: its key (when recordable: propagation.RecordableKey), the
// tombstone flag (a nil value) and, once it was produced (id, its recordID,
// is not empty), its partition, sharing id's bytes, and offset.
func appendProducedAttributes(attrs []attribute.KeyValue, key []byte, tombstone bool, id string, offset int64) []attribute.KeyValue {
	if propagation.RecordableKey(key) {
		attrs = append(attrs, propagation.KafkaKey(key))
	}
	if tombstone {
		attrs = append(attrs, propagation.KafkaTombstone(true))
	}
	if id != "" {
		attrs = append(attrs, propagation.PartitionID(idPartition(id)), propagation.KafkaOffset(offset))
	}
	return attrs
}

// idOffset returns the offset of an ID recordID built, and whether id is
// one: an ID a Publish set may have been replaced since (by a publish
// through another transport, or the application). It reads the ID from the
// end, as idPartition does: topic names hold no '/'.
func idOffset(id string) (int64, bool) {
	rest, offset, ok := cutLast(id)
	if !ok {
		return 0, false
	}
	topic, partition, ok := cutLast(rest)
	if !ok || topic == "" {
		return 0, false
	}
	if _, err := strconv.ParseInt(partition, 10, 32); err != nil {
		return 0, false
	}
	o, err := strconv.ParseInt(offset, 10, 64)
	return o, err == nil
}

// cutLast cuts s around its last '/'.
func cutLast(s string) (before, after string, found bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// idLen is len(recordID(topic, partition, offset)), counted without
// formatting: builders are grown by exactly this, since a bound (11 and 20
// digits) would reserve 25 bytes a record that hold nothing.
func idLen(topic string, partition int32, offset int64) int {
	return len(topic) + 1 + digits(int64(partition)) + 1 + digits(offset)
}

// records converts msgs to records for topic, all in one array; the nil
// messages are skipped, and index[j] is the position in msgs of records[j]
// (nil when no message was nil). Headers are written in sorted key order so
// the same message always produces the same record. The records' header
// lists and header values share one array each, cut so that appending to
// one record's headers (Carrier.Set, a hook) reallocates instead of writing
// into the next record's.
func records(topic string, msgs []*middleware.Message) (recs []*kgo.Record, index []int) {
	n, nh := 0, 0
	for _, msg := range msgs {
		if msg != nil {
			n++
			nh += len(msg.Headers)
		}
	}
	if n < len(msgs) {
		index = make([]int, 0, n)
	}
	all := make([]kgo.Record, n)
	recs = make([]*kgo.Record, n)
	var (
		headers []kgo.RecordHeader
		values  []byte
		keys    []string
	)
	if nh > 0 {
		headers = make([]kgo.RecordHeader, 0, nh)
		// A guess, to walk the header maps once: when values outgrows
		// it, append moves on to a new array, and the values already
		// cut from the old one stay as they are.
		values = make([]byte, 0, nh*64)
	}
	j := 0
	for i, msg := range msgs {
		if msg == nil {
			continue
		}
		r := &all[j] // zeroed: set field by field, as in messages
		r.Topic, r.Key, r.Value, r.Timestamp = topic, msg.Key, msg.Body, msg.Time
		if len(msg.Headers) > 0 {
			keys = keys[:0]
			for k := range msg.Headers {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			start := len(headers)
			for _, k := range keys {
				vstart := len(values)
				values = append(values, msg.Headers[k]...)
				headers = append(headers, kgo.RecordHeader{Key: k, Value: values[vstart:len(values):len(values)]})
			}
			r.Headers = headers[start:len(headers):len(headers)]
		}
		recs[j] = r
		if index != nil {
			index = append(index, i)
		}
		j++
	}
	return recs, index
}

// recordAs implements Message.As for r.
func recordAs(r *kgo.Record, target any) bool {
	switch t := target.(type) {
	case **kgo.Record:
		*t = r
	case *kgo.Record:
		*t = *r
	default:
		return false
	}
	return true
}

// consumed is a consumed record as its Message's Native: As reaches the
// record, and MessageAttributes builds the attributes of every record of
// its block the first time a span asks for one's, so records no span
// records (a no-op provider, a trace sampled out with
// WithParentBasedSampling) cost no attributes.
//
// What the attributes are built from is copied here when the Message is:
// build runs on the goroutine of whichever handler asks first, while the
// handlers of the block's other records may be changing their records
// (through As) and their Messages.
//
// A consumed is 64 bytes, an allocator size class: the facts are its own
// fields rather than a recordFacts, and where its attributes start in the
// block's array is an index rather than a slice.
type consumed struct {
	r   *kgo.Record // for As alone
	id  string      // the Message's ID
	key string      // string(r.Key), sharing the block's bytes
	// The record's recordFacts.
	offset            int64
	first             int32 // where its attributes start in block.attrs
	hasKey, tombstone bool
	block             *consumedBlock
}

func (c *consumed) facts() recordFacts {
	return recordFacts{offset: c.offset, hasKey: c.hasKey, tombstone: c.tombstone}
}

// consumedBlock is what the records of one block of messages share.
type consumedBlock struct {
	once  sync.Once
	group attribute.KeyValue // the zero KeyValue without a group
	recs  []consumed
	n     int                  // the attributes of all recs
	attrs []attribute.KeyValue // built by build
}

func (c *consumed) As(target any) bool { return recordAs(c.r, target) }

// MessageAttributes implements middleware.AttributeSource.
func (c *consumed) MessageAttributes() []attribute.KeyValue {
	b := c.block
	b.once.Do(b.build)
	end := int(c.first) + attrCount(c.facts(), b.group.Key != "")
	return b.attrs[c.first:end:end]
}

// build builds the attributes of every record of b into one array.
func (b *consumedBlock) build() {
	attrs := make([]attribute.KeyValue, 0, b.n)
	for i := range b.recs {
		c := &b.recs[i]
		attrs = appendRecordAttributes(attrs, c.facts(), propagation.PartitionID(idPartition(c.id)), b.group, c.id, c.key)
	}
	b.attrs = attrs
}

// messages converts records consumed by group to Messages with
// DeliveryCount 1; As reaches each record.
//
// Records are converted in blocks of messageBlock: the Messages of a block
// share one array, their Natives another (and their attributes a third,
// built when a span first asks: see consumed), and their IDs, keys (as
// attributes) and header values one string, so a record costs only its
// header map plus a few allocations per block. Blocks keep
// those arrays small objects, which the allocator serves from its caches,
// where one array per poll would be a large object (fresh zeroed pages);
// and a handler that keeps a Message keeps its block's memory, not the
// poll's.
func messages(records []*kgo.Record, group string) []*middleware.Message {
	ptrs := make([]*middleware.Message, len(records))
	var groupAttr attribute.KeyValue
	if group != "" {
		groupAttr = propagation.ConsumerGroup(group)
	}
	for i := 0; i < len(records); i += messageBlock {
		j := min(i+messageBlock, len(records))
		messageBlockOf(records[i:j], groupAttr, ptrs[i:j])
	}
	return ptrs
}

// messageBlock is how many records messages converts together: 32
// Messages are a 9 KiB array.
const messageBlock = 32

// messageBlockOf converts up to messageBlock records to the Messages ptrs
// points to; group is the consumer group attribute or the zero KeyValue.
func messageBlockOf(records []*kgo.Record, group attribute.KeyValue, ptrs []*middleware.Message) *consumedBlock {
	size := 0
	for _, r := range records {
		size += idLen(r.Topic, r.Partition, r.Offset) + len(r.Key)
		for _, h := range r.Headers {
			size += len(h.Value)
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	// ends[i] is where record i's ID ends in sb; its key and header
	// values follow.
	var ends [messageBlock]int
	for i, r := range records {
		writeRecordID(&sb, r.Topic, r.Partition, r.Offset)
		ends[i] = sb.Len()
		sb.Write(r.Key)
		for _, h := range r.Headers {
			sb.Write(h.Value)
		}
	}
	s := sb.String()

	msgs := make([]middleware.Message, len(records))
	block := &consumedBlock{group: group, recs: make([]consumed, len(records))}
	pos := 0
	for i, r := range records {
		id := s[pos:ends[i]]
		pos = ends[i]
		var key string
		if r.Key != nil {
			key = s[pos : pos+len(r.Key)]
			pos += len(r.Key)
		}
		var headers map[string]string // nil when the record has none
		if len(r.Headers) > 0 {
			headers = make(map[string]string, len(r.Headers))
		}
		// Later headers overwrite earlier ones: the last duplicate wins,
		// as in Carrier.Get.
		for _, h := range r.Headers {
			headers[h.Key] = s[pos : pos+len(h.Value)]
			pos += len(h.Value)
		}
		c := &block.recs[i]
		f := factsOf(r)
		c.r, c.id, c.key, c.block = r, id, key, block
		c.offset, c.hasKey, c.tombstone, c.first = f.offset, f.hasKey, f.tombstone, int32(block.n)
		block.n += attrCount(f, group.Key != "")
		// Field by field: msgs is zeroed, and copying a whole Message in
		// would run the GC's write barrier over all of it.
		msg := &msgs[i]
		msg.ID = id
		msg.Key = r.Key
		msg.Body = r.Value
		msg.Headers = headers
		msg.Time = r.Timestamp
		msg.DeliveryCount = 1
		msg.Destination = r.Topic
		msg.SetNative(c)
		ptrs[i] = msg
	}
	return block
}

// kafkaKeyKey is the key of propagation.KafkaKey, whose value is built here
// from a string that shares the poll's bytes.
var kafkaKeyKey = propagation.KafkaKey(nil).Key

// recordFacts is what a record's attributes say beside its ID, key and
// partition.
type recordFacts struct {
	offset    int64
	hasKey    bool // a key recorded as an attribute: propagation.RecordableKey
	tombstone bool // a nil value
}

func factsOf(r *kgo.Record) recordFacts {
	return recordFacts{offset: r.Offset, hasKey: propagation.RecordableKey(r.Key), tombstone: r.Value == nil}
}

// attrCount is how many attributes appendRecordAttributes adds for a
// record with facts f.
func attrCount(f recordFacts, group bool) int {
	n := 3 // partition, offset, message ID
	if f.hasKey {
		n++
	}
	if f.tombstone {
		n++
	}
	if group {
		n++
	}
	return n
}

// appendRecordAttributes appends the attributes of a consumed record to
// attrs: partition, consumer group (when group is not the zero KeyValue),
// offset, key, tombstone flag and message ID. The partition (a start
// attribute) and the group (the destination's too) come first, so what
// the tracing middleware sets after the start is one run it passes
// without copying. f is factsOf the record,
// partition its partition attribute, group the consumer group one, id its
// recordID and key string(r.Key): the callers build them once for many
// records or share their bytes. The Subscriber and Hooks share them so
// both kinds of process span look alike.
func appendRecordAttributes(attrs []attribute.KeyValue, f recordFacts, partition, group attribute.KeyValue, id, key string) []attribute.KeyValue {
	attrs = append(attrs, partition)
	if group.Key != "" {
		attrs = append(attrs, group)
	}
	attrs = append(attrs, propagation.KafkaOffset(f.offset))
	if f.hasKey {
		attrs = append(attrs, kafkaKeyKey.String(key))
	}
	if f.tombstone {
		attrs = append(attrs, propagation.KafkaTombstone(true))
	}
	return append(attrs, propagation.MessageID(id))
}

// digits is len(strconv.FormatInt(n, 10)).
func digits(n int64) int {
	d := 1
	u := uint64(n)
	if n < 0 {
		d, u = 2, -u // the sign; -u is |n| even for math.MinInt64
	}
	for ; u >= 10; u /= 10 {
		d++
	}
	return d
}
