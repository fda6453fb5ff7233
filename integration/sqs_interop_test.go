package integration

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/contrib/instrumentation/github.com/aws/aws-sdk-go-v2/otelaws"
	otelprop "go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// Interop of the SQS transport with what else produces and consumes SQS
// messages: AWS X-Ray (the AWSTraceHeader system attribute), plain AWS SDK
// producers that write W3C context themselves, and the contrib otelaws
// instrumentation on the same client.

const (
	// An X-Ray trace header and the W3C context it stands for.
	xrayHeader      = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	xrayTraceID     = "5759e988bd862e3fe1be46a994272793"
	xraySpanID      = "53995c3f42cd8ad8"
	w3cTraceparent  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	w3cTraceID      = "4bf92f3577b34da6a3ce929d0e0e4736"
	w3cSpanID       = "00f067aa0ba902b7"
	sqsInteropQueue = "https://sqs.us-east-1.amazonaws.com/123456789012/interop"
)

// tracedRig is a rig over env whose TracerProvider exists before env does,
// for clients that need it when they are built (otelaws).
func tracedRig(t *testing.T, rec *tracetest.SpanRecorder, tp *sdktrace.TracerProvider, env Env, opts ...middleware.Option) *rig {
	r := &rig{Env: env, t: t, h: Harness{System: propagation.SystemSQS}, rec: rec, tp: tp}
	r.tel = middleware.NewTelemetry(append([]middleware.Option{middleware.WithTracerProvider(tp)}, opts...)...)
	r.pub, r.sub = r.tel.Publisher(env.Publisher), r.tel.Subscriber(env.Subscriber)
	return r
}

func newRecorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
}

// fakeSQS is an awssqs.API that answers the first ReceiveMessage with canned
// messages and records what is sent. It stands in for SQS where no local
// emulator can: goaws drops the AWSTraceHeader system attribute both ways.
type fakeSQS struct {
	mu       sync.Mutex
	canned   []types.Message
	receives []*sqs.ReceiveMessageInput
	sent     []*sqs.SendMessageInput
}

var _ awssqs.API = (*fakeSQS)(nil)

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, in)
	return &sqs.SendMessageOutput{MessageId: aws.String("sent-1")}, nil
}

func (f *fakeSQS) SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return &sqs.SendMessageBatchOutput{}, nil
}

func (f *fakeSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	f.receives = append(f.receives, in)
	msgs := f.canned
	f.canned = nil
	f.mu.Unlock()
	if len(msgs) == 0 {
		// An empty long poll: wait a little, as SQS would.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return &sqs.ReceiveMessageOutput{Messages: msgs}, nil
}

func (f *fakeSQS) DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	return &sqs.DeleteMessageOutput{}, nil
}

func (f *fakeSQS) DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	return &sqs.DeleteMessageBatchOutput{}, nil
}

func (f *fakeSQS) ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func cannedMessage(id, body string, system map[string]string, attrs map[string]types.MessageAttributeValue) types.Message {
	return types.Message{
		MessageId: aws.String(id), ReceiptHandle: aws.String("rh-" + id), Body: aws.String(body),
		Attributes: system, MessageAttributes: attrs,
	}
}

func stringAttr(s string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
}

func fakeEnv(api awssqs.API) Env {
	return Env{
		Publisher:   awssqs.NewPublisher(api),
		Subscriber:  awssqs.NewSubscriber(api, awssqs.WithWaitTime(time.Second)),
		Destination: sqsInteropQueue,
		Source:      sqsInteropQueue,
	}
}

// TestSQSXRayExtract: a message whose only context is the AWSTraceHeader
// system attribute (set by an X-Ray-instrumented producer, or by SQS itself
// for a traced Lambda) is processed in that X-Ray trace; with a W3C
// traceparent too, W3C wins.
func TestSQSXRayExtract(t *testing.T) {
	fake := &fakeSQS{canned: []types.Message{
		cannedMessage("m1", "xray-only", map[string]string{"AWSTraceHeader": xrayHeader, "ApproximateReceiveCount": "1"}, nil),
		cannedMessage("m2", "both", map[string]string{"AWSTraceHeader": xrayHeader},
			map[string]types.MessageAttributeValue{"traceparent": stringAttr(w3cTraceparent)}),
	}}
	rec, tp := newRecorder()
	r := tracedRig(t, rec, tp, fakeEnv(fake))
	c := r.consume(r.sub, nil)
	c.waitFor(10*time.Second, "xray-only", "both")
	c.stop()

	for body, want := range map[string][2]string{"xray-only": {xrayTraceID, xraySpanID}, "both": {w3cTraceID, w3cSpanID}} {
		d := c.byBody(body)[0]
		p := r.span(d.span.SpanID())
		if p == nil {
			t.Fatalf("%s: no process span", body)
		}
		if got := [2]string{p.SpanContext().TraceID().String(), p.Parent().SpanID().String()}; got != want {
			t.Errorf("%s: process span in trace %s under %s, want %s under %s", body, got[0], got[1], want[0], want[1])
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.receives) == 0 || !slices.Contains(fake.receives[0].MessageSystemAttributeNames, types.MessageSystemAttributeNameAWSTraceHeader) {
		t.Error("the Subscriber does not ask SQS for AWSTraceHeader")
	}
}

// xrayInjector writes the X-Ray header under propagation.XRayKey, where the
// awssqs Publisher turns it into the AWSTraceHeader system attribute.
// middleware.NewTracing has no option for propagation.WithXRayInject, so a
// TextMapPropagator is the way to turn X-Ray injection on through the
// middleware.
type xrayInjector struct{}

func (xrayInjector) Inject(ctx context.Context, c otelprop.TextMapCarrier) {
	if h := propagation.FormatXRay(trace.SpanContextFromContext(ctx)); h != "" {
		c.Set(propagation.XRayKey, h)
	}
}

func (xrayInjector) Extract(ctx context.Context, _ otelprop.TextMapCarrier) context.Context {
	return ctx // the Propagator already falls back to X-Ray on extract
}

func (xrayInjector) Fields() []string { return []string{propagation.XRayKey} }

// TestSQSXRayInject: with an X-Ray-writing propagator, the Publisher sends the
// creation context as AWSTraceHeader (a system attribute, outside the
// 10-attribute budget) beside the W3C attributes, and a consumer that only
// reads AWSTraceHeader continues the trace.
func TestSQSXRayInject(t *testing.T) {
	fake := &fakeSQS{}
	rec, tp := newRecorder()
	r := tracedRig(t, rec, tp, fakeEnv(fake),
		middleware.WithPropagator(otelprop.NewCompositeTextMapPropagator(otelprop.TraceContext{}, xrayInjector{})))
	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	if err := r.pub.Publish(ctx, sqsInteropQueue, middleware.NewMessage([]byte("to-xray"))); err != nil {
		t.Fatal(err)
	}
	root.End()
	fake.mu.Lock()
	sent := fake.sent
	fake.mu.Unlock()
	if len(sent) != 1 {
		t.Fatalf("%d SendMessage calls", len(sent))
	}
	in := sent[0]
	send := r.spans("send ")[0]
	want := propagation.FormatXRay(send.SpanContext())
	if got := aws.ToString(in.MessageSystemAttributes["AWSTraceHeader"].StringValue); got != want {
		t.Errorf("AWSTraceHeader = %q, want %q", got, want)
	}
	if _, ok := in.MessageAttributes[propagation.XRayKey]; ok {
		t.Error("AWSTraceHeader was also sent as a message attribute")
	}
	if in.MessageAttributes["traceparent"].StringValue == nil {
		t.Error("no W3C traceparent beside the X-Ray header")
	}

	// An X-Ray-only consumer side: the header alone joins the trace.
	fake.mu.Lock()
	fake.canned = []types.Message{cannedMessage("m1", "to-xray", map[string]string{"AWSTraceHeader": want}, nil)}
	fake.mu.Unlock()
	c := r.consume(r.sub, nil)
	c.waitFor(10*time.Second, "to-xray")
	c.stop()
	if d := c.byBody("to-xray")[0]; d.span.TraceID() != root.SpanContext().TraceID() {
		t.Error("the X-Ray header did not carry the producer's trace")
	}
}

// TestSQSRawW3CProducer: a producer that uses the AWS SDK directly and writes
// traceparent itself, as a String or a Binary attribute, or under another
// casing (Go's http.Header makes "Traceparent" of it; SQS attribute names
// are case-sensitive), is joined by an otelmq Subscriber.
func TestSQSRawW3CProducer(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "raw-w3c", nil)
	send := func(body, name string, tp types.MessageAttributeValue) {
		_, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{
			QueueUrl: aws.String(url), MessageBody: aws.String(body),
			MessageAttributes: map[string]types.MessageAttributeValue{name: tp},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	send("string", "traceparent", stringAttr(w3cTraceparent))
	send("binary", "traceparent", types.MessageAttributeValue{DataType: aws.String("Binary"), BinaryValue: []byte(w3cTraceparent)})
	send("capitalized", "Traceparent", stringAttr(w3cTraceparent))

	rec, tp := newRecorder()
	r := tracedRig(t, rec, tp, Env{Subscriber: awssqs.NewSubscriber(client, awssqs.WithWaitTime(time.Second)), Source: url})
	c := r.consume(r.sub, nil)
	c.waitFor(15*time.Second, "string", "binary", "capitalized")
	c.stop()
	for _, body := range []string{"string", "binary", "capitalized"} {
		p := r.span(c.byBody(body)[0].span.SpanID())
		if p == nil || p.SpanContext().TraceID().String() != w3cTraceID || p.Parent().SpanID().String() != w3cSpanID {
			t.Errorf("%s: the process span is not a child of the producer's span", body)
		}
	}
}

// TestSQSWithOtelaws: otelaws on the aws.Config and otelmq's Publisher and
// Subscriber on the client made from it give one connected trace with one
// traceparent on the message, and otelaws's client spans sit under otelmq's
// send span. otelaws injects into HTTP headers only, never into message
// attributes.
func TestSQSWithOtelaws(t *testing.T) {
	raw := brokers.SQS(t)
	url := brokers.SQSQueue(t, raw, "otelaws", nil)
	rec, tp := newRecorder()
	o := raw.Options()
	cfg := aws.Config{Region: o.Region, Credentials: o.Credentials, BaseEndpoint: o.BaseEndpoint}
	otelaws.AppendMiddlewares(&cfg.APIOptions, otelaws.WithTracerProvider(tp), otelaws.WithTextMapPropagator(otelprop.TraceContext{}))
	client := sqs.NewFromConfig(cfg)

	t.Run("PublisherSubscriber", func(t *testing.T) {
		r := tracedRig(t, rec, tp, Env{
			Publisher:   awssqs.NewPublisher(client),
			Subscriber:  awssqs.NewSubscriber(client, awssqs.WithWaitTime(time.Second)),
			Destination: url, Source: url,
		})
		ctx, root := tp.Tracer("test").Start(context.Background(), "POST /orders")
		if err := r.pub.Publish(ctx, url, middleware.NewMessage([]byte("with-otelaws"))); err != nil {
			t.Fatal(err)
		}
		root.End()
		c := r.consume(r.sub, nil)
		c.waitFor(15*time.Second, "with-otelaws")
		c.stop()

		d := c.byBody("with-otelaws")[0]
		if d.span.TraceID() != root.SpanContext().TraceID() {
			t.Error("the process span is not in the producer's trace")
		}
		var m *types.Message
		if !d.msg.As(&m) {
			t.Fatal("no *types.Message behind the delivery")
		}
		n := 0
		for k := range m.MessageAttributes {
			if strings.EqualFold(k, "traceparent") || k == awssqs.PackedAttribute {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d traceparent attributes on the message, want 1: %v", n, m.MessageAttributes)
		}
		sends := r.spans("send ")
		if len(sends) != 1 {
			t.Fatalf("%d send spans", len(sends))
		}
		checkOtelawsChild(t, rec, "SQS.SendMessage", sends[0])
	})

	// The native instrumentation and otelaws on one client: otelaws's span
	// is inside otelmq's send span, whichever was installed first.
	t.Run("Native", func(t *testing.T) {
		for _, nativeFirst := range []bool{true, false} {
			rec.Reset()
			cfg := cfg.Copy()
			inst := awssqs.NewInstrumentation(middleware.NewTracing(middleware.WithTracerProvider(tp)))
			if nativeFirst {
				cfg.APIOptions = nil
				inst.AppendMiddlewares(&cfg.APIOptions)
				otelaws.AppendMiddlewares(&cfg.APIOptions, otelaws.WithTracerProvider(tp), otelaws.WithTextMapPropagator(otelprop.TraceContext{}))
			} else {
				inst.AppendMiddlewares(&cfg.APIOptions)
			}
			client := sqs.NewFromConfig(cfg)
			if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("native")}); err != nil {
				t.Fatal(err)
			}
			var sends []sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if strings.HasPrefix(s.Name(), "send ") {
					sends = append(sends, s)
				}
			}
			if len(sends) != 1 {
				t.Fatalf("native first %v: %d send spans", nativeFirst, len(sends))
			}
			checkOtelawsChild(t, rec, "SQS.SendMessage", sends[0])
		}
	})
}

func checkOtelawsChild(t *testing.T, rec *tracetest.SpanRecorder, name string, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	found := false
	for _, s := range rec.Ended() {
		if s.Name() == name && s.InstrumentationScope().Name == otelaws.ScopeName {
			found = true
			if s.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("otelaws span %s is not a child of %s", name, parent.Name())
			}
		}
	}
	if !found {
		t.Errorf("no otelaws %s span", name)
	}
}
