package awssqs

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/otelmq/otelmq/propagation"
)

// FuzzMessage decodes a fuzzed received message: attributes of every data
// type (the packed one included), hostile system attributes. Nothing may
// panic; every attribute must reach Headers (a W3C field spelt in another
// case under the field's own name); and what Headers decoded must encode
// and decode to itself, so relaying a message keeps its headers.
func FuzzMessage(f *testing.F) {
	f.Add([]byte("traceparent\x00"+testTraceparent+"\x01Baggage\x00a=b"), "traceparent=x&k=v", "1700000000000", "3", "Root=1-5759e988-bd862e3fe1be46a994272793", "g", uint8(0))
	f.Add([]byte("TraceParent\x00a\x01tRACEPARENT\x00b\x01otelmq\x00x"), "%zz", "-1", "0", "", "", uint8(1))
	f.Add([]byte("a\x00\x01\x00\x01b\x00\xff"), "", "99999999999999999999", "-5", "\xff", "\x00", uint8(2))
	f.Fuzz(func(t *testing.T, attrData []byte, packed, sent, count, xray, group string, kinds uint8) {
		attrs := map[string]types.MessageAttributeValue{}
		for i, part := range strings.Split(string(attrData), "\x01") {
			k, v, _ := strings.Cut(part, "\x00")
			switch (int(kinds) + i) % 4 {
			case 0:
				attrs[k] = str(v)
			case 1:
				attrs[k] = types.MessageAttributeValue{DataType: aws.String("Binary"), BinaryValue: []byte(v)}
			case 2:
				attrs[k] = types.MessageAttributeValue{DataType: aws.String("Number.custom"), StringValue: aws.String(v)}
			default:
				attrs[k] = types.MessageAttributeValue{DataType: aws.String("String")} // no value at all
			}
		}
		if packed != "" {
			attrs[PackedAttribute] = str(packed)
		}
		raw := &types.Message{
			MessageId:         aws.String("id"),
			Body:              aws.String("body"),
			MessageAttributes: attrs,
			Attributes: map[string]string{
				attrSentTimestamp: sent, attrReceiveCount: count, attrTraceHeader: xray, attrGroupID: group,
			},
		}
		msg := message(raw, "http://127.0.0.1:1/000000000000/q", "req")
		if msg.ID != "id" || string(msg.Body) != "body" || msg.DeliveryCount < 0 {
			t.Fatalf("message = %+v", msg)
		}
		if xray != "" && msg.Headers[propagation.XRayKey] != xray {
			t.Fatalf("X-Ray header %q, want %q", msg.Headers[propagation.XRayKey], xray)
		}
		for k, v := range attrs {
			if k == PackedAttribute {
				continue
			}
			if name := w3cName(k, attrs); name != k {
				if _, ok := msg.Headers[name]; !ok {
					t.Fatalf("attribute %q is not among the headers %q as %q", k, msg.Headers, name)
				}
			} else if got, ok := msg.Headers[k]; !ok || got != attributeText(v) {
				t.Fatalf("header %q = %q, want %q", k, got, attributeText(v))
			}
		}

		headers := map[string]string{}
		reserved := false
		for k, v := range msg.Headers {
			if k != propagation.XRayKey && k != "" && v != "" {
				headers[k] = v // what EncodeHeaders sends
			}
			reserved = reserved || strings.EqualFold(k, PackedAttribute)
		}
		encoded, dropped, err := EncodeHeaders(headers, w3cFields[:])
		if err != nil {
			if !reserved {
				t.Fatalf("EncodeHeaders(%q): %v", headers, err)
			}
			return
		}
		if len(encoded) > MaxAttributes {
			t.Fatalf("%d attributes from %q", len(encoded), headers)
		}
		decoded := decodeHeaders(encoded)
		for _, k := range dropped {
			delete(headers, k)
		}
		if len(decoded) > len(headers) {
			t.Fatalf("headers %q came back as %q", headers, decoded)
		}
		for k, v := range headers {
			if name := w3cName(k, headers); name != k {
				if _, ok := decoded[name]; !ok {
					t.Fatalf("header %q came back without %q: %q", k, name, decoded)
				}
			} else if decoded[k] != v {
				t.Fatalf("header %q = %q came back as %q", k, v, decoded[k])
			}
		}
	})
}

// w3cName is the header name decoding files key under: the W3C field it
// spells in another case when m holds no key spelt exactly so, else key.
func w3cName[V any](key string, m map[string]V) string {
	for _, field := range w3cFields {
		if key != field && strings.EqualFold(key, field) {
			if _, exact := m[field]; !exact {
				return field
			}
		}
	}
	return key
}
