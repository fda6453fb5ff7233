package rabbitmq

import (
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestCarrierGet(t *testing.T) {
	nested := amqp.Table{"traceparent": "nested"}
	array := []any{"a", int32(1)}
	table := amqp.Table{
		"s":      "text",
		"b":      []byte("bytes"),
		"empty":  "",
		"int":    int32(7),
		"int64":  int64(8),
		"bool":   true,
		"nested": nested,
		"array":  array,
		"time":   time.Unix(1, 0),
		"nil":    nil,
	}
	c := NewCarrier(&table)
	for _, tc := range []struct{ key, want string }{
		{"s", "text"},
		{"b", "bytes"},
		{"empty", ""},
		{"int", ""},
		{"int64", ""},
		{"bool", ""},
		{"nested", ""},
		{"array", ""},
		{"time", ""},
		{"nil", ""},
		{"missing", ""},
	} {
		if got := c.Get(tc.key); got != tc.want {
			t.Errorf("Get(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	keys := c.Keys()
	slices.Sort(keys)
	if want := []string{"b", "empty", "s"}; !slices.Equal(keys, want) {
		t.Errorf("Keys() = %q, want %q", keys, want)
	}
	// Values Get cannot read stay in the table untouched.
	if len(table) != 10 || table["int"] != int32(7) || table["nested"].(amqp.Table)["traceparent"] != "nested" {
		t.Errorf("table changed by reads: %v", table)
	}
}

func TestCarrierSet(t *testing.T) {
	t.Run("nil table allocates", func(t *testing.T) {
		var table amqp.Table
		c := NewCarrier(&table)
		c.Set("traceparent", "00-1")
		if table == nil || table["traceparent"] != "00-1" {
			t.Fatalf("table after Set = %v", table)
		}
		if got := c.Get("traceparent"); got != "00-1" {
			t.Fatalf("Get = %q", got)
		}
	})
	t.Run("replaces any type and keeps others", func(t *testing.T) {
		table := amqp.Table{"k": []byte("old"), "n": int32(1), "x": amqp.Table{"a": "b"}}
		c := NewCarrier(&table)
		c.Set("k", "new")
		c.Set("n", "now text")
		if table["k"] != "new" || table["n"] != "now text" {
			t.Fatalf("table = %v", table)
		}
		if _, ok := table["x"].(amqp.Table); !ok {
			t.Fatalf("nested table lost: %v", table)
		}
		if err := table.Validate(); err != nil {
			t.Fatalf("Set produced an invalid table: %v", err)
		}
	})
	t.Run("zero carrier is safe", func(t *testing.T) {
		var c Carrier
		c.Set("k", "v")
		if got := c.Get("k"); got != "" {
			t.Fatalf("Get = %q", got)
		}
		if keys := c.Keys(); len(keys) != 0 {
			t.Fatalf("Keys = %q", keys)
		}
		c = NewCarrier(nil)
		c.Set("k", "v")
		_ = c.Get("k")
		_ = c.Keys()
	})
}

func FuzzCarrier(f *testing.F) {
	f.Add("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", []byte("x"), int64(3))
	f.Add("", "", []byte(nil), int64(0))
	f.Add("k\x00", "\xff\xfe", []byte{0xff}, int64(-1))
	f.Fuzz(func(t *testing.T, key, value string, raw []byte, n int64) {
		table := amqp.Table{"bytes": raw, "n": n, "nested": amqp.Table{key: value}, "arr": []any{raw, value}}
		c := NewCarrier(&table)
		if got := c.Get("bytes"); got != string(raw) {
			t.Fatalf("Get(bytes) = %q, want %q", got, raw)
		}
		if c.Get("n") != "" || c.Get("nested") != "" || c.Get("arr") != "" {
			t.Fatal("non-text values must read as empty")
		}
		c.Set(key, value)
		if got := c.Get(key); got != value {
			t.Fatalf("Get(%q) after Set = %q, want %q", key, got, value)
		}
		if !slices.Contains(c.Keys(), key) {
			t.Fatalf("Keys() = %q lacks %q", c.Keys(), key)
		}
		var nilTable amqp.Table
		NewCarrier(&nilTable).Set(key, value)
		if nilTable[key] != value {
			t.Fatalf("Set on nil table: %v", nilTable)
		}
	})
}
