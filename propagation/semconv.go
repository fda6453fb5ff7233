package propagation

import (
	"strconv"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// SemconvVersion is the one semantic-conventions package this module uses.
const SemconvVersion = "1.43.0"

// SchemaURL is the schema of every attribute otelmq records.
const SchemaURL = semconv.SchemaURL

// Values of messaging.system.
const (
	SystemSQS      = "aws_sqs"
	SystemRabbitMQ = "rabbitmq"
	SystemKafka    = "kafka"
	// SystemMemory is otelmq's in-memory transport; not a semconv value.
	SystemMemory = "otelmq_memory"
)

// OperationType is messaging.operation.type.
type OperationType string

// The operation types of the messaging semantic conventions.
const (
	Create  OperationType = "create"
	Send    OperationType = "send"
	Receive OperationType = "receive"
	Process OperationType = "process"
	Settle  OperationType = "settle"
)

// Settle operation names used by the transports (messaging.operation.name).
const (
	OpAck    = "ack"
	OpNack   = "nack"
	OpDelete = "delete"
	OpCommit = "commit"
)

// SpanName is "{operation name} {destination}", or the operation name alone
// when there is no low-cardinality destination.
func SpanName(operationName, destination string) string {
	if destination == "" {
		return operationName
	}
	return operationName + " " + destination
}

// OperationAttributes are the attributes every messaging span starts with:
// messaging.system, messaging.operation.name and .type, and
// messaging.destination.name when destination is not empty. extra is
// appended, so callers build one slice.
func OperationAttributes(system string, typ OperationType, name, destination string, extra ...attribute.KeyValue) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 4+len(extra))
	return append(AppendOperationAttributes(attrs, system, typ, name, destination), extra...)
}

// AppendOperationAttributes appends what OperationAttributes returns
// (without extra) to dst, for callers that size one slice for a whole span.
func AppendOperationAttributes(dst []attribute.KeyValue, system string, typ OperationType, name, destination string) []attribute.KeyValue {
	dst = append(dst,
		semconv.MessagingSystemKey.String(system),
		semconv.MessagingOperationName(name),
		semconv.MessagingOperationTypeKey.String(string(typ)),
	)
	if destination != "" {
		dst = append(dst, semconv.MessagingDestinationName(destination))
	}
	return dst
}

// Attribute builders, one per semconv attribute otelmq records.
var (
	BatchMessageCount = semconv.MessagingBatchMessageCount
	MessageID         = semconv.MessagingMessageID
	ConversationID    = semconv.MessagingMessageConversationID
	ConsumerGroup     = semconv.MessagingConsumerGroupName
	ClientID          = semconv.MessagingClientID
	PartitionID       = semconv.MessagingDestinationPartitionID
	DestinationName   = semconv.MessagingDestinationName
	// DestinationTemplate is set by middleware.WithDestinationTemplate.
	DestinationTemplate = semconv.MessagingDestinationTemplate
	BodySize            = semconv.MessagingMessageBodySize
	KafkaTombstone      = semconv.MessagingKafkaMessageTombstone
	RabbitMQRouting     = semconv.MessagingRabbitMQDestinationRoutingKey
	SQSQueueURL         = semconv.AWSSQSQueueURL
	AWSRequestID        = semconv.AWSRequestID
	ServerAddress       = semconv.ServerAddress
	ServerPort          = semconv.ServerPort
	ErrorType           = semconv.ErrorType
	ErrorTypeKey        = semconv.ErrorTypeKey
	ServerAddressKey    = semconv.ServerAddressKey
	ServerPortKey       = semconv.ServerPortKey
	ConsumerGroupKey    = semconv.MessagingConsumerGroupNameKey
	// DestinationAnonymous marks a destination whose name the broker
	// generated (a RabbitMQ server-named queue): a name per declaration,
	// which metrics leave out.
	DestinationAnonymous    = semconv.MessagingDestinationAnonymous
	DestinationAnonymousKey = semconv.MessagingDestinationAnonymousKey
)

// Partition is messaging.destination.partition.id for a numeric partition.
func Partition(p int32) attribute.KeyValue { return PartitionID(strconv.Itoa(int(p))) }

// KafkaOffset is messaging.kafka.offset.
func KafkaOffset(off int64) attribute.KeyValue {
	return attribute.Int64(string(semconv.MessagingKafkaOffsetKey), off)
}

// KafkaKey is messaging.kafka.message.key. Keys are bytes on the wire; the
// attribute holds them as a string. A key that is not UTF-8 (UUID bytes, an
// Avro key) has no canonical string form, and semconv leaves it out:
// callers check RecordableKey first. Recorded anyway, such a string makes
// the OTLP exporter refuse the whole batch the span is in.
func KafkaKey(key []byte) attribute.KeyValue {
	return semconv.MessagingKafkaMessageKey(string(key))
}

// RecordableKey reports whether a Kafka key is recorded as
// messaging.kafka.message.key: it is not nil and is UTF-8.
func RecordableKey(key []byte) bool { return key != nil && utf8.Valid(key) }

// RabbitMQDeliveryTag is messaging.rabbitmq.message.delivery_tag.
func RabbitMQDeliveryTag(tag uint64) attribute.KeyValue {
	return attribute.Int64(string(semconv.MessagingRabbitMQMessageDeliveryTagKey), int64(tag))
}

// RabbitMQDestination names a RabbitMQ destination per semconv's
// rabbitmq.md: "{exchange}:{routing key}" on send, and on receive (queue
// != "") "{exchange}:{routing key}:{queue}", leaving out the empty parts
// (the default exchange's name is empty) and the routing key when it is
// the queue's name. A send with neither exchange nor routing key is
// "amq.default". So a publish to queue "orders" through the default
// exchange is "orders", not "amq.default:orders".
func RabbitMQDestination(exchange, routingKey, queue string) string {
	if queue != "" && routingKey == queue {
		routingKey = ""
	}
	s := exchange
	for _, part := range [...]string{routingKey, queue} {
		switch {
		case part == "":
		case s == "":
			s = part
		default:
			s += ":" + part
		}
	}
	if s == "" {
		return "amq.default"
	}
	return s
}
