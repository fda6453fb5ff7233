package middleware_test

import (
	"math"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
)

// TestExponentialBackoffBounds: waits grow up to the maximum and stay
// there, however many attempts, even with a maximum near the largest
// Duration, where doubling would overflow to no wait at all.
func TestExponentialBackoffBounds(t *testing.T) {
	for _, maximum := range []time.Duration{time.Second, time.Duration(math.MaxInt64)} {
		backoff := middleware.ExponentialBackoff(time.Millisecond, maximum)
		for _, attempt := range []int{1, 2, 10, 64, 100, 1000} {
			if d := backoff(attempt); d <= 0 || d > maximum {
				t.Errorf("max %v, attempt %d: wait %v, want in (0, %v]", maximum, attempt, d, maximum)
			}
		}
	}
}

// TestExponentialBackoffBaseOverMaximum: a base above the maximum is capped
// too, from the first attempt on.
func TestExponentialBackoffBaseOverMaximum(t *testing.T) {
	backoff := middleware.ExponentialBackoff(10*time.Second, time.Second)
	for attempt := 1; attempt <= 3; attempt++ {
		for range 50 { // full jitter: one wait in ten over 1s would pass unseen once
			if d := backoff(attempt); d <= 0 || d > time.Second {
				t.Fatalf("base 10s, max 1s, attempt %d: wait %v, want in (0, 1s]", attempt, d)
			}
		}
	}
}
