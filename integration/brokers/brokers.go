package brokers

import (
	"fmt"
	"os"
	"testing"

	"github.com/otelmq/otelmq/integration/brokers/docker"
)

// Unavailable ends t because a broker could not be had: a failure under CI
// (CI=true), a skip with the reason elsewhere.
func Unavailable(t testing.TB, broker string, reason error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: no broker available (CI=true, so this fails): %v", broker, reason)
	}
	t.Skipf("%s: no broker available: %v", broker, reason)
}

// Docker reports whether a Docker engine answers (see package docker).
func Docker() error { return docker.Available() }

// UseContainers reports whether fixtures should start containers: the user
// asked for them (OTELMQ_TESTCONTAINERS=1) and a Docker engine answers.
func UseContainers() (bool, error) {
	if os.Getenv("OTELMQ_TESTCONTAINERS") != "1" {
		return false, nil
	}
	if err := Docker(); err != nil {
		return false, err
	}
	return true, nil
}

// mustRecover turns a panic in a testcontainers module (localstack.Run
// panics without Docker) into an error.
func mustRecover(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("no Docker: testcontainers panicked: %v", r)
	}
}
