// Package destcache memoizes a transport's Describe, which the tracing and
// metrics middleware call on every Publish: building a Destination can
// parse a URL and allocate its attributes, and a publisher sends to a
// handful of destinations. It is for this module's transports, not API.
package destcache

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/otelmq/otelmq/middleware"
)

// Max bounds the destinations a Cache keeps: past it, Get builds each one
// again. Applications publish to a handful of destinations; one that makes
// a destination per message must not grow the cache without end.
const Max = 256

// Cache memoizes Build. A hit is a load and a map lookup (the map is copied
// on write), so concurrent publishers do not contend. The zero Cache with
// Build set is ready to use.
type Cache struct {
	// Build describes a destination; its result's Attributes are shared by
	// every caller, so Build should clip them (an append then copies).
	Build func(dest string) middleware.Destination

	mu sync.Mutex
	m  atomic.Pointer[map[string]middleware.Destination]
}

// Get returns Build(dest), from the cache when it is there.
func (c *Cache) Get(dest string) middleware.Destination {
	if m := c.m.Load(); m != nil {
		if d, ok := (*m)[dest]; ok {
			return d
		}
	}
	d := c.Build(dest)
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[string]middleware.Destination
	if m := c.m.Load(); m != nil {
		old = *m
	}
	if len(old) < Max {
		m := make(map[string]middleware.Destination, len(old)+1)
		maps.Copy(m, old)
		m[dest] = d
		c.m.Store(&m)
	}
	return d
}

// Len is how many destinations c holds.
func (c *Cache) Len() int {
	if m := c.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}
