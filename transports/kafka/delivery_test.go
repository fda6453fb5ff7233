package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/kafka"
)

// delivery is one handler call, in the order handlers were called.
type delivery struct {
	partition int32
	offset    int64
	count     int
	ok        bool
}

// deliveryLog records handler calls and commits.
type deliveryLog struct {
	mu         sync.Mutex
	deliveries []delivery
	commits    [][]delivery // the records of each Settled OpCommit
	commitErrs []error
	violations []string // records committed that had not succeeded
}

func (l *deliveryLog) add(msg *middleware.Message, ok bool) {
	var r *kgo.Record
	msg.As(&r)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveries = append(l.deliveries, delivery{r.Partition, r.Offset, msg.DeliveryCount, ok})
}

func (l *deliveryLog) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	return ctx
}

func (l *deliveryLog) Settled(_ context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	if op != propagation.OpCommit {
		return
	}
	var c []delivery
	for _, m := range msgs {
		var r *kgo.Record
		m.As(&r)
		c = append(c, delivery{partition: r.Partition, offset: r.Offset})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Only records whose handler returned nil may be committed.
	for _, d := range c {
		if !slices.ContainsFunc(l.deliveries, func(h delivery) bool {
			return h.ok && h.partition == d.partition && h.offset == d.offset
		}) {
			l.violations = append(l.violations, fmt.Sprintf("partition %d offset %d committed before its handler succeeded", d.partition, d.offset))
		}
	}
	l.commits = append(l.commits, c)
	l.commitErrs = append(l.commitErrs, err)
}

// successes counts the successful handlings per partition and offset.
func (l *deliveryLog) successes() map[[2]int64]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[[2]int64]int{}
	for _, d := range l.deliveries {
		if d.ok {
			n[[2]int64{int64(d.partition), d.offset}]++
		}
	}
	return n
}

// waitSucceeded waits until every message of msgs was handled successfully.
func (l *deliveryLog) waitSucceeded(t *testing.T, msgs []*middleware.Message) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d messages to be handled", len(msgs)), func() bool {
		ok := l.successes()
		for _, m := range msgs {
			if ok[[2]int64{int64(partitionNumber(t, m.ID)), offsetOf(t, m.ID)}] == 0 {
				return false
			}
		}
		return true
	})
}

// TestFailingRecordBlocksOnlyItsPartition fails one record of one
// partition until every record of the other partitions was handled (three
// times at least), in polls smaller than a partition's backlog, with the
// partitions handled concurrently. The package promises: the other
// partitions go on meanwhile, the failed record is delivered again with
// DeliveryCount one higher each time, the records after it in its
// partition are delivered only after it succeeded, nothing of its
// partition at or past it is committed before it succeeded, and, with no
// rebalance or restart, no record is handled successfully twice.
func TestFailingRecordBlocksOnlyItsPartition(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 200, 16)
	byPartition := map[int32][]*middleware.Message{}
	for _, m := range msgs {
		p := partitionNumber(t, m.ID)
		byPartition[p] = append(byPartition[p], m)
	}
	if len(byPartition) < 2 {
		t.Fatalf("200 messages over 16 keys used partitions %v", byPartition)
	}
	var failPart int32 = -1
	for p, ms := range byPartition {
		if len(ms) > 10 && (failPart < 0 || p < failPart) {
			failPart = p
		}
	}
	failOffset := offsetOf(t, byPartition[failPart][5].ID)
	var others []*middleware.Message
	for p, ms := range byPartition {
		if p != failPart {
			others = append(others, ms...)
		}
	}

	var log deliveryLog
	othersDone := func() bool {
		ok := log.successes()
		for _, m := range others {
			if ok[[2]int64{int64(partitionNumber(t, m.ID)), offsetOf(t, m.ID)}] == 0 {
				return false
			}
		}
		return true
	}
	cl := newConsumer(t, seeds, topic, "g")
	s := kafka.NewSubscriber(cl, kafka.WithConcurrency(2), kafka.WithMaxPollRecords(7), kafka.WithRetryBackoff(time.Millisecond))
	failures := 0 // only the failing partition's handler touches it
	subscribe(t, middleware.WithObserver(t.Context(), &log), s, topic, func(ctx context.Context, msg *middleware.Message) error {
		var r *kgo.Record
		msg.As(&r)
		if r.Partition == failPart && r.Offset == failOffset && (failures < 3 || !othersDone()) {
			failures++
			log.add(msg, false)
			return errors.New("transient")
		}
		log.add(msg, true)
		return nil
	})
	log.waitSucceeded(t, msgs)
	waitFor(t, "everything to be committed", func() bool {
		c := committed(t, cl, "g", topic)
		for p, ms := range byPartition {
			if c[p] != offsetOf(t, ms[len(ms)-1].ID)+1 {
				return false
			}
		}
		return true
	})

	log.mu.Lock()
	defer log.mu.Unlock()
	// Per partition, the calls in order: offsets ascending except for the
	// failed record, which comes again right after each failure.
	var counts []int
	next := map[int32]int64{}
	for _, d := range log.deliveries {
		if d.partition == failPart && d.offset == failOffset {
			counts = append(counts, d.count)
		}
		if want, ok := next[d.partition]; ok && d.offset != want {
			t.Errorf("partition %d: offset %d delivered when %d was due", d.partition, d.offset, want)
		}
		if d.ok {
			next[d.partition] = d.offset + 1
		} else {
			next[d.partition] = d.offset
		}
	}
	if len(counts) < 4 {
		t.Errorf("the failing record was delivered %d times, want 4 at least", len(counts))
	}
	for i, c := range counts {
		if c != i+1 {
			t.Errorf("the failing record was delivered with DeliveryCount %v, want 1, 2, 3...", counts)
			break
		}
	}
	succeededTimes := map[[2]int64]int{}
	for _, d := range log.deliveries {
		if d.ok {
			succeededTimes[[2]int64{int64(d.partition), d.offset}]++
		}
	}
	for k, n := range succeededTimes {
		if n != 1 {
			t.Errorf("partition %d offset %d succeeded %d times, want once", k[0], k[1], n)
		}
	}
	// Nothing is committed before its handler succeeded: not the failed
	// record, not the ones after it.
	for i, err := range log.commitErrs {
		if err != nil {
			t.Errorf("commit %d: %v", i, err)
		}
	}
	for _, v := range log.violations {
		t.Error(v)
	}
}

// TestShutdownWithHandlersRunning ends ctx while the handlers of several
// partitions run: Subscribe waits for them, starts no record after them,
// commits exactly the records handled, and returns nil; a new member of the
// group then gets every other record, none of those handled before.
func TestShutdownWithHandlersRunning(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 200, 16)

	// The handler of offset 2 blocks in every partition of the first poll
	// that holds one.
	var (
		mu       sync.Mutex
		expected map[int32]bool // the partitions that will block
		blocked  = map[int32]bool{}
		release  = make(chan struct{})
	)
	var log deliveryLog
	obs := &receivedFunc{deliveryLog: &log, received: func(msgs []*middleware.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			if offsetOf(t, m.ID) == 2 && expected == nil {
				expected = map[int32]bool{}
				for _, m := range msgs {
					if offsetOf(t, m.ID) == 2 {
						expected[partitionNumber(t, m.ID)] = true
					}
				}
			}
		}
	}}
	cl := newConsumer(t, seeds, topic, "g")
	a := subscribe(t, middleware.WithObserver(t.Context(), obs), kafka.NewSubscriber(cl), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			if offsetOf(t, msg.ID) == 2 {
				mu.Lock()
				blocked[partitionNumber(t, msg.ID)] = true
				mu.Unlock()
				<-release
			}
			log.add(msg, true)
			return nil
		})
	waitFor(t, "handlers to block", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return expected != nil && len(blocked) == len(expected)
	})
	a.cancel()
	// Subscribe must not return while its handlers run.
	select {
	case err := <-a.done:
		t.Fatalf("Subscribe returned %v with handlers running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := a.stop(t); err != nil {
		t.Fatalf("Subscribe = %v, want nil", err)
	}

	handledA := log.successes()
	for k := range handledA {
		if expected[int32(k[0])] && k[1] > 2 {
			t.Errorf("partition %d: offset %d started after ctx ended", k[0], k[1])
		}
	}
	// The commit holds each partition's handled records, no more, no less.
	next := map[int32]int64{}
	for k := range handledA {
		p := int32(k[0])
		next[p] = max(next[p], k[1]+1)
	}
	if got := committed(t, cl, "g", topic); !mapsEqual(got, next) {
		t.Errorf("committed %v, handled up to %v", got, next)
	}

	var logB deliveryLog
	subscribe(t, middleware.WithObserver(t.Context(), &logB), kafka.NewSubscriber(newConsumer(t, seeds, topic, "g")), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			logB.add(msg, true)
			return nil
		})
	waitFor(t, "the rest to be handled", func() bool { return len(handledA)+len(logB.successes()) >= len(msgs) })
	handledB := logB.successes()
	for _, m := range msgs {
		k := [2]int64{int64(partitionNumber(t, m.ID)), offsetOf(t, m.ID)}
		if n := handledA[k] + handledB[k]; n != 1 {
			t.Errorf("%s handled %d times (%d before the shutdown), want once", m.ID, n, handledA[k])
		}
	}
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// receivedFunc is a deliveryLog that also calls received on every receive.
type receivedFunc struct {
	*deliveryLog
	received func([]*middleware.Message)
}

func (r *receivedFunc) Received(ctx context.Context, _ middleware.Destination, _ time.Time, msgs []*middleware.Message) context.Context {
	r.received(msgs)
	return ctx
}

// TestFailedRecordHandedOver: a member whose handler keeps failing one
// record leaves the group; the next member gets that record with
// DeliveryCount 1 (Kafka does not count deliveries), and the records after
// it, and none of the records before it again.
func TestFailedRecordHandedOver(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 40, 1) // one partition
	failID := msgs[5].ID

	var logA deliveryLog
	a := subscribe(t, middleware.WithObserver(t.Context(), &logA), kafka.NewSubscriber(newConsumer(t, seeds, topic, "g"), kafka.WithRetryBackoff(time.Millisecond)), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			if msg.ID == failID {
				logA.add(msg, false)
				return errors.New("keeps failing")
			}
			logA.add(msg, true)
			return nil
		})
	waitFor(t, "three failures", func() bool {
		logA.mu.Lock()
		defer logA.mu.Unlock()
		return len(logA.deliveries) >= 8
	})
	if err := a.stop(t); err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	logA.mu.Lock()
	for _, d := range logA.deliveries {
		if d.offset > offsetOf(t, failID) {
			t.Errorf("offset %d delivered while %s failed", d.offset, failID)
		}
	}
	logA.mu.Unlock()

	var logB deliveryLog
	subscribe(t, middleware.WithObserver(t.Context(), &logB), kafka.NewSubscriber(newConsumer(t, seeds, topic, "g")), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			logB.add(msg, true)
			return nil
		})
	logB.waitSucceeded(t, msgs[5:])
	logB.mu.Lock()
	defer logB.mu.Unlock()
	if d := logB.deliveries[0]; d.offset != offsetOf(t, failID) || d.count != 1 {
		t.Errorf("the next member first got offset %d with DeliveryCount %d, want %s with 1", d.offset, d.count, failID)
	}
	for _, d := range logB.deliveries {
		if d.offset < offsetOf(t, failID) {
			t.Errorf("offset %d, handled before the leave, delivered again", d.offset)
		}
	}
}
