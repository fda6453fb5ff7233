package kafka_test

import (
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/transports/kafka"
)

func headers(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func TestCarrierGet(t *testing.T) {
	tests := []struct {
		name    string
		headers []kgo.RecordHeader
		key     string
		want    string
	}{
		{"missing", headers("a", "1"), "b", ""},
		{"single", headers("traceparent", "tp"), "traceparent", "tp"},
		{"duplicates: last wins", headers("traceparent", "old", "x", "y", "traceparent", "new"), "traceparent", "new"},
		{"nil value", []kgo.RecordHeader{{Key: "k", Value: nil}}, "k", ""},
		{"nil value after a value", []kgo.RecordHeader{{Key: "k", Value: []byte("v")}, {Key: "k"}}, "k", ""},
		{"case-sensitive", headers("Traceparent", "tp"), "traceparent", ""},
		{"no headers", nil, "k", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kafka.NewCarrier(&kgo.Record{Headers: tt.headers})
			if got := c.Get(tt.key); got != tt.want {
				t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestCarrierSetReplacesAndDedups(t *testing.T) {
	r := &kgo.Record{Headers: headers("traceparent", "a", "other", "o", "traceparent", "b")}
	original := slices.Clone(r.Headers)
	kafka.NewCarrier(r).Set("traceparent", "c")

	want := headers("other", "o", "traceparent", "c")
	if !slices.EqualFunc(r.Headers, want, headerEqual) {
		t.Fatalf("headers = %v, want %v", r.Headers, want)
	}
	if got := kafka.NewCarrier(r).Get("traceparent"); got != "c" {
		t.Errorf("Get after Set = %q, want c", got)
	}
	// Set must not write through to a header slice the caller shares.
	if !slices.EqualFunc(original, headers("traceparent", "a", "other", "o", "traceparent", "b"), headerEqual) {
		t.Errorf("Set modified the original header slice: %v", original)
	}

	kafka.NewCarrier(r).Set("new", "n")
	if got := kafka.NewCarrier(r).Keys(); !slices.Equal(got, []string{"other", "traceparent", "new"}) {
		t.Errorf("Keys = %q", got)
	}
}

func TestCarrierKeysDistinct(t *testing.T) {
	c := kafka.NewCarrier(&kgo.Record{Headers: headers("a", "1", "b", "2", "a", "3", "c", "", "b", "4")})
	if got, want := c.Keys(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("Keys = %q, want %q", got, want)
	}
}

func TestCarrierNilRecord(t *testing.T) {
	c := kafka.NewCarrier(nil)
	c.Set("k", "v")
	if got := c.Get("k"); got != "" {
		t.Errorf("Get = %q, want empty", got)
	}
	if got := c.Keys(); len(got) != 0 {
		t.Errorf("Keys = %q, want none", got)
	}
	var zero kafka.Carrier
	zero.Set("k", "v")
	_ = zero.Get("k")
	_ = zero.Keys()
}

func headerEqual(a, b kgo.RecordHeader) bool {
	return a.Key == b.Key && string(a.Value) == string(b.Value)
}

// FuzzCarrier decodes data into a header list (keys and values separated by
// 0 and 1 bytes, 2 for a nil value) and checks the carrier's invariants.
func FuzzCarrier(f *testing.F) {
	f.Add([]byte("traceparent\x00a\x01traceparent\x00b"), "traceparent", "c")
	f.Add([]byte("k\x00\x02\x01k\x00v"), "k", "")
	f.Add([]byte(""), "", "")
	f.Add([]byte("\x00\x00\x01\x00"), "x", "y")
	f.Fuzz(func(t *testing.T, data []byte, key, value string) {
		r := &kgo.Record{Headers: decodeHeaders(data)}
		c := kafka.NewCarrier(r)
		keys := c.Keys()
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Fatalf("Keys has %q twice: %q", k, keys)
			}
			seen[k] = true
			_ = c.Get(k)
		}
		for _, h := range r.Headers {
			if !seen[h.Key] {
				t.Fatalf("Keys %q misses %q", keys, h.Key)
			}
		}

		before := len(keys)
		c.Set(key, value)
		if got := c.Get(key); got != value {
			t.Fatalf("Get(%q) after Set = %q, want %q", key, got, value)
		}
		n := 0
		for _, h := range r.Headers {
			if h.Key == key {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("after Set, %d headers named %q, want 1", n, key)
		}
		after := c.Keys()
		if want := before + btoi(!seen[key]); len(after) != want {
			t.Fatalf("Keys after Set = %q, want %d keys", after, want)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func decodeHeaders(data []byte) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for len(data) > 0 {
		var entry []byte
		if i := slices.Index(data, 1); i >= 0 {
			entry, data = data[:i], data[i+1:]
		} else {
			entry, data = data, nil
		}
		h := kgo.RecordHeader{Key: string(entry)}
		if i := slices.Index(entry, 0); i >= 0 {
			h.Key = string(entry[:i])
			if v := entry[i+1:]; !slices.Equal(v, []byte{2}) {
				h.Value = v
			}
		}
		hs = append(hs, h)
	}
	return hs
}

// TestCarrierSetDoesNotCopy: Set shares the value's memory instead of
// copying it (one allocation per field saved on every record), and the
// header reads back the value. Its one allocation is the header slice,
// which it never appends to in place (TestCarrierSetSharedHeaders).
func TestCarrierSetDoesNotCopy(t *testing.T) {
	r := &kgo.Record{Headers: make([]kgo.RecordHeader, 0, 4)}
	c := kafka.NewCarrier(r)
	value := strings.Repeat("x", 55)
	allocs := testing.AllocsPerRun(100, func() {
		r.Headers = r.Headers[:0]
		c.Set("traceparent", value)
	})
	if allocs != 1 {
		t.Fatalf("Set allocated %v times per call, want 1 (the header slice)", allocs)
	}
	if got := c.Get("traceparent"); got != value {
		t.Fatalf("Get = %q, want %q", got, value)
	}
	if v := r.Headers[0].Value; unsafe.SliceData(v) != unsafe.StringData(value) {
		t.Fatal("Set copied the value")
	}
	c.Set("empty", "")
	if v := r.Headers[len(r.Headers)-1].Value; v == nil || len(v) != 0 {
		t.Fatalf("empty value stored as %#v, want a non-nil empty slice", v)
	}
}

// TestCarrierSetSharedHeaders: records built from one header slice with
// room to spare (a caller's common headers) each get their own trace
// context: Set never appends into the shared array.
func TestCarrierSetSharedHeaders(t *testing.T) {
	common := make([]kgo.RecordHeader, 1, 4)
	common[0] = kgo.RecordHeader{Key: "tenant", Value: []byte("acme")}
	a, b := &kgo.Record{Headers: common}, &kgo.Record{Headers: common}
	kafka.NewCarrier(a).Set("traceparent", "00-aaaa")
	kafka.NewCarrier(b).Set("traceparent", "00-bbbb")
	if got := kafka.NewCarrier(a).Get("traceparent"); got != "00-aaaa" {
		t.Errorf("record a carries traceparent %q, want its own", got)
	}
	if got := kafka.NewCarrier(b).Get("traceparent"); got != "00-bbbb" {
		t.Errorf("record b carries traceparent %q, want its own", got)
	}
	if len(common) != 1 || common[:2][1].Key != "" {
		t.Errorf("the shared slice was written: %v", common[:2])
	}
}
