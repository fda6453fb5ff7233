//go:build tools

// Package otelmq pins dependencies until code imports them. Removed once every one is used.
package otelmq

import (
	_ "github.com/Admiral-Piett/goaws/app/gosqs"
	_ "github.com/Admiral-Piett/goaws/app/models"
	_ "github.com/Admiral-Piett/goaws/app/router"
	_ "github.com/aws/aws-sdk-go-v2/aws"
	_ "github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/aws/aws-sdk-go-v2/credentials"
	_ "github.com/aws/aws-sdk-go-v2/service/sqs"
	_ "github.com/rabbitmq/amqp091-go"
	_ "github.com/testcontainers/testcontainers-go"
	_ "github.com/testcontainers/testcontainers-go/modules/kafka"
	_ "github.com/testcontainers/testcontainers-go/modules/localstack"
	_ "github.com/testcontainers/testcontainers-go/modules/rabbitmq"
	_ "github.com/testcontainers/testcontainers-go/modules/redpanda"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "github.com/twmb/franz-go/plugin/kotel"
	_ "go.opentelemetry.io/otel/sdk/metric"
	_ "go.opentelemetry.io/otel/sdk/trace"
	_ "go.opentelemetry.io/otel/sdk/trace/tracetest"
	_ "go.opentelemetry.io/otel/sdk/metric/metricdata"
)
