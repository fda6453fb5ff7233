package awssqs_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/integration"
	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/internal/testtel"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// telemetry is the Telemetry middleware over SDK providers the test reads.
type telemetry struct{ *testtel.Recorded }

func newTelemetry(t *testing.T) *telemetry { return &telemetry{testtel.New(t)} }

// durations returns the operation.duration points of operation op: the
// error.type of each ("" without error) with its count.
func (tel *telemetry) durations(t *testing.T, op string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, dp := range tel.OperationPoints(t, op) {
		errType, _ := dp.Attributes.Value("error.type")
		out[errType.AsString()] += dp.Count
	}
	return out
}

// spansOf returns the ended spans of operation op.
func (tel *telemetry) spansOf(op string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tel.Spans.Ended() {
		if spanAttr(s, "messaging.operation.name") == op {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, a := range s.Attributes() {
		if a.Key == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// throttler answers the first n ReceiveMessage requests that reach it as
// SQS does when it throttles (HTTP 400, ThrottlingException), without
// forwarding them; everything else goes to the endpoint.
type throttler struct {
	next http.RoundTripper

	mu        sync.Mutex
	n         int
	throttled int
}

func (th *throttler) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Target") == "AmazonSQS.ReceiveMessage" {
		th.mu.Lock()
		throttle := th.throttled < th.n
		if throttle {
			th.throttled++
		}
		th.mu.Unlock()
		if throttle {
			if r.Body != nil {
				_ = r.Body.Close()
			}
			body := `{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"}`
			return &http.Response{
				StatusCode: http.StatusBadRequest,
				Status:     "400 Bad Request",
				Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{
					"Content-Type":       {"application/x-amz-json-1.0"},
					"X-Amzn-Requestid":   {"throttled-by-test"},
					"X-Amzn-Query-Error": {"ThrottlingException;Sender"},
				},
				Body:          io.NopCloser(strings.NewReader(body)),
				ContentLength: int64(len(body)),
				Request:       r,
			}, nil
		}
	}
	return th.next.RoundTrip(r)
}

func (th *throttler) count() int {
	th.mu.Lock()
	defer th.mu.Unlock()
	return th.throttled
}

// TestThrottledReceiveObserved: each ReceiveMessage that SQS throttles
// (the SDK parses the refusal off the wire; its own retries are off, so a
// throttled request is a failed poll) is one receive operation.duration
// point with error.type and one receive span with error status, and the
// Subscriber still delivers every message afterwards.
func TestThrottledReceiveObserved(t *testing.T) {
	direct := brokers.SQS(t)
	url := brokers.SQSQueue(t, direct, "throttled", nil)
	publishBodies(t, direct, url, "m1", "m2", "m3", "m4", "m5")

	const throttled = 2
	th := &throttler{next: http.DefaultTransport, n: throttled}
	client := sqs.New(direct.Options(), func(o *sqs.Options) {
		o.HTTPClient = &http.Client{Transport: th}
		o.RetryMaxAttempts = 1
	})
	tel := newTelemetry(t)
	c := newCollector()
	stop := integration.RunSubscriber(t, context.Background(), tel.Subscriber(awssqs.NewSubscriber(client, fast...)), url, c)
	c.waitFor(t, 20*time.Second, "all five messages", func(m map[string][]*middleware.Message) bool { return len(m) == 5 })
	waitEmpty(t, direct, url, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if th.count() != throttled {
		t.Fatalf("%d ReceiveMessage requests throttled, want %d", th.count(), throttled)
	}

	receives := tel.durations(t, "receive")
	var failed uint64
	for errType, n := range receives {
		if errType == "" {
			continue
		}
		failed += n
		if errType != "ThrottlingException" {
			t.Errorf("a throttled receive has error.type %q, want the API error code ThrottlingException", errType)
		}
	}
	if failed != throttled || receives[""] == 0 {
		t.Errorf("receive operation.duration points by error.type %v: want %d with error.type and the successful polls without", receives, throttled)
	}

	var failedSpans int
	for _, s := range tel.spansOf("receive") {
		if s.Status().Code != codes.Error {
			continue
		}
		failedSpans++
		if s.SpanKind() != trace.SpanKindClient || !strings.HasPrefix(s.Name(), "receive ") ||
			spanAttr(s, "error.type") == "" || spanAttr(s, "messaging.batch.message_count") != "" ||
			!strings.Contains(s.Status().Description, "ThrottlingException") {
			t.Errorf("failed receive span %q kind %v status %+v attributes %v", s.Name(), s.SpanKind(), s.Status(), s.Attributes())
		}
	}
	if failedSpans != throttled {
		t.Errorf("%d receive spans with error status, want %d", failedSpans, throttled)
	}
}

// TestPermanentReceiveFailureObserved: the ReceiveMessage error that ends
// Subscribe (the queue is gone) is measured and traced too.
func TestPermanentReceiveFailureObserved(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "gone", nil)
	if _, err := client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatal(err)
	}
	tel := newTelemetry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := tel.Subscriber(awssqs.NewSubscriber(client, fast...)).Subscribe(ctx, url, middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Subscribe on a deleted queue: err = %v, ctx.Err() = %v; want an error before the deadline", err, ctx.Err())
	}
	receives := tel.durations(t, "receive")
	if len(receives) != 1 || receives[""] != 0 {
		t.Errorf("receive operation.duration points by error.type %v, want the failed poll's alone", receives)
	}
	for errType, n := range receives {
		t.Logf("error.type of ReceiveMessage on a deleted queue: %q", errType)
		if n != 1 || errType == "_OTHER" || strings.HasPrefix(errType, "*") {
			t.Errorf("error.type %q measured %d times, want one typed failure", errType, n)
		}
	}
	if spans := tel.spansOf("receive"); len(spans) != 1 || spans[0].Status().Code != codes.Error {
		t.Errorf("%d receive spans, want one with error status", len(spans))
	}
}

// TestPartialDeleteMeasuredOnce: a DeleteMessageBatch that SQS partly
// refuses (an entry in Failed, an entry in neither list) is one settle
// operation: metrics record exactly one delete measurement per request,
// with error.type for the partly failed one, while tracing gives each
// message that was not deleted its own failed settle span under its
// process span.
func TestPartialDeleteMeasuredOnce(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "partialmetric", map[string]string{"VisibilityTimeout": "1"})
	publishBodies(t, client, url, "ok1", "refused", "ok2", "unlisted", "ok3")

	rec := &receipts{}
	log := &deleteLog{API: client}
	log.fault = refuseAndOmit(client, rec)
	var mu sync.Mutex
	firstIDs := map[string]string{} // body -> message ID of its first delivery
	c := newCollector()
	c.handle = func(_ context.Context, msg *middleware.Message, delivery int) error {
		rec.add(msg, delivery)
		if delivery == 1 {
			mu.Lock()
			firstIDs[string(msg.Body)] = msg.ID
			mu.Unlock()
		}
		return nil
	}
	tel := newTelemetry(t)
	// A linger that never passes: each poll's successes are one batch.
	s := awssqs.NewSubscriber(log, append(fast, awssqs.WithDeleteLinger(time.Hour))...)
	stop := integration.RunSubscriber(t, context.Background(), tel.Subscriber(s), url, c)
	c.waitFor(t, 20*time.Second, "the undeleted messages again", func(m map[string][]*middleware.Message) bool {
		return len(m) == 5 && len(m["refused"]) >= 2 && len(m["unlisted"]) >= 2
	})
	waitEmpty(t, client, url, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	batches, _, _ := log.snapshot(t)

	deletes := tel.durations(t, "delete")
	var measured uint64
	for _, n := range deletes {
		measured += n
	}
	if measured != uint64(len(batches)) {
		t.Errorf("%d delete measurements for %d DeleteMessageBatch requests (by error.type: %v), want one per request", measured, len(batches), deletes)
	}
	if deletes["ReceiptHandleIsInvalid"] != 1 || len(deletes) != 2 {
		t.Errorf("delete measurements by error.type %v, want the partly failed request once with its entry's code ReceiptHandleIsInvalid and the others without", deletes)
	}

	// One failed settle span per message that was not deleted, a child of
	// that delivery's process span.
	process := map[trace.SpanID]string{} // process span -> message ID
	for _, s := range tel.spansOf("process") {
		process[s.SpanContext().SpanID()] = spanAttr(s, "messaging.message.id")
	}
	var failedIDs []string
	for _, s := range tel.spansOf("delete") {
		if s.Status().Code != codes.Error {
			continue
		}
		id := spanAttr(s, "messaging.message.id")
		failedIDs = append(failedIDs, id)
		if process[s.Parent().SpanID()] != id {
			t.Errorf("failed delete span of %s is not a child of its process span", id)
		}
	}
	slices.Sort(failedIDs)
	mu.Lock()
	want := []string{firstIDs["refused"], firstIDs["unlisted"]}
	mu.Unlock()
	slices.Sort(want)
	if !slices.Equal(failedIDs, want) {
		t.Errorf("failed delete spans for messages %q, want one each for the refused and unlisted entries %q", failedIDs, want)
	}
}
