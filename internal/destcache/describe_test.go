package destcache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/otelmq/otelmq/middleware"
)

func TestCache(t *testing.T) {
	var built atomic.Int64
	c := &Cache{Build: func(dest string) middleware.Destination {
		built.Add(1)
		return middleware.Destination{System: "x", Name: "d:" + dest}
	}}
	if d := c.Get("orders"); d.Name != "d:orders" {
		t.Fatalf("Get = %+v", d)
	}
	if got := testing.AllocsPerRun(100, func() { _ = c.Get("orders") }); got != 0 {
		t.Errorf("a cached Get allocates %.0f times", got)
	}
	if n := built.Load(); n != 1 {
		t.Errorf("built %d times for one destination", n)
	}
	// Concurrent callers, and more destinations than the cache holds.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range Max + 50 {
				key := fmt.Sprint("k", (i*7+g)%(Max+50))
				if d := c.Get(key); d.Name != "d:"+key {
					t.Errorf("Get(%q).Name = %q", key, d.Name)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n > Max {
		t.Errorf("cache holds %d destinations, more than %d", n, Max)
	}
	if d := c.Get("beyond-the-cache"); d.Name != "d:beyond-the-cache" {
		t.Errorf("uncached Get = %+v", d)
	}
}
