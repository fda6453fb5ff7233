package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// produceTo produces n records to one partition of topic and returns
// their offsets.
func produceTo(t *testing.T, cl *kgo.Client, topic string, partition int32, n int) []int64 {
	t.Helper()
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: fmt.Appendf(nil, "%d-%d", partition, i)}
	}
	if err := cl.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	offsets := make([]int64, n)
	for i, r := range rs {
		offsets[i] = r.Offset
	}
	return offsets
}

// manualProducer is a producer that writes to the partition each record
// names.
func manualProducer(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// succeededOn counts the successful handlings of partition's records.
func (l *deliveryLog) succeededOn(partitions ...int32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range l.deliveries {
		if d.ok && slices.Contains(partitions, d.partition) {
			n++
		}
	}
	return n
}

// failures counts the failed handlings.
func (l *deliveryLog) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range l.deliveries {
		if !d.ok {
			n++
		}
	}
	return n
}

// TestRetryBackoffIsPerPartition: while a failed record waits out a long
// WithRetryBackoff, the other partitions are polled and handled: records
// published to them after the failure, in waves that each wait for the one
// before to be handled (so they need many polls), are all handled before
// the failed record comes back. The failed record then comes back with
// DeliveryCount one higher after each failure, and once it succeeds its
// partition goes on in offset order. Under a backoff that put the whole
// poll loop to sleep, the record came back in the first poll after the
// first sleep, with most waves not yet published.
func TestRetryBackoffIsPerPartition(t *testing.T) {
	seeds, topic := cluster(t)
	prod := manualProducer(t, seeds)
	const failPart = 0
	healthy := []int32{1, 2, 3}
	failOffsets := produceTo(t, prod, topic, failPart, 10)
	failOffset := failOffsets[0]

	var log deliveryLog
	var mu sync.Mutex
	failed := 0
	s := kafka.NewSubscriber(newConsumer(t, seeds, topic, "g"), kafka.WithRetryBackoff(2*time.Second))
	subscribe(t, middleware.WithObserver(t.Context(), &log), s, topic, func(ctx context.Context, msg *middleware.Message) error {
		var r *kgo.Record
		msg.As(&r)
		if r.Partition == failPart && r.Offset == failOffset {
			mu.Lock()
			defer mu.Unlock()
			if failed < 2 {
				failed++
				log.add(msg, false)
				return errors.New("transient")
			}
		}
		log.add(msg, true)
		return nil
	})
	waitFor(t, "the first failure", func() bool { return log.failures() > 0 })

	// The waves take a few polls each; 2 s leave them a wide margin.
	began := time.Now()
	const waves, perPartition = 5, 20
	for w := 1; w <= waves; w++ {
		for _, p := range healthy {
			produceTo(t, prod, topic, p, perPartition)
		}
		want := w * perPartition * len(healthy)
		waitFor(t, fmt.Sprintf("wave %d to be handled", w), func() bool { return log.succeededOn(healthy...) >= want })
	}
	t.Logf("%d waves handled %v after the failure was seen", waves, time.Since(began))
	waitFor(t, "the failing partition to be handled", func() bool { return log.succeededOn(failPart) >= len(failOffsets) })

	log.mu.Lock()
	defer log.mu.Unlock()
	lastHealthy, secondDelivery := -1, -1
	var counts []int
	var order []int64 // the failing partition's deliveries
	for i, d := range log.deliveries {
		if d.partition != failPart {
			if d.ok {
				lastHealthy = i
			}
			continue
		}
		order = append(order, d.offset)
		if d.offset == failOffset {
			counts = append(counts, d.count)
			if len(counts) == 2 {
				secondDelivery = i
			}
		}
	}
	if secondDelivery < lastHealthy {
		t.Errorf("the failed record came back (handler call %d) before the other partitions' records were all handled (the last at call %d): its backoff held them up", secondDelivery, lastHealthy)
	}
	if !slices.Equal(counts, []int{1, 2, 3}) {
		t.Errorf("the failing record was delivered with DeliveryCount %v, want [1 2 3]", counts)
	}
	want := append([]int64{failOffset, failOffset}, failOffsets...)
	if !slices.Equal(order, want) {
		t.Errorf("the failing partition's deliveries: offsets %v, want %v", order, want)
	}
	for k, n := range func() map[[2]int64]int {
		n := map[[2]int64]int{}
		for _, d := range log.deliveries {
			if d.ok {
				n[[2]int64{int64(d.partition), d.offset}]++
			}
		}
		return n
	}() {
		if n != 1 {
			t.Errorf("partition %d offset %d succeeded %d times, want once", k[0], k[1], n)
		}
	}
}

// TestSubscribeResumesWhatItPaused: a Subscribe that returns while a
// partition waits out its backoff resumes it, so the client is left with
// the partitions its user paused, and only those; a partition the user
// paused stays paused through the Subscribe, its records not delivered.
// The failed record then goes to the group's next member.
func TestSubscribeResumesWhatItPaused(t *testing.T) {
	seeds, topic := cluster(t)
	prod := manualProducer(t, seeds)
	failOffset := produceTo(t, prod, topic, 0, 3)[0]
	produceTo(t, prod, topic, 1, 3)
	produceTo(t, prod, topic, 3, 3)

	cl := newConsumer(t, seeds, topic, "g")
	userPaused := map[string][]int32{topic: {3}}
	cl.PauseFetchPartitions(userPaused)
	var log deliveryLog
	a := subscribe(t, middleware.WithObserver(t.Context(), &log), kafka.NewSubscriber(cl, kafka.WithRetryBackoff(time.Hour)), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			var r *kgo.Record
			msg.As(&r)
			if r.Partition == 0 && r.Offset == failOffset {
				log.add(msg, false)
				return errors.New("keeps failing")
			}
			log.add(msg, true)
			return nil
		})
	waitFor(t, "the failure and partition 1", func() bool { return log.failures() > 0 && log.succeededOn(1) == 3 })
	waitFor(t, "partition 0 to be paused", func() bool {
		return slices.Contains(cl.PauseFetchPartitions(nil)[topic], 0)
	})
	if err := a.stop(t); err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	if got := cl.PauseFetchPartitions(nil); !pausedEqual(got, userPaused) {
		t.Errorf("after Subscribe returned, the client has %v paused, want %v (the user's)", got, userPaused)
	}
	if n := log.succeededOn(3); n != 0 {
		t.Errorf("%d records of partition 3, which the user paused, were handled", n)
	}
	if n := log.failures(); n != 1 {
		t.Errorf("the failed record was delivered %d times in an hour's backoff, want once", n)
	}

	var logB deliveryLog
	subscribe(t, middleware.WithObserver(t.Context(), &logB), kafka.NewSubscriber(newConsumer(t, seeds, topic, "g")), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			logB.add(msg, true)
			return nil
		})
	waitFor(t, "the next member to handle the rest", func() bool { return logB.succeededOn(0) == 3 && logB.succeededOn(3) == 3 })
	logB.mu.Lock()
	defer logB.mu.Unlock()
	for _, d := range logB.deliveries {
		if d.partition == 1 {
			t.Errorf("partition 1 offset %d, handled before, delivered again", d.offset)
		}
		if d.partition == 0 && d.offset == failOffset && d.count != 1 {
			t.Errorf("the next member got the failed record with DeliveryCount %d, want 1", d.count)
		}
	}
}

func pausedEqual(a, b map[string][]int32) bool {
	norm := func(m map[string][]int32) map[string][]int32 {
		out := map[string][]int32{}
		for k, v := range m {
			if len(v) > 0 {
				out[k] = slices.Sorted(slices.Values(v))
			}
		}
		return out
	}
	return maps.EqualFunc(norm(a), norm(b), slices.Equal[[]int32])
}

// TestRebalanceWhilePaused: a member whose partitions all wait out their
// backoff (their first record failed) loses some of them to a member that
// joins, and gets them back when that member leaves, paused or not by
// then. Nothing breaks: the new member handles what it got, the first
// resumes its own partitions after the backoff and handles them, every
// record succeeds exactly once, and the first member's client ends with
// nothing paused.
func TestRebalanceWhilePaused(t *testing.T) {
	seeds, topic := cluster(t)
	prod := manualProducer(t, seeds)
	const perPartition = 5
	all := []int32{0, 1, 2, 3}
	for _, p := range all {
		produceTo(t, prod, topic, p, perPartition)
	}

	var log deliveryLog // both members
	var mu sync.Mutex
	failedOnce := map[int32]bool{}
	clA := newConsumer(t, seeds, topic, "g")
	a := subscribe(t, middleware.WithObserver(t.Context(), &log), kafka.NewSubscriber(clA, kafka.WithRetryBackoff(3*time.Second)), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			var r *kgo.Record
			msg.As(&r)
			mu.Lock()
			defer mu.Unlock()
			if r.Offset == 0 && !failedOnce[r.Partition] {
				failedOnce[r.Partition] = true
				log.add(msg, false)
				return errors.New("first delivery fails")
			}
			log.add(msg, true)
			return nil
		})
	waitFor(t, "a failure on every partition", func() bool { return log.failures() == len(all) })
	var byB atomic.Int64

	b := subscribe(t, middleware.WithObserver(t.Context(), &log), kafka.NewSubscriber(newConsumer(t, seeds, topic, "g")), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			log.add(msg, true)
			byB.Add(1)
			return nil
		})
	// The rebalance takes well under A's 3 s backoff on kfake, so B gets
	// partitions A paused, their failed records first.
	waitFor(t, "the new member to handle some partition", func() bool { return byB.Load() > 0 })
	if err := b.stop(t); err != nil {
		t.Fatalf("the new member's Subscribe = %v", err)
	}
	waitFor(t, "every record to be handled", func() bool { return log.succeededOn(all...) >= len(all)*perPartition })
	if err := a.stop(t); err != nil {
		t.Fatalf("the first member's Subscribe = %v", err)
	}
	t.Logf("the new member handled %d records", byB.Load())
	if got := clA.PauseFetchPartitions(nil); len(got) != 0 {
		t.Errorf("the first member's client has %v paused after Subscribe returned", got)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	n := map[[2]int64]int{}
	for _, d := range log.deliveries {
		if d.ok {
			n[[2]int64{int64(d.partition), d.offset}]++
		}
	}
	for k, c := range n {
		if c != 1 {
			t.Errorf("partition %d offset %d succeeded %d times, want once", k[0], k[1], c)
		}
	}
	if len(n) != len(all)*perPartition {
		t.Errorf("%d records succeeded, want %d", len(n), len(all)*perPartition)
	}
}
