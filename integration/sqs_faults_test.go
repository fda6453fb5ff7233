package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// faultProxy is a reverse proxy in front of an SQS endpoint that answers
// every failEvery-th request with a 500 (without forwarding it) and holds
// the response of every delayEvery-th request for delay after the endpoint
// answered, so the client times out on a request that took effect: the
// case that makes a retried SendMessage deliver twice and a retried
// DeleteMessageBatch meet already-deleted messages.
type faultProxy struct {
	srv                   *httptest.Server
	failEvery, delayEvery int64
	delay                 time.Duration
	// failOnly, when set, limits the 500s to these X-Amz-Target operations
	// (and makes them fail every time when failEvery is 1).
	failOnly map[string]bool

	n      atomic.Int64
	mu     sync.Mutex
	failed map[string]int // by operation
	held   map[string]int
}

func newFaultProxy(t *testing.T, endpoint string, failEvery, delayEvery int64, delay time.Duration) *faultProxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("SQS endpoint %q: %v", endpoint, err)
	}
	p := &faultProxy{failEvery: failEvery, delayEvery: delayEvery, delay: delay,
		failed: map[string]int{}, held: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(res *http.Response) error {
		if n, _ := res.Request.Context().Value(seqKey{}).(int64); p.delayEvery > 0 && n%p.delayEvery == 0 {
			p.count(p.held, res.Request)
			select {
			case <-time.After(p.delay):
			case <-res.Request.Context().Done(): // the client gave up
			}
		}
		return nil
	}
	// The client hanging up on a held response is expected, not news.
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.n.Add(1)
		op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
		if p.failEvery > 0 && n%p.failEvery == 0 && (p.failOnly == nil || p.failOnly[op]) {
			p.count(p.failed, r)
			// The JSON protocol's error shape; a 500 is a server fault the
			// SDK's retryer retries.
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `{"__type":"InternalError","message":"injected fault %d"}`, n)
			return
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), seqKey{}, n)))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

type seqKey struct{}

func (p *faultProxy) count(m map[string]int, r *http.Request) {
	p.mu.Lock()
	m[strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")]++
	p.mu.Unlock()
}

func (p *faultProxy) stats() (failed, held map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return copyCounts(p.failed), copyCounts(p.held)
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// proxiedSQS builds a client the way brokers.SQS does, but against the
// proxy, with an HTTP timeout the proxy's delays exceed and optFns for the
// retry settings.
func proxiedSQS(endpoint string, timeout time.Duration, optFns ...func(*sqs.Options)) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   &http.Client{Timeout: timeout},
	}, optFns...)
}

// TestSQSFaults checks the SQS transport's at-least-once guarantee when the
// endpoint fails requests and answers some too late, and that a send that
// fails for good reaches the Publish caller.
func TestSQSFaults(t *testing.T) {
	direct := brokers.SQS(t)
	endpoint := aws.ToString(direct.Options().BaseEndpoint)
	if endpoint == "" {
		t.Fatal("the SQS fixture's client has no BaseEndpoint")
	}

	t.Run("NothingLost", func(t *testing.T) {
		const (
			n = 500
			// The client gives up after clientTimeout; held responses come
			// later. Short polls (WithWaitTime(0)) keep every legitimate
			// request far below it.
			clientTimeout = 750 * time.Millisecond
			hold          = time.Second
		)
		proxy := newFaultProxy(t, endpoint, 7, 23, hold)
		// The SDK's default retryer (3 attempts), as brokers.SQS keeps it.
		client := proxiedSQS(proxy.srv.URL, clientTimeout)
		queue := brokers.SQSQueue(t, direct, "faults", map[string]string{"VisibilityTimeout": "1"})
		opts := []awssqs.Option{awssqs.WithWaitTime(0), awssqs.WithRetryVisibility(0)}
		tp, _ := batchedTracerProvider(t)
		tr := middleware.NewTracing(middleware.WithTracerProvider(tp))
		pub := tr.Publisher(awssqs.NewPublisher(client, opts...))

		c := newChaos("fault-", n, 0, 0, 7)
		start := time.Now()
		// Batches of 10 are one SendMessageBatch each, so faults land on
		// whole batches; every Publish must succeed after retries.
		publishAll(t, pub, queue, c, n, 10)
		published := time.Since(start)
		sub := startSubscribe(tr.Subscriber(awssqs.NewSubscriber(client, opts...)), queue, c.handler(1))
		c.waitDistinct(t, n, time.Now().Add(60*time.Second), sub.errc)
		sub.stop(t, 30*time.Second)
		c.markStopped(1)

		distinct, dups, missing := c.summary()
		failed, held := proxy.stats()
		t.Logf("%d messages through %d proxied requests in %s (publish %s): %d handled, %d duplicates; 500s injected %v, responses held past the timeout %v",
			n, proxy.n.Load(), time.Since(start).Round(time.Millisecond), published.Round(time.Millisecond), distinct, dups, failed, held)
		if distinct != n {
			t.Errorf("%d messages lost; first: %v", n-distinct, missing)
		}
		// The run proves something only if the faults hit both sides.
		if failed["SendMessageBatch"] == 0 || failed["ReceiveMessage"] == 0 || failed["DeleteMessageBatch"] == 0 {
			t.Errorf("500s did not reach every operation: %v", failed)
		}
		if held["SendMessageBatch"]+held["ReceiveMessage"]+held["DeleteMessageBatch"] == 0 {
			t.Errorf("no response was held past the client timeout: %v", held)
		}
	})

	t.Run("NoRetryErrorReachesCaller", func(t *testing.T) {
		// Every send fails; receives are untouched.
		proxy := newFaultProxy(t, endpoint, 1, 0, 0)
		proxy.failOnly = map[string]bool{"SendMessage": true, "SendMessageBatch": true}
		nop := proxiedSQS(proxy.srv.URL, 5*time.Second, func(o *sqs.Options) { o.Retryer = aws.NopRetryer{} })
		maxOne := proxiedSQS(proxy.srv.URL, 5*time.Second, func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
		queue := brokers.SQSQueue(t, direct, "nosend", nil)
		tp, _ := batchedTracerProvider(t)
		tr := middleware.NewTracing(middleware.WithTracerProvider(tp))

		for _, tc := range []struct {
			name   string
			client *sqs.Client
		}{{"NopRetryer", nop}, {"RetryMaxAttempts1", maxOne}} {
			for _, traced := range []bool{false, true} {
				var pub middleware.Publisher = awssqs.NewPublisher(tc.client)
				if traced {
					pub = tr.Publisher(pub) // middleware must not swallow it either
				}
				before := proxy.n.Load()
				one := middleware.NewMessage([]byte("lonely"))
				one.ID = "order-17"
				err := pub.Publish(context.Background(), queue, one)
				if err == nil {
					t.Fatalf("%s (traced %v): a failed SendMessage returned nil", tc.name, traced)
				}
				if !strings.Contains(err.Error(), "order-17") || !strings.Contains(err.Error(), "message 0") {
					t.Errorf("%s (traced %v): the error does not name the message: %v", tc.name, traced, err)
				}
				if got := proxy.n.Load() - before; got != 1 {
					t.Errorf("%s: %d requests for one SendMessage, want 1 (retries are off)", tc.name, got)
				}
				var batch []*middleware.Message
				for i := range 12 {
					m := middleware.NewMessage(fmt.Appendf(nil, "batched-%d", i))
					m.ID = fmt.Sprintf("order-b%d", i)
					batch = append(batch, m)
				}
				err = pub.Publish(context.Background(), queue, batch...)
				if err == nil {
					t.Fatalf("%s (traced %v): a failed SendMessageBatch returned nil", tc.name, traced)
				}
				for i, m := range batch {
					if !strings.Contains(err.Error(), fmt.Sprintf("message %d (id %q)", i, m.ID)) {
						t.Errorf("%s (traced %v): the error does not name message %d (%s): %v", tc.name, traced, i, m.ID, err)
					}
				}
				var apiErr interface{ ErrorCode() string }
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InternalError" {
					t.Errorf("%s (traced %v): the SDK error is not kept in the chain: %v", tc.name, traced, err)
				}
			}
		}
		// Nothing was sent, so nothing may be received: the failures above
		// were not masked sends.
		out, err := direct.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 0 {
			t.Errorf("%d messages on the queue after every send failed", len(out.Messages))
		}
		failed, _ := proxy.stats()
		t.Logf("injected 500s: %v", failed)
	})
}
