package brokers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaPartitions is how many partitions Kafka creates each topic with, so
// tests exercise more than one partition.
const KafkaPartitions = 4

// kafkaImage is the image of the testcontainers Kafka module (KRaft mode).
const kafkaImage = "confluentinc/confluent-local:7.5.0"

// Kafka returns the seed broker addresses of a Kafka cluster on which topics
// exist with KafkaPartitions partitions each: the brokers in KAFKA_BROKERS
// (comma-separated) when set, else a container when UseContainers says so,
// else an in-process kfake cluster. A container or kfake cluster belongs to
// t and is shut down at its cleanup.
//
// Callers pass topic names unique to the test (t.Name() plus a suffix, say):
// a cluster from KAFKA_BROKERS outlives the test and keeps the records of
// earlier runs, and an existing topic is used as it is.
func Kafka(t testing.TB, topics ...string) []string {
	t.Helper()
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		seeds := splitSeeds(env)
		if err := createKafkaTopics(seeds, topics); err != nil {
			Unavailable(t, "kafka", fmt.Errorf("KAFKA_BROKERS=%s: %w", env, err))
		}
		return seeds
	}
	use, err := UseContainers()
	if err != nil {
		t.Logf("kafka: not using containers, falling back to kfake: %v", err)
	}
	if use {
		seeds, err := kafkaContainer(t)
		if err != nil {
			Unavailable(t, "kafka", err)
		}
		if err := createKafkaTopics(seeds, topics); err != nil {
			Unavailable(t, "kafka", err)
		}
		return seeds
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(KafkaPartitions, topics...))
	if err != nil {
		Unavailable(t, "kafka", fmt.Errorf("starting kfake: %w", err))
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func splitSeeds(s string) []string {
	var seeds []string
	for _, seed := range strings.Split(s, ",") {
		if seed = strings.TrimSpace(seed); seed != "" {
			seeds = append(seeds, seed)
		}
	}
	return seeds
}

// kafkaContainer starts a Kafka container terminated at t's cleanup.
func kafkaContainer(t testing.TB) (seeds []string, err error) {
	defer mustRecover(&err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctr, err := tckafka.Run(ctx, kafkaImage, tckafka.WithClusterID("otelmq"))
	// Run can return a typed-nil container with an error; CleanupContainer
	// copes with both.
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		return nil, fmt.Errorf("starting a Kafka container: %w", err)
	}
	seeds, err = ctr.Brokers(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the Kafka container's brokers: %w", err)
	}
	return seeds, nil
}

// createKafkaTopics creates the topics that do not exist yet.
func createKafkaTopics(seeds, topics []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	if len(topics) == 0 {
		return cl.Ping(ctx)
	}
	resps, err := kadm.NewClient(cl).CreateTopics(ctx, KafkaPartitions, -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("creating topics %q: %w", topics, err)
	}
	var errs []error
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("creating topic %q: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}

// RefuseCommits makes c answer every OffsetCommit with code on each
// partition it names, while refuse returns true (nil: always); otherwise
// c answers normally. For tests of commit failures, which kfake cannot
// otherwise produce.
func RefuseCommits(c *kfake.Cluster, code int16, refuse func() bool) {
	c.ControlKey(kmsg.OffsetCommit.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if refuse != nil && !refuse() {
			return nil, nil, false
		}
		req := kreq.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}
