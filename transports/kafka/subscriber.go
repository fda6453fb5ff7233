package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Subscriber consumes a topic as a member of the client's consumer group and
// commits only the records whose handler returned nil. See the package
// documentation for the client options it needs.
type Subscriber struct {
	cl    *kgo.Client
	cfg   config
	group string
}

var (
	// subscribedClients holds the clients a Subscribe is polling, because
	// two Subscribe calls on one client would steal each other's records.
	subscribedClients sync.Map // *kgo.Client -> struct{}
	// leftClients holds the clients that left their group when a Subscribe
	// returned: a kgo client cannot rejoin, and polling it would block
	// forever. Weak keys let the clients be collected.
	leftClients sync.Map // weak.Pointer[kgo.Client] -> struct{}
)

func markLeft(cl *kgo.Client) {
	key := weak.Make(cl)
	if _, loaded := leftClients.LoadOrStore(key, struct{}{}); !loaded {
		runtime.AddCleanup(cl, func(key weak.Pointer[kgo.Client]) { leftClients.Delete(key) }, key)
	}
}

func hasLeft(cl *kgo.Client) bool {
	_, ok := leftClients.Load(weak.Make(cl))
	return ok
}

// shutdownCommitTimeout bounds a commit once Subscribe's context has
// ended: kgo retries a commit the coordinator keeps refusing with a
// retriable error for half a minute, longer than shutdown grace periods
// run. The records it did not commit are delivered again to the next owner
// of their partitions.
const shutdownCommitTimeout = 5 * time.Second

// commitContext is the context of a commit for a poll of ctx: the commit
// outlives ctx, so that shutdown commits what was handled, but by
// shutdownCommitTimeout at most.
func commitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(shutdownCommitTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel(errShutdownCommitTimeout)
		case <-cctx.Done():
		}
	})
	return cctx, func() {
		stop()
		cancel(nil)
	}
}

var errShutdownCommitTimeout = fmt.Errorf("kafka: the commit outlived Subscribe's context by %v", shutdownCommitTimeout)

// leaveTimeout bounds how long Subscribe waits to leave the group: a leave
// that does not finish leaves the partitions stuck until the session timeout,
// which is no worse than not leaving.
const leaveTimeout = 10 * time.Second

var (
	_ middleware.Subscriber = (*Subscriber)(nil)
	_ middleware.Describer  = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber over cl, which must be a group consumer
// with auto-commit disabled (Subscribe checks). The Subscriber does not own
// cl: closing cl is the caller's job, and ends a running Subscribe with an
// error.
func NewSubscriber(cl *kgo.Client, opts ...Option) *Subscriber {
	s := &Subscriber{cl: cl, cfg: newConfig(cl, opts)}
	if cl != nil {
		s.group, _ = cl.OptValue(kgo.ConsumerGroup).(string)
	}
	return s
}

// Describe names the destination by the topic; the consumer group is a
// destination attribute.
func (s *Subscriber) Describe(topic string) middleware.Destination {
	attrs := s.cfg.serverAttributes()
	if s.group != "" {
		attrs = append(attrs, propagation.ConsumerGroup(s.group))
	}
	return middleware.Destination{System: propagation.SystemKafka, Name: topic, Attributes: attrs}
}

// Subscribe polls the client and hands topic's records to h until ctx ends
// or the client is closed.
//
// Each poll that returns records is one receive: the observers' Received
// sees all of its messages before any handler runs. Partitions are handled
// concurrently (see WithConcurrency), the records of one partition one at a
// time in offset order. When a handler returns an error or panics, that
// partition stops for this poll: the failed record and the ones after it are
// not committed, and the partition is rewound to the failed record and
// paused (kgo.Client.PauseFetchPartitions) for WithRetryBackoff, after which
// a poll delivers the record again with DeliveryCount one higher. The
// backoff is the failing partition's alone: the other partitions go on
// being polled and handled meanwhile. The poll loop resumes the partition
// between polls, so handlers that run long on other partitions can make
// its backoff longer. Subscribe neither pauses nor resumes a partition the
// client's user paused, and when it returns it resumes every partition it
// paused. After all partitions are done, the handled records are
// committed in one commit, reported to Settled as OpCommit, and, when the
// client was built with kgo.BlockRebalanceOnPoll, rebalances are allowed
// again.
//
// When ctx ends, running handlers finish (their context does not end with
// ctx), no further record is started, the handled records are committed
// (within 5 s: what a coordinator refuses longer is delivered again),
// the client leaves the consumer group, so the other members take over its
// partitions at once instead of after a rebalance it would never finish
// polling for, and Subscribe returns nil. A kgo client cannot rejoin a group
// it left: subscribe again with a new client, and close the old one. When
// the client is closed Subscribe returns an error.
//
// A failed commit is reported to Settled and is not fatal: the next commit
// of the partition covers the records, and if there is none, the next owner
// of the partition delivers them again.
//
// A poll whose fetches hold errors (kgo retries them) is reported to the
// observers that implement middleware.PollFailedObserver, once, with its
// errors joined; the end of ctx and the closing of the client are not.
// Subscribe returns the error, after handling the records that came with
// it, when retrying cannot cure it and nothing could be consumed: the
// broker denies the client its group or the cluster
// (GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED) or finds the
// group ID invalid. The client is then done with, as after ctx ends. A
// topic refused on fetch (TOPIC_AUTHORIZATION_FAILED) is reported on every
// poll and retried; refused credentials (SASL_AUTHENTICATION_FAILED, which
// refreshed tokens can give for a moment) are retried, and kgo may not
// hand them to polls at all (a wrong password with kfake: no failed poll
// in 4 s).
//
// Only one Subscribe may run per client at a time, because a poll takes
// records for every partition the client owns.
func (s *Subscriber) Subscribe(ctx context.Context, topic string, h middleware.Handler) error {
	if h == nil {
		return errors.New("kafka: subscribe: nil handler")
	}
	if err := s.checkClient(topic); err != nil {
		return err
	}
	if _, busy := subscribedClients.LoadOrStore(s.cl, struct{}{}); busy {
		return fmt.Errorf("kafka: subscribe %q: a Subscribe is already polling this client; one Subscribe per client", topic)
	}
	defer subscribedClients.Delete(s.cl)
	if hasLeft(s.cl) {
		return fmt.Errorf("kafka: subscribe %q: the client left its group when an earlier Subscribe returned; subscribe with a new client", topic)
	}

	l := &pollLoop{
		s:         s,
		h:         h,
		obs:       middleware.ObserverFrom(ctx),
		dest:      s.Describe(topic),
		topic:     topic,
		redeliver: make(map[int32]redelivery),
		paused:    make(map[int32]time.Time),
	}
	// The client is the caller's: leave no partition paused that this
	// Subscribe paused, however it returns.
	defer l.resumeAll()
	var fatal error
	for ctx.Err() == nil {
		l.resumeDue(time.Now())
		pctx, cancelPoll := l.pollContext(ctx)
		start := time.Now()
		fetches := s.cl.PollRecords(pctx, s.cfg.maxPollRecords)
		cancelPoll()
		if fetches.IsClientClosed() {
			return fmt.Errorf("kafka: consuming %q: %w", topic, kgo.ErrClientClosed)
		}
		// Other fetch errors are retried by the client; a context error
		// means ctx ended, which the loop condition sees, or a paused
		// partition is due to be resumed. The others are
		// reported as a failed receive. Records that came with them are
		// other partitions' (kgo fetches per broker in the background and
		// a poll drains what several fetches buffered): they are still
		// handled, and reported to Received as a receive of their own.
		err := pollError(fetches)
		if err != nil {
			middleware.ReportPollFailed(ctx, l.obs, l.dest, start, err)
		}
		if records := fetches.Records(); len(records) > 0 {
			l.handlePoll(ctx, start, records)
		}
		s.cl.AllowRebalance()
		if refused(err) {
			// kgo would retry for ever what only an operator can fix.
			fatal = fmt.Errorf("kafka: consuming %q: %w", topic, err)
			break
		}
	}
	markLeft(s.cl)
	leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	if err := s.cl.LeaveGroupContext(leaveCtx); err != nil && !errors.Is(err, kgo.ErrClientClosed) && fatal == nil {
		return fmt.Errorf("kafka: consuming %q: leaving group %q: %w", topic, s.group, err)
	}
	return fatal
}

// pollError is what failed in a poll: nil when its fetches hold no error
// but the end of the poll's context or the closing of the client, which
// are no failures. A poll is one receive operation, reported once however
// many partitions failed, so its errors are joined: error.type is that of
// the first typed one (middleware.ErrorType), and the span's status lists
// each distinct error once, not once per partition that returned it. A
// poll without errors costs no allocation here.
func pollError(fetches kgo.Fetches) error {
	var errs []error
	for i := range fetches {
		for j := range fetches[i].Topics {
			for _, p := range fetches[i].Topics[j].Partitions {
				err := p.Err
				if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
					errors.Is(err, kgo.ErrClientClosed) {
					continue
				}
				// Compared by text: == on two errors of a type that is
				// not comparable panics.
				if !slices.ContainsFunc(errs, func(e error) bool { return e.Error() == err.Error() }) {
					errs = append(errs, named(err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// checkClient reports why the client cannot back Subscribe(topic): without a
// group there is nothing to commit to, with auto-commit the client would
// commit records whose handler failed or has not run, and a client that
// consumes other topics would hand Subscribe records it cannot deliver.
func (s *Subscriber) checkClient(topic string) error {
	if s.cl == nil {
		return fmt.Errorf("kafka: subscribe %q: no client", topic)
	}
	if s.group == "" {
		return fmt.Errorf("kafka: subscribe %q: the client has no consumer group; build it with kgo.ConsumerGroup", topic)
	}
	if disabled, _ := s.cl.OptValue(kgo.DisableAutoCommit).(bool); !disabled {
		return fmt.Errorf("kafka: subscribe %q: the client auto-commits, which would commit records whose handler failed; build it with kgo.DisableAutoCommit", topic)
	}
	if regex, _ := s.cl.OptValue(kgo.ConsumeRegex).(bool); regex {
		return fmt.Errorf("kafka: subscribe %q: the client consumes by regex; build it with kgo.ConsumeTopics(%q)", topic, topic)
	}
	topics := consumeTopics(s.cl)
	if !slices.Contains(topics, topic) {
		return fmt.Errorf("kafka: subscribe %q: the client does not consume it (it consumes %q); build it with kgo.ConsumeTopics(%q)", topic, topics, topic)
	}
	if len(topics) > 1 {
		return fmt.Errorf("kafka: subscribe %q: the client also consumes other topics (%q); use one client per subscribed topic", topic, topics)
	}
	return nil
}

// consumeTopics returns the topics set with kgo.ConsumeTopics, sorted.
func consumeTopics(cl *kgo.Client) []string {
	switch v := cl.OptValue(kgo.ConsumeTopics).(type) {
	case map[string]*regexp.Regexp:
		return slices.Sorted(maps.Keys(v))
	case []string:
		return slices.Sorted(slices.Values(v))
	}
	return nil
}

// redelivery counts how often the handler failed on the record at offset.
type redelivery struct {
	offset   int64
	failures int
}

// pollLoop is the state of one Subscribe call.
type pollLoop struct {
	s     *Subscriber
	h     middleware.Handler
	obs   middleware.Observer
	dest  middleware.Destination
	topic string

	// redeliver tracks, per partition, the record being retried; only the
	// poll loop goroutine touches it.
	redeliver map[int32]redelivery
	// paused holds the partitions this Subscribe paused (backOff) with
	// when each is due to be resumed; only the poll loop goroutine
	// touches it. Partitions paused by someone else are never in it.
	paused map[int32]time.Time

	// Scratch space of split, reused from poll to poll: nothing keeps it
	// once handlePoll returns.
	parts   []partitionWork
	index   map[int32]int // partition -> its position in parts
	grouped []*kgo.Record
}

// partitionWork is one partition's share of a poll.
type partitionWork struct {
	partition int32
	records   []*kgo.Record
	msgs      []*middleware.Message
	handled   int  // records[:handled] succeeded
	failed    bool // records[handled] failed; otherwise handling stopped for shutdown
}

// handlerContext is the context handlers get: it carries the values of
// ctx but outlives it, so a shutdown lets running handlers finish and be
// committed. The value in front of the WithoutCancel context makes lookups
// walk past it instead of calling its Value method, which boxes it into an
// interface: one allocation per lookup, and the tracing middleware looks
// up the receive span for every message.
func handlerContext(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), handlerContextKey{}, nil)
}

type handlerContextKey struct{}

// handlePoll handles the records of one poll, commits the handled ones,
// pauses the partitions whose handler failed (see backOff), and rewinds
// each partition to its first unhandled record.
func (l *pollLoop) handlePoll(ctx context.Context, start time.Time, records []*kgo.Record) {
	parts, grouped, all := l.split(records)
	if ctx.Err() != nil {
		// The poll returned as ctx ended: hand nothing out. Nothing
		// consumes on this client again (Subscribe leaves the group and
		// refuses a client that left); the rewind keeps its position at
		// what was committed, for code that reads it afterwards.
		l.rewind(parts)
		return
	}
	hctx := handlerContext(l.obs.Received(ctx, l.dest, start, all))

	workers := l.s.cfg.concurrency
	if workers <= 0 || workers > len(parts) {
		workers = len(parts)
	}
	if workers == 1 {
		for i := range parts {
			l.handlePartition(ctx, hctx, &parts[i])
		}
	} else {
		// The poll goroutine is one of the workers.
		var next atomic.Int64
		work := func() {
			for i := int(next.Add(1)) - 1; i < len(parts); i = int(next.Add(1)) - 1 {
				l.handlePartition(ctx, hctx, &parts[i])
			}
		}
		var wg sync.WaitGroup
		for range workers - 1 {
			wg.Go(work)
		}
		work()
		wg.Wait()
	}

	complete := true
	for i := range parts {
		p := &parts[i]
		l.track(p)
		complete = complete && p.handled == len(p.records)
	}
	commitRecords, commitMsgs := grouped, all
	if !complete {
		commitRecords, commitMsgs = nil, nil
		for _, p := range parts {
			commitRecords = append(commitRecords, p.records[:p.handled]...)
			commitMsgs = append(commitMsgs, p.msgs[:p.handled]...)
		}
	}
	if len(commitRecords) > 0 {
		st := time.Now()
		cctx, cancel := commitContext(ctx)
		err := l.s.cl.CommitRecords(cctx, commitRecords...)
		cancel()
		if err != nil {
			err = fmt.Errorf("kafka: committing %d record(s) of %q: %w", len(commitRecords), l.topic, named(err))
		}
		l.obs.Settled(hctx, l.dest, propagation.OpCommit, st, commitMsgs, err)
	}
	if ctx.Err() == nil {
		// Paused before the rewind, which would otherwise start a fetch
		// of the partition at once.
		l.backOff(parts)
	}
	l.rewind(parts)
}

// rewind sets each partition with unhandled records back to the first of
// them. The client has already fetched past them, so without this the next
// poll would skip them until a restart or rebalance. The record's leader
// epoch keeps the client's truncation detection working. It runs after the
// commit, never concurrently with one, as kgo.Client.SetOffsets asks.
func (l *pollLoop) rewind(parts []partitionWork) {
	var offsets map[int32]kgo.EpochOffset
	for _, p := range parts {
		if p.handled == len(p.records) {
			continue
		}
		first := p.records[p.handled]
		if offsets == nil {
			offsets = make(map[int32]kgo.EpochOffset)
		}
		offsets[p.partition] = kgo.EpochOffset{Epoch: first.LeaderEpoch, Offset: first.Offset}
	}
	if len(offsets) > 0 {
		l.s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{l.topic: offsets})
	}
}

// backOff pauses fetching the partitions whose handler failed for
// WithRetryBackoff, so their failed record comes back no sooner while the
// other partitions go on being polled; the poll loop resumes them
// (resumeDue). A paused partition's records are neither fetched nor
// returned by a poll; the ones already buffered are dropped and fetched
// again from its offset once it is resumed. A partition the client's user
// paused while its records were being handled is left to the user: were
// it recorded here, resumeDue would resume it.
func (l *pollLoop) backOff(parts []partitionWork) {
	if l.s.cfg.retryBackoff <= 0 {
		return
	}
	var failed []int32
	for _, p := range parts {
		if p.failed {
			failed = append(failed, p.partition)
		}
	}
	if len(failed) == 0 {
		return
	}
	due := time.Now().Add(l.s.cfg.retryBackoff)
	pausedByUser := l.s.cl.PauseFetchPartitions(nil)[l.topic]
	mine := failed[:0]
	for _, p := range failed {
		if _, ours := l.paused[p]; ours || !slices.Contains(pausedByUser, p) {
			mine = append(mine, p)
			l.paused[p] = due
		}
	}
	if len(mine) > 0 {
		l.s.cl.PauseFetchPartitions(map[string][]int32{l.topic: mine})
	}
}

// resumeDue resumes the partitions backOff paused whose backoff is over at
// now. Resuming a partition a rebalance took away meanwhile is harmless:
// kgo keeps the paused set apart from the assignment, and the partition,
// if it comes back, is fetched at once instead of after its backoff.
func (l *pollLoop) resumeDue(now time.Time) {
	var due []int32
	for p, at := range l.paused {
		if !at.After(now) {
			due = append(due, p)
			delete(l.paused, p)
		}
	}
	if len(due) > 0 {
		l.s.cl.ResumeFetchPartitions(map[string][]int32{l.topic: due})
	}
}

// resumeAll resumes every partition backOff paused and has not resumed:
// the client is the caller's, and must not keep partitions paused that
// its user did not pause.
func (l *pollLoop) resumeAll() {
	if len(l.paused) == 0 {
		return
	}
	ps := slices.Collect(maps.Keys(l.paused))
	clear(l.paused)
	l.s.cl.ResumeFetchPartitions(map[string][]int32{l.topic: ps})
}

// pollContext is the context of the next poll: ctx, with a deadline at
// the earliest due resume when backOff paused a partition, because a poll
// blocks until ctx ends when every assigned partition is paused, and it
// takes a poll loop iteration to resume one.
func (l *pollLoop) pollContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if len(l.paused) == 0 {
		return ctx, func() {}
	}
	var first time.Time
	for _, at := range l.paused {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return context.WithDeadline(ctx, first)
}

// split groups records by partition, keeping offset order, and builds their
// messages: grouped holds the records partition after partition, all their
// messages in the same order, and each partition's records and msgs are
// its run of both. parts and grouped are scratch space of l, valid until
// the next poll; all is new.
func (l *pollLoop) split(records []*kgo.Record) (parts []partitionWork, grouped []*kgo.Record, all []*middleware.Message) {
	if l.index == nil {
		l.index = make(map[int32]int)
	}
	clear(l.index)
	parts = l.parts[:0]
	// Count each partition's records; handled is the count for now. A
	// poll's records come partition after partition, so the last
	// partition found is usually the next one's.
	last := -1
	for _, r := range records {
		if last < 0 || parts[last].partition != r.Partition {
			i, ok := l.index[r.Partition]
			if !ok {
				i = len(parts)
				l.index[r.Partition] = i
				parts = append(parts, partitionWork{partition: r.Partition})
			}
			last = i
		}
		parts[last].handled++
	}
	// Lay the partitions out one after the other: handled becomes where
	// the next record of each goes.
	pos := 0
	for i := range parts {
		n := parts[i].handled
		parts[i].handled = pos
		pos += n
	}
	grouped = slices.Grow(l.grouped[:0], len(records))[:len(records)]
	last = -1
	for _, r := range records {
		if last < 0 || parts[last].partition != r.Partition {
			last = l.index[r.Partition]
		}
		grouped[parts[last].handled] = r
		parts[last].handled++
	}
	all = messages(grouped, l.s.group)
	pos = 0
	for i := range parts {
		p := &parts[i]
		end := p.handled
		p.records, p.msgs, p.handled = grouped[pos:end:end], all[pos:end:end], 0
		pos = end
		if rd, ok := l.redeliver[p.partition]; ok {
			for j, r := range p.records {
				if r.Offset == rd.offset {
					p.msgs[j].DeliveryCount += rd.failures
				}
			}
		}
	}
	l.parts, l.grouped = parts, grouped
	return parts, grouped, all
}

// handlePartition runs the handler on p's records in order until one fails
// or ctx ends.
func (l *pollLoop) handlePartition(ctx, hctx context.Context, p *partitionWork) {
	for _, msg := range p.msgs {
		if ctx.Err() != nil {
			return
		}
		if err := middleware.Call(hctx, l.h, msg); err != nil {
			p.failed = true
			return
		}
		p.handled++
	}
}

// track updates the redelivery count of p's partition.
func (l *pollLoop) track(p *partitionWork) {
	rd, tracked := l.redeliver[p.partition]
	if tracked && p.handled > 0 && rd.offset <= p.records[p.handled-1].Offset {
		delete(l.redeliver, p.partition)
		tracked = false
	}
	if !p.failed {
		return
	}
	off := p.records[p.handled].Offset
	if !tracked || rd.offset != off {
		rd = redelivery{offset: off}
	}
	rd.failures++
	l.redeliver[p.partition] = rd
}
