package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestRun runs the example on the RabbitMQ the embedded package finds. With
// none it is skipped, except under CI=true, where a broker is provided and
// its absence is a failure.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, &out)
	var no errNoBroker
	if errors.As(err, &no) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no RabbitMQ (CI=true, so this fails): %v", err)
		}
		t.Skipf("no RabbitMQ: %v", err)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
}
