package awssqs

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/otelmq/otelmq/propagation"
)

// MaxAttributes is how many message attributes SQS accepts on one message.
const MaxAttributes = 10

// PackedAttribute is the String message attribute that carries the
// propagation fields of a message when they do not fit beside its other
// attributes, with the headers that do not fit either and those whose
// names SQS refuses (see EncodeHeaders). Its value is URL query encoding
// (net/url), keys sorted:
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
// MaxAttributes per message and its rules. The names in propagationFields
// (matched without regard to case) are propagation fields; every other
// header is the application's own and gets one attribute.
//
//   - A header whose name SQS refuses as an attribute name (characters
//     other than letters, digits, '_', '-' and '.'; more than 256 of them;
//     an "AWS." or "Amazon." prefix; a leading, trailing or doubled '.')
//     travels packed into PackedAttribute, URL-encoded, as Kafka and AMQP
//     headers may be named anything.
//   - The propagation fields get one attribute each when they fit beside
//     the application's headers and nothing needs packing; otherwise they
//     are packed, with the application's headers that do not fit beside the
//     packed attribute: MaxAttributes-1 of those keep an attribute each,
//     the application's before the library's own ("otelmq-" headers, such
//     as DeadLetter's), each in name order. So the trace context always
//     travels, and a message brought past SQS's budget (a Kafka record
//     relayed here, a message SQS accepted plus DeadLetter's headers) is
//     sent, not refused. Receivers that use this package read all of them
//     as headers again; others see the packed ones as one attribute.
//   - A value SQS would not take as a String (not UTF-8, or characters
//     outside the XML set SQS accepts: control characters, U+FFFE, U+FFFF)
//     goes as a Binary attribute, which receivers read back as the same
//     bytes; the SDK would otherwise replace the bytes it cannot encode.
//
// Empty values and names are skipped (SQS rejects them, and the packed form
// has no empty names), and so is propagation.XRayKey when it holds an X-Ray
// header propagation.ParseXRay reads: that travels as the AWSTraceHeader
// message system attribute. One it cannot read is an ordinary header: SQS
// refuses a malformed AWSTraceHeader, and a message relayed from another
// broker must not fail over a header. A header named PackedAttribute is an
// error: the name is reserved. dropped is always empty: nothing is left out
// any more; it stays for compatibility.
func EncodeHeaders(headers map[string]string, propagationFields []string) (attrs map[string]types.MessageAttributeValue, dropped []string, err error) {
	own := make(map[string]string, len(headers))
	packed := make(map[string]string, len(propagationFields))
	mustPack := false // a name SQS refuses
	for k, v := range headers {
		switch {
		case k == "" || v == "" || k == propagation.XRayKey && systemTraceHeader(v):
		case strings.EqualFold(k, PackedAttribute):
			return nil, nil, fmt.Errorf("awssqs: header %q: the name is reserved for packed propagation fields", k)
		case slices.ContainsFunc(propagationFields, func(f string) bool { return strings.EqualFold(f, k) }):
			packed[k] = v
		case !attributeName(k):
			packed[k] = v
			mustPack = true
		default:
			own[k] = v
		}
	}
	if len(packed) > 0 && !mustPack && len(own)+len(packed) <= MaxAttributes {
		// The propagation fields fit beside: an attribute each.
		attrs = make(map[string]types.MessageAttributeValue, len(own)+len(packed))
		for k, v := range packed {
			attrs[k] = attributeValue(v)
		}
		clear(packed)
	}
	// What must travel packed leaves one slot fewer for the others.
	room := MaxAttributes
	if len(packed) > 0 {
		room--
	}
	if len(own) > room {
		names := slices.SortedFunc(maps.Keys(own), func(a, b string) int {
			if oa, ob := isLibraryHeader(a), isLibraryHeader(b); oa != ob {
				if oa {
					return 1
				}
				return -1
			}
			return strings.Compare(a, b)
		})
		if len(packed) == 0 {
			room-- // the overflow opens the packed attribute
		}
		for _, k := range names[room:] {
			packed[k] = own[k]
			delete(own, k)
		}
	}
	if attrs == nil {
		attrs = make(map[string]types.MessageAttributeValue, min(len(own)+1, MaxAttributes))
	}
	for k, v := range own {
		attrs[k] = attributeValue(v)
	}
	if len(packed) > 0 {
		attrs[PackedAttribute] = stringAttribute(Pack(packed))
	}
	if len(attrs) == 0 {
		attrs = nil
	}
	return attrs, nil, nil
}

// attributeName reports whether SQS takes name as a message attribute name.
func attributeName(name string) bool {
	if name == "" || len(name) > 256 || name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return !hasPrefixFold(name, "aws.") && !hasPrefixFold(name, "amazon.")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// sqsText reports whether SQS takes s as text (a message body, a String
// attribute value): valid UTF-8 of the characters #x9, #xA, #xD,
// #x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF.
func sqsText(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}

// attributeValue is v as a String attribute, or a Binary one when SQS
// would not take it as text.
func attributeValue(v string) types.MessageAttributeValue {
	if sqsText(v) {
		return stringAttribute(v)
	}
	return types.MessageAttributeValue{DataType: binaryDataType, BinaryValue: []byte(v)}
}

// binaryDataType is shared like stringDataType.
var binaryDataType = aws.String("Binary")

// isLibraryHeader reports whether a header is one this library adds
// (DeadLetter's), which gives way to the application's own for an
// attribute of its own.
func isLibraryHeader(name string) bool {
	return len(name) >= len("otelmq-") && strings.EqualFold(name[:len("otelmq-")], "otelmq-")
}

// decodeHeaders returns the headers carried by attrs: every attribute, then
// what the packed attribute holds where no attribute of that name exists.
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

// systemTraceHeader reports whether v, a Headers[propagation.XRayKey], goes
// as the AWSTraceHeader system attribute, whose value SQS requires to be a
// correctly formatted X-Ray header.
func systemTraceHeader(v string) bool {
	_, ok := propagation.ParseXRay(v)
	return ok
}
