package main

import (
	"flag"
	"fmt"
	"io"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/internal/benchkit"
)

// benchNoopPath is publish + consume of one message through the tracing
// middleware over a no-op provider, on the loopback transport.
func benchNoopPath(b *testing.B) { benchkit.Path(b, &benchkit.Loopback{}, noop.NewTracerProvider()) }

// pathCost prints the middleware path with a no-op provider beside the
// carrier alone and the baseline (the same loopback and messages with
// hand-written propagation), and the targets for what the middleware adds
// beyond the baseline (issue 7: at most 300 ns and 4 allocations).
func pathCost(out io.Writer, quick bool) {
	// testing.Benchmark reads -test.benchtime; registering the testing
	// flags (a no-op inside a test binary) lets -quick shorten it.
	testing.Init()
	bt := "1s"
	if quick {
		bt = "100ms"
	}
	_ = flag.Set("test.benchtime", bt)
	carrier := testing.Benchmark(benchkit.Carrier)
	baseline := testing.Benchmark(benchkit.Baseline)
	path := testing.Benchmark(benchNoopPath)
	const w = 36
	fmt.Fprintf(out, "\n== middleware path (publish + consume on a loopback transport, testing.Benchmark, benchtime %s)\n", bt)
	fmt.Fprintf(out, "%-*s %10s %12s\n", w, "", "ns/msg", "allocs/msg")
	row := func(name string, ns, allocs int64) { fmt.Fprintf(out, "%-*s %10d %12d\n", w, name, ns, allocs) }
	row("carrier only (inject+extract)", carrier.NsPerOp(), carrier.AllocsPerOp())
	row("baseline (loopback, hand propagation)", baseline.NsPerOp(), baseline.AllocsPerOp())
	row("otelmq, noop provider", path.NsPerOp(), path.AllocsPerOp())
	row("beyond the carrier", path.NsPerOp()-carrier.NsPerOp(), path.AllocsPerOp()-carrier.AllocsPerOp())
	dns, dallocs := path.NsPerOp()-baseline.NsPerOp(), path.AllocsPerOp()-baseline.AllocsPerOp()
	row("beyond the baseline (the middleware)", dns, dallocs)
	status := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	fmt.Fprintf(out, "target %-58s %-22s %s\n", "noop path <= 300 ns beyond the baseline", fmt.Sprintf("%d ns", dns), status(dns <= 300))
	fmt.Fprintf(out, "target %-58s %-22s %s\n", "noop path <= 4 allocs beyond the baseline", fmt.Sprintf("%d", dallocs), status(dallocs <= 4))
}
