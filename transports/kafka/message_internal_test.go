package kafka

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

func TestRecordID(t *testing.T) {
	long := strings.Repeat("t", 200) // longer than any stack buffer
	for _, c := range []struct {
		topic     string
		partition int32
		offset    int64
	}{
		{"orders", 0, 0}, {"orders", 3, 9}, {"orders", 12, 1234567}, {"o", math.MaxInt32, math.MaxInt64},
		{"o", math.MinInt32, math.MinInt64}, {"o", 0, -1}, {long, 100, 100}, {"", 1, 1},
	} {
		want := fmt.Sprintf("%s/%d/%d", c.topic, c.partition, c.offset)
		id := recordID(c.topic, c.partition, c.offset)
		if id != want {
			t.Errorf("recordID = %q, want %q", id, want)
		}
		if n := idLen(c.topic, c.partition, c.offset); len(id) != n {
			t.Errorf("len(%q) = %d, idLen %d", id, len(id), n)
		}
		if p := idPartition(id); p != fmt.Sprint(c.partition) {
			t.Errorf("idPartition(%q) = %q, want %d", id, p, c.partition)
		}
	}
	for _, n := range []int64{0, 1, 9, 10, 11, 99, 100, -1, -9, -10, -11, 1e9 - 1, 1e9, math.MaxInt32, math.MinInt32,
		1e18 - 1, 1e18, math.MaxInt64, math.MinInt64, math.MinInt64 + 1} {
		if got, want := digits(n), len(strconv.FormatInt(n, 10)); got != want {
			t.Errorf("digits(%d) = %d, want %d", n, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = recordID(long, 1, 1) }); n != 1 {
		t.Errorf("recordID allocates %v times, want 1", n)
	}
}

func TestRecordsLayout(t *testing.T) {
	ts := time.UnixMilli(1_700_000_000_000)
	msgs := []*middleware.Message{
		{Key: []byte("k"), Body: []byte("a"), Headers: map[string]string{"z": "1", "a": "22", "m": ""}, Time: ts},
		nil,
		{Body: []byte("b"), Headers: map[string]string{"traceparent": "tp"}},
		{Body: nil},
		// Longer than the space records guesses for the values.
		{Body: []byte("c"), Headers: map[string]string{"big": strings.Repeat("b", 1000), "after": "x"}},
	}
	recs, index := records("orders", msgs)
	if len(recs) != 4 || !slices.Equal(index, []int{0, 2, 3, 4}) {
		t.Fatalf("%d records, index %v; want 4, [0 2 3 4]", len(recs), index)
	}
	for i, r := range recs {
		msg := msgs[index[i]]
		if len(r.Headers) != len(msg.Headers) {
			t.Errorf("record %d has %d headers, message %d", i, len(r.Headers), len(msg.Headers))
		}
		for _, h := range r.Headers {
			if string(h.Value) != msg.Headers[h.Key] {
				t.Errorf("record %d header %q = %q, want %q", i, h.Key, h.Value, msg.Headers[h.Key])
			}
		}
	}
	r0 := recs[0]
	if r0.Topic != "orders" || string(r0.Key) != "k" || string(r0.Value) != "a" || !r0.Timestamp.Equal(ts) {
		t.Errorf("record 0 = %+v", r0)
	}
	var got []string
	for _, h := range r0.Headers {
		got = append(got, h.Key+"="+string(h.Value))
	}
	if want := []string{"a=22", "m=", "z=1"}; !slices.Equal(got, want) {
		t.Errorf("headers %q, want %q (sorted)", got, want)
	}
	if recs[2].Value != nil || recs[2].Headers != nil {
		t.Errorf("tombstone record = %+v", recs[2])
	}
	// The records share arrays: writing one must not reach the next.
	before := string(recs[1].Headers[0].Value)
	NewCarrier(r0).Set("new", "value")
	r0.Headers[0].Value = append(r0.Headers[0].Value, "xxxx"...)
	if len(recs[1].Headers) != 1 || recs[1].Headers[0].Key != "traceparent" || string(recs[1].Headers[0].Value) != before {
		t.Errorf("writing record 0 changed record 1: %+v", recs[1].Headers)
	}

	if _, index := records("orders", msgs[:1]); index != nil {
		t.Errorf("index = %v without nil messages, want nil", index)
	}
}

// fakeRecords are records of two partitions, interleaved, with a key, a
// tombstone, a nil header value and a duplicate header.
func fakeRecords() []*kgo.Record {
	ts := time.UnixMilli(1_700_000_000_000)
	return []*kgo.Record{
		{Topic: "orders", Partition: 0, Offset: 7, Key: []byte("k1"), Value: []byte("v1"), Timestamp: ts,
			Headers: []kgo.RecordHeader{{Key: "dup", Value: []byte("1")}, {Key: "nil"}, {Key: "dup", Value: []byte("2")}}},
		{Topic: "orders", Partition: 11, Offset: 100, Value: nil, Timestamp: ts},
		{Topic: "orders", Partition: 0, Offset: 8, Key: []byte{}, Value: []byte("v3"),
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("tp")}}},
	}
}

// TestMessages converts records with and without a consumer group: the
// records' attributes share one array, so one record's count going wrong
// would shift its neighbours'.
func TestMessages(t *testing.T) {
	for _, group := range []string{"billing", ""} {
		t.Run("group="+group, func(t *testing.T) { testMessages(t, group) })
	}
}

func testMessages(t *testing.T, group string) {
	recs := fakeRecords()
	msgs := messages(recs, group)
	if len(msgs) != len(recs) {
		t.Fatalf("%d messages for %d records", len(msgs), len(recs))
	}
	want := []struct {
		id      string
		headers map[string]string
		attrs   []attribute.KeyValue
	}{
		{"orders/0/7", map[string]string{"dup": "2", "nil": ""}, []attribute.KeyValue{
			propagation.Partition(0), propagation.ConsumerGroup("billing"), propagation.KafkaOffset(7),
			propagation.KafkaKey([]byte("k1")), propagation.MessageID("orders/0/7"),
		}},
		{"orders/11/100", map[string]string{}, []attribute.KeyValue{
			propagation.Partition(11), propagation.ConsumerGroup("billing"), propagation.KafkaOffset(100),
			propagation.KafkaTombstone(true), propagation.MessageID("orders/11/100"),
		}},
		{"orders/0/8", map[string]string{"traceparent": "tp"}, []attribute.KeyValue{
			propagation.Partition(0), propagation.ConsumerGroup("billing"), propagation.KafkaOffset(8),
			propagation.KafkaKey([]byte{}), propagation.MessageID("orders/0/8"),
		}},
	}
	if group == "" {
		for i := range want {
			want[i].attrs = slices.DeleteFunc(want[i].attrs, func(a attribute.KeyValue) bool {
				return a.Key == propagation.ConsumerGroup("").Key
			})
		}
	}
	for i, msg := range msgs {
		r, w := recs[i], want[i]
		if msg.ID != w.id || msg.Destination != "orders" || msg.DeliveryCount != 1 || !msg.Time.Equal(r.Timestamp) ||
			unsafe.SliceData(msg.Body) != unsafe.SliceData(r.Value) {
			t.Errorf("message %d = %+v", i, msg)
		}
		if (msg.Key == nil) != (r.Key == nil) || string(msg.Key) != string(r.Key) || (msg.Body == nil) != (r.Value == nil) {
			t.Errorf("message %d key %q body %q, record key %q value %q", i, msg.Key, msg.Body, r.Key, r.Value)
		}
		if (msg.Headers == nil) != (len(r.Headers) == 0) || !mapsEqual(msg.Headers, w.headers) {
			t.Errorf("message %d headers %v, want %v", i, msg.Headers, w.headers)
		}
		attrs := msg.Attributes()
		if !slices.Equal(attrs, w.attrs) {
			t.Errorf("message %d attributes\n%v, want\n%v", i, attrs, w.attrs)
		}
		if cap(attrs) != len(attrs) {
			t.Errorf("message %d attributes have spare capacity %d: an append would write into the next message's", i, cap(attrs)-len(attrs))
		}
		var rp *kgo.Record
		var rv kgo.Record
		if !msg.As(&rp) || rp != r || !msg.As(&rv) || rv.Offset != r.Offset || msg.As(new(string)) {
			t.Errorf("message %d As: %p %+v, want %p", i, rp, rv, r)
		}
	}
}

// TestAttrCount: attrCount says how many attributes
// appendRecordAttributes adds, for every kind of record, with and without
// a group: consumed.MessageAttributes cuts each record's out of its
// block's array by that count.
func TestAttrCount(t *testing.T) {
	for _, hasKey := range []bool{false, true} {
		for _, tombstone := range []bool{false, true} {
			for _, group := range []attribute.KeyValue{{}, propagation.ConsumerGroup("g")} {
				f := recordFacts{offset: 1, hasKey: hasKey, tombstone: tombstone}
				got := len(appendRecordAttributes(nil, f, propagation.PartitionID("0"), group, "t/0/1", "k"))
				if want := attrCount(f, group.Key != ""); got != want {
					t.Errorf("%+v, group %v: %d attributes appended, attrCount %d", f, group, got, want)
				}
			}
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestMessageAttributesAreLazy: a block of messages has no attributes
// until a span asks for one message's; then the whole block's are built,
// once, even when the handlers of several partitions ask at the same time
// (go test -race), into one array.
func TestMessageAttributesAreLazy(t *testing.T) {
	recs := make([]*kgo.Record, messageBlock)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "orders", Partition: int32(i % 3), Offset: int64(1000 + i), Value: []byte("v")}
	}
	msgs := make([]*middleware.Message, len(recs))
	block := messageBlockOf(recs, propagation.ConsumerGroup("billing"), msgs)
	if block.attrs != nil {
		t.Fatal("the block has attributes before any span asked")
	}
	var wg sync.WaitGroup
	got := make([][]attribute.KeyValue, len(msgs))
	for i := range msgs {
		wg.Go(func() { got[i] = msgs[i].Attributes() })
	}
	wg.Wait()
	for i, r := range recs {
		want := []attribute.KeyValue{
			propagation.Partition(r.Partition), propagation.ConsumerGroup("billing"),
			propagation.KafkaOffset(r.Offset), propagation.MessageID(msgs[i].ID),
		}
		if !slices.Equal(got[i], want) {
			t.Errorf("message %d attributes\n%v, want\n%v", i, got[i], want)
		}
		next := unsafe.Add(unsafe.Pointer(unsafe.SliceData(got[max(i-1, 0)])), len(got[max(i-1, 0)])*int(unsafe.Sizeof(attribute.KeyValue{})))
		if i > 0 && unsafe.Pointer(unsafe.SliceData(got[i])) != next {
			t.Errorf("message %d attributes are not in the block's array", i)
		}
	}
}

// TestMessageAttributesWhileHandlersChangeRecords: handlers may change
// their own records (through As) while another handler's span builds the
// block's attributes; the build reads none of the records (go test -race
// fails if it does), and the attributes are the records' as consumed.
func TestMessageAttributesWhileHandlersChangeRecords(t *testing.T) {
	recs := make([]*kgo.Record, messageBlock)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "orders", Partition: int32(i % 3), Offset: int64(1000 + i), Key: []byte("k"), Value: []byte("v")}
	}
	msgs := make([]*middleware.Message, len(recs))
	messageBlockOf(recs, propagation.ConsumerGroup("billing"), msgs)
	var wg sync.WaitGroup
	got := make([][]attribute.KeyValue, len(msgs))
	for i := range msgs {
		wg.Go(func() {
			var r *kgo.Record
			if !msgs[i].As(&r) {
				t.Error("As did not reach the record")
				return
			}
			r.Offset, r.Key, r.Value, r.Partition, r.Topic = -1, nil, nil, 99, "changed"
			got[i] = msgs[i].Attributes()
		})
	}
	wg.Wait()
	for i := range msgs {
		want := []attribute.KeyValue{
			propagation.Partition(int32(i % 3)), propagation.ConsumerGroup("billing"), propagation.KafkaOffset(int64(1000 + i)),
			propagation.KafkaKey([]byte("k")), propagation.MessageID(msgs[i].ID),
		}
		if !slices.Equal(got[i], want) {
			t.Errorf("message %d attributes\n%v, want the consumed record's\n%v", i, got[i], want)
		}
	}
}

// TestMessagesAllocations guards the point of messages: a block of records
// costs a few allocations, and each record only its header map and As
// function.
func TestMessagesAllocations(t *testing.T) {
	recs := make([]*kgo.Record, 100)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "orders", Partition: int32(i % 3), Offset: int64(1000 + i), Key: []byte("key"), Value: []byte("v")}
	}
	n := testing.AllocsPerRun(20, func() { _ = messages(recs, "billing") })
	blocks := (len(recs) + messageBlock - 1) / messageBlock
	if limit := float64(1 + 3*blocks + 2*len(recs)); n > limit {
		t.Errorf("messages allocates %v times for %d records, want at most %v", n, len(recs), limit)
	}
}

func TestSplit(t *testing.T) {
	l := &pollLoop{s: &Subscriber{group: "g"}, redeliver: map[int32]redelivery{11: {offset: 100, failures: 2}, 0: {offset: 3, failures: 5}}}
	for range 2 { // the second poll reuses the scratch space
		recs := fakeRecords()
		parts, grouped, all := l.split(recs)
		if len(parts) != 2 || parts[0].partition != 0 || parts[1].partition != 11 {
			t.Fatalf("parts %+v, want partitions 0 then 11", parts)
		}
		if want := []*kgo.Record{recs[0], recs[2], recs[1]}; !slices.Equal(grouped, want) {
			t.Errorf("grouped %v, want partition 0 in offset order, then 11", grouped)
		}
		for i, m := range all {
			var r *kgo.Record
			if !m.As(&r) || r != grouped[i] {
				t.Errorf("all[%d] is not grouped[%d]'s message", i, i)
			}
		}
		p0, p11 := parts[0], parts[1]
		if len(p0.records) != 2 || p0.records[1] != recs[2] || p0.msgs[1] != all[1] || len(p11.records) != 1 || p11.msgs[0] != all[2] {
			t.Errorf("partition runs %+v %+v", p0, p11)
		}
		if p0.handled != 0 || p11.handled != 0 || p0.failed || p11.failed {
			t.Errorf("parts not reset: %+v %+v", p0, p11)
		}
		if cap(p0.records) != len(p0.records) || cap(p0.msgs) != len(p0.msgs) {
			t.Error("partition runs have spare capacity")
		}
		// Offset 100 of partition 11 failed twice; partition 0's tracked
		// offset is not in the poll.
		if all[0].DeliveryCount != 1 || all[1].DeliveryCount != 1 || all[2].DeliveryCount != 3 {
			t.Errorf("delivery counts %d %d %d, want 1 1 3", all[0].DeliveryCount, all[1].DeliveryCount, all[2].DeliveryCount)
		}
	}
}

type testKey struct{}

func TestHandlerContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), testKey{}, "v"))
	hctx := handlerContext(parent)
	cancel()
	if hctx.Err() != nil || hctx.Done() != nil {
		t.Error("the handler context ends with its parent")
	}
	if hctx.Value(testKey{}) != "v" {
		t.Error("the handler context lost its parent's values")
	}
	if n := testing.AllocsPerRun(100, func() { _ = hctx.Value(testKey{}) }); n != 0 {
		t.Errorf("a Value lookup allocates %v times, want 0", n)
	}
}

func TestHooksDestinationAttributes(t *testing.T) {
	h := NewHooks()
	if d := h.destination("orders", true); d.Attributes != nil || d.Name != "orders" || d.System != propagation.SystemKafka {
		t.Errorf("destination before any client = %+v", d)
	}
	newClient := func(opts ...kgo.Opt) {
		cl, err := kgo.NewClient(append(opts, kgo.WithHooks(h))...)
		if err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	server := []attribute.KeyValue{propagation.ServerAddress("b1"), propagation.ServerPort(9093)}
	withGroup := append(slices.Clone(server), propagation.ConsumerGroup("g"))
	check := func(what string, producer, consumer []attribute.KeyValue) {
		t.Helper()
		if got := h.destination("orders", false).Attributes; !slices.Equal(got, producer) {
			t.Errorf("%s: producer attributes %v, want %v", what, got, producer)
		}
		if got := h.destination("orders", true).Attributes; !slices.Equal(got, consumer) {
			t.Errorf("%s: consumer attributes %v, want %v", what, got, consumer)
		}
	}
	newClient(kgo.SeedBrokers("b1:9093"))
	check("producer", server, server)
	newClient(kgo.SeedBrokers("b1:9093"), kgo.ConsumerGroup("g"))
	check("consumer", server, withGroup)
	// The shared slices are clipped: appending to one cannot write into
	// the other.
	p := h.destination("orders", false).Attributes
	_ = append(p, attribute.String("x", "y"))
	check("after an append", server, withGroup)
	newClient(kgo.SeedBrokers("b1:9093"), kgo.ConsumerGroup("other"))
	check("two groups", server, server)
	newClient(kgo.SeedBrokers("b2:9093"))
	check("two seeds", nil, nil)
}

func TestFetchHookContext(t *testing.T) {
	h := NewHooks()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	header := func() []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-01000000000000000000000000000000-0200000000000000-01")}}
	}
	member, _ := baggage.NewMember("k", "v")
	bag, _ := baggage.New(member)
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{
		{"nil context", nil},
		{"context with baggage", baggage.ContextWithBaggage(context.WithValue(context.Background(), testKey{}, 1), bag)},
	} {
		r := &kgo.Record{Context: c.ctx, Headers: header()}
		h.OnFetchRecordBuffered(r)
		if got := trace.SpanContextFromContext(r.Context); !got.Equal(sc) {
			t.Errorf("%s: remote span context %v, want %v", c.name, got, sc)
		}
		if c.ctx != nil && (baggage.FromContext(r.Context).Member("k").Value() != "v" || r.Context.Value(testKey{}) != 1) {
			t.Errorf("%s: the record's context lost its values", c.name)
		}
		// A later hook replacing the span does not change the creation
		// context ReceiveContext links.
		r.Context = trace.ContextWithSpanContext(r.Context, trace.SpanContext{})
		if got := h.creation(r); !got.Equal(sc) {
			t.Errorf("%s: creation %v, want %v", c.name, got, sc)
		}
	}
	r := &kgo.Record{}
	h.OnFetchRecordBuffered(r)
	if trace.SpanContextFromContext(r.Context).IsValid() || h.creation(r).IsValid() {
		t.Error("a record without traceparent got a creation context")
	}
}

func TestSendStateContext(t *testing.T) {
	ctx := context.WithValue(context.Background(), testKey{}, "v")
	st := &sendState{Context: ctx}
	var c context.Context = st
	if c.Value(sendStateKey{}) != st || c.Value(testKey{}) != "v" {
		t.Error("sendState does not answer its key and pass the others on")
	}
	if wrapped := context.WithValue(c, struct{ k int }{}, 1); wrapped.Value(sendStateKey{}) != st {
		t.Error("sendState is not found under a later context")
	}
}

func TestPublisherDescribeShared(t *testing.T) {
	p := NewPublisher(nil, WithServer("b1", 9093))
	want := []attribute.KeyValue{propagation.ServerAddress("b1"), propagation.ServerPort(9093)}
	d := p.Describe("orders")
	if !slices.Equal(d.Attributes, want) {
		t.Fatalf("attributes %v, want %v", d.Attributes, want)
	}
	_ = append(d.Attributes, attribute.String("x", "y"))
	if got := p.Describe("orders").Attributes; !slices.Equal(got, want) || cap(got) != len(got) {
		t.Errorf("after an append to a Describe's attributes: %v (cap %d), want %v", got, cap(got), want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = p.Describe("orders") }); n != 0 {
		t.Errorf("Describe allocates %v times, want 0", n)
	}
}

// benchRecords are a 300-record poll over 4 partitions, with a
// traceparent header when tp is set.
func benchRecords(tp bool) []*kgo.Record {
	recs := make([]*kgo.Record, 300)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "orders", Partition: int32(i / 75), Offset: int64(100000 + i), Value: make([]byte, 64)}
		if tp {
			recs[i].Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}
		}
	}
	return recs
}

// BenchmarkMessages is the Subscriber's per-poll conversion of records
// to Messages; ns/op is per record.
func BenchmarkMessages(b *testing.B) {
	for _, tp := range []bool{false, true} {
		recs := benchRecords(tp)
		b.Run(fmt.Sprintf("traceparent=%v", tp), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = messages(recs, "billing")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
		})
	}
}

// BenchmarkRecords is the Publisher's conversion of a 100-message batch
// to records.
func BenchmarkRecords(b *testing.B) {
	for _, tp := range []bool{false, true} {
		msgs := make([]*middleware.Message, 100)
		for i := range msgs {
			msgs[i] = &middleware.Message{Body: make([]byte, 64), Headers: map[string]string{}}
			if tp {
				msgs[i].Headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			}
		}
		b.Run(fmt.Sprintf("traceparent=%v", tp), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = records("orders", msgs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/record")
		})
	}
}

// TestConsumedSize pins what a consumed record costs beside its Message:
// 64 bytes, an allocator size class (it was 88, in the 96 class).
func TestConsumedSize(t *testing.T) {
	if got := unsafe.Sizeof(consumed{}); got > 64 {
		t.Fatalf("consumed is %d bytes, want at most 64", got)
	}
}

// TestBinaryKeyNotRecorded: a key that is not UTF-8 (UUID bytes, an Avro
// key) has no canonical string form: semconv leaves it out, and recorded
// it would make the OTLP exporter refuse the whole batch of spans. The
// Message keeps the bytes, and the next record's attributes are its own.
func TestBinaryKeyNotRecorded(t *testing.T) {
	binary := []byte{0xff, 0xfe, 0x00, 0x01}
	recs := []*kgo.Record{
		{Topic: "orders", Partition: 1, Offset: 9, Key: binary, Value: []byte("v")},
		{Topic: "orders", Partition: 1, Offset: 10, Key: []byte("k2"), Value: []byte("v")},
	}
	msgs := messages(recs, "g")
	if !slices.Equal(msgs[0].Key, binary) {
		t.Errorf("Message.Key %v, want the record's bytes", msgs[0].Key)
	}
	want := [][]attribute.KeyValue{
		{propagation.Partition(1), propagation.ConsumerGroup("g"), propagation.KafkaOffset(9), propagation.MessageID("orders/1/9")},
		{propagation.Partition(1), propagation.ConsumerGroup("g"), propagation.KafkaOffset(10), propagation.KafkaKey([]byte("k2")), propagation.MessageID("orders/1/10")},
	}
	for i, msg := range msgs {
		if got := msg.Attributes(); !slices.Equal(got, want[i]) {
			t.Errorf("message %d attributes\n%v, want\n%v", i, got, want[i])
		}
	}
	// The hooks' process span attributes, from the same facts.
	for _, kv := range recordAttributes(recs[0], propagation.Partition(1), false) {
		if kv.Key == propagation.KafkaKey(nil).Key {
			t.Errorf("hooks record a binary key: %v", kv)
		}
	}
}

// FuzzMessages converts fuzzed records, several to a block and past a
// block's end, and checks each Message against its record: messages packs
// IDs, keys and header values of a block into one string and slices it by
// lengths, so an off-by-one would hand a record another's bytes.
func FuzzMessages(f *testing.F) {
	f.Add("orders", int32(3), int64(42), []byte("k"), []byte("v"), []byte("traceparent\x00a\x01traceparent\x00b"), uint8(2))
	f.Add("", int32(-1), int64(math.MinInt64), []byte(nil), []byte(nil), []byte("\x00\x00\x01k\x00\x02"), uint8(40))
	f.Add("t\xff", int32(math.MaxInt32), int64(math.MaxInt64), []byte{}, []byte{}, []byte(""), uint8(33))
	f.Fuzz(func(t *testing.T, topic string, partition int32, offset int64, key, value, headerData []byte, count uint8) {
		n := int(count%70) + 1 // up to two blocks and a bit
		records := make([]*kgo.Record, n)
		for i := range records {
			r := &kgo.Record{Topic: topic, Partition: partition, Offset: offset + int64(i), Value: value}
			if i%3 != 1 { // some records without key or headers
				r.Key = key
				r.Headers = fuzzHeaders(headerData)
			}
			records[i] = r
		}
		group := ""
		if n%2 == 0 {
			group = "g"
		}
		msgs := messages(records, group)
		if len(msgs) != n {
			t.Fatalf("%d messages from %d records", len(msgs), n)
		}
		for i, m := range msgs {
			r := records[i]
			if want := recordID(r.Topic, r.Partition, r.Offset); m.ID != want {
				t.Fatalf("record %d: ID %q, want %q", i, m.ID, want)
			}
			if string(m.Key) != string(r.Key) || (m.Key == nil) != (r.Key == nil) || string(m.Body) != string(r.Value) {
				t.Fatalf("record %d: key %q body %q, want %q %q", i, m.Key, m.Body, r.Key, r.Value)
			}
			want := map[string]string{}
			for _, h := range r.Headers {
				want[h.Key] = string(h.Value) // the last duplicate wins
			}
			if len(m.Headers) != len(want) {
				t.Fatalf("record %d: headers %q, want %q", i, m.Headers, want)
			}
			for k, v := range want {
				if got, ok := m.Headers[k]; !ok || got != v {
					t.Fatalf("record %d: header %q = %q, want %q", i, k, got, v)
				}
			}
			if m.DeliveryCount != 1 || m.Destination != topic {
				t.Fatalf("record %d: delivery count %d, destination %q", i, m.DeliveryCount, m.Destination)
			}
			attrs := attribute.NewSet(m.Attributes()...)
			if v, ok := attrs.Value(propagation.KafkaOffset(0).Key); !ok || v.AsInt64() != r.Offset {
				t.Fatalf("record %d: offset attribute %v, want %d", i, v.Emit(), r.Offset)
			}
			if v, _ := attrs.Value(propagation.MessageID("").Key); v.AsString() != m.ID {
				t.Fatalf("record %d: message id attribute %q, want %q", i, v.AsString(), m.ID)
			}
			var back *kgo.Record
			if !m.As(&back) || back != r {
				t.Fatalf("record %d: As does not reach the record", i)
			}
		}
	})
}

// fuzzHeaders decodes data into record headers: key and value separated by
// a 0 byte, headers by a 1 byte, a 2 byte for a nil value.
func fuzzHeaders(data []byte) []kgo.RecordHeader {
	if len(data) == 0 {
		return nil
	}
	var hs []kgo.RecordHeader
	for part := range strings.SplitSeq(string(data), "\x01") {
		k, v, _ := strings.Cut(part, "\x00")
		h := kgo.RecordHeader{Key: k, Value: []byte(v)}
		if v == "\x02" {
			h.Value = nil
		}
		hs = append(hs, h)
	}
	return hs
}

// recordIndex finds a record of a call by its place in the call's array,
// and any other record by search; one that is not there is -1.
func TestRecordIndex(t *testing.T) {
	msgs := []*middleware.Message{{Body: []byte("a")}, nil, {Body: []byte("b")}, {Body: []byte("c")}}
	recs, _ := records("t", msgs)
	for j, r := range recs {
		if got := recordIndex(recs, r); got != j {
			t.Errorf("recordIndex(record %d) = %d", j, got)
		}
	}
	other := &kgo.Record{}
	mixed := []*kgo.Record{recs[0], other, recs[2]}
	if got := recordIndex(mixed, other); got != 1 {
		t.Errorf("a record outside the array: %d, want 1", got)
	}
	if got := recordIndex(mixed, recs[1]); got != -1 {
		t.Errorf("a record not in the list: %d, want -1", got)
	}
	if got := recordIndex(nil, other); got != -1 {
		t.Errorf("no records: %d, want -1", got)
	}
}
