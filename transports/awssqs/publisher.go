package awssqs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Publisher sends Messages to SQS queues; the destination of Publish is the
// queue URL. It is safe for concurrent use.
type Publisher struct {
	api API
	cfg config
}

var (
	_ middleware.Publisher = (*Publisher)(nil)
	_ middleware.Describer = (*Publisher)(nil)
)

// NewPublisher returns a Publisher that sends through api, usually an
// *sqs.Client.
func NewPublisher(api API, opts ...Option) *Publisher {
	return &Publisher{api: api, cfg: newConfig(opts)}
}

// Describe names the destination by the queue name, the last segment of
// queueURL, with the URL and the server address as attributes. The
// Attributes of the result are shared by every caller in the process: do
// not modify them (appending is fine).
func (p *Publisher) Describe(queueURL string) middleware.Destination { return describe(queueURL) }

// Publish sends msgs to the queue at queueURL: one message with
// SendMessage, more with SendMessageBatch, up to ten and 256 KiB of bodies
// and attributes per request. It sets each sent message's ID to the
// MessageId SQS assigned, except on a FIFO queue (see below). The error
// names every message that was not sent, by index, ID, error code and
// message; the others were sent.
//
// Headers become message attributes within the budget EncodeHeaders
// describes; propagation fields it drops are recorded with
// the RecordDropped of the Propagator WithPropagator sets and the message is
// still sent.
// Headers[propagation.XRayKey] becomes the AWSTraceHeader system attribute
// when it is an X-Ray header propagation.ParseXRay reads, else an ordinary
// attribute (SQS would refuse the message).
// Time is not sent: SQS stamps SentTimestamp.
//
// For a FIFO queue, Key is the MessageGroupId and WithDeduplicationID gives
// the MessageDeduplicationId (by default the message's ID). Publish leaves
// ID as the caller set it, so that publishing again what failed sends the
// same deduplication IDs (or none, with ContentBasedDeduplication) and SQS
// drops what was already sent; the send span then records that ID (or
// none), not the MessageId consumers see. Once a message of a group fails, the later
// messages of that group in msgs that are not yet sent are not sent either
// (they fail with ErrFIFOGroupFailed), so that sending the failed ones
// again keeps the group's order. Those in the same SendMessageBatch as the
// failed one are the exception: SQS judges each entry on its own and may
// have sent them, ahead of it; the error names only the failed one.
func (p *Publisher) Publish(ctx context.Context, queueURL string, msgs ...*middleware.Message) error {
	fifo := isFIFO(queueURL)
	var (
		errs   []error
		failed []string // FIFO groups with a message not sent
	)
	fail := func(i int, msg *middleware.Message, err error) {
		id := ""
		if msg != nil {
			id = msg.ID
			if fifo && len(msg.Key) > 0 && !slices.Contains(failed, string(msg.Key)) {
				failed = append(failed, string(msg.Key))
			}
		}
		errs = append(errs, fmt.Errorf("message %d (id %q): %w", i, id, err))
	}
	// held fails msg, and reports so, when an earlier message of its FIFO
	// group failed.
	held := func(i int, msg *middleware.Message) bool {
		if len(failed) == 0 || msg == nil || !slices.Contains(failed, string(msg.Key)) {
			return false
		}
		fail(i, msg, ErrFIFOGroupFailed)
		return true
	}

	entries := make([]types.SendMessageBatchRequestEntry, 0, len(msgs))
	// The entries' Id and MessageBody point into strs: one allocation for
	// all of them instead of two per message.
	strs := make([]entryStrings, len(msgs))
	for i, msg := range msgs {
		if held(i, msg) {
			continue
		}
		entry, err := p.entry(fifo, i, msg, &strs[i])
		if err != nil {
			fail(i, msg, err)
			continue
		}
		entries = append(entries, entry)
	}

	if len(msgs) == 1 && len(entries) == 1 {
		e := entries[0]
		out, err := p.api.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl:                aws.String(queueURL),
			MessageBody:             e.MessageBody,
			MessageAttributes:       e.MessageAttributes,
			MessageSystemAttributes: e.MessageSystemAttributes,
			MessageGroupId:          e.MessageGroupId,
			MessageDeduplicationId:  e.MessageDeduplicationId,
		})
		switch {
		case err != nil:
			fail(0, msgs[0], refused(named(err)))
		case !fifo:
			msgs[0].ID = aws.ToString(out.MessageId)
		}
		return publishError(queueURL, errs)
	}

	for len(entries) > 0 {
		if len(failed) > 0 {
			// Entries of a group that failed in an earlier batch stay
			// unsent.
			entries = slices.DeleteFunc(entries, func(e types.SendMessageBatchRequestEntry) bool {
				i := entryIndex(e)
				return held(i, msgs[i])
			})
			if len(entries) == 0 {
				break
			}
		}
		n := batchLen(entries)
		p.sendBatch(ctx, queueURL, fifo, entries[:n:n], msgs, fail)
		entries = entries[n:]
	}
	return publishError(queueURL, errs)
}

// ErrBodyNotText is why Publish refuses a message whose body SQS would not
// take as text (not UTF-8, or control characters other than tab, CR and
// LF): the SDK would replace the bytes it cannot encode, SQS would keep
// the altered body, and the SDK would then fail the send on the checksum,
// so a relay sending it again would put one altered copy on the queue per
// attempt. It is marked middleware.Permanent; encode binary bodies
// (base64) before publishing them to SQS.
var ErrBodyNotText = errors.New("the body is not text SQS takes (valid UTF-8 without control characters but tab, CR, LF)")

// ErrFIFOGroupFailed is why Publish did not send a message to a FIFO queue:
// an earlier message of its group (its Key) in the same call failed.
var ErrFIFOGroupFailed = errors.New("not sent: an earlier message of its FIFO group failed")

// maxBatchBytes bounds the payload of one SendMessageBatch (bodies and
// attributes of all its entries): SQS refuses a whole batch past its limit
// (BatchRequestTooLong), which was 256 KiB until 2025 and is 1 MiB since;
// batches are kept to the older one, which both accept.
const maxBatchBytes = 256 * 1024

// batchLen is how many of entries, from the first, go in one
// SendMessageBatch: at most ten, and no more than maxBatchBytes of payload
// unless a single entry is larger (SQS then judges it alone).
func batchLen(entries []types.SendMessageBatchRequestEntry) int {
	size := 0
	for i, e := range entries {
		size += entrySize(e)
		if i == maxBatch || (i > 0 && size > maxBatchBytes) {
			return i
		}
	}
	return len(entries)
}

// entrySize is what SQS counts of an entry against a batch's payload: its
// body, and each attribute's name, type and value.
func entrySize(e types.SendMessageBatchRequestEntry) int {
	n := len(aws.ToString(e.MessageBody))
	for name, a := range e.MessageAttributes {
		n += len(name) + len(aws.ToString(a.DataType)) + len(aws.ToString(a.StringValue)) + len(a.BinaryValue)
	}
	return n
}

// entryStrings holds the strings a batch entry points to.
type entryStrings struct{ id, body string }

// entry converts msgs[i] to a batch entry whose Id is i, sent to a FIFO
// queue when fifo is true; the entry's strings are kept in strs.
func (p *Publisher) entry(fifo bool, i int, msg *middleware.Message, strs *entryStrings) (types.SendMessageBatchRequestEntry, error) {
	if msg == nil {
		return types.SendMessageBatchRequestEntry{}, middleware.Permanent(errors.New("nil message"))
	}
	if !sqsText(string(msg.Body)) {
		return types.SendMessageBatchRequestEntry{}, middleware.Permanent(ErrBodyNotText)
	}
	attrs, _, err := EncodeHeaders(msg.Headers, p.cfg.propagationFields)
	if err != nil {
		return types.SendMessageBatchRequestEntry{}, middleware.Permanent(err)
	}
	strs.id, strs.body = strconv.Itoa(i), string(msg.Body)
	e := types.SendMessageBatchRequestEntry{
		Id:                &strs.id,
		MessageBody:       &strs.body,
		MessageAttributes: attrs,
	}
	if xray := msg.Headers[propagation.XRayKey]; xray != "" && systemTraceHeader(xray) {
		e.MessageSystemAttributes = map[string]types.MessageSystemAttributeValue{
			attrTraceHeader: {DataType: aws.String("String"), StringValue: aws.String(xray)},
		}
	}
	if fifo {
		if len(msg.Key) > 0 {
			e.MessageGroupId = aws.String(string(msg.Key))
		}
		if id := p.cfg.deduplicationID(msg); id != "" {
			e.MessageDeduplicationId = aws.String(id)
		}
	}
	return e, nil
}

// sendBatch sends up to ten entries of msgs to a queue (FIFO when fifo is
// true) and calls fail for each entry that was not sent. SQS accounts for
// every entry in Successful or Failed; an entry in neither is an error, so
// a broken endpoint or proxy answering "{}" can never make messages vanish
// silently.
func (p *Publisher) sendBatch(ctx context.Context, queueURL string, fifo bool, chunk []types.SendMessageBatchRequestEntry, msgs []*middleware.Message, fail func(int, *middleware.Message, error)) {
	out, err := p.api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: chunk})
	if err != nil {
		err = named(err)
		// Not marked permanent: a refusal of the request may be one
		// entry's fault, and the others would go through alone.
		for _, e := range chunk {
			i := entryIndex(e)
			fail(i, msgs[i], err)
		}
		return
	}
	answered := make(map[string]bool, len(chunk))
	for _, ok := range out.Successful {
		id := aws.ToString(ok.Id)
		if i, err := strconv.Atoi(id); err == nil && inChunk(chunk, id) {
			if !fifo {
				msgs[i].ID = aws.ToString(ok.MessageId)
			}
			answered[id] = true
		}
	}
	for _, f := range out.Failed {
		id := aws.ToString(f.Id)
		if !inChunk(chunk, id) {
			continue
		}
		answered[id] = true
		i := entryIndex(types.SendMessageBatchRequestEntry{Id: &id})
		fail(i, msgs[i], refused(&BatchEntryError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: f.SenderFault}))
	}
	for _, e := range chunk {
		if !answered[*e.Id] {
			i := entryIndex(e)
			fail(i, msgs[i], errors.New("missing from the SendMessageBatch response"))
		}
	}
}

// refused marks err middleware.Permanent when SQS refused the message for
// good: its contents, an attribute, a parameter it lacks (a FIFO message
// without a group ID). Sending it again fails again; DeadLetter then
// dead-letters it at once instead of letting it come back for ever.
func refused(err error) error {
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		switch coded.ErrorCode() {
		case "InvalidMessageContents", "InvalidParameterValue", "InvalidAttributeName",
			"InvalidAttributeValue", "MissingParameter", "UnsupportedOperation":
			return middleware.Permanent(err)
		}
	}
	return err
}

// entryIndex is the index in msgs of the message e was built from: its Id.
func entryIndex(e types.SendMessageBatchRequestEntry) int {
	i, _ := strconv.Atoi(*e.Id)
	return i
}

func inChunk(chunk []types.SendMessageBatchRequestEntry, id string) bool {
	return slices.ContainsFunc(chunk, func(e types.SendMessageBatchRequestEntry) bool { return *e.Id == id })
}

// BatchEntryError is why SQS refused one entry of a SendMessageBatch.
type BatchEntryError struct {
	Code        string
	Message     string
	SenderFault bool // the request was at fault, so sending it again fails again
}

// ErrorCode is the entry's SQS error code, its error.type in telemetry
// (middleware.ErrorType), as an API error's code is.
func (e *BatchEntryError) ErrorCode() string { return e.Code }

func (e *BatchEntryError) Error() string {
	fault := "server fault"
	if e.SenderFault {
		fault = "sender fault"
	}
	return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, fault)
}

func publishError(queueURL string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("awssqs: publish to %s: %d message(s) failed: %w", queueName(queueURL), len(errs), errors.Join(errs...))
}
