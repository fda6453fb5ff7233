package awssqs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Subscriber long-polls an SQS queue: a handler's nil deletes the message
// (with DeleteMessageBatch, see WithDeleteLinger), an error or panic leaves
// it on the queue to be redelivered when its visibility timeout ends (see
// WithRetryVisibility).
type Subscriber struct {
	api API
	cfg config
}

var (
	_ middleware.Subscriber = (*Subscriber)(nil)
	_ middleware.Describer  = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber that receives through api, usually an
// *sqs.Client.
func NewSubscriber(api API, opts ...Option) *Subscriber {
	return &Subscriber{api: api, cfg: newConfig(opts)}
}

// Describe names the destination by the queue name, the last segment of
// queueURL, with the URL and the server address as attributes. The
// Attributes of the result are shared by every caller in the process: do
// not modify them (appending is fine).
func (s *Subscriber) Describe(queueURL string) middleware.Destination { return describe(queueURL) }

// settleTimeout bounds a delete or visibility change; they run on a context
// that ignores the end of Subscribe's, so that shutdown still settles.
const settleTimeout = 30 * time.Second

// Backoff between failed polls.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// Subscribe polls the queue at queueURL until ctx ends or a poll fails for a
// reason retrying cannot fix (the queue does not exist, access is denied);
// other poll errors are retried with backoff.
//
// Each poll that returns messages is one receive, reported to the observers
// in ctx before its handlers run; the handlers get the context the
// observers returned, without ctx's cancellation. Up to WithConcurrency
// handlers run at once, and polling goes on while they run, but the
// Subscriber never holds more than that many plus one poll's worth of
// messages.
//
// A handler's nil deletes its message, and only that: the messages of a
// poll whose handlers succeeded are deleted together with one
// DeleteMessageBatch once all handlers of the poll have returned, or
// WithDeleteLinger after the first success when some handler is still
// running. Each batch is reported to the observers as one delete settle
// of the messages SQS deleted, with the poll's receive context. The
// messages it did not delete stay on the queue to be delivered again and
// are reported with their error: each failed entry, and each entry the
// response does not list, on its own; all of them together when the
// request failed. An observer that implements
// middleware.SettledEachObserver (metrics, tracing) gets a partly failed
// batch in one SettledEach call instead, so the request is measured once.
// A failed delete does not stop Subscribe.
//
// Each failed ReceiveMessage is reported to the observers that implement
// middleware.PollFailedObserver, the one that ends Subscribe included; a
// poll that fails once ctx has ended is not.
//
// A message stays invisible to other receives for the visibility timeout
// (the queue's, or WithVisibilityTimeout's) from its receive, whether or
// not its handler has finished; WithVisibilityExtension extends it while
// the message waits for a handler and while its handler runs.
//
// When ctx ends Subscribe stops polling, waits for the running handlers,
// deletes the messages they succeeded on (without waiting for the linger),
// makes the received messages no handler started visible again at once,
// and returns nil. A poll in flight is not cancelled but answered, within
// its wait time (WithWaitTime): SQS would hand it the messages that arrive
// meanwhile all the same, and they would stay invisible for their
// visibility timeout; they are made visible again with the others.
func (s *Subscriber) Subscribe(ctx context.Context, queueURL string, h middleware.Handler) error {
	if h == nil {
		return errors.New("awssqs: subscribe: nil handler")
	}
	if s.api == nil {
		return errors.New("awssqs: subscribe: no SQS client")
	}
	p := &poller{
		s:        s,
		queueURL: queueURL,
		fifo:     isFIFO(queueURL),
		h:        h,
		obs:      middleware.ObserverFrom(ctx),
		dest:     s.Describe(queueURL),
		held:     make(chan struct{}, s.cfg.concurrency+int(s.cfg.maxMessages)),
		running:  make(chan struct{}, s.cfg.concurrency),
	}
	err := p.poll(ctx)
	p.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type poller struct {
	s        *Subscriber
	queueURL string
	fifo     bool
	h        middleware.Handler
	obs      middleware.Observer
	dest     middleware.Destination

	// held has a slot per message received and not yet settled, plus the
	// slots reserved for the poll in progress; running has one per handler.
	held    chan struct{}
	running chan struct{}
	wg      sync.WaitGroup
}

func (p *poller) poll(ctx context.Context) error {
	cfg := p.s.cfg
	in := &sqs.ReceiveMessageInput{
		QueueUrl:              aws.String(p.queueURL),
		MaxNumberOfMessages:   cfg.maxMessages,
		WaitTimeSeconds:       seconds(cfg.waitTime),
		MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
			types.MessageSystemAttributeNameAWSTraceHeader,
			types.MessageSystemAttributeNameMessageGroupId,
		},
	}
	switch {
	case cfg.visibilityTimeout != nil && *cfg.visibilityTimeout > 0:
		in.VisibilityTimeout = seconds(*cfg.visibilityTimeout)
	case cfg.extendVisibility > 0:
		in.VisibilityTimeout = seconds(cfg.extendVisibility)
	}
	want := int(cfg.maxMessages)
	backoff := time.Duration(0)
	for {
		if !p.reserve(ctx, want) {
			return nil
		}
		start := time.Now()
		out, err := p.receive(ctx, in)
		if err != nil {
			err = named(err)
			p.release(want)
			if ctx.Err() != nil {
				return nil
			}
			// A failed poll is a receive operation too; the one that ends
			// Subscribe is reported as well, since it is why nothing more
			// is received.
			middleware.ReportPollFailed(ctx, p.obs, p.dest, start, err)
			if permanent(err) {
				return fmt.Errorf("awssqs: receiving from %s: %w", p.queueURL, err)
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			if !sleep(ctx, backoff/2+rand.N(backoff/2+1)) {
				return nil
			}
			continue
		}
		backoff = 0
		n := min(len(out.Messages), want) // SQS never returns more; a fake might
		p.release(want - n)
		if n == 0 {
			if cfg.waitTime == 0 && !sleep(ctx, minBackoff) {
				return nil // short polling an empty queue: do not spin
			}
			continue
		}
		p.dispatch(ctx, start, out.Messages[:n], requestID(out.ResultMetadata))
	}
}

// receiveGrace is how long past its wait time a ReceiveMessage may take.
const receiveGrace = 5 * time.Second

// receive calls ReceiveMessage on a context that the end of ctx does not
// cancel: SQS keeps a long poll open after its client hung up and hands it
// the messages that arrive meanwhile, which would then stay invisible for
// their visibility timeout. The poll is let finish instead (dispatch makes
// what it returns visible again), bounded by its wait time and
// receiveGrace.
func (p *poller) receive(ctx context.Context, in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
	wait := p.s.cfg.waitTime
	if wait == 0 {
		wait = maxWait // the queue's own, which is at most that
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait+receiveGrace)
	defer cancel()
	return p.s.api.ReceiveMessage(rctx, in)
}

// dispatch reports one poll's messages as received and hands them to
// handlers, in order, as handler slots free up.
func (p *poller) dispatch(ctx context.Context, start time.Time, raw []types.Message, requestID string) {
	msgs := make([]*middleware.Message, len(raw))
	for i := range raw {
		msgs[i] = message(&raw[i], p.queueURL, requestID)
	}
	hctx := context.WithoutCancel(p.obs.Received(ctx, p.dest, start, msgs))
	b := &deleteBatch{p: p, hctx: hctx, raw: raw, msgs: msgs, left: len(msgs)}
	if d := p.s.cfg.extendVisibility; d > 0 {
		b.extending = newExtension(len(raw))
		p.wg.Go(func() { b.extend(d, extensionInterval(d, p.s.cfg.visibilityTimeout)) })
	}
	p.wg.Go(func() {
		for i, msg := range msgs {
			select {
			case p.running <- struct{}{}:
			case <-ctx.Done():
				b.giveUp(i, len(raw))
				return
			}
			if ctx.Err() != nil { // both cases were ready
				<-p.running
				b.giveUp(i, len(raw))
				return
			}
			if b.groupFailed(i) {
				// An earlier message of its FIFO group failed in this
				// receive: handled now, it would come before that one's
				// redelivery. Visible again, it waits behind it (SQS holds
				// back a group while one of its messages is in flight).
				<-p.running
				b.giveUp(i, i+1)
				continue
			}
			p.wg.Add(1)
			go p.handle(b, i, msg)
		}
	})
}

// handle runs the handler on message i of b's poll, frees its handler slot
// and hands the outcome to b; on failure, it first makes the visibility
// change WithRetryVisibility asks for.
func (p *poller) handle(b *deleteBatch, i int, msg *middleware.Message) {
	defer p.wg.Done()
	err := middleware.Call(b.hctx, p.h, msg)
	// Before the retry visibility or the delete: an extension must not
	// land after either.
	b.stopExtending(i, i+1)
	if err != nil {
		b.failGroup(i) // before the slot frees: the next message checks it
	}
	<-p.running
	if err != nil {
		p.retry(b.hctx, &b.raw[i])
	}
	b.done(i, err == nil)
}

// retry applies WithRetryVisibility to a message whose handler failed.
func (p *poller) retry(hctx context.Context, m *types.Message) {
	d := p.s.cfg.retryVisibility
	if d == nil {
		return
	}
	sctx, cancel := context.WithTimeout(hctx, settleTimeout)
	defer cancel()
	_, _ = p.s.api.ChangeMessageVisibility(sctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(p.queueURL),
		ReceiptHandle:     m.ReceiptHandle,
		VisibilityTimeout: seconds(*d),
	})
}

// abandon makes received messages that no handler will run visible again at
// once, so shutting down does not hide them for a visibility timeout. The
// calls (at most a poll's ten) go out together, as extensions do: one at a
// time, a slow SQS would hold shutdown for ten round trips, and the bound of
// settleTimeout could leave the last ones hidden.
func (p *poller) abandon(hctx context.Context, raw []types.Message) {
	defer p.release(len(raw))
	sctx, cancel := context.WithTimeout(hctx, settleTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range raw {
		wg.Go(func() {
			_, _ = p.s.api.ChangeMessageVisibility(sctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl:          aws.String(p.queueURL),
				ReceiptHandle:     raw[i].ReceiptHandle,
				VisibilityTimeout: 0,
			})
		})
	}
	wg.Wait()
}

// entryIDs are the Ids of DeleteMessageBatch entries: the index of the
// message in its poll, which is unique in a batch (a batch never spans
// polls) and, unlike a MessageId, always a valid Id.
var entryIDs = [maxBatch]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// deleteBatch deletes the messages of one poll whose handlers succeeded,
// with DeleteMessageBatch: a batch is sent when every handler of the poll
// has finished (or was abandoned), when it holds maxBatch entries, or when
// the delete linger has passed since its first success, whichever comes
// first. It holds each message's held slot until its settlement is
// reported.
type deleteBatch struct {
	p    *poller
	hctx context.Context // the poll's receive context, the handlers' context
	raw  []types.Message
	msgs []*middleware.Message

	extending *extension // nil without WithVisibilityExtension

	mu      sync.Mutex
	failed  []string // FIFO groups of the poll with a failed message
	left    int      // messages of the poll whose handler has not finished
	pending [maxBatch]int
	n       int         // pending[:n] are the succeeded messages not yet sent
	timer   *time.Timer // the linger of pending[:n], nil when none runs
	gen     uint64      // incremented by every flush, so a stale timer does nothing
}

// done records the outcome of message i's handler; the message's held
// slot is released by the delete for a success and here for a failure.
func (b *deleteBatch) done(i int, ok bool) {
	if !ok {
		b.p.release(1)
	}
	b.mu.Lock()
	b.left--
	if ok {
		b.pending[b.n] = i
		b.n++
	}
	linger := b.p.s.cfg.deleteLinger
	if b.n > 0 && (b.left == 0 || b.n == maxBatch || linger <= 0) {
		b.flushLocked()
		return
	}
	if ok && b.timer == nil {
		gen := b.gen
		b.p.wg.Add(1) // Subscribe waits for the timer's delete
		b.timer = time.AfterFunc(linger, func() {
			defer b.p.wg.Done()
			b.mu.Lock()
			if b.gen != gen || b.n == 0 {
				b.mu.Unlock()
				return
			}
			b.flushLocked()
		})
	}
	b.mu.Unlock()
}

// extension is what WithVisibilityExtension keeps of a poll: which of its
// messages still need their visibility extended.
type extension struct {
	mu   sync.Mutex // held through an extension pass
	done []bool     // done[i]: message i's handler returned, or none will run
	left int
	over chan struct{} // closed when left reaches 0
}

func newExtension(n int) *extension {
	return &extension{done: make([]bool, n), left: n, over: make(chan struct{})}
}

// stopExtending ends the extensions of messages [from, to) of b's poll. A
// pass under way finishes first, so no extension lands after what the
// caller does next (a retry visibility, a delete, a release).
func (b *deleteBatch) stopExtending(from, to int) {
	x := b.extending
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := from; i < to; i++ {
		if !x.done[i] {
			x.done[i] = true
			x.left--
		}
	}
	if x.left == 0 && to > from {
		select {
		case <-x.over:
		default:
			close(x.over)
		}
	}
}

// extensionInterval is how often the visibility of a poll's messages is
// extended to d: a third of the shorter of d and the receive's own timeout
// (vt, when WithVisibilityTimeout set one).
//
// Each extension counts d from when it lands, so after one lands two more
// ticks come before the message would be visible again, the second a
// third of the timeout before that: an extension that fails (throttling,
// a network error the SDK gave up on, a call cut at its bound) is retried
// by the next tick in time. Ticking every half, the retry came as the
// message became visible, and another consumer could get it while its
// handler still ran. A quick retry of the failed entries between half
// ticks would cost fewer requests when nothing fails, but it would meet
// the same throttling again; a third spaces every try evenly, at 1.5
// times the requests of a half (one per message every 10 s for d = 30 s).
func extensionInterval(d time.Duration, vt *time.Duration) time.Duration {
	if vt != nil && *vt > 0 {
		d = min(d, time.Duration(seconds(*vt))*time.Second)
	}
	return d / 3
}

// extend extends the visibility of b's messages to d at every tick of
// every until every one of them has stopped (stopExtending).
func (b *deleteBatch) extend(d, every time.Duration) {
	x := b.extending
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-x.over:
			return
		case <-t.C:
		}
		b.extendPass(d, min(every/2, settleTimeout))
	}
}

// extendPass extends the visibility of the messages of b's poll that have
// not stopped to d, with a ChangeMessageVisibility each, all at once (at
// most a poll's 10, what one ChangeMessageVisibilityBatch would carry),
// each bounded by limit. One at a time, each call could delay the next
// by its bound, so the last of ten came late; the batch request would
// avoid both, but goaws, the emulator the tests run on, does not
// implement it, and API, which callers implement, does not have it.
//
// limit is half a tick (up to settleTimeout): a hung call ends before the
// next tick, which retries it. The pass holds x.mu until every call has returned, so that
// no extension lands after what follows stopExtending; that is also why
// a retry waits for the next pass, which checks done again. A failed
// extension is recorded on its message's process span
// (middleware.RecordExtensionFailed).
func (b *deleteBatch) extendPass(d, limit time.Duration) {
	x := b.extending
	x.mu.Lock()
	defer x.mu.Unlock()
	var wg sync.WaitGroup
	for i := range b.raw {
		if !x.done[i] {
			wg.Go(func() { b.extendOne(i, d, limit) })
		}
	}
	wg.Wait()
}

// extendOne extends the visibility of message i of b's poll to d, within
// limit, and records a failure.
func (b *deleteBatch) extendOne(i int, d, limit time.Duration) {
	ctx, cancel := context.WithTimeout(b.hctx, limit)
	defer cancel()
	_, err := b.p.s.api.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(b.p.queueURL),
		ReceiptHandle:     b.raw[i].ReceiptHandle,
		VisibilityTimeout: seconds(d),
	})
	if err != nil {
		middleware.RecordExtensionFailed(b.hctx, b.msgs[i], named(err))
	}
}

// failGroup records that message i failed, when the queue is FIFO: the
// messages of its group after it in the poll are then not handled.
func (b *deleteBatch) failGroup(i int) {
	g := b.raw[i].Attributes[attrGroupID]
	if !b.p.fifo || g == "" {
		return
	}
	b.mu.Lock()
	b.failed = append(b.failed, g)
	b.mu.Unlock()
}

// groupFailed reports whether a message of message i's FIFO group failed
// earlier in the poll.
func (b *deleteBatch) groupFailed(i int) bool {
	if !b.p.fifo {
		return false
	}
	g := b.raw[i].Attributes[attrGroupID]
	b.mu.Lock()
	defer b.mu.Unlock()
	return g != "" && slices.Contains(b.failed, g)
}

// giveUp makes messages [from, to) of b's poll, which no handler will
// run, visible again at once (abandon), and records them as settled.
func (b *deleteBatch) giveUp(from, to int) {
	b.stopExtending(from, to)
	b.p.abandon(b.hctx, b.raw[from:to])
	b.skip(to - from)
}

// skip records that n messages of the poll will not be handled (shutdown
// abandoned them, or an earlier message of their FIFO group failed);
// their held slots were released by abandon.
func (b *deleteBatch) skip(n int) {
	b.mu.Lock()
	b.left -= n
	if b.left == 0 && b.n > 0 {
		b.flushLocked()
		return
	}
	b.mu.Unlock()
}

// flushLocked takes the pending entries, unlocks b and deletes them. It
// stops their linger timer; one that already fired finds b.gen changed and
// does nothing.
func (b *deleteBatch) flushLocked() {
	var idx [maxBatch]int
	n := copy(idx[:], b.pending[:b.n])
	b.n = 0
	if b.timer != nil && b.timer.Stop() {
		b.p.wg.Done()
	}
	b.timer = nil
	b.gen++
	b.mu.Unlock()
	b.delete(idx[:n])
}

// delete deletes the messages at idx with one DeleteMessageBatch and
// reports the request to the observers once, with each message's outcome
// (see middleware.ReportSettledEach). An entry the response lists neither
// as deleted nor as failed was not deleted.
func (b *deleteBatch) delete(idx []int) {
	p := b.p
	defer p.release(len(idx))
	var entries [maxBatch]types.DeleteMessageBatchRequestEntry
	for j, i := range idx {
		entries[j] = types.DeleteMessageBatchRequestEntry{Id: &entryIDs[i], ReceiptHandle: b.raw[i].ReceiptHandle}
	}
	start := time.Now()
	sctx, cancel := context.WithTimeout(b.hctx, settleTimeout)
	out, err := p.s.api.DeleteMessageBatch(sctx, &sqs.DeleteMessageBatchInput{
		QueueUrl: aws.String(p.queueURL),
		Entries:  entries[:len(idx)],
	})
	cancel()
	if err != nil {
		err = named(err)
		msgs := make([]*middleware.Message, len(idx))
		for j, i := range idx {
			msgs[j] = b.msgs[i]
		}
		p.obs.Settled(b.hctx, p.dest, propagation.OpDelete, start, msgs, err)
		return
	}

	// errs[i] is the outcome of message i: nil until the response lists
	// it as deleted, errUnlisted for an entry it does not mention.
	var errs [maxBatch]error
	for _, i := range idx {
		errs[i] = errUnlisted
	}
	for _, f := range out.Failed {
		if i, ok := b.entry(f.Id, idx); ok {
			errs[i] = &BatchEntryError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: f.SenderFault}
		}
	}
	for _, s := range out.Successful {
		if i, ok := b.entry(s.Id, idx); ok && errs[i] == errUnlisted {
			errs[i] = nil
		}
	}
	msgs := make([]*middleware.Message, len(idx))
	failed := false
	for j, i := range idx {
		msgs[j] = b.msgs[i]
		failed = failed || errs[i] != nil
	}
	if !failed {
		p.obs.Settled(b.hctx, p.dest, propagation.OpDelete, start, msgs, nil)
		return
	}
	outcomes := make([]error, len(idx))
	for j, i := range idx {
		outcomes[j] = errs[i]
	}
	// One request is one settle operation even when some entries failed:
	// reported in one call, metrics measure it once (with error.type),
	// while tracing still gives each failed message its own settle span.
	// An observer that knows nothing of this gets the deleted messages in
	// one Settled call and each failed one in its own.
	middleware.ReportSettledEach(b.hctx, p.obs, p.dest, propagation.OpDelete, start, msgs, outcomes)
}

// entry returns the message index an entry Id of a response names, if it
// is one of idx.
func (b *deleteBatch) entry(id *string, idx []int) (int, bool) {
	i, err := strconv.Atoi(aws.ToString(id))
	if err != nil || i < 0 || i >= maxBatch || !slices.Contains(idx, i) {
		return 0, false
	}
	return i, true
}

// errUnlisted is the outcome of a DeleteMessageBatch entry that the
// response lists neither as deleted nor as failed.
var errUnlisted = errors.New("awssqs: missing from the DeleteMessageBatch response")

// reserve takes n held slots, giving up (and the slots it took) when ctx
// ends first.
func (p *poller) reserve(ctx context.Context, n int) bool {
	for i := range n {
		select {
		case p.held <- struct{}{}:
		case <-ctx.Done():
			p.release(i)
			return false
		}
	}
	if ctx.Err() != nil {
		p.release(n)
		return false
	}
	return true
}

func (p *poller) release(n int) {
	for range n {
		<-p.held
	}
}

// permanent reports whether a ReceiveMessage error will not go away by
// itself: the queue is missing, the credentials are refused, the request is
// invalid. Throttling, expired (refreshable) credentials, server faults and
// network errors are transient. goaws marks no fault, so a 4xx status stands
// in for a client fault.
func permanent(err error) bool {
	var missing *types.QueueDoesNotExist
	if errors.As(err, &missing) {
		return true
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch code := apiErr.ErrorCode(); {
	case code == "AWS.SimpleQueueService.NonExistentQueue":
		return true
	case strings.Contains(code, "Throttl"), strings.Contains(code, "OverLimit"),
		code == "RequestLimitExceeded", code == "ExpiredToken":
		return false
	}
	switch apiErr.ErrorFault() {
	case smithy.FaultClient:
		return true
	case smithy.FaultServer:
		return false
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		switch respErr.HTTPStatusCode() {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return true
		}
	}
	return false
}

// requestID is the x-amzn-RequestId of a response, "" when there was none.
func requestID(md smithymiddleware.Metadata) string {
	id, _ := awsmiddleware.GetRequestIDMetadata(md)
	return id
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
