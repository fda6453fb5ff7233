package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestRun runs the example on goaws; run itself fails when a section's
// spans are not one trace.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
}
