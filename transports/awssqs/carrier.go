package awssqs

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/otelmq/otelmq/propagation"
)

// MaxAttributes is how many message attributes SQS accepts on one message.
const MaxAttributes = 10

// PackedAttribute is the String message attribute that carries all the
// propagation fields of a message when they do not fit beside its other
// attributes. Its value is URL query encoding (net/url), keys sorted:
//
//	baggage=k%3Dv&traceparent=00-4bf9...-01&tracestate=vendor%3Dx
//
// so one attribute slot carries any number of fields.
const PackedAttribute = "otelmq"

// DroppedReason is the reason the Publisher records, with
// propagation.Propagator.RecordDropped, for propagation fields that found no
// attribute slot.
const DroppedReason = "sqs_attribute_budget"

// Carrier adapts SQS message attributes to propagation.TextMapCarrier.
//
// Get reads String and Number attributes (a nil StringValue reads as "") and
// Binary ones (their bytes as a string). It tries the exact name, then a
// case-insensitive match, because other producers and proxies do not agree on
// the casing of "traceparent"; then the fields packed in PackedAttribute.
// Set writes a String attribute, allocating the map when it is nil; an empty
// value removes the attribute instead, because SQS rejects empty values. The
// zero Carrier holds no map: Get returns "" and Set does nothing.
//
// Set does not enforce the 10-attribute budget; the Publisher does, with
// EncodeHeaders.
type Carrier struct {
	attrs *map[string]types.MessageAttributeValue
}

var _ propagation.TextMapCarrier = Carrier{}

// NewCarrier returns a Carrier that reads and writes *attrs.
func NewCarrier(attrs *map[string]types.MessageAttributeValue) Carrier {
	return Carrier{attrs: attrs}
}

// Get returns the value under key, "" when there is none.
func (c Carrier) Get(key string) string {
	if c.attrs == nil || key == PackedAttribute {
		return ""
	}
	attrs := *c.attrs
	if k, ok := foldKey(attrs, key); ok {
		return attributeText(attrs[k])
	}
	packed := Unpack(c.packed())
	if k, ok := foldKey(packed, key); ok {
		return packed[k]
	}
	return ""
}

// Set stores value under key as a String attribute.
func (c Carrier) Set(key, value string) {
	if c.attrs == nil {
		return
	}
	if value == "" {
		delete(*c.attrs, key)
		return
	}
	if *c.attrs == nil {
		*c.attrs = map[string]types.MessageAttributeValue{}
	}
	(*c.attrs)[key] = stringAttribute(value)
}

// Keys returns the attribute names and the names packed in
// PackedAttribute, each once; PackedAttribute itself is not one of them.
func (c Carrier) Keys() []string {
	if c.attrs == nil {
		return nil
	}
	keys := make([]string, 0, len(*c.attrs))
	for k := range *c.attrs {
		if k != PackedAttribute {
			keys = append(keys, k)
		}
	}
	for k := range Unpack(c.packed()) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

func (c Carrier) packed() string {
	v, ok := (*c.attrs)[PackedAttribute]
	if !ok {
		return ""
	}
	return attributeText(v)
}

// Pack encodes fields as the value of PackedAttribute. Empty values are left
// out, as they would be as attributes.
func Pack(fields map[string]string) string {
	q := make(url.Values, len(fields))
	for k, v := range fields {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

// Unpack decodes a PackedAttribute value. It never fails: a malformed pair is
// skipped and the others are kept, because a bad attribute from some other
// producer must not cost the message its trace context. Of repeated keys the
// first wins.
func Unpack(s string) map[string]string {
	if s == "" {
		return nil
	}
	q, _ := url.ParseQuery(s) // keeps every pair it could parse
	fields := make(map[string]string, len(q))
	for k, vs := range q {
		if k != "" && len(vs) > 0 && vs[0] != "" {
			fields[k] = vs[0]
		}
	}
	return fields
}

// attributeText returns the text of v: the StringValue of String and Number
// attributes (and their custom ".x" variants), the bytes of Binary ones.
func attributeText(v types.MessageAttributeValue) string {
	if strings.HasPrefix(aws.ToString(v.DataType), "Binary") || v.StringValue == nil && v.BinaryValue != nil {
		return string(v.BinaryValue)
	}
	return aws.ToString(v.StringValue)
}

func stringAttribute(s string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: stringDataType, StringValue: aws.String(s)}
}

// stringDataType is shared by every attribute written: the SDK only reads
// it, and one pointer instead of one per attribute saves an allocation each.
var stringDataType = aws.String("String")

// ErrTooManyAttributes was returned by EncodeHeaders when a message's own
// headers needed more than MaxAttributes attributes.
//
// Deprecated: EncodeHeaders now packs what does not fit into
// PackedAttribute, so that a message another broker (or DeadLetter's
// headers on a message SQS accepted) brought past the budget is still
// sent; nothing returns this error any more.
var ErrTooManyAttributes = errors.New("awssqs: more than 10 message attributes")

// EncodeHeaders turns headers into message attributes within SQS's budget of
// MaxAttributes per message. The names in propagationFields (matched without
// regard to case) are propagation fields; every other header is the
// application's own and gets one attribute.
//
//   - More than MaxAttributes application headers: MaxAttributes-1 of them
//     get an attribute each, the application's before the library's own
//     ("otelmq-" headers, such as DeadLetter's), each in name order, and the
//     others are packed into PackedAttribute with the propagation fields.
//     Receivers that use this package read them all as headers again; a
//     message brought past SQS's budget (a Kafka record relayed here, a
//     message SQS accepted plus DeadLetter's headers) is sent, not refused.
//   - The propagation fields fit beside them: one String attribute each.
//   - Otherwise, if one slot is free: all of them packed into PackedAttribute.
//   - Otherwise they are left out and returned in dropped (sorted); the
//     message can still be sent, without its trace context.
//
// Empty values are skipped (SQS rejects them), and so is
// propagation.XRayKey, which travels as a message system attribute. A header
// named PackedAttribute is an error: the name is reserved.
func EncodeHeaders(headers map[string]string, propagationFields []string) (attrs map[string]types.MessageAttributeValue, dropped []string, err error) {
	own := make(map[string]string, len(headers))
	fields := make(map[string]string, len(propagationFields))
	for k, v := range headers {
		switch {
		case v == "" || k == propagation.XRayKey:
		case strings.EqualFold(k, PackedAttribute):
			return nil, nil, fmt.Errorf("awssqs: header %q: the name is reserved for packed propagation fields", k)
		case slices.ContainsFunc(propagationFields, func(f string) bool { return strings.EqualFold(f, k) }):
			fields[k] = v
		default:
			own[k] = v
		}
	}
	if len(own) > MaxAttributes {
		// The overflow travels packed with the propagation fields.
		names := slices.SortedFunc(maps.Keys(own), func(a, b string) int {
			if oa, ob := isLibraryHeader(a), isLibraryHeader(b); oa != ob {
				if oa {
					return 1
				}
				return -1
			}
			return strings.Compare(a, b)
		})
		for _, k := range names[MaxAttributes-1:] {
			fields[k] = own[k]
			delete(own, k)
		}
	}
	attrs = make(map[string]types.MessageAttributeValue, min(len(own)+len(fields), MaxAttributes))
	for k, v := range own {
		attrs[k] = stringAttribute(v)
	}
	switch {
	case len(fields) == 0:
	case len(own)+len(fields) <= MaxAttributes:
		for k, v := range fields {
			attrs[k] = stringAttribute(v)
		}
	case len(own) < MaxAttributes:
		attrs[PackedAttribute] = stringAttribute(Pack(fields))
	default:
		for k := range fields {
			dropped = append(dropped, k)
		}
		slices.Sort(dropped)
	}
	if len(attrs) == 0 {
		attrs = nil
	}
	return attrs, dropped, nil
}

// isLibraryHeader reports whether a header is one this library adds
// (DeadLetter's), which gives way to the application's own for an
// attribute of its own.
func isLibraryHeader(name string) bool {
	return len(name) >= len("otelmq-") && strings.EqualFold(name[:len("otelmq-")], "otelmq-")
}

// decodeHeaders returns the headers carried by attrs: every attribute, then the packed propagation fields where no attribute of that name
// exists.
func decodeHeaders(attrs map[string]types.MessageAttributeValue) map[string]string {
	if len(attrs) == 0 {
		return nil
	}
	headers := make(map[string]string, len(attrs))
	var packed string
	for k, v := range attrs {
		if k == PackedAttribute {
			packed = attributeText(v)
		} else {
			headers[k] = attributeText(v)
		}
	}
	for k, v := range Unpack(packed) {
		if _, ok := headers[k]; !ok {
			headers[k] = v
		}
	}
	// The propagation fields under the names the propagator reads: other
	// producers spell them as they like (Go's http.Header makes
	// "Traceparent"), and the middleware reads Headers by exact name.
	if !hasFieldVariant(headers) {
		return headers // the common case: one pass, no lookups
	}
	for _, field := range w3cFields {
		if k, ok := foldKey(headers, field); ok && k != field {
			headers[field] = headers[k]
			delete(headers, k)
		}
	}
	return headers
}

// hasFieldVariant reports whether a key of headers spells a W3C field in
// another casing.
func hasFieldVariant(headers map[string]string) bool {
	for k := range headers {
		for _, field := range w3cFields {
			if len(k) == len(field) && k != field && strings.EqualFold(k, field) {
				return true
			}
		}
	}
	return false
}

// w3cFields are the W3C propagation fields, as the W3C propagators name them.
var w3cFields = [...]string{"traceparent", "tracestate", "baggage"}

// foldKey returns the key of m that is key, or else equal to key under
// case folding; among several of those the least in byte order, so that
// which one wins does not depend on map order. The packed attribute's name
// is never one.
func foldKey[V any](m map[string]V, key string) (string, bool) {
	if _, ok := m[key]; ok {
		return key, true
	}
	found, ok := "", false
	for k := range m {
		if k != PackedAttribute && strings.EqualFold(k, key) && (!ok || k < found) {
			found, ok = k, true
		}
	}
	return found, ok
}
