package awssqs

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestEncodeHeadersBudgetWithoutFields: a message without propagation
// fields (published without tracing, relayed from another broker) keeps
// an attribute per header up to MaxAttributes; past it, the overflow
// opens the packed attribute, which takes one of the ten slots.
func TestEncodeHeadersBudgetWithoutFields(t *testing.T) {
	for _, tt := range []struct {
		user, attrs, packed int
	}{
		{10, 10, 0},
		{11, 10, 2}, // 9 of their own, the packed one holds 2
		{14, 10, 5},
	} {
		headers := userHeaders(tt.user)
		attrs, _, err := EncodeHeaders(headers, DefaultPropagationFields)
		if err != nil {
			t.Fatal(err)
		}
		if len(attrs) != tt.attrs {
			t.Errorf("%d headers: %d attributes, want %d: %v", tt.user, len(attrs), tt.attrs, slices.Sorted(maps.Keys(attrs)))
		}
		if got := len(Unpack(aws.ToString(attrs[PackedAttribute].StringValue))); got != tt.packed {
			t.Errorf("%d headers: %d packed, want %d", tt.user, got, tt.packed)
		}
		if got := decodeHeaders(attrs); !maps.Equal(got, headers) {
			t.Errorf("%d headers decoded as %v", tt.user, got)
		}
	}
}

// TestAttributeValueTypes: a header value goes as a String attribute when
// SQS takes it as text (tab, LF and CR included), else as a Binary one
// holding the same bytes; SQS refuses a String attribute without a
// StringValue, and the SDK would mangle text it cannot encode.
func TestAttributeValueTypes(t *testing.T) {
	for _, tt := range []struct {
		v      string
		binary bool
	}{
		{"plain", false},
		{"tab\there\nand\r\nlines", false},
		{"\uFFFD \uD7FF \uE000 \U0010FFFF 😀", false},
		{"nul\x00", true},
		{"unit separator\x1f", true},
		{"\x7f", false}, // DEL is in the XML character set
		{"bad \xc3\x28", true},
		{"\uFFFE", true},
		{"\uFFFF", true},
	} {
		attrs, _, err := EncodeHeaders(map[string]string{"h": tt.v}, DefaultPropagationFields)
		if err != nil {
			t.Fatal(err)
		}
		a := attrs["h"]
		switch typ := aws.ToString(a.DataType); {
		case tt.binary && (typ != "Binary" || a.StringValue != nil || !bytes.Equal(a.BinaryValue, []byte(tt.v))):
			t.Errorf("%q: %s attribute %+v, want Binary with its bytes", tt.v, typ, a)
		case !tt.binary && (typ != "String" || aws.ToString(a.StringValue) != tt.v || a.BinaryValue != nil):
			t.Errorf("%q: %s attribute %+v, want String", tt.v, typ, a)
		}
		if got := decodeHeaders(attrs)["h"]; got != tt.v {
			t.Errorf("%q decoded as %q", tt.v, got)
		}
	}
}

// TestAttributeNames: the names SQS takes as attribute names get an
// attribute; the others travel packed, and decode back.
func TestAttributeNames(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"order-id_v1.2", true},
		{strings.Repeat("n", 256), true},
		{strings.Repeat("n", 257), false},
		{"a..b", false},
		{".a", false},
		{"a.", false},
		{"a b", false},
		{"AWS.x", false},
		{"aws.x", false},
		{"Amazon.x", false},
		{"AMAZON.x", false},
		{"awsx", true},
		{"amazonx", true},
	} {
		attrs, _, err := EncodeHeaders(map[string]string{tt.name: "v"}, DefaultPropagationFields)
		if err != nil {
			t.Fatal(err)
		}
		_, own := attrs[tt.name]
		_, packed := attrs[PackedAttribute]
		if own != tt.ok || packed == tt.ok {
			t.Errorf("%.20q (%d bytes): attribute %v, packed %v; want an attribute %v", tt.name, len(tt.name), own, packed, tt.ok)
		}
		if got := decodeHeaders(attrs)[tt.name]; got != "v" {
			t.Errorf("%.20q decoded as %q", tt.name, got)
		}
	}
}
