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
