package awssqs

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/otelmq/otelmq/propagation"
)

const (
	testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTracestate  = "vendor=value,other=x"
	testBaggage     = "user=alice,tier=gold"
)

func str(s string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
}

func TestCarrierGet(t *testing.T) {
	attrs := map[string]types.MessageAttributeValue{
		"traceparent": str(testTraceparent),
		"Binary":      {DataType: aws.String("Binary"), BinaryValue: []byte("bytes")},
		"NilString":   {DataType: aws.String("String")},
		"Number":      {DataType: aws.String("Number"), StringValue: aws.String("42")},
		"Custom":      {DataType: aws.String("String.json"), StringValue: aws.String(`{"a":1}`)},
		"TraceState":  str(testTracestate),
		PackedAttribute: str(Pack(map[string]string{
			"baggage":     testBaggage,
			"traceparent": "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01", // the direct one wins
		})),
	}
	c := NewCarrier(&attrs)
	for _, tt := range []struct{ key, want string }{
		{"traceparent", testTraceparent},
		{"Binary", "bytes"},
		{"NilString", ""},
		{"Number", "42"},
		{"Custom", `{"a":1}`},
		{"tracestate", testTracestate}, // case-insensitive fallback
		{"TRACESTATE", testTracestate},
		{"baggage", testBaggage}, // packed
		{"Baggage", testBaggage}, // packed, case-insensitive
		{"missing", ""},
		{PackedAttribute, ""}, // the packed attribute is not a field
	} {
		if got := c.Get(tt.key); got != tt.want {
			t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	keys := c.Keys()
	slices.Sort(keys)
	want := []string{"Binary", "Custom", "NilString", "Number", "TraceState", "baggage", "traceparent"}
	if !slices.Equal(keys, want) {
		t.Errorf("Keys() = %v, want %v", keys, want)
	}
}

func TestCarrierSet(t *testing.T) {
	var attrs map[string]types.MessageAttributeValue
	c := NewCarrier(&attrs)
	c.Set("traceparent", testTraceparent)
	if attrs == nil {
		t.Fatal("Set did not allocate the map")
	}
	if got := attrs["traceparent"]; aws.ToString(got.DataType) != "String" || aws.ToString(got.StringValue) != testTraceparent {
		t.Errorf("attribute = %+v", got)
	}
	c.Set("traceparent", "")
	if _, ok := attrs["traceparent"]; ok {
		t.Error("Set with an empty value kept the attribute; SQS rejects empty values")
	}

	var zero Carrier
	zero.Set("k", "v")
	if zero.Get("k") != "" || zero.Keys() != nil {
		t.Error("zero Carrier is not empty")
	}
}

func TestCarrierInjectExtract(t *testing.T) {
	var attrs map[string]types.MessageAttributeValue
	c := NewCarrier(&attrs)
	c.Set("traceparent", testTraceparent)
	c.Set("tracestate", testTracestate)
	headers := decodeHeaders(attrs)
	if headers["traceparent"] != testTraceparent || headers["tracestate"] != testTracestate {
		t.Errorf("decodeHeaders = %v", headers)
	}
}

func TestPackRoundTrip(t *testing.T) {
	fields := map[string]string{
		"traceparent": testTraceparent,
		"tracestate":  testTracestate,
		"baggage":     "k=v%20x;prop=1,a=b&c", // escapes survive
		"empty":       "",
	}
	packed := Pack(fields)
	got := Unpack(packed)
	want := maps.Clone(fields)
	delete(want, "empty")
	if !maps.Equal(got, want) {
		t.Errorf("Unpack(Pack(%v)) = %v (packed %q)", fields, got, packed)
	}
	if Unpack("") != nil {
		t.Error(`Unpack("") != nil`)
	}
	if got := Unpack("traceparent=ok&bad=%zz&baggage=b"); got["traceparent"] != "ok" || got["baggage"] != "b" {
		t.Errorf("Unpack kept %v; want the well-formed pairs", got)
	}
}

// userHeaders returns n application headers.
func userHeaders(n int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h[fmt.Sprintf("h%02d", i)] = fmt.Sprint("v", i)
	}
	return h
}

func TestEncodeHeadersBudget(t *testing.T) {
	fields := map[string]string{"traceparent": testTraceparent, "tracestate": testTracestate, "baggage": testBaggage}
	for _, tt := range []struct {
		user    int
		want    string // direct, packed, dropped, error
		attrs   int
		dropped []string
	}{
		{0, "direct", 3, nil},
		{7, "direct", 10, nil},
		{8, "packed", 9, nil},
		{9, "packed", 10, nil},
		// Exactly full: one header joins the fields in the pack, so the
		// trace context still travels.
		{10, "packed", 10, nil},
		// Past the budget, the overflow is packed with the fields.
		{11, "packed", 10, nil},
		{14, "packed", 10, nil},
	} {
		t.Run(fmt.Sprint(tt.user, "_user_headers"), func(t *testing.T) {
			headers := userHeaders(tt.user)
			maps.Copy(headers, fields)
			headers[propagation.XRayKey] = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
			headers["empty"] = ""
			attrs, dropped, err := EncodeHeaders(headers, DefaultPropagationFields)
			if tt.want == "error" {
				if !errors.Is(err, ErrTooManyAttributes) {
					t.Fatalf("err = %v, want ErrTooManyAttributes", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(attrs) != tt.attrs {
				t.Errorf("%d attributes, want %d: %v", len(attrs), tt.attrs, slices.Sorted(maps.Keys(attrs)))
			}
			if !slices.Equal(dropped, tt.dropped) {
				t.Errorf("dropped = %v, want %v", dropped, tt.dropped)
			}
			for _, k := range []string{propagation.XRayKey, "empty"} {
				if _, ok := attrs[k]; ok {
					t.Errorf("attribute %q written", k)
				}
			}
			_, packed := attrs[PackedAttribute]
			if packed != (tt.want == "packed") {
				t.Errorf("packed = %v, want %s", packed, tt.want)
			}
			got := decodeHeaders(attrs)
			for k, v := range fields {
				if want := map[bool]string{true: "", false: v}[tt.want == "dropped"]; got[k] != want {
					t.Errorf("decoded %s = %q, want %q", k, got[k], want)
				}
			}
			for k, v := range userHeaders(tt.user) {
				if got[k] != v {
					t.Errorf("decoded %s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestEncodeHeadersOverflowOrder: past the budget, the application's
// headers keep their attributes before the library's own (DeadLetter's
// "otelmq-" ones), and every header decodes back.
func TestEncodeHeadersOverflowOrder(t *testing.T) {
	headers := userHeaders(8)
	headers["otelmq-dlq-source"] = "orders"
	headers["OTelMQ-DLQ-Attempts"] = "3"
	headers["otelmq-dlq-error-type"] = "*errors.errorString"
	headers["traceparent"] = testTraceparent
	attrs, dropped, err := EncodeHeaders(headers, DefaultPropagationFields)
	if err != nil || len(dropped) != 0 {
		t.Fatalf("err = %v, dropped %v", err, dropped)
	}
	if len(attrs) != MaxAttributes {
		t.Errorf("%d attributes, want %d", len(attrs), MaxAttributes)
	}
	for k := range userHeaders(8) {
		if _, ok := attrs[k]; !ok {
			t.Errorf("application header %q has no attribute of its own", k)
		}
	}
	if _, ok := attrs["OTelMQ-DLQ-Attempts"]; !ok {
		t.Errorf("the first library header in name order has no attribute: %v", slices.Sorted(maps.Keys(attrs)))
	}
	if got := decodeHeaders(attrs); !maps.Equal(got, headers) {
		t.Errorf("decoded %v, want %v", got, headers)
	}
}

func TestEncodeHeadersReservedName(t *testing.T) {
	if _, _, err := EncodeHeaders(map[string]string{"OTelMQ": "x"}, DefaultPropagationFields); err == nil {
		t.Error("a header named like PackedAttribute was accepted")
	}
}

func TestEncodeHeadersFieldCase(t *testing.T) {
	headers := userHeaders(9)
	headers["Traceparent"] = testTraceparent
	headers["tracestate"] = testTracestate
	attrs, _, err := EncodeHeaders(headers, DefaultPropagationFields)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := attrs[PackedAttribute]; !ok {
		t.Fatalf("fields matched without regard to case were not packed: %v", slices.Sorted(maps.Keys(attrs)))
	}
	c := NewCarrier(&attrs)
	if c.Get("traceparent") != testTraceparent {
		t.Errorf("Get(traceparent) = %q", c.Get("traceparent"))
	}
}

func FuzzCarrier(f *testing.F) {
	f.Add("traceparent", testTraceparent, "TraceParent", true, false)
	f.Add("k", "", "K", false, true)
	f.Add(PackedAttribute, "traceparent=x&%zz", "traceparent", false, false)
	f.Fuzz(func(t *testing.T, name, value, lookup string, binary, nilValue bool) {
		v := str(value)
		switch {
		case binary:
			v = types.MessageAttributeValue{DataType: aws.String("Binary"), BinaryValue: []byte(value)}
		case nilValue:
			v = types.MessageAttributeValue{DataType: aws.String("String")}
		}
		attrs := map[string]types.MessageAttributeValue{name: v}
		c := NewCarrier(&attrs)
		_ = c.Get(lookup)
		_ = c.Keys()
		if name != PackedAttribute && !nilValue {
			if got := c.Get(name); got != value {
				t.Errorf("Get(%q) = %q, want %q", name, got, value)
			}
		}
		c.Set(lookup, value)
		if value != "" && lookup != PackedAttribute && c.Get(lookup) != value {
			t.Errorf("Get after Set(%q, %q) = %q", lookup, value, c.Get(lookup))
		}
	})
}

func FuzzUnpack(f *testing.F) {
	f.Add("traceparent=" + testTraceparent + "&tracestate=a%3Db")
	f.Add("%")
	f.Add("a=%zz&&=&;b=c")
	f.Fuzz(func(t *testing.T, s string) {
		fields := Unpack(s)
		for k, v := range fields {
			if k == "" || v == "" {
				t.Errorf("Unpack(%q) kept an empty key or value", s)
			}
		}
		// What Unpack returns packs and unpacks to itself.
		if again := Unpack(Pack(fields)); len(fields) > 0 && !maps.Equal(again, fields) {
			t.Errorf("Unpack(Pack(%v)) = %v", fields, again)
		}
		attrs := map[string]types.MessageAttributeValue{PackedAttribute: str(s)}
		c := NewCarrier(&attrs)
		for _, k := range c.Keys() {
			_ = c.Get(k)
		}
	})
}

// TestCaseVariantsDeterministic: where a message holds a field under
// several casings and none exactly, the carrier and the decoded headers
// take the same one (the least name) every time, not whichever map order
// gives; and the decoded headers hold the W3C fields under their own names.
func TestCaseVariantsDeterministic(t *testing.T) {
	attrs := map[string]types.MessageAttributeValue{
		"TraceParent": {DataType: aws.String("String"), StringValue: aws.String("second")},
		"TRACEPARENT": {DataType: aws.String("String"), StringValue: aws.String("first")},
		"Baggage":     {DataType: aws.String("String"), StringValue: aws.String("k=v")},
	}
	for range 100 {
		if got := NewCarrier(&attrs).Get("traceparent"); got != "first" {
			t.Fatalf("Get = %q, want the value of the least name, TRACEPARENT", got)
		}
		h := decodeHeaders(attrs)
		if h["traceparent"] != "first" || h["baggage"] != "k=v" || h["TRACEPARENT"] != "" || h["Baggage"] != "" {
			t.Fatalf("decoded headers %v", h)
		}
	}
}
