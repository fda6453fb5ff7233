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
// carrier) is the baseline the broker carriers are compared with.
func BenchmarkCarriers(b *testing.B) {
	for _, name := range []string{"map", "sqs", "amqp", "kafka"} {
		b.Run(name, func(b *testing.B) { BenchmarkCarrier(b, carriers[name]) })
	}
}
