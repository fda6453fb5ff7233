package integration

import (
	"testing"

	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/memory"
)

func TestConformanceMemory(t *testing.T) { RunConformance(t, memoryHarness) }

var memoryHarness = Harness{
	System:           propagation.SystemMemory,
	KeepsKey:         true,
	CountsDeliveries: true,
	Setup: func(t *testing.T) Env {
		b := memory.New(memory.WithConcurrency(4))
		q := unique(t, "orders")
		return Env{Publisher: b, Subscriber: b, Destination: q, Source: q}
	},
}
