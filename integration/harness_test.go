package integration

// harnesses are every transport's harness, for the tests that run across
// all of them beyond the conformance suite.
func harnesses() map[string]Harness {
	return map[string]Harness{
		"memory":   memoryHarness,
		"rabbitmq": rabbitmqHarness,
		"kafka":    kafkaHarness,
		"sqs":      sqsHarness,
	}
}
