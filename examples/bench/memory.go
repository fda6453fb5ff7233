package main

import (
	"context"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// memoryBatch is the messages per Publish call on the memory transport.
const memoryBatch = 100

// newMemory measures the memory transport, where there is no broker I/O at
// all: the ratios show the middleware's cost at its most visible.
func newMemory() *transport {
	newPair := func(context.Context, int) (middleware.Publisher, middleware.Subscriber, string, func(), error) {
		b := memory.New(memory.WithBatchSize(memoryBatch))
		return b, b, "bench", func() {}, nil
	}
	return &transport{
		name:     "memory",
		defaultN: 100_000,
		notes:    []string{"raw is the memory transport without middleware; CPU includes the in-process broker, which is the transport itself."},
		modes: []mode{
			otelmqMode(modeRaw, tracingNone, memoryBatch, newPair),
			otelmqMode(modeNoop, tracingNoop, memoryBatch, newPair),
			otelmqMode(modeSDK, tracingAlways, memoryBatch, newPair),
			otelmqMode(modeRatio, tracingRatio, memoryBatch, newPair),
			otelmqMode(modeRatioPB, tracingRatioPB, memoryBatch, newPair),
		},
		targets: func(r *results) []verdict { return []verdict{noopTarget(r, 0.90)} },
		close:   func() {},
	}
}
