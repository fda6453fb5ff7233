package awssqs_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/internal/testtel"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/awssqs"
)

func counterSum(points []metricdata.DataPoint[int64], key attribute.Key, value string) int64 {
	var n int64
	for _, p := range points {
		if v, _ := p.Attributes.Value(key); v.Emit() == value {
			n += p.Value
		}
	}
	return n
}

func durationCount(points []metricdata.HistogramDataPoint[float64], key attribute.Key, value string) uint64 {
	var n uint64
	for _, p := range points {
		if v, _ := p.Attributes.Value(key); v.Emit() == value {
			n += p.Count
		}
	}
	return n
}

// TestNativeMetrics: the native instrumentation records the metrics a
// Publisher and Subscriber wrapped in the middleware would, per call: sends
// (every entry of a batch counted), receives that returned messages (an
// empty one is none; a failed one has error.type) and deletes.
func TestNativeMetrics(t *testing.T) {
	raw := brokers.SQS(t)
	url := brokers.SQSQueue(t, raw, "native-metrics", nil)
	tel := testtel.New(t)
	inst := awssqs.NewInstrumentationWithTelemetry(tel.Telemetry)
	client := sqs.New(raw.Options(), inst.ClientOption())
	ctx := context.Background()

	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("one")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("two")}, {Id: aws.String("b"), MessageBody: aws.String("three")},
	}}); err != nil {
		t.Fatal(err)
	}
	if got := counterSum(tel.CounterPoints(t, middleware.MetricSentMessages), "messaging.operation.name", "send"); got != 3 {
		t.Errorf("sent.messages %d, want 3", got)
	}
	if got := durationCount(tel.OperationPoints(t, "send"), "error.type", ""); got != 2 {
		t.Errorf("%d send durations, want 2 (one per call)", got)
	}

	// goaws may deliver a message twice (SQS is at-least-once): count what
	// the receives returned.
	returned, seen := 0, map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		returned += len(out.Messages)
		for _, m := range out.Messages {
			seen[aws.ToString(m.Body)] = true
			pctx, span := inst.StartProcess(awssqs.ReceiveContext(ctx, out), url, m)
			if _, err := inst.DeleteMessage(pctx, client, url, m); err != nil {
				t.Fatal(err)
			}
			inst.Tracing().End(span, nil)
		}
	}
	if len(seen) < 3 {
		t.Fatalf("received %d of 3 messages", len(seen))
	}
	if got := counterSum(tel.CounterPoints(t, middleware.MetricConsumedMessages), "messaging.operation.name", "receive"); got != int64(returned) {
		t.Errorf("consumed.messages %d, want %d (what the receives returned)", got, returned)
	}
	receives := durationCount(tel.OperationPoints(t, "receive"), "error.type", "")
	if receives == 0 {
		t.Error("no receive duration")
	}
	if got := durationCount(tel.OperationPoints(t, propagation.OpDelete), "error.type", ""); got != uint64(returned) {
		t.Errorf("%d delete durations, want %d", got, returned)
	}
	if got := durationCount(tel.HistogramPoints(t, middleware.MetricProcessDuration), "error.type", ""); got != uint64(returned) {
		t.Errorf("%d process durations, want %d", got, returned)
	}
	if got := durationCount(tel.HistogramPoints(t, middleware.MetricQueueTime), "error.type", ""); got != uint64(returned) {
		t.Errorf("%d queue times, want %d (goaws stamps SentTimestamp)", got, returned)
	}

	// An empty poll is no receive; a failed one is, with its error.type.
	if _, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 0}); err != nil {
		t.Fatal(err)
	}
	if got := durationCount(tel.OperationPoints(t, "receive"), "error.type", ""); got != receives {
		t.Errorf("an empty poll added a receive duration (%d, was %d)", got, receives)
	}
	if _, err := deadClient(inst.ClientOption()).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(deadEndpoint + "/000000000000/q")}); err == nil {
		t.Fatal("receive from a dead endpoint succeeded")
	}
	if got := durationCount(tel.OperationPoints(t, "receive"), "error.type", "*net.OpError"); got != 1 {
		t.Errorf("%d failed receive durations with error.type *net.OpError, want 1", got)
	}
}

// TestNativeTracingRecordsNoMetrics: NewInstrumentation is spans only.
func TestNativeTracingRecordsNoMetrics(t *testing.T) {
	raw := brokers.SQS(t)
	url := brokers.SQSQueue(t, raw, "native-no-metrics", nil)
	tel := testtel.New(t)
	client := sqs.New(raw.Options(), awssqs.NewInstrumentation(tel.Tracing).ClientOption())
	if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	if p := tel.CounterPoints(t, middleware.MetricSentMessages); len(p) != 0 {
		t.Errorf("sent.messages recorded without metrics: %v", p)
	}
	if len(tel.Spans.Ended()) != 1 {
		t.Errorf("%d spans, want the send span", len(tel.Spans.Ended()))
	}
}

// TestNativeProcessDurationOutlivesChildSpans: a message sent from inside a
// process span (forwarded) does not end the process measurement when its
// send span is a stand-in for none (an unsampled parent with
// WithParentBasedSampling, or the no-op tracer, which hands back the span
// in ctx): the process duration is recorded once, when the process span
// ends, with the error it ends with.
func TestNativeProcessDurationOutlivesChildSpans(t *testing.T) {
	raw := brokers.SQS(t)
	url := brokers.SQSQueue(t, raw, "native-process-children", nil)
	for _, tt := range []struct {
		name  string
		flags string // of the message's traceparent
		opts  []middleware.Option
	}{
		{"parent-based-unsampled", "00", []middleware.Option{middleware.WithParentBasedSampling(true)}},
		{"noop-tracer", "01", []middleware.Option{middleware.WithTracerProvider(noop.NewTracerProvider())}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tel := testtel.New(t, tt.opts...)
			inst := awssqs.NewInstrumentationWithTelemetry(tel.Telemetry)
			client := sqs.New(raw.Options(), inst.ClientOption())
			m := types.Message{MessageId: aws.String("m-1"), Body: aws.String("in"), MessageAttributes: map[string]types.MessageAttributeValue{
				"traceparent": {DataType: aws.String("String"), StringValue: aws.String("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-" + tt.flags)},
			}}
			pctx, span := inst.StartProcess(context.Background(), url, m)
			if _, err := client.SendMessage(pctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("forwarded")}); err != nil {
				t.Fatal(err)
			}
			inst.Tracing().End(span, errors.New("handler failed"))
			got := tel.HistogramPoints(t, middleware.MetricProcessDuration)
			if ok, failed := durationCount(got, "error.type", ""), durationCount(got, "error.type", "_OTHER"); ok != 0 || failed != 1 {
				t.Errorf("process durations: %d without error.type, %d _OTHER; want the one the process span ended with (_OTHER)", ok, failed)
			}
		})
	}
}

// refusingBatch answers every SendMessageBatch as SQS does when it refuses
// one entry of two (HTTP 200, one Successful, one Failed), without sending
// anything: goaws refuses no entry.
type refusingBatch struct{}

func (refusingBatch) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Target") != "AmazonSQS.SendMessageBatch" {
		return http.DefaultTransport.RoundTrip(r)
	}
	if r.Body != nil {
		_ = r.Body.Close()
	}
	body := `{"Successful":[{"Id":"a","MessageId":"m-a","MD5OfMessageBody":"` + md5Hex("one") + `"}],` +
		`"Failed":[{"Id":"b","Code":"InvalidParameterValue","Message":"refused","SenderFault":true}]}`
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.0"}, "X-Amzn-Requestid": {"refused-by-test"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestNativeBatchRefusedEntry: a SendMessageBatch that SQS took but
// refused an entry of succeeds for the caller, while its send span and
// send metric carry the refusal: error status, error.type the entry's code.
func TestNativeBatchRefusedEntry(t *testing.T) {
	raw := brokers.SQS(t)
	url := brokers.SQSQueue(t, raw, "native-batch-refused", nil)
	tel := testtel.New(t)
	inst := awssqs.NewInstrumentationWithTelemetry(tel.Telemetry)
	client := sqs.New(raw.Options(), inst.ClientOption(), func(o *sqs.Options) { o.HTTPClient = &http.Client{Transport: refusingBatch{}} })
	out, err := client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("one")}, {Id: aws.String("b"), MessageBody: aws.String("two")},
	}})
	if err != nil || len(out.Failed) != 1 {
		t.Fatalf("SendMessageBatch: %v, %d failed; want nil and one failed entry", err, len(out.Failed))
	}
	var send sdktrace.ReadOnlySpan
	for _, s := range tel.Spans.Ended() {
		// A CLIENT: each entry's create span is its creation context.
		if s.SpanKind() == trace.SpanKindClient && strings.HasPrefix(s.Name(), "send ") {
			send = s
		}
	}
	if send == nil || send.Status().Code != codes.Error || spanAttr(send, "error.type") != "InvalidParameterValue" {
		t.Errorf("send span %v: want error status and error.type InvalidParameterValue", send)
	}
	if got := durationCount(tel.OperationPoints(t, "send"), "error.type", "InvalidParameterValue"); got != 1 {
		t.Errorf("%d send durations with error.type InvalidParameterValue, want 1", got)
	}
}
