package main

import (
	"context"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelmq/otelmq/internal/benchkit"
)

// sdkProvider is an SDK TracerProvider as production runs one (a sampler, a
// BatchSpanProcessor) exporting into a counter that proves no span was
// dropped.
type sdkProvider struct {
	tp    *sdktrace.TracerProvider
	spans *benchkit.SpanCounter
}

// newSDK builds a provider for a run of n messages: the queue holds a run's
// spans, up to a cap that bounds memory.
func newSDK(sampler sdktrace.Sampler, n int) *sdkProvider {
	tp, spans := benchkit.NewSDK(sampler, min(8*n+1024, 1<<20))
	return &sdkProvider{tp: tp, spans: spans}
}

// finish flushes and shuts the provider down, then reports the span counts
// and an error when the exporter saw fewer spans than ended.
func (s *sdkProvider) finish(ctx context.Context) (ended, exported int64, err error) {
	return benchkit.Finish(ctx, s.tp, s.spans)
}
