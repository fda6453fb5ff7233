package integration_test

import (
	"testing"

	"github.com/otelmq/otelmq/integration"
	"github.com/otelmq/otelmq/transports/memory"
)

// A transport for another broker proves itself with the suite every
// transport here runs, from a test in its own package:
//
//	func TestConformance(t *testing.T) { integration.RunConformance(t, harness) }
func ExampleRunConformance() {
	harness := integration.Harness{
		System:           "memory", // the messaging.system its spans must carry
		KeepsKey:         true,     // what the broker promises; the suite checks it
		CountsDeliveries: true,
		Setup: func(t *testing.T) integration.Env {
			// A fresh, empty destination per test; register clean-up on t.
			b := memory.New()
			return integration.Env{Publisher: b, Subscriber: b, Destination: "orders", Source: "orders"}
		},
	}
	_ = harness // integration.RunConformance(t, harness) in a test
}
