package main

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/integration/brokers"
)

// TestRun runs the example on the RabbitMQ the embedded package finds. With
// none it is skipped, except under CI=true, where a broker is provided and
// its absence is a failure.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, &out)
	var no *embedded.NoBrokerError
	if errors.As(err, &no) {
		brokers.Unavailable(t, "RabbitMQ", err)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
}
