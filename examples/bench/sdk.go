package main

import (
	"context"
	"fmt"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// countingExporter discards spans and counts them, so the SDK modes pay for
// the whole pipeline (sampling, recording, batching, export hand-off) but
// not for an encoder or a network.
type countingExporter struct{ exported atomic.Int64 }

func (e *countingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.exported.Add(int64(len(spans)))
	return nil
}
func (e *countingExporter) Shutdown(context.Context) error { return nil }

// endCounter counts the spans that ended, before the batch processor could
// drop any; comparing it with the exporter's count proves nothing was
// dropped, so no mode looks cheap by losing spans.
type endCounter struct{ ended atomic.Int64 }

func (c *endCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c *endCounter) OnEnd(sdktrace.ReadOnlySpan)                     { c.ended.Add(1) }
func (c *endCounter) Shutdown(context.Context) error                  { return nil }
func (c *endCounter) ForceFlush(context.Context) error                { return nil }

// sdkProvider is an SDK TracerProvider as production runs one (a sampler, a
// BatchSpanProcessor) with the counters above.
type sdkProvider struct {
	tp  *sdktrace.TracerProvider
	exp *countingExporter
	end *endCounter
}

// newSDK builds a provider for a run of n messages. The queue holds a run's
// spans (up to a cap, to bound memory) and the processor blocks rather than
// drops when it is full anyway: a dropped span is work not done, which
// would flatter the mode that drops.
func newSDK(sampler sdktrace.Sampler, n int) *sdkProvider {
	s := &sdkProvider{exp: &countingExporter{}, end: &endCounter{}}
	s.tp = sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler),
		sdktrace.WithSpanProcessor(s.end),
		sdktrace.WithBatcher(s.exp,
			sdktrace.WithMaxQueueSize(min(8*n+1024, 1<<20)),
			sdktrace.WithMaxExportBatchSize(2048),
			sdktrace.WithBlocking()),
	)
	return s
}

// finish flushes and shuts the provider down, then reports the span counts
// and an error when the exporter saw fewer spans than ended.
func (s *sdkProvider) finish(ctx context.Context) (ended, exported int64, err error) {
	if err := s.tp.ForceFlush(ctx); err != nil {
		return 0, 0, fmt.Errorf("flushing spans: %w", err)
	}
	if err := s.tp.Shutdown(ctx); err != nil {
		return 0, 0, fmt.Errorf("shutting the provider down: %w", err)
	}
	ended, exported = s.end.ended.Load(), s.exp.exported.Load()
	if ended != exported {
		return ended, exported, fmt.Errorf("%d spans ended, %d exported: the batch processor dropped spans", ended, exported)
	}
	return ended, exported, nil
}
