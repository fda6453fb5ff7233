// Package integration holds the one conformance suite every otelmq transport
// runs against a real broker (RunConformance), and, in package brokers, the
// fixtures that find or start those brokers.
package integration
