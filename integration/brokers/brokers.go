package brokers

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
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

var (
	dockerOnce sync.Once
	dockerErr  error
)

// Docker reports whether a Docker engine answers, so testcontainers can run
// containers. It never panics and answers within a few seconds; the result
// is cached for the process. Containers are only tried when
// OTELMQ_TESTCONTAINERS=1, because pulling images is slow.
func Docker() error {
	dockerOnce.Do(func() { dockerErr = probeDocker() })
	return dockerErr
}

func probeDocker() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("no Docker: testcontainers panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return fmt.Errorf("no Docker: %w", err)
	}
	defer p.Close()
	if err := p.Health(ctx); err != nil {
		return fmt.Errorf("no Docker: %w", err)
	}
	return nil
}

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
