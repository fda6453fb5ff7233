package brokers

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/otelmq/otelmq/integration/brokers/goaws"
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
	return goaws.Start()
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
