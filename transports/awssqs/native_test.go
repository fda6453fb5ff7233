package awssqs_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// nativeRig is a goaws client with the native instrumentation installed and
// in-memory trace and metric recorders.
type nativeRig struct {
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	inst   *awssqs.Instrumentation
	raw    *sqs.Client // no instrumentation: to look at what really went over the wire
	client *sqs.Client
	url    string
}

func newNativeRig(t *testing.T, name string, opts ...middleware.Option) *nativeRig {
	t.Helper()
	r := &nativeRig{rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.rec))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	r.inst = awssqs.NewInstrumentation(middleware.NewTracing(append([]middleware.Option{
		middleware.WithTracerProvider(r.tp), middleware.WithMeterProvider(mp),
	}, opts...)...))
	r.raw = brokers.SQS(t)
	r.client = sqs.New(r.raw.Options(), r.inst.ClientOption())
	r.url = brokers.SQSQueue(t, r.raw, name, nil)
	return r
}

// receiveAll receives through client until every body in bodies arrived,
// keeping the first delivery of each (goaws may deliver twice), with the
// output each came in.
func receiveAll(t *testing.T, client *sqs.Client, url string, bodies ...string) map[string]received {
	t.Helper()
	got := map[string]received{}
	deadline := time.Now().Add(15 * time.Second)
	for len(got) < len(bodies) {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages", len(got), len(bodies))
		}
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if _, dup := got[aws.ToString(m.Body)]; !dup {
				got[aws.ToString(m.Body)] = received{m: m, out: out}
			}
		}
	}
	return got
}

type received struct {
	m   types.Message
	out *sqs.ReceiveMessageOutput
}

func (r *nativeRig) spans(prefix string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.rec.Ended() {
		if strings.HasPrefix(s.Name(), prefix) {
			out = append(out, s)
		}
	}
	return out
}

func linksTo(s sdktrace.ReadOnlySpan, sc trace.SpanContext) bool {
	return slices.ContainsFunc(s.Links(), func(l sdktrace.Link) bool { return l.SpanContext.SpanID() == sc.SpanID() })
}

func TestNativeSendReceiveProcess(t *testing.T) {
	// ParentMessageLinkReceive: the process span's link shows that
	// ReceiveContext carried the receive span.
	r := newNativeRig(t, "native", middleware.WithProcessParent(middleware.ParentMessageLinkReceive))
	ctx, root := r.tp.Tracer("test").Start(context.Background(), "POST /orders")
	in := &sqs.SendMessageInput{
		QueueUrl:          aws.String(r.url),
		MessageBody:       aws.String("native"),
		MessageAttributes: map[string]types.MessageAttributeValue{"tenant": {DataType: aws.String("String"), StringValue: aws.String("acme")}},
	}
	out, err := r.client.SendMessage(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	root.End()
	if len(in.MessageAttributes) != 1 {
		t.Errorf("the caller's attribute map was changed: %v", slices.Sorted(maps.Keys(in.MessageAttributes)))
	}
	sends := r.spans("send ")
	if len(sends) != 1 || sends[0].Parent().SpanID() != root.SpanContext().SpanID() || sends[0].SpanKind() != trace.SpanKindProducer {
		t.Fatalf("want one PRODUCER send span under the caller, got %d", len(sends))
	}
	send := sends[0]
	if v := attr(send, "messaging.message.id"); v != aws.ToString(out.MessageId) || v == "" {
		t.Errorf("send span message id = %q, want %q", v, aws.ToString(out.MessageId))
	}

	// The user's own loop: receive, process, delete.
	got := receiveAll(t, r.client, r.url, "native")["native"]
	if v := got.m.MessageAttributes["tenant"]; aws.ToString(v.StringValue) != "acme" {
		t.Errorf("tenant attribute lost: %+v", got.m.MessageAttributes)
	}
	pctx, span := r.inst.StartProcess(awssqs.ReceiveContext(context.Background(), got.out), r.url, got.m)
	if _, err := r.inst.DeleteMessage(pctx, r.client, r.url, got.m); err != nil {
		t.Fatal(err)
	}
	middleware.End(span, nil)

	process := r.spans("process ")
	if len(process) != 1 {
		t.Fatalf("%d process spans", len(process))
	}
	p := process[0]
	if p.SpanContext().TraceID() != root.SpanContext().TraceID() || p.Parent().SpanID() != send.SpanContext().SpanID() || p.SpanKind() != trace.SpanKindConsumer {
		t.Fatal("the process span is not a CONSUMER child of the send span")
	}
	receives := r.spans("receive ")
	if len(receives) == 0 || !linksTo(receives[len(receives)-1], send.SpanContext()) {
		t.Fatal("no receive span links the message's creation context")
	}
	if !linksTo(p, receives[len(receives)-1].SpanContext()) {
		t.Error("the process span does not link the receive span ReceiveContext carried")
	}
	deletes := r.spans("delete ")
	if len(deletes) != 1 || deletes[0].Parent().SpanID() != p.SpanContext().SpanID() {
		t.Error("want one delete span under the process span")
	}
	if n := approximateCount(t, r.raw, r.url); n != 0 {
		t.Errorf("%d messages left after DeleteMessage", n)
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

func TestNativeBatchInjectsPerEntry(t *testing.T) {
	r := newNativeRig(t, "native-batch")
	var entries []types.SendMessageBatchRequestEntry
	var bodies []string
	for i := range 3 {
		b := fmt.Sprint("entry-", i)
		bodies = append(bodies, b)
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(b)})
	}
	if _, err := r.client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(r.url), Entries: entries}); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.MessageAttributes != nil {
			t.Error("the caller's entries were changed")
		}
	}
	sends, creates := r.spans("send "), r.spans("create ")
	if len(sends) != 1 || len(creates) != 3 {
		t.Fatalf("%d send and %d create spans, want 1 and 3", len(sends), len(creates))
	}
	createIDs := map[trace.SpanID]bool{}
	for _, c := range creates {
		if c.Parent().SpanID() != sends[0].SpanContext().SpanID() {
			t.Error("a create span is not a child of the send span")
		}
		createIDs[c.SpanContext().SpanID()] = true
	}
	got := receiveAll(t, r.raw, r.url, bodies...)
	seen := map[trace.SpanID]bool{}
	for _, b := range bodies {
		tp := aws.ToString(got[b].m.MessageAttributes["traceparent"].StringValue)
		sc := trace.SpanContextFromContext(propagation.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp}))
		if !createIDs[sc.SpanID()] || seen[sc.SpanID()] {
			t.Errorf("%s: traceparent %q is not its own create span", b, tp)
		}
		seen[sc.SpanID()] = true
	}
}

func TestNativeKeepsExistingTraceparent(t *testing.T) {
	r := newNativeRig(t, "native-keep")
	// A relay forwards a message with its original creation context, in a
	// casing of its own.
	_, err := r.client.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl:          aws.String(r.url),
		MessageBody:       aws.String("relayed"),
		MessageAttributes: map[string]types.MessageAttributeValue{"TraceParent": {DataType: aws.String("String"), StringValue: aws.String(traceparent)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := receiveAll(t, r.raw, r.url, "relayed")["relayed"].m
	if len(m.MessageAttributes) != 1 || aws.ToString(m.MessageAttributes["TraceParent"].StringValue) != traceparent {
		t.Errorf("attributes = %v, want the original TraceParent alone", m.MessageAttributes)
	}
	send := r.spans("send ")[0]
	want := trace.SpanContextFromContext(propagation.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent}))
	if !linksTo(send, want) {
		t.Error("the send span does not link the kept creation context")
	}
	// Its context is no message's creation context: a CLIENT, not a
	// PRODUCER (semconv), as the Publisher's in a relay.
	if send.SpanKind() != trace.SpanKindClient {
		t.Errorf("send span of a message keeping its creation context is a %v, want client", send.SpanKind())
	}
}

// TestNativeKeepsXRayCreationContext: a message an AWS producer sent with
// only its AWSTraceHeader, sent on (a relay), keeps that creation context:
// the send span links it and it is written as the traceparent too, so a
// W3C reader, which wins, finds the same trace.
func TestNativeKeepsXRayCreationContext(t *testing.T) {
	r := newNativeRig(t, "native-xray")
	xray := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x5f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	_, err := r.client.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl:    aws.String(r.url),
		MessageBody: aws.String("from-aws"),
		MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{
			"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String(propagation.FormatXRay(xray))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := receiveAll(t, r.raw, r.url, "from-aws")["from-aws"].m
	tp := aws.ToString(m.MessageAttributes["traceparent"].StringValue)
	if !strings.Contains(tp, xray.TraceID().String()) || !strings.Contains(tp, xray.SpanID().String()) {
		t.Errorf("traceparent %q does not carry the X-Ray creation context %s/%s", tp, xray.TraceID(), xray.SpanID())
	}
	if !linksTo(r.spans("send ")[0], xray) {
		t.Error("the send span does not link the X-Ray creation context")
	}
}

// TestNativeProcessReadsLongXRayHeader: a message as SQS delivers it, whose
// AWSTraceHeader is past 256 bytes with an ALB's Self, Lineage, "; "
// separators and custom fields, is processed in that X-Ray trace (built
// here, as goaws drops system attributes on receive).
func TestNativeProcessReadsLongXRayHeader(t *testing.T) {
	r := newNativeRig(t, "native-xray-long")
	header := "Self=1-67891233-12456789abcdef012345678; Root=1-5759e988-bd862e3fe1be46a994272793; " +
		"Parent=53995c3f42cd8ad8; Sampled=1; Lineage=1:a1b2c3d4:3; CalledFrom=app; Note=" + strings.Repeat("x", 300)
	m := types.Message{
		MessageId: aws.String("m-1"), Body: aws.String("from-alb"),
		Attributes: map[string]string{"AWSTraceHeader": header},
	}
	_, span := r.inst.StartProcess(context.Background(), r.url, m)
	span.End()
	p := r.spans("process ")
	if len(p) != 1 {
		t.Fatalf("%d process spans", len(p))
	}
	if parent := p[0].Parent(); parent.TraceID().String() != "5759e988bd862e3fe1be46a994272793" || parent.SpanID().String() != "53995c3f42cd8ad8" {
		t.Errorf("process span parent %v, want the AWSTraceHeader's %d-byte context", parent, len(header))
	}
}

// stringAttrs returns n application String attributes.
func stringAttrs(n int) map[string]types.MessageAttributeValue {
	attrs := make(map[string]types.MessageAttributeValue, n)
	for i := range n {
		attrs[fmt.Sprintf("a%02d", i)] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(fmt.Sprint(i))}
	}
	return attrs
}

// sendSpy returns a per-call option that keeps the SendMessageInput the
// instrumentation passes on (goaws drops system attributes on receive, so
// this is where AWSTraceHeader can be seen).
func sendSpy(sent **sqs.SendMessageInput) func(*sqs.Options) {
	return func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(s *smithymiddleware.Stack) error {
			return s.Initialize.Add(smithymiddleware.InitializeMiddlewareFunc("spy", func(ctx context.Context, in smithymiddleware.InitializeInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
				*sent, _ = in.Parameters.(*sqs.SendMessageInput)
				return next.HandleInitialize(ctx, in)
			}), smithymiddleware.After)
		})
	}
}

func TestNativeAttributeBudget(t *testing.T) {
	r := newNativeRig(t, "native-budget")
	ctx := baggageCtx(t, "user=alice")
	var full10 *sqs.SendMessageInput
	for _, n := range []int{7, 9, 10} {
		in := &sqs.SendMessageInput{
			QueueUrl: aws.String(r.url), MessageBody: aws.String(fmt.Sprint("user-", n)), MessageAttributes: stringAttrs(n),
		}
		_, err := r.client.SendMessage(ctx, in, sendSpy(&full10))
		if err != nil {
			t.Fatalf("%d attributes: %v", n, err)
		}
		if in.MessageSystemAttributes != nil {
			t.Errorf("%d attributes: the caller's system attributes were changed", n)
		}
	}
	got := receiveAll(t, r.raw, r.url, "user-7", "user-9", "user-10")

	// With no attribute slot left, the creation context (the send span:
	// one message) goes as the AWSTraceHeader system attribute.
	sends := r.spans("send ")
	xray, ok := propagation.ParseXRay(aws.ToString(full10.MessageSystemAttributes["AWSTraceHeader"].StringValue))
	if last := sends[len(sends)-1].SpanContext(); !ok || xray.TraceID() != last.TraceID() || xray.SpanID() != last.SpanID() || !xray.IsSampled() {
		t.Errorf("10 user attributes: AWSTraceHeader %+v, want the send span's context %s/%s", full10.MessageSystemAttributes, last.TraceID(), last.SpanID())
	}

	direct := got["user-7"].m.MessageAttributes
	if len(direct) != 9 || direct["traceparent"].StringValue == nil || direct["baggage"].StringValue == nil {
		t.Errorf("7 user attributes: want them plus traceparent and baggage, got %v", slices.Sorted(maps.Keys(direct)))
	}
	packed := got["user-9"].m.MessageAttributes
	if len(packed) != 10 || packed[awssqs.PackedAttribute].StringValue == nil {
		t.Errorf("9 user attributes: want them plus %q, got %v", awssqs.PackedAttribute, slices.Sorted(maps.Keys(packed)))
	}
	if tp := awssqs.NewCarrier(&packed).Get("traceparent"); tp == "" {
		t.Error("no traceparent in the packed attribute")
	}
	full := got["user-10"].m.MessageAttributes
	if !maps.EqualFunc(full, stringAttrs(10), func(a, b types.MessageAttributeValue) bool {
		return aws.ToString(a.StringValue) == aws.ToString(b.StringValue)
	}) {
		t.Errorf("10 user attributes: want exactly them, got %v", slices.Sorted(maps.Keys(full)))
	}

	// The drop is on the send span of that message and on the counter.
	events := 0
	for _, s := range r.spans("send ") {
		for _, e := range s.Events() {
			if e.Name == propagation.DroppedEventName {
				events++
			}
		}
	}
	if events != 1 { // baggage; traceparent went as AWSTraceHeader
		t.Errorf("%d dropped events on send spans, want 1", events)
	}
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var dropped int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "otelmq.propagation.dropped" {
				for _, dp := range sum.DataPoints {
					if v, _ := dp.Attributes.Value(propagation.ReasonKey); v.AsString() == awssqs.DroppedReason {
						dropped += dp.Value
					}
				}
			}
		}
	}
	if dropped != 1 {
		t.Errorf("otelmq.propagation.dropped{reason=%s} = %d, want 1", awssqs.DroppedReason, dropped)
	}

	// As SQS delivers it (goaws drops the system attribute): the process
	// span continues the send span's trace from AWSTraceHeader.
	m := got["user-10"].m
	m.Attributes = map[string]string{"AWSTraceHeader": aws.ToString(full10.MessageSystemAttributes["AWSTraceHeader"].StringValue)}
	_, span := r.inst.StartProcess(context.Background(), r.url, m)
	span.End()
	if p := r.spans("process "); len(p) != 1 || p[0].Parent().SpanID() != sends[len(sends)-1].SpanContext().SpanID() {
		t.Error("the process span of the 10-attribute message is not a child of its send span")
	}
}

// TestNativeAttributeBudgetKeepsOwnTraceHeader: a message with 10
// attributes and its own AWSTraceHeader keeps that header; the creation
// context is then dropped and recorded.
func TestNativeAttributeBudgetKeepsOwnTraceHeader(t *testing.T) {
	r := newNativeRig(t, "native-budget-own")
	own := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	var sent *sqs.SendMessageInput
	_, err := r.client.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(r.url), MessageBody: aws.String("own"), MessageAttributes: stringAttrs(10),
		MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{
			"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String(own)},
		},
	}, sendSpy(&sent))
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(sent.MessageSystemAttributes["AWSTraceHeader"].StringValue); got != own {
		t.Errorf("AWSTraceHeader %q, want the message's own %q", got, own)
	}
	events := 0
	for _, e := range r.spans("send ")[0].Events() {
		if e.Name == propagation.DroppedEventName {
			events++
		}
	}
	if events != 1 {
		t.Errorf("%d dropped events, want 1 (traceparent)", events)
	}
}

func TestNativeReceiveAsksForAttributes(t *testing.T) {
	r := newNativeRig(t, "native-ask")
	var sent *sqs.ReceiveMessageInput
	// An Initialize middleware added after the instrumentation's sees the
	// input it passes on.
	spy := func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(s *smithymiddleware.Stack) error {
			return s.Initialize.Add(smithymiddleware.InitializeMiddlewareFunc("spy", func(ctx context.Context, in smithymiddleware.InitializeInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
				sent, _ = in.Parameters.(*sqs.ReceiveMessageInput)
				return next.HandleInitialize(ctx, in)
			}), smithymiddleware.After)
		})
	}
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(r.url),
		MessageAttributeNames:       []string{"tenant"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameSentTimestamp},
	}
	if _, err := r.client.ReceiveMessage(context.Background(), in, spy); err != nil {
		t.Fatal(err)
	}
	if sent == nil {
		t.Fatal("the spy saw no ReceiveMessageInput")
	}
	if want := []string{"tenant", "All"}; !slices.Equal(sent.MessageAttributeNames, want) {
		t.Errorf("MessageAttributeNames = %v, want %v", sent.MessageAttributeNames, want)
	}
	wantSys := []types.MessageSystemAttributeName{"SentTimestamp", "AWSTraceHeader", "ApproximateReceiveCount"}
	if !slices.Equal(sent.MessageSystemAttributeNames, wantSys) {
		t.Errorf("MessageSystemAttributeNames = %v, want %v", sent.MessageSystemAttributeNames, wantSys)
	}
	if len(in.MessageAttributeNames) != 1 || len(in.MessageSystemAttributeNames) != 1 {
		t.Error("the caller's input was changed")
	}
	if n := len(r.spans("receive ")); n != 0 {
		t.Errorf("%d receive spans for an empty poll", n)
	}
}

// TestNativeInstalledTwice: the client option and the same option per call
// must not trace the call twice.
func TestNativeInstalledTwice(t *testing.T) {
	r := newNativeRig(t, "native-twice")
	_, err := r.client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(r.url), MessageBody: aws.String("x")}, r.inst.ClientOption())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.spans("send ")); n != 1 {
		t.Errorf("%d send spans, want 1", n)
	}
}

func baggageCtx(t *testing.T, members string) context.Context {
	t.Helper()
	b, err := baggage.Parse(members)
	if err != nil {
		t.Fatal(err)
	}
	return baggage.ContextWithBaggage(context.Background(), b)
}

// TestNativeRedactor: the message ID SQS assigns is recorded on the send
// span after SendMessage returns, through WithRedactor like every message
// attribute.
func TestNativeRedactor(t *testing.T) {
	id := propagation.MessageID("").Key
	r := newNativeRig(t, "redact", middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == id {
			return id.String("***")
		}
		return kv
	}))
	if _, err := r.client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(r.url), MessageBody: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	sends := r.spans("send ")
	if len(sends) != 1 {
		t.Fatalf("%d send spans", len(sends))
	}
	if v := attr(sends[0], string(id)); v != "***" {
		t.Errorf("send span %s = %q, want it redacted", id, v)
	}
}

// A message the Publisher sent with a header SQS refuses as a name carries
// it in the packed attribute; forwarding its attributes through a client
// with Instrumentation replaced the pack with the trace context and lost
// the header. The pack's other entries are packed again.
func TestNativeForwardKeepsPackedHeaders(t *testing.T) {
	r := newNativeRig(t, "native-pack")
	msg := middleware.NewMessage([]byte("fwd"))
	msg.Headers["content type"] = "application/json"
	if err := awssqs.NewPublisher(r.raw).Publish(context.Background(), r.url, msg); err != nil {
		t.Fatal(err)
	}
	first := receiveAll(t, r.raw, r.url, "fwd")["fwd"].m
	if _, err := r.client.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(r.url), MessageBody: aws.String("fwd2"), MessageAttributes: first.MessageAttributes,
	}); err != nil {
		t.Fatal(err)
	}
	second := receiveAll(t, r.raw, r.url, "fwd2")["fwd2"].m
	c := awssqs.NewCarrier(&second.MessageAttributes)
	if got := c.Get("content type"); got != "application/json" {
		t.Errorf("header %q = %q after the native forward, want %q", "content type", got, "application/json")
	}
	if c.Get("traceparent") == "" {
		t.Error("the forward carries no trace context")
	}
}
