package kafka

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// FuzzIDOffset: idOffset reads back the offset of any ID recordID built,
// and refuses, without panicking, whatever else a Message's ID may hold
// once an application or another transport replaced it; what it accepts,
// idPartition (which the attributes read next) splits the same way.
func FuzzIDOffset(f *testing.F) {
	f.Add("orders", int32(3), int64(42), "orders/3/42")
	f.Add("a.b-c_d", int32(0), int64(math.MaxInt64), "")
	f.Add("t", int32(math.MaxInt32), int64(0), "/1/2")
	f.Add("t", int32(-1), int64(-1), "t/x/1")
	f.Add("t", int32(1), int64(1), "t/1/")
	f.Add("t", int32(1), int64(1), "3f2a9c0e-uuid")
	f.Fuzz(func(t *testing.T, topic string, partition int32, offset int64, other string) {
		if topic != "" && !strings.Contains(topic, "/") {
			id := recordID(topic, partition, offset)
			got, ok := idOffset(id)
			if !ok || got != offset {
				t.Fatalf("idOffset(%q) = %d, %v; want %d", id, got, ok, offset)
			}
			if p := idPartition(id); p != strconv.Itoa(int(partition)) {
				t.Fatalf("idPartition(%q) = %q, want %d", id, p, partition)
			}
		}
		o, ok := idOffset(other)
		if !ok {
			return
		}
		p := idPartition(other)
		if _, err := strconv.ParseInt(p, 10, 32); err != nil {
			t.Fatalf("idOffset accepted %q, whose partition %q is no int32", other, p)
		}
		off := other[strings.LastIndexByte(other, '/')+1:]
		if n, err := strconv.ParseInt(off, 10, 64); err != nil || n != o {
			t.Fatalf("idOffset(%q) = %d, but its last part is %q", other, o, off)
		}
		if topic, found := strings.CutSuffix(other, "/"+p+"/"+off); !found || topic == "" {
			t.Fatalf("idOffset accepted %q, which names no topic", other)
		}
	})
}
