package rabbitmq

import (
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/propagation"
)

// Carrier adapts an AMQP header table to propagation.TextMapCarrier.
//
// Get reads string and []byte values (other clients write AMQP long strings
// as bytes) and returns "" for every other type (numbers, nested tables,
// arrays), which stay in the table untouched. Set writes a string, replacing
// any value under that key, and allocates the table when it is nil, so the
// caller's table holds the result. The zero Carrier holds no table: Get
// returns "" and Set does nothing.
type Carrier struct {
	t *amqp.Table
}

var _ propagation.TextMapCarrier = Carrier{}

// NewCarrier returns a Carrier that reads and writes *t.
func NewCarrier(t *amqp.Table) Carrier { return Carrier{t: t} }

// Get returns the string or []byte value under key, "" otherwise.
func (c Carrier) Get(key string) string {
	if c.t == nil {
		return ""
	}
	s, _ := textValue((*c.t)[key])
	return s
}

// Set stores value under key as an AMQP string.
func (c Carrier) Set(key, value string) {
	if c.t == nil {
		return
	}
	if *c.t == nil {
		*c.t = amqp.Table{}
	}
	(*c.t)[key] = value
}

// Keys returns the keys whose values Get can read.
func (c Carrier) Keys() []string {
	if c.t == nil {
		return nil
	}
	keys := make([]string, 0, len(*c.t))
	for k, v := range *c.t {
		if _, ok := textValue(v); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// textValue reports whether v is a header value that carries text.
func textValue(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}
