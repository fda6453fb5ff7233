package awssqs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
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

// Subscriber long-polls an SQS queue: a handler's nil deletes the message,
// an error or panic leaves it on the queue to be redelivered when its
// visibility timeout ends (see WithRetryVisibility).
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
// queueURL, with the URL and the server address as attributes.
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
// messages. A handler's nil deletes its message.
//
// When ctx ends Subscribe stops polling, waits for the running handlers,
// deletes the messages they succeeded on, makes the received messages no
// handler started visible again at once, and returns nil.
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
	if cfg.visibilityTimeout != nil {
		in.VisibilityTimeout = seconds(*cfg.visibilityTimeout)
	}
	want := int(cfg.maxMessages)
	backoff := time.Duration(0)
	for {
		if !p.reserve(ctx, want) {
			return nil
		}
		start := time.Now()
		out, err := p.s.api.ReceiveMessage(ctx, in)
		if err != nil {
			p.release(want)
			if ctx.Err() != nil {
				return nil
			}
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

// dispatch reports one poll's messages as received and hands them to
// handlers, in order, as handler slots free up.
func (p *poller) dispatch(ctx context.Context, start time.Time, raw []types.Message, requestID string) {
	msgs := make([]*middleware.Message, len(raw))
	for i := range raw {
		msgs[i] = message(&raw[i], p.queueURL, requestID)
	}
	hctx := context.WithoutCancel(p.obs.Received(ctx, p.dest, start, msgs))
	p.wg.Go(func() {
		for i, msg := range msgs {
			select {
			case p.running <- struct{}{}:
			case <-ctx.Done():
				p.abandon(hctx, raw[i:])
				return
			}
			if ctx.Err() != nil { // both cases were ready
				<-p.running
				p.abandon(hctx, raw[i:])
				return
			}
			p.wg.Go(func() {
				defer func() { <-p.running; p.release(1) }()
				p.handle(hctx, msg, &raw[i])
			})
		}
	})
}

// handle runs the handler on msg and settles it: delete on success; on
// failure, the visibility change WithRetryVisibility asks for.
func (p *poller) handle(hctx context.Context, msg *middleware.Message, m *types.Message) {
	err := middleware.Call(hctx, p.h, msg)
	sctx, cancel := context.WithTimeout(hctx, settleTimeout)
	defer cancel()
	if err != nil {
		if d := p.s.cfg.retryVisibility; d != nil {
			_, _ = p.s.api.ChangeMessageVisibility(sctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl:          aws.String(p.queueURL),
				ReceiptHandle:     m.ReceiptHandle,
				VisibilityTimeout: seconds(*d),
			})
		}
		return
	}
	start := time.Now()
	_, err = p.s.api.DeleteMessage(sctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(p.queueURL), ReceiptHandle: m.ReceiptHandle})
	p.obs.Settled(hctx, p.dest, propagation.OpDelete, start, []*middleware.Message{msg}, err)
}

// abandon makes received messages that no handler will run visible again at
// once, so shutting down does not hide them for a visibility timeout.
func (p *poller) abandon(hctx context.Context, raw []types.Message) {
	defer p.release(len(raw))
	sctx, cancel := context.WithTimeout(hctx, settleTimeout)
	defer cancel()
	for i := range raw {
		_, _ = p.s.api.ChangeMessageVisibility(sctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl:          aws.String(p.queueURL),
			ReceiptHandle:     raw[i].ReceiptHandle,
			VisibilityTimeout: 0,
		})
	}
}

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
