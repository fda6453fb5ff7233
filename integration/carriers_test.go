package integration

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/awssqs"
	"github.com/otelmq/otelmq/transports/kafka"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

var carriers = map[string]NewCarrier{
	"map": func() propagation.TextMapCarrier { return propagation.MapCarrier{} },
	"sqs": func() propagation.TextMapCarrier {
		return awssqs.NewCarrier(&map[string]types.MessageAttributeValue{})
	},
	"amqp":  func() propagation.TextMapCarrier { return rabbitmq.NewCarrier(new(amqp.Table)) },
	"kafka": func() propagation.TextMapCarrier { return kafka.NewCarrier(&kgo.Record{}) },
}

func TestCarrierConformance(t *testing.T) {
	for name, c := range carriers {
		t.Run(name, func(t *testing.T) { RunCarrierConformance(t, c) })
	}
}

// BenchmarkCarriers: "map" (propagation.MapCarrier, the memory transport's
// carrier) is the baseline the broker carriers are compared with. "fresh"
// makes a new header container per message, "reused" empties one between
// messages, which leaves the carrier's own work.
func BenchmarkCarriers(b *testing.B) {
	for _, name := range []string{"map", "sqs", "amqp", "kafka"} {
		b.Run("fresh/"+name, func(b *testing.B) { BenchmarkCarrier(b, carriers[name]) })
	}
	for _, name := range []string{"map", "sqs", "amqp", "kafka"} {
		b.Run("reused/"+name, func(b *testing.B) {
			c, reset := reusedCarrier(name)
			BenchmarkCarrierReused(b, c, reset)
		})
	}
}

func reusedCarrier(name string) (propagation.TextMapCarrier, func()) {
	switch name {
	case "sqs":
		attrs := map[string]types.MessageAttributeValue{}
		return awssqs.NewCarrier(&attrs), func() { clear(attrs) }
	case "amqp":
		t := amqp.Table{}
		return rabbitmq.NewCarrier(&t), func() { clear(t) }
	case "kafka":
		r := &kgo.Record{}
		return kafka.NewCarrier(r), func() { clear(r.Headers); r.Headers = r.Headers[:0] }
	}
	m := propagation.MapCarrier{}
	return m, func() { clear(m) }
}
