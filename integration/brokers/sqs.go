package brokers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/sirupsen/logrus"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/models"
	"github.com/Admiral-Piett/goaws/app/router"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/testcontainers/testcontainers-go/modules/localstack"
)

// LocalstackImage is the image SQS starts when containers are in use.
const LocalstackImage = "localstack/localstack:4.4"

var (
	sqsOnce     sync.Once
	sqsEndpoint string
	sqsErr      error
)

// SQS returns a client for an SQS endpoint: SQS_ENDPOINT when set, else a
// LocalStack container when UseContainers says so, else goaws served from this
// test process. The endpoint is found once per process; goaws state is
// process-global, so tests create their own queues with SQSQueue.
//
// The client keeps the SDK's default retryer on purpose: goaws now and then
// closes a connection mid-request (aws-sdk-go-v2 #2737), which the retryer
// absorbs. A retried SendMessage may deliver twice, so tests count
// at-least-once.
func SQS(t testing.TB) *sqs.Client {
	t.Helper()
	sqsOnce.Do(func() { sqsEndpoint, sqsErr = findSQS() })
	if sqsErr != nil {
		Unavailable(t, "sqs", sqsErr)
	}
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(sqsEndpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

func findSQS() (string, error) {
	if ep := os.Getenv("SQS_ENDPOINT"); ep != "" {
		return ep, nil
	}
	// Asked for containers but no Docker: fall back to goaws, like the
	// other fixtures, instead of failing.
	if use, _ := UseContainers(); use {
		return startLocalstack()
	}
	return startGoaws()
}

// startLocalstack starts a LocalStack container for the rest of the process;
// testcontainers' reaper removes it when the process ends.
func startLocalstack() (endpoint string, err error) {
	defer mustRecover(&err) // localstack.Run panics without Docker
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctr, err := localstack.Run(ctx, LocalstackImage)
	if err != nil {
		return "", fmt.Errorf("starting localstack: %w", err)
	}
	host, err := ctr.Host(ctx)
	if err != nil {
		return "", fmt.Errorf("localstack host: %w", err)
	}
	port, err := ctr.MappedPort(ctx, "4566/tcp")
	if err != nil {
		return "", fmt.Errorf("localstack port: %w", err)
	}
	return "http://" + net.JoinHostPort(host, port.Port()), nil
}

// startGoaws serves goaws on a loopback port for the rest of the process.
// goaws keeps its queues in package globals, so there is one per process.
func startGoaws() (string, error) {
	// goaws logs every request through the standard logrus logger; test
	// output is about our code. OTELMQ_GOAWS_LOG=1 keeps its logs.
	if os.Getenv("OTELMQ_GOAWS_LOG") != "1" {
		logrus.SetOutput(io.Discard)
	}
	srv := httptest.NewUnstartedServer(serialize(router.New()))
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		return "", fmt.Errorf("goaws listener: %w", err)
	}
	// Queue URLs are built from Host and Port. Region stays empty: goaws
	// would prefix it to the host ("us-east-1.127.0.0.1"), which resolves
	// nowhere.
	models.CurrentEnvironment = models.Environment{
		Host:      host,
		Port:      port,
		AccountID: "100010001000",
		QueueAttributeDefaults: models.EnvQueueAttributes{
			VisibilityTimeout:      30,
			MaximumMessageSize:     262144,
			MessageRetentionPeriod: 345600,
		},
	}
	srv.Start()
	// Visibility timeouts and redrive happen on this tick; it runs until
	// the process exits.
	go gosqs.PeriodicTasks(time.Second, make(chan bool))
	return srv.URL, nil
}

// serialize works around data races in goaws v0.5.4, which reads its queue
// map without a lock in most actions while CreateQueue and DeleteQueue write
// it: under -race that fails tests that merely create queues while another
// test's receive is ending, and without -race the runtime can throw
// "concurrent map read and map write". Requests run one at a time. A long
// poll (ReceiveMessage with WaitTimeSeconds > 0, JSON protocol) would then
// stall every other request, so it is done here as short polls every 100 ms,
// the interval goaws itself uses, each taking the lock briefly.
func serialize(next http.Handler) http.Handler {
	var mu sync.Mutex
	serve := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		next.ServeHTTP(w, r)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonSQS.ReceiveMessage" {
			serve(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		var req map[string]json.RawMessage
		var wait int
		if err != nil || json.Unmarshal(body, &req) != nil || json.Unmarshal(req["WaitTimeSeconds"], &wait) != nil || wait <= 0 {
			r.Body = io.NopCloser(bytes.NewReader(body))
			serve(w, r)
			return
		}
		// goaws waits WaitTimeSeconds*10 rounds of 100 ms; a negative value
		// makes it answer at once (0 would mean the queue's default wait).
		req["WaitTimeSeconds"] = json.RawMessage("-1")
		short, _ := json.Marshal(req)
		deadline := time.Now().Add(time.Duration(wait) * time.Second)
		for {
			rec := httptest.NewRecorder()
			r2 := r.Clone(r.Context())
			r2.Body = io.NopCloser(bytes.NewReader(short))
			r2.ContentLength = int64(len(short))
			serve(rec, r2)
			var res struct{ Messages []json.RawMessage }
			_ = json.Unmarshal(rec.Body.Bytes(), &res)
			if rec.Code != http.StatusOK || len(res.Messages) > 0 || !time.Now().Before(deadline) || r.Context().Err() != nil {
				maps.Copy(w.Header(), rec.Header())
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
			}
		}
	})
}

var (
	queueSeq     atomic.Uint64
	queueUnsafe  = regexp.MustCompile(`[^A-Za-z0-9_-]+`)
	processStamp = fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
)

// SQSQueue creates a queue named after name and the test, unique in the
// process and across runs against a shared endpoint, with attrs (queue
// attributes such as "VisibilityTimeout": "1"; a name ending in ".fifo"
// makes a FIFO queue). It is deleted when the test ends. It returns the
// queue URL.
func SQSQueue(t testing.TB, client *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	fifo := strings.HasSuffix(name, ".fifo")
	base := strings.TrimSuffix(name, ".fifo")
	unique := fmt.Sprintf("-%s-%d", processStamp, queueSeq.Add(1))
	full := queueUnsafe.ReplaceAllString(base+"-"+t.Name(), "_")
	const maxLen = 80 - len(".fifo")
	if len(full)+len(unique) > maxLen {
		full = full[:maxLen-len(unique)]
	}
	full += unique
	if fifo {
		full += ".fifo"
		attrs = maps.Clone(attrs) // the caller's map is not ours to change
		if attrs == nil {
			attrs = map[string]string{}
		}
		if _, ok := attrs["FifoQueue"]; !ok {
			attrs["FifoQueue"] = "true"
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(full), Attributes: attrs})
	if err != nil {
		t.Fatalf("creating SQS queue %q: %v", full, err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Logf("deleting SQS queue %s: %v", url, err)
		}
	})
	return url
}
