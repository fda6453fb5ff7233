package awssqs

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	"go.opentelemetry.io/otel/attribute"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Instrumentation traces the SQS calls of code that drives an *sqs.Client
// itself instead of using Publisher and Subscriber. Install it on a client
// with ClientOption (or on an aws.Config with AppendMiddlewares); use
// StartProcess and DeleteMessage in the receive loop.
//
// A ReceiveMessage that returns messages gets a receive span; one that
// fails gets a receive span ended with the error (error status and
// error.type), as a failed poll of the Subscriber does, unless the end of
// its ctx interrupted it; an empty one gets none.
//
// Do not also wrap a Publisher or Subscriber on the same client with
// middleware tracing: both would record send and receive spans. The trace
// context itself is never injected twice, because an existing traceparent is
// kept.
type Instrumentation struct {
	tracing *middleware.Tracing
	metrics *middleware.Metrics // nil: none (NewInstrumentation)
}

// NewInstrumentation returns an Instrumentation that records spans through
// t, and no metrics; a nil t is middleware.NewTracing().
func NewInstrumentation(t *middleware.Tracing) *Instrumentation {
	if t == nil {
		t = middleware.NewTracing()
	}
	return &Instrumentation{tracing: t}
}

// NewInstrumentationWithTelemetry returns an Instrumentation that records
// spans through t.Tracing and metrics through t.Metrics (a nil one records
// none); a nil t is middleware.NewTelemetry().
//
// The metrics are those of a Publisher and Subscriber wrapped in the
// middleware, per call: SendMessage and SendMessageBatch are sends
// (messaging.client.operation.duration, and sent.messages counting every
// entry; a batch that SQS refused entries of has the first refusal's code
// as error.type), a ReceiveMessage that returns messages is a receive
// (its duration and consumed.messages; a failed one its duration with
// error.type), DeleteMessage a delete, and a process span from
// StartProcess ended through Tracing.End (or middleware.End) records
// messaging.process.duration and otelmq.message.queue_time.
func NewInstrumentationWithTelemetry(t *middleware.Telemetry) *Instrumentation {
	if t == nil {
		t = middleware.NewTelemetry()
	}
	i := NewInstrumentation(t.Tracing)
	i.metrics = t.Metrics
	return i
}

// WithTracing is NewInstrumentation(middleware.NewTracing(opts...)).ClientOption():
// spans only. Pass it to sqs.NewFromConfig or sqs.New, or to a single call.
func WithTracing(opts ...middleware.Option) func(*sqs.Options) {
	return NewInstrumentation(middleware.NewTracing(opts...)).ClientOption()
}

// WithTelemetry is
// NewInstrumentationWithTelemetry(middleware.NewTelemetry(opts...)).ClientOption():
// spans and metrics. Give it to the client (sqs.NewFromConfig), not to each
// call, which would build a Telemetry per call; a client keeps the first
// instrumentation installed on it, so a per-call WithTelemetry on a client
// built WithTracing adds no metrics.
func WithTelemetry(opts ...middleware.Option) func(*sqs.Options) {
	return NewInstrumentationWithTelemetry(middleware.NewTelemetry(opts...)).ClientOption()
}

// Tracing returns the Tracing the Instrumentation records through.
func (i *Instrumentation) Tracing() *middleware.Tracing { return i.tracing }

// Metrics returns the Metrics the Instrumentation records through, nil when
// none.
func (i *Instrumentation) Metrics() *middleware.Metrics { return i.metrics }

// ClientOption returns an sqs.Options function that installs the
// instrumentation on a client (sqs.NewFromConfig(cfg, opt)) or on one call
// (client.SendMessage(ctx, in, opt)).
func (i *Instrumentation) ClientOption() func(*sqs.Options) {
	return func(o *sqs.Options) { i.AppendMiddlewares(&o.APIOptions) }
}

// AppendMiddlewares installs the instrumentation in apiOptions, such as
// aws.Config.APIOptions, the way otelaws.AppendMiddlewares does. Calls of
// other services and other SQS operations pass through untouched.
func (i *Instrumentation) AppendMiddlewares(apiOptions *[]func(*smithymiddleware.Stack) error) {
	*apiOptions = append(*apiOptions, i.addMiddleware)
}

// middlewareID names the middleware in the stack; installing the same
// instrumentation twice (client and call options) keeps the first.
const middlewareID = "otelmq.awssqs.Tracing"

func (i *Instrumentation) addMiddleware(stack *smithymiddleware.Stack) error {
	if _, ok := stack.Initialize.Get(middlewareID); ok {
		return nil
	}
	// Before: the SDK's own Initialize middlewares (input validation, the
	// MD5 checks of SendMessage) were added first, so this one runs outside
	// them and they see the input with the trace context in it; a span
	// middleware added later at After (otelaws) is a child of the send span.
	return stack.Initialize.Add(smithymiddleware.InitializeMiddlewareFunc(middlewareID, i.handle), smithymiddleware.Before)
}

func (i *Instrumentation) handle(ctx context.Context, in smithymiddleware.InitializeInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
	switch p := in.Parameters.(type) {
	case *sqs.SendMessageInput:
		if p != nil {
			return i.sendMessage(ctx, in, p, next)
		}
	case *sqs.SendMessageBatchInput:
		if p != nil {
			return i.sendMessageBatch(ctx, in, p, next)
		}
	case *sqs.ReceiveMessageInput:
		if p != nil {
			return i.receiveMessage(ctx, in, p, next)
		}
	}
	return next.HandleInitialize(ctx, in)
}

func (i *Instrumentation) sendMessage(ctx context.Context, in smithymiddleware.InitializeInput, p *sqs.SendMessageInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
	d := describe(aws.ToString(p.QueueUrl))
	// The caller's input and maps may be reused for the next message: the
	// trace context goes into copies. The send span starts once the
	// message's own creation context, if it has one, is known.
	cp := *p
	var span trace.Span
	cp.MessageAttributes, cp.MessageSystemAttributes = i.inject(p.MessageAttributes, p.MessageSystemAttributes, func(c propagation.TextMapCarrier) context.Context {
		ctx, span = i.tracing.StartSendOne(ctx, d, c)
		return ctx
	})
	in.Parameters = &cp
	start := time.Now()
	out, md, err := next.HandleInitialize(ctx, in)
	if res, ok := out.Result.(*sqs.SendMessageOutput); ok && res != nil && res.MessageId != nil {
		i.tracing.RecordAttributes(span, propagation.MessageID(*res.MessageId))
	}
	recorded := named(err) // the caller gets err as the SDK returned it
	if i.metrics != nil {
		i.metrics.Sent(ctx, d, start, 1, recorded)
	}
	i.tracing.End(span, recorded)
	return out, md, err
}

func (i *Instrumentation) sendMessageBatch(ctx context.Context, in smithymiddleware.InitializeInput, p *sqs.SendMessageBatchInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
	d := describe(aws.ToString(p.QueueUrl))
	ctx, span := i.tracing.StartSend(ctx, d, len(p.Entries))
	cp := *p
	cp.Entries = slices.Clone(p.Entries)
	batch := len(cp.Entries) > 1
	for j := range cp.Entries {
		e := &cp.Entries[j]
		e.MessageAttributes, e.MessageSystemAttributes = i.inject(e.MessageAttributes, e.MessageSystemAttributes, func(c propagation.TextMapCarrier) context.Context {
			i.tracing.InjectCreate(ctx, d, c, batch)
			return ctx
		})
	}
	in.Parameters = &cp
	start := time.Now()
	out, md, err := next.HandleInitialize(ctx, in)
	recorded := named(err) // the caller gets err as the SDK returned it
	if res, ok := out.Result.(*sqs.SendMessageBatchOutput); ok && res != nil && len(res.Failed) > 0 && err == nil {
		// The request succeeded but SQS refused some entries: the send
		// did not fully happen, which the span and metric must not hide.
		recorded = middleware.NamedError(fmt.Errorf("%d of %d entries failed", len(res.Failed), len(cp.Entries)), aws.ToString(res.Failed[0].Code))
	}
	if i.metrics != nil {
		i.metrics.Sent(ctx, d, start, len(cp.Entries), recorded)
	}
	i.tracing.End(span, recorded)
	return out, md, err
}

// inject returns copies of attrs and sys with the creation context of one
// message added within the attribute budget (see EncodeHeaders): a valid
// traceparent already there is kept and nothing is written, and a valid
// AWSTraceHeader alone is kept and written as the traceparent too; the fields go one
// attribute each when they fit beside the message's own attributes, else
// packed into PackedAttribute, else they are dropped and recorded. An X-Ray
// header the propagator writes becomes the AWSTraceHeader system attribute
// unless the message already has one. create writes the creation context
// into the carrier it is given (InjectCreate, or StartSendOne, which starts
// the send span) and returns the context of the span that records what
// the budget dropped.
func (i *Instrumentation) inject(attrs map[string]types.MessageAttributeValue, sys map[string]types.MessageSystemAttributeValue, create func(propagation.TextMapCarrier) context.Context) (map[string]types.MessageAttributeValue, map[string]types.MessageSystemAttributeValue) {
	fields := map[string]string{}
	c := injectCarrier{read: NewCarrier(&attrs), fields: fields}
	if v, ok := sys[attrTraceHeader]; ok {
		// An AWS producer's creation context, kept as the message's own.
		c.xray = aws.ToString(v.StringValue)
	}
	ctx := create(c)
	if xray := fields[propagation.XRayKey]; xray != "" {
		delete(fields, propagation.XRayKey)
		if _, ok := sys[attrTraceHeader]; !ok {
			sys = maps.Clone(sys)
			if sys == nil {
				sys = map[string]types.MessageSystemAttributeValue{}
			}
			sys[attrTraceHeader] = types.MessageSystemAttributeValue{DataType: aws.String("String"), StringValue: aws.String(xray)}
		}
	}
	if len(fields) == 0 {
		return attrs, sys
	}
	// What the propagator writes replaces stale fields of the same name
	// (an invalid traceparent, a tracestate without one) and a stale pack;
	// a field emptied is only removed.
	written := make(map[string]bool, len(fields))
	for k, v := range fields {
		written[strings.ToLower(k)] = true
		if v == "" {
			delete(fields, k)
		}
	}
	out := make(map[string]types.MessageAttributeValue, len(attrs)+len(fields))
	for k, v := range attrs {
		if k != PackedAttribute && !written[strings.ToLower(k)] {
			out[k] = v
		}
	}
	// A pack holds more than propagation fields (headers whose names SQS
	// refuses, the overflow of the budget: see EncodeHeaders): what the
	// propagator does not replace is packed again with what it wrote.
	var carried map[string]string
	if p, ok := attrs[PackedAttribute]; ok {
		for k, v := range Unpack(attributeText(p)) {
			if !written[strings.ToLower(k)] {
				if carried == nil {
					carried = map[string]string{}
				}
				carried[k] = v
			}
		}
	}
	switch own := len(out); {
	case len(carried) == 0 && own+len(fields) <= MaxAttributes:
		for k, v := range fields {
			out[k] = stringAttribute(v)
		}
	case own < MaxAttributes:
		if carried == nil {
			carried = fields
		} else {
			maps.Copy(carried, fields)
		}
		out[PackedAttribute] = stringAttribute(Pack(carried))
	default:
		// No attribute slot left: the message is still sent, and its
		// creation context goes as the AWSTraceHeader system attribute,
		// which does not count against the budget and which receivers
		// (ours, the AWS SDKs, X-Ray) read when there is no traceparent,
		// unless the message has one of its own. Only the trace ID,
		// parent and sampled flag fit there: the other fields are lost.
		if _, has := sys[attrTraceHeader]; !has {
			if xray := propagation.FormatXRay(traceParentOf(fields)); xray != "" {
				sys = maps.Clone(sys)
				if sys == nil {
					sys = map[string]types.MessageSystemAttributeValue{}
				}
				sys[attrTraceHeader] = types.MessageSystemAttributeValue{DataType: aws.String("String"), StringValue: aws.String(xray)}
				deleteFold(fields, propagation.TraceParentKey)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			i.tracing.Propagator().RecordDropped(ctx, k, DroppedReason, 1)
		}
		return attrs, sys
	}
	return out, sys
}

// traceParentOf returns the span context of the traceparent among fields
// (its name matched without regard to case), invalid when there is none.
func traceParentOf(fields map[string]string) trace.SpanContext {
	for k, v := range fields {
		if strings.EqualFold(k, propagation.TraceParentKey) {
			return trace.SpanContextFromContext(otelprop.TraceContext{}.Extract(context.Background(), otelprop.MapCarrier{propagation.TraceParentKey: v}))
		}
	}
	return trace.SpanContext{}
}

// deleteFold deletes the entries of m named key without regard to case.
func deleteFold(m map[string]string, key string) {
	for k := range m {
		if strings.EqualFold(k, key) {
			delete(m, k)
		}
	}
}

// injectCarrier reads a message's attributes, so InjectCreate sees a
// traceparent the caller set (in any casing, or packed), and collects what
// the propagator writes, so the budget can place it.
type injectCarrier struct {
	read   Carrier
	fields map[string]string
	xray   string // the message's AWSTraceHeader system attribute
}

func (c injectCarrier) Get(key string) string {
	if v, ok := c.fields[key]; ok {
		return v
	}
	if key == propagation.XRayKey && c.xray != "" {
		return c.xray
	}
	return c.read.Get(key)
}

// Set records value for key; an empty value marks a stale field of the
// message (a tracestate whose traceparent is replaced) to leave out.
func (c injectCarrier) Set(key, value string) { c.fields[key] = value }

func (c injectCarrier) Keys() []string { return c.read.Keys() }

// receiveSpanKey holds, in the ReceiveMessage output's ResultMetadata, the
// receive span recorded for it.
type receiveSpanKey struct{}

func (i *Instrumentation) receiveMessage(ctx context.Context, in smithymiddleware.InitializeInput, p *sqs.ReceiveMessageInput, next smithymiddleware.InitializeHandler) (smithymiddleware.InitializeOutput, smithymiddleware.Metadata, error) {
	cp := *p
	// SQS returns no message attributes and no system attributes unless
	// asked; without them there is no trace context to continue.
	if !slices.ContainsFunc(p.MessageAttributeNames, func(n string) bool { return n == "All" || n == ".*" }) {
		cp.MessageAttributeNames = append(slices.Clip(p.MessageAttributeNames), "All")
	}
	cp.MessageSystemAttributeNames = slices.Clip(p.MessageSystemAttributeNames)
	for _, want := range []types.MessageSystemAttributeName{
		types.MessageSystemAttributeNameAWSTraceHeader,
		types.MessageSystemAttributeNameApproximateReceiveCount,
		types.MessageSystemAttributeNameSentTimestamp,
	} {
		if !slices.Contains(cp.MessageSystemAttributeNames, want) && !slices.Contains(cp.MessageSystemAttributeNames, types.MessageSystemAttributeNameAll) {
			cp.MessageSystemAttributeNames = append(cp.MessageSystemAttributeNames, want)
		}
	}
	in.Parameters = &cp
	start := time.Now()
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		// Like the Subscriber: a failed receive span, with the error
		// status and error.type, unless ctx ended the call.
		d, recorded := describe(aws.ToString(p.QueueUrl)), named(err)
		middleware.ReportPollFailed(ctx, i.tracing, d, start, recorded)
		if i.metrics != nil {
			middleware.ReportPollFailed(ctx, i.metrics, d, start, recorded)
		}
		return out, md, err
	}
	res, ok := out.Result.(*sqs.ReceiveMessageOutput)
	if !ok || res == nil || len(res.Messages) == 0 {
		// Like the Subscriber: an empty poll is not a receive.
		return out, md, err
	}
	queueURL := aws.ToString(p.QueueUrl)
	if i.metrics != nil {
		i.metrics.Consumed(ctx, describe(queueURL), start, len(res.Messages))
	}
	creations := make([]trace.SpanContext, 0, len(res.Messages))
	for j := range res.Messages {
		creations = append(creations, i.creation(&res.Messages[j]))
	}
	var attrs []attribute.KeyValue
	if id := requestID(md); id != "" {
		attrs = append(attrs, propagation.AWSRequestID(id))
	}
	rctx := i.tracing.StartReceive(ctx, describe(queueURL), start, creations, attrs...)
	// The client copies md into the output's ResultMetadata, where
	// ReceiveContext finds the span.
	md.Set(receiveSpanKey{}, trace.SpanContextFromContext(rctx))
	return out, md, err
}

// ReceiveContext returns ctx carrying the receive span that the
// instrumentation recorded for out, for StartProcess: a message without a
// creation context is then a child of the receive span and, with
// middleware.ParentMessageLinkReceive, every process span links it.
// Without one it returns ctx.
func ReceiveContext(ctx context.Context, out *sqs.ReceiveMessageOutput) context.Context {
	if out == nil {
		return ctx
	}
	if sc, ok := out.ResultMetadata.Get(receiveSpanKey{}).(trace.SpanContext); ok && sc.IsValid() {
		return trace.ContextWithSpanContext(ctx, sc)
	}
	return ctx
}

// creation is the creation context m carries, invalid when none.
func (i *Instrumentation) creation(m *types.Message) trace.SpanContext {
	if sc, _, _ := i.tracing.Propagator().ExtractSpanContext(messageCarrier{m}); sc.IsRemote() {
		return sc
	}
	return trace.SpanContext{}
}

// StartProcess starts the process span (CONSUMER) of m, received from
// queueURL, parented on the producer's creation context per
// middleware.WithProcessParent; a W3C traceparent wins over the
// AWSTraceHeader system attribute. Pass ReceiveContext(ctx, out) as ctx
// (see ReceiveContext). End the span it returns (not the one in ctx: see
// middleware.Metrics.TimeProcess) with i.Tracing().End, which puts its
// error text through the redactor and, with metrics
// (NewInstrumentationWithTelemetry), records messaging.process.duration
// with the error's error.type; the queue time from SQS's SentTimestamp is
// recorded here.
func (i *Instrumentation) StartProcess(ctx context.Context, queueURL string, m types.Message) (context.Context, trace.Span) {
	d := describe(queueURL)
	ctx, span := i.tracing.StartProcess(ctx, d, messageCarrier{&m}, i.messageAttributes(&m, queueURL)...)
	if i.metrics != nil {
		span = i.metrics.TimeProcess(ctx, span, d, sentTime(&m))
	}
	return ctx, span
}

// MessageDeleter is the DeleteMessage method of *sqs.Client.
type MessageDeleter interface {
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// DeleteMessage deletes m from queueURL through api inside a "delete" settle
// span, a child of the span in ctx (the process span) that links m's
// creation context.
func (i *Instrumentation) DeleteMessage(ctx context.Context, api MessageDeleter, queueURL string, m types.Message, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	d := describe(queueURL)
	ctx, span := i.tracing.StartSettle(ctx, d, propagation.OpDelete,
		[]trace.SpanContext{i.creation(&m)}, i.messageAttributes(&m, queueURL)...)
	start := time.Now()
	out, err := api.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle}, optFns...)
	recorded := named(err) // the caller gets err as the SDK returned it
	if i.metrics != nil {
		i.metrics.Settled(ctx, d, propagation.OpDelete, start, nil, recorded)
	}
	i.tracing.End(span, recorded)
	return out, err
}

func (i *Instrumentation) messageAttributes(m *types.Message, queueURL string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{propagation.SQSQueueURL(queueURL)}
	if i.tracing.RecordsBodySize() {
		attrs = append(attrs, propagation.BodySize(len(aws.ToString(m.Body))))
	}
	if m.MessageId != nil {
		attrs = append(attrs, propagation.MessageID(*m.MessageId))
	}
	if n, err := strconv.Atoi(m.Attributes[attrReceiveCount]); err == nil && n > 0 {
		attrs = append(attrs, middleware.DeliveryCountKey.Int(n))
	}
	return attrs
}

// messageCarrier reads a received message: its message attributes through
// Carrier, and XRayKey from the AWSTraceHeader system attribute, where SQS
// puts the X-Ray header (a message attribute of that name is the fallback).
type messageCarrier struct{ m *types.Message }

func (c messageCarrier) Get(key string) string {
	if key == propagation.XRayKey {
		if v := c.m.Attributes[attrTraceHeader]; v != "" {
			return v
		}
	}
	return NewCarrier(&c.m.MessageAttributes).Get(key)
}

func (c messageCarrier) Set(key, value string) { NewCarrier(&c.m.MessageAttributes).Set(key, value) }

func (c messageCarrier) Keys() []string { return NewCarrier(&c.m.MessageAttributes).Keys() }
