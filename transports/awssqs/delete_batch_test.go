package awssqs_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// deleteLog is the real client with its delete calls recorded: the receipt
// handles of every DeleteMessageBatch, the DeleteMessage calls, the
// non-empty receives, and entry Ids SQS would refuse. fault, when set,
// replaces DeleteMessageBatch to inject a failure.
type deleteLog struct {
	awssqs.API
	fault func(ctx context.Context, in *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error)

	mu       sync.Mutex
	singles  int        // DeleteMessage calls
	batches  [][]string // receipt handles of each DeleteMessageBatch
	at       []time.Time
	receives int // ReceiveMessage calls that returned messages
	problems []string
}

var validEntryID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func (l *deleteLog) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := l.API.ReceiveMessage(ctx, in, opts...)
	if err == nil && len(out.Messages) > 0 {
		l.mu.Lock()
		l.receives++
		l.mu.Unlock()
	}
	return out, err
}

func (l *deleteLog) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	l.mu.Lock()
	l.singles++
	l.mu.Unlock()
	return l.API.DeleteMessage(ctx, in, opts...)
}

func (l *deleteLog) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	l.mu.Lock()
	var handles []string
	ids := map[string]bool{}
	if len(in.Entries) == 0 || len(in.Entries) > 10 {
		l.problems = append(l.problems, fmt.Sprintf("a batch of %d entries", len(in.Entries)))
	}
	for _, e := range in.Entries {
		id := aws.ToString(e.Id)
		if !validEntryID.MatchString(id) || ids[id] {
			l.problems = append(l.problems, fmt.Sprintf("entry Id %q invalid or repeated", id))
		}
		ids[id] = true
		handles = append(handles, aws.ToString(e.ReceiptHandle))
	}
	l.batches = append(l.batches, handles)
	l.at = append(l.at, time.Now())
	fault := l.fault
	l.mu.Unlock()
	if fault != nil {
		return fault(ctx, in)
	}
	return l.API.DeleteMessageBatch(ctx, in, opts...)
}

// snapshot returns the batches so far and checks nothing SQS refuses was sent.
func (l *deleteLog) snapshot(t *testing.T) (batches [][]string, singles, receives int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.problems {
		t.Errorf("DeleteMessageBatch: %s", p)
	}
	l.problems = nil
	return slices.Clone(l.batches), l.singles, l.receives
}

func (l *deleteLog) deleted(handle string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.batches {
		if slices.Contains(b, handle) {
			return true
		}
	}
	return false
}

// receipts maps the receipt handles of the deliveries a handler saw to
// "body#delivery".
type receipts struct {
	mu sync.Mutex
	m  map[string]string
}

func (r *receipts) add(msg *middleware.Message, delivery int) {
	var raw *types.Message
	if !msg.As(&raw) {
		panic("As(**types.Message) failed")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]string{}
	}
	r.m[aws.ToString(raw.ReceiptHandle)] = fmt.Sprintf("%s#%d", msg.Body, delivery)
}

func (r *receipts) name(handle string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.m[handle]; ok {
		return n
	}
	return "unknown:" + handle
}

func (r *receipts) handle(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for h, n := range r.m {
		if n == name {
			return h
		}
	}
	return ""
}

// names returns the sorted delivery names of handles.
func (r *receipts) names(handles []string) string {
	var out []string
	for _, h := range handles {
		out = append(out, r.name(h))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// settles records the Settled calls of an Observer.
type settles struct {
	mu    sync.Mutex
	calls []settle
}

type settle struct {
	op       string
	bodies   []string // sorted
	err      error
	received bool // ctx is the one Received returned
}

func (s *settles) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	return context.WithValue(ctx, receivedKey{}, true)
}

func (s *settles) Settled(ctx context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	c := settle{op: op, err: err, received: ctx.Value(receivedKey{}) == true}
	for _, m := range msgs {
		c.bodies = append(c.bodies, string(m.Body))
	}
	sort.Strings(c.bodies)
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

func (s *settles) snapshot() []settle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func publishBodies(t *testing.T, client *sqs.Client, url string, bodies ...string) {
	t.Helper()
	msgs := make([]*middleware.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = middleware.NewMessage([]byte(b))
	}
	if err := awssqs.NewPublisher(client).Publish(context.Background(), url, msgs...); err != nil {
		t.Fatal(err)
	}
}

// waitEmpty waits until the queue holds no message, visible or in flight.
func waitEmpty(t *testing.T, client *sqs.Client, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n := approximateCount(t, client, url)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d message(s) still on the queue after %s", n, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeletesInBatches(t *testing.T) {
	for _, tt := range []struct {
		name   string
		linger []awssqs.Option
		check  func(t *testing.T, batches [][]string, receives int)
	}{
		{"default linger", nil, func(t *testing.T, batches [][]string, _ int) {
			if len(batches) >= 30 || slices.IndexFunc(batches, func(b []string) bool { return len(b) > 1 }) < 0 {
				t.Errorf("%d DeleteMessageBatch calls for 30 messages (sizes %v), want fewer, with several messages each", len(batches), sizes(batches))
			}
		}},
		// With a linger that never passes, a batch is sent when all
		// handlers of its poll returned: one batch per receive.
		{"one batch per receive", []awssqs.Option{awssqs.WithDeleteLinger(time.Hour)}, func(t *testing.T, batches [][]string, receives int) {
			if len(batches) != receives {
				t.Errorf("%d DeleteMessageBatch calls for %d receives (sizes %v), want one per receive", len(batches), receives, sizes(batches))
			}
		}},
		{"linger 0", []awssqs.Option{awssqs.WithDeleteLinger(0)}, func(t *testing.T, batches [][]string, _ int) {
			if len(batches) != 30 {
				t.Errorf("%d DeleteMessageBatch calls for 30 messages with linger 0 (sizes %v), want one each", len(batches), sizes(batches))
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := brokers.SQS(t)
			url := brokers.SQSQueue(t, client, "batchdelete", nil)
			var bodies []string
			for i := range 30 {
				bodies = append(bodies, fmt.Sprintf("m%02d", i))
			}
			publishBodies(t, client, url, bodies...)

			log := &deleteLog{API: client}
			obs := &settles{}
			rec := &receipts{}
			c := newCollector()
			c.handle = func(_ context.Context, msg *middleware.Message, delivery int) error {
				rec.add(msg, delivery)
				return nil
			}
			ctx := middleware.WithObserver(context.Background(), obs)
			stop := subscribe(t, ctx, awssqs.NewSubscriber(log, append(fast, tt.linger...)...), url, c)
			c.waitFor(t, 20*time.Second, "30 distinct messages", func(m map[string][]*middleware.Message) bool { return len(m) == 30 })
			waitEmpty(t, client, url, 10*time.Second)
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			batches, singles, receives := log.snapshot(t)
			if singles != 0 {
				t.Errorf("%d DeleteMessage calls, want none", singles)
			}
			var deleted []string
			for _, b := range batches {
				deleted = append(deleted, b...)
			}
			if len(deleted) != 30 {
				t.Errorf("%d entries deleted for 30 messages: %s", len(deleted), rec.names(deleted))
			}
			tt.check(t, batches, receives)

			// One delete settle per batch, with its messages, in the
			// receive context, without error.
			calls := obs.snapshot()
			if len(calls) != len(batches) {
				t.Errorf("%d Settled calls for %d batches", len(calls), len(batches))
			}
			var want, got []string
			for _, b := range batches {
				want = append(want, strings.ReplaceAll(rec.names(b), "#1", ""))
			}
			for _, c := range calls {
				got = append(got, strings.Join(c.bodies, " "))
				if c.op != "delete" || c.err != nil || !c.received {
					t.Errorf("Settled(op %q, err %v, receive context %v), want a delete without error in the receive context", c.op, c.err, c.received)
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("Settled messages %q, want the batches' %q", got, want)
			}
		})
	}
}

func sizes(batches [][]string) []int {
	var out []int
	for _, b := range batches {
		out = append(out, len(b))
	}
	return out
}

// TestFailedHandlerNotDeleted: a failing handler's delivery is never in a
// delete batch, the other messages of its poll are deleted, and it is
// delivered again (after the queue's visibility timeout: no
// WithRetryVisibility).
func TestFailedHandlerNotDeleted(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "faildelete", map[string]string{"VisibilityTimeout": "1"})
	publishBodies(t, client, url, "ok1", "bad", "ok2", "ok3")

	log := &deleteLog{API: client}
	obs := &settles{}
	rec := &receipts{}
	c := newCollector()
	c.handle = func(_ context.Context, msg *middleware.Message, delivery int) error {
		rec.add(msg, delivery)
		if string(msg.Body) == "bad" && delivery == 1 {
			return errors.New("try again")
		}
		return nil
	}
	stop := subscribe(t, middleware.WithObserver(context.Background(), obs), awssqs.NewSubscriber(log, fast...), url, c)
	c.waitFor(t, 20*time.Second, "the failed message again", func(m map[string][]*middleware.Message) bool { return len(m) == 4 && len(m["bad"]) >= 2 })
	waitEmpty(t, client, url, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	batches, singles, _ := log.snapshot(t)
	if singles != 0 {
		t.Errorf("%d DeleteMessage calls, want none", singles)
	}
	var all []string
	for _, b := range batches {
		all = append(all, b...)
	}
	if got := rec.names(all); got != "bad#2 ok1#1 ok2#1 ok3#1" {
		t.Errorf("deleted %q, want every success and only those (batches %v)", got, sizes(batches))
	}
	var reported []string
	for _, call := range obs.snapshot() {
		if call.err != nil {
			t.Errorf("Settled %+v, want no error", call)
		}
		reported = append(reported, call.bodies...)
	}
	sort.Strings(reported)
	if got := strings.Join(reported, " "); got != "bad ok1 ok2 ok3" {
		t.Errorf("reported deleted: %q, want each message once", got)
	}
}

// TestDeleteBatchPartialFailure injects the failures a DeleteMessageBatch
// can return: an entry in Failed, an entry in neither list, and the whole
// request failing. Each message that was not deleted is reported to the
// observers with an error, stays on the queue and is delivered again; the
// others are reported deleted in one call, and Subscribe goes on.
func TestDeleteBatchPartialFailure(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		client := brokers.SQS(t)
		url := brokers.SQSQueue(t, client, "partialdelete", map[string]string{"VisibilityTimeout": "1"})
		publishBodies(t, client, url, "ok1", "refused", "ok2", "unlisted", "ok3")

		rec := &receipts{}
		log := &deleteLog{API: client}
		log.fault = refuseAndOmit(client, rec)
		obs := &settles{}
		c := newCollector()
		c.handle = func(_ context.Context, msg *middleware.Message, delivery int) error {
			rec.add(msg, delivery)
			return nil
		}
		// A linger that never passes: the first poll's five messages are
		// one batch.
		s := awssqs.NewSubscriber(log, append(fast, awssqs.WithDeleteLinger(time.Hour))...)
		stop := subscribe(t, middleware.WithObserver(context.Background(), obs), s, url, c)
		c.waitFor(t, 20*time.Second, "the undeleted messages again", func(m map[string][]*middleware.Message) bool {
			return len(m) == 5 && len(m["refused"]) >= 2 && len(m["unlisted"]) >= 2
		})
		waitEmpty(t, client, url, 10*time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		log.snapshot(t)

		calls := obs.snapshot()
		var refused, unlisted, first *settle
		for i, call := range calls {
			switch strings.Join(call.bodies, " ") {
			case "refused":
				if call.err != nil && refused == nil {
					refused = &calls[i]
				}
			case "unlisted":
				if call.err != nil && unlisted == nil {
					unlisted = &calls[i]
				}
			case "ok1 ok2 ok3":
				first = &calls[i]
			}
		}
		if first == nil || first.err != nil || !first.received {
			t.Errorf("no Settled call for the deleted messages of the batch without error in the receive context: %+v", calls)
		}
		var entryErr *awssqs.BatchEntryError
		if refused == nil || !errors.As(refused.err, &entryErr) || entryErr.Code != "ReceiptHandleIsInvalid" || !refused.received {
			t.Errorf("the refused entry: Settled %+v, want its BatchEntryError", refused)
		}
		if unlisted == nil || !strings.Contains(unlisted.err.Error(), "missing from the DeleteMessageBatch response") || !unlisted.received {
			t.Errorf("the unlisted entry: Settled %+v, want an error", unlisted)
		}
		// Their second deliveries were deleted, without error.
		var again int
		for _, call := range calls {
			if call.err == nil && (slices.Contains(call.bodies, "refused") || slices.Contains(call.bodies, "unlisted")) {
				again += len(call.bodies)
			}
		}
		if again != 2 {
			t.Errorf("the redelivered messages: %d deleted without error, want 2; calls %+v", again, calls)
		}
	})

	t.Run("request", func(t *testing.T) {
		client := brokers.SQS(t)
		url := brokers.SQSQueue(t, client, "faileddelete", map[string]string{"VisibilityTimeout": "1"})
		publishBodies(t, client, url, "a", "b", "c")

		log := &deleteLog{API: client}
		var mu sync.Mutex
		failures := 1
		log.fault = func(ctx context.Context, in *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			if failures > 0 {
				failures--
				return nil, serverError()
			}
			return client.DeleteMessageBatch(ctx, in)
		}
		obs := &settles{}
		c := newCollector()
		s := awssqs.NewSubscriber(log, append(fast, awssqs.WithDeleteLinger(time.Hour))...)
		stop := subscribe(t, middleware.WithObserver(context.Background(), obs), s, url, c)
		c.waitFor(t, 20*time.Second, "every message twice", func(m map[string][]*middleware.Message) bool {
			return len(m) == 3 && len(m["a"]) >= 2 && len(m["b"]) >= 2 && len(m["c"]) >= 2
		})
		waitEmpty(t, client, url, 10*time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		calls := obs.snapshot()
		if len(calls) < 2 || strings.Join(calls[0].bodies, " ") != "a b c" || calls[0].err == nil || !strings.Contains(calls[0].err.Error(), "InternalError") {
			t.Errorf("Settled calls %+v, want the failed request reported first for all three messages with its error", calls)
		}
		var deleted int
		for _, call := range calls[1:] {
			if call.err == nil {
				deleted += len(call.bodies)
			}
		}
		if deleted != 3 {
			t.Errorf("%d messages reported deleted after the redelivery, want 3: %+v", deleted, calls)
		}
	})
}

// TestDeleteLinger: a slow handler does not hold back the deletes of the
// fast handlers of its poll beyond the linger.
func TestDeleteLinger(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "linger", nil)
	publishBodies(t, client, url, "fast1", "slow", "fast2", "fast3")

	log := &deleteLog{API: client}
	rec := &receipts{}
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	c := newCollector()
	c.handle = func(_ context.Context, msg *middleware.Message, delivery int) error {
		rec.add(msg, delivery)
		if string(msg.Body) == "slow" {
			<-release
		}
		return nil
	}
	const linger = 100 * time.Millisecond
	stop := subscribe(t, context.Background(), awssqs.NewSubscriber(log, append(fast, awssqs.WithDeleteLinger(linger))...), url, c)
	c.waitFor(t, 20*time.Second, "all four messages", func(m map[string][]*middleware.Message) bool { return len(m) == 4 })
	handled := time.Now()
	deadline := handled.Add(5 * time.Second)
	for _, name := range []string{"fast1#1", "fast2#1", "fast3#1"} {
		for !log.deleted(rec.handle(name)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was not deleted while the slow handler of its poll ran (linger %s)", name, linger)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if log.deleted(rec.handle("slow#1")) {
		t.Fatal("the slow message was deleted before its handler returned")
	}
	unblock()
	waitEmpty(t, client, url, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	batches, _, _ := log.snapshot(t)
	if got := rec.names(batches[len(batches)-1]); got != "slow#1" {
		t.Errorf("last batch %q, want the slow message alone", got)
	}
}

// TestShutdownFlushesDeletes: when Subscribe's context ends, the successes
// waiting for their linger are deleted as soon as the running handlers of
// their poll return, before Subscribe returns.
func TestShutdownFlushesDeletes(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "flush", nil)
	publishBodies(t, client, url, "fast1", "slow", "fast2", "fast3")

	log := &deleteLog{API: client}
	rec := &receipts{}
	started, release := make(chan struct{}), make(chan struct{})
	var fastDone sync.WaitGroup
	fastDone.Add(3)
	h := middleware.HandlerFunc(func(_ context.Context, msg *middleware.Message) error {
		rec.add(msg, 1)
		if string(msg.Body) == "slow" {
			close(started)
			<-release
		} else {
			fastDone.Done()
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	// The linger never passes: only the end of the poll's handlers sends
	// the batch.
	go func() {
		done <- awssqs.NewSubscriber(log, append(fast, awssqs.WithDeleteLinger(time.Hour))...).Subscribe(ctx, url, h)
	}()
	select {
	case <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("the slow handler did not start")
	}
	fastDone.Wait()
	time.Sleep(100 * time.Millisecond)
	if batches, _, _ := log.snapshot(t); len(batches) != 0 {
		t.Fatalf("deleted %v before the poll's handlers returned, with a linger of an hour", batches)
	}
	cancelWhileRunning(t, cancel, release, done)
	batches, singles, _ := log.snapshot(t)
	if len(batches) != 1 || singles != 0 || rec.names(batches[0]) != "fast1#1 fast2#1 fast3#1 slow#1" {
		t.Errorf("deletes when Subscribe returned: %d DeleteMessage, batches %q, want the four messages in one batch", singles, batches)
	}
	if n := approximateCount(t, client, url); n != 0 {
		t.Errorf("%d message(s) left after shutdown", n)
	}
}

// TestShutdownFlushesDeletesOfAbandonedPoll: with one handler at a time,
// shutting down abandons the poll's messages no handler started; that ends
// the poll, so the success waiting for its linger is deleted at once and the
// abandoned messages are visible again when Subscribe returns.
func TestShutdownFlushesDeletesOfAbandonedPoll(t *testing.T) {
	client := brokers.SQS(t)
	url := brokers.SQSQueue(t, client, "abandon", nil)
	publishBodies(t, client, url, "a", "b", "c")

	log := &deleteLog{API: client}
	rec := &receipts{}
	started, release := make(chan struct{}), make(chan struct{})
	var calls sync.Mutex
	var first string
	h := middleware.HandlerFunc(func(_ context.Context, msg *middleware.Message) error {
		rec.add(msg, 1)
		calls.Lock()
		isFirst := first == ""
		if isFirst {
			first = string(msg.Body)
		}
		calls.Unlock()
		if isFirst {
			close(started)
			<-release
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	s := awssqs.NewSubscriber(log, append(fast, awssqs.WithConcurrency(1), awssqs.WithDeleteLinger(time.Hour))...)
	go func() { done <- s.Subscribe(ctx, url, h) }()
	select {
	case <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("no handler started")
	}
	cancel()
	time.Sleep(100 * time.Millisecond)
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Subscribe = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Subscribe did not return after the handler finished (waiting for the linger?)")
	}
	batches, _, _ := log.snapshot(t)
	if len(batches) != 1 || rec.names(batches[0]) != first+"#1" {
		t.Errorf("batches when Subscribe returned: %q, want the handled message %q alone", batches, first)
	}
	if v := approximateVisible(t, client, url); v != "2" {
		t.Errorf("%s visible message(s) after shutdown, want the 2 abandoned ones", v)
	}
}

// refuseAndOmit is a DeleteMessageBatch fault for the messages published as
// "refused" and "unlisted": their first delivery's entry is refused
// (ReceiptHandleIsInvalid) and left out of the response; the other entries
// are deleted on client.
func refuseAndOmit(client *sqs.Client, rec *receipts) func(context.Context, *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error) {
	return func(ctx context.Context, in *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error) {
		forward := *in
		forward.Entries = nil
		var failed []types.BatchResultErrorEntry
		for _, e := range in.Entries {
			switch rec.name(aws.ToString(e.ReceiptHandle)) {
			case "refused#1":
				failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), Message: aws.String("injected"), SenderFault: true})
			case "unlisted#1":
			default:
				forward.Entries = append(forward.Entries, e)
			}
		}
		out := &sqs.DeleteMessageBatchOutput{}
		if len(forward.Entries) > 0 {
			var err error
			if out, err = client.DeleteMessageBatch(ctx, &forward); err != nil {
				return nil, err
			}
		}
		out.Failed = append(out.Failed, failed...)
		return out, nil
	}
}
