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
// beyond the baseline (issue 7: at most 300 ns and 4 allocations). The
// three run in turn, runs times, order rotated, and the middleware's cost
// is the median of each run's path minus that run's baseline: the machine
// drifts by more than the difference between single runs.
func pathCost(out io.Writer, quick bool, runs int) {
	// testing.Benchmark reads -test.benchtime; registering the testing
	// flags (a no-op inside a test binary) lets -quick shorten it.
	testing.Init()
	bt := "500ms"
	if quick {
		bt = "100ms"
	}
	_ = flag.Set("test.benchtime", bt)
	benches := []func(*testing.B){benchkit.Carrier, benchkit.Baseline, benchNoopPath}
	ns := make([][]float64, len(benches))
	allocs := make([][]float64, len(benches))
	var beyond []float64 // path minus baseline, per run
	for r := range max(runs, 1) {
		var runNs [3]float64
		for k := range benches {
			i := (k + r) % len(benches)
			res := testing.Benchmark(benches[i])
			runNs[i] = float64(res.NsPerOp())
			ns[i] = append(ns[i], runNs[i])
			allocs[i] = append(allocs[i], float64(res.AllocsPerOp()))
		}
		beyond = append(beyond, runNs[2]-runNs[1])
	}
	const w = 36
	fmt.Fprintf(out, "\n== middleware path (publish + consume on a loopback transport, testing.Benchmark, benchtime %s, %d runs, medians)\n", bt, len(beyond))
	fmt.Fprintf(out, "%-*s %10s %12s\n", w, "", "ns/msg", "allocs/msg")
	row := func(name string, ns, allocs float64) { fmt.Fprintf(out, "%-*s %10.0f %12.0f\n", w, name, ns, allocs) }
	carrierNs, baselineNs, pathNs := median(ns[0]), median(ns[1]), median(ns[2])
	carrierA, baselineA, pathA := median(allocs[0]), median(allocs[1]), median(allocs[2])
	row("carrier only (inject+extract)", carrierNs, carrierA)
	row("baseline (loopback, hand propagation)", baselineNs, baselineA)
	row("otelmq, noop provider", pathNs, pathA)
	row("beyond the carrier", pathNs-carrierNs, pathA-carrierA)
	dns, dallocs := median(beyond), pathA-baselineA
	row("beyond the baseline (the middleware)", dns, dallocs)
	status := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	fmt.Fprintf(out, "target %-58s %-22s %s\n", "noop path <= 300 ns beyond the baseline", fmt.Sprintf("%.0f ns", dns), status(dns <= 300))
	fmt.Fprintf(out, "target %-58s %-22s %s\n", "noop path <= 4 allocs beyond the baseline", fmt.Sprintf("%.0f", dallocs), status(dallocs <= 4))
}
