// Package docker says whether a Docker engine answers, so testcontainers can
// start containers. The test fixtures and the examples both ask; it does not
// import testing.
package docker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

var (
	once sync.Once
	err  error
)

// Available returns nil when a Docker engine answers. It never panics
// (testcontainers does in some setups without Docker: that is an answer
// too), answers within a few seconds, and is asked once per process.
func Available() error {
	once.Do(func() { err = probe() })
	return err
}

func probe() (err error) {
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
