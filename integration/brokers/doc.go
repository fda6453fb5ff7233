// Package brokers gives tests a real broker for each transport, found in this
// order: an address from the environment (AMQP_URL, KAFKA_BROKERS,
// SQS_ENDPOINT), a container started with testcontainers-go when a Docker
// engine answers (OTELMQ_TESTCONTAINERS=1), else a broker started in the test
// process (Kafka on kfake, SQS on goaws) or on this machine (RabbitMQ on
// 127.0.0.1:5672). A test that cannot get its broker fails when CI=true and is
// skipped with the reason otherwise.
//
// Only loopback addresses are used unless the environment names others.
package brokers
