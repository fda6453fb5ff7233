package awssqs

import (
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/internal/destcache"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// System attribute names of ReceiveMessage.
const (
	attrReceiveCount  = string(types.MessageSystemAttributeNameApproximateReceiveCount)
	attrSentTimestamp = string(types.MessageSystemAttributeNameSentTimestamp)
	attrTraceHeader   = string(types.MessageSystemAttributeNameAWSTraceHeader)
	attrGroupID       = string(types.MessageSystemAttributeNameMessageGroupId)
)

// describe names a queue by its URL: the queue name is the last path segment
// (https://sqs.us-east-1.amazonaws.com/123456789012/orders -> orders).
func describe(queueURL string) middleware.Destination { return destinations.Get(queueURL) }

// destinations memoizes destinationOf for every Publisher, Subscriber and
// Instrumentation: it depends on the URL alone, and the middleware asks on
// every Publish (and the Instrumentation on every message).
var destinations = destcache.Cache{Build: destinationOf}

// destinationOf builds describe's result: it parses the URL twice and
// allocates the attributes.
func destinationOf(queueURL string) middleware.Destination {
	d := middleware.Destination{
		System:     propagation.SystemSQS,
		Name:       queueName(queueURL),
		Attributes: []attribute.KeyValue{propagation.SQSQueueURL(queueURL)},
	}
	u, err := url.Parse(queueURL)
	if err != nil || u.Host == "" {
		return d // one attribute: a slice of length and capacity 1
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	d.Attributes = append(d.Attributes, propagation.ServerAddress(host))
	if p, err := strconv.Atoi(port); err == nil {
		d.Attributes = append(d.Attributes, propagation.ServerPort(p))
	}
	d.Attributes = slices.Clip(d.Attributes) // shared: an append must copy
	return d
}

func queueName(queueURL string) string {
	if u, err := url.Parse(queueURL); err == nil && u.Path != "" {
		return path.Base(strings.TrimSuffix(u.Path, "/"))
	}
	return path.Base(strings.TrimSuffix(queueURL, "/"))
}

// isFIFO reports whether queueURL names a FIFO queue, whose names end in
// ".fifo".
func isFIFO(queueURL string) bool { return strings.HasSuffix(queueName(queueURL), ".fifo") }

// native is a received message as Message.As reaches it: a pointer type,
// so setting it on a Message allocates nothing.
type native types.Message

func (n *native) As(target any) bool {
	switch t := target.(type) {
	case **types.Message:
		*t = (*types.Message)(n)
	case *types.Message:
		*t = types.Message(*n)
	default:
		return false
	}
	return true
}

// received is a Message with room for its attributes, so that both take
// one allocation.
type received struct {
	msg   middleware.Message
	attrs [3]attribute.KeyValue
}

// message converts m, received from queueURL, to a Message; As reaches m.
func message(m *types.Message, queueURL, requestID string) *middleware.Message {
	r := &received{msg: middleware.Message{
		ID:          aws.ToString(m.MessageId),
		Body:        []byte(aws.ToString(m.Body)),
		Headers:     decodeHeaders(m.MessageAttributes),
		Destination: queueURL,
	}}
	msg := &r.msg
	if v := m.Attributes[attrTraceHeader]; v != "" {
		if msg.Headers == nil {
			msg.Headers = make(map[string]string, 1)
		}
		msg.Headers[propagation.XRayKey] = v
	}
	msg.Time = sentTime(m)
	if n, err := strconv.Atoi(m.Attributes[attrReceiveCount]); err == nil && n > 0 {
		msg.DeliveryCount = n
	}
	if g := m.Attributes[attrGroupID]; g != "" {
		msg.Key = []byte(g)
	}
	msg.SetNative((*native)(m))
	r.attrs[0], r.attrs[1] = propagation.MessageID(msg.ID), propagation.SQSQueueURL(queueURL)
	n := 2
	if requestID != "" {
		r.attrs[2] = propagation.AWSRequestID(requestID)
		n++
	}
	msg.SetAttributes(r.attrs[:n:n]...)
	return msg
}

// sentTime is when SQS took m (its SentTimestamp system attribute), zero
// when m does not say.
func sentTime(m *types.Message) time.Time {
	if ms, err := strconv.ParseInt(m.Attributes[attrSentTimestamp], 10, 64); err == nil {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}
