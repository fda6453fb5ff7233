package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// sustainedMaxGrowth is the heap growth per message, between the first
// checkpoint and the last, that counts as a leak. A span, context or
// message kept per message costs hundreds of bytes; what the runtime and the
// SDK settle into after warming up is a few hundred kilobytes in all.
const sustainedMaxGrowth = 10.0 // bytes per message

// checkpoint is the state of the process after n messages: live heap after
// a full GC, and goroutines.
type checkpoint struct {
	n          int
	heap       uint64
	goroutines int
}

// sustained runs n in-memory messages through the tracing and metrics
// middleware on the SDK (AlwaysSample, batch processor, discarding
// exporter) and checks at every tenth of the run that the live heap and the
// goroutine count stay flat: a leak per message shows up as growth between
// the first checkpoint and the last.
func sustained(ctx context.Context, out io.Writer, n int) error {
	const chunk = 10_000 // published, then waited for, before the next
	start := time.Now()
	sdk := newSDK(sdktrace.AlwaysSample(), chunk)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(sdk.tp), middleware.WithMeterProvider(mp))
	b := memory.New(memory.WithBatchSize(memoryBatch))
	cnt := newCounter()
	p := runSubscriber(ctx, tel.Publisher(b), tel.Subscriber(b), "sustained", memoryBatch, cnt, func() {})

	every := max(n/10, 1)
	var points []checkpoint
	for done := 0; done < n; {
		k := min(chunk, n-done, every-done%every)
		if err := deliver(ctx, p, cnt, k); err != nil {
			_ = p.stop()
			return fmt.Errorf("sustained: %w", err)
		}
		done += k
		if done%every == 0 || done == n {
			// Spans waiting in the batch processor's queue are not a leak:
			// flush them before reading the heap.
			if err := sdk.tp.ForceFlush(ctx); err != nil {
				_ = p.stop()
				return fmt.Errorf("sustained: flushing spans: %w", err)
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			points = append(points, checkpoint{n: done, heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine()})
		}
	}
	if err := p.stop(); err != nil {
		return fmt.Errorf("sustained: stopping: %w", err)
	}
	ended, _, err := sdk.finish(ctx)
	if err != nil {
		return fmt.Errorf("sustained: %w", err)
	}

	fmt.Fprintf(out, "\n== sustained load: %d in-memory messages through tracing (SDK, AlwaysSample) and metrics, %s, %d spans exported\n",
		n, time.Since(start).Round(100*time.Millisecond), ended)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "messages\theap after GC MB\tgoroutines\t")
	for _, c := range points {
		fmt.Fprintf(tw, "%d\t%.2f\t%d\t\n", c.n, float64(c.heap)/(1<<20), c.goroutines)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range sustainedVerdicts(points) {
		printVerdict(out, v)
	}
	return nil
}

// sustainedVerdicts judges the checkpoints: heap growth per message from
// the first to the last, and goroutines back to the first count.
func sustainedVerdicts(points []checkpoint) []verdict {
	if len(points) < 2 {
		return nil
	}
	first, last := points[0], points[len(points)-1]
	growth := (float64(last.heap) - float64(first.heap)) / float64(last.n-first.n)
	return []verdict{
		{fmt.Sprintf("heap growth from %d to %d messages <= %.0f B/message", first.n, last.n, sustainedMaxGrowth),
			fmt.Sprintf("%+.1f B/message", growth), growth <= sustainedMaxGrowth},
		{"goroutines flat", fmt.Sprintf("%d -> %d", first.goroutines, last.goroutines), last.goroutines <= first.goroutines},
	}
}
