package integration

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// TestConsistentSampling: with ParentBased(TraceIDRatioBased(0.1)) on both
// sides, the consumer records a process span for exactly the messages whose
// producer was sampled, so no trace is half-sampled. Beside it, the same
// traffic with each side deciding on its own (the consumer starts its own
// trace, as without propagation) keeps both sides of only about 1%.
func TestConsistentSampling(t *testing.T) {
	const n = 2000
	for name, h := range harnesses() {
		t.Run(name, func(t *testing.T) {
			propagated := runSampling(t, h, n, middleware.ParentMessage)
			independent := runSampling(t, h, n, middleware.ParentNone)
			t.Logf("%-8s %d messages, 10%% sampling: propagated: %d producers sampled, %d of them with their consumer (%.1f%% of traces complete, %d half-sampled); independent: %d of %d (%.1f%% complete, %.1f%% of messages)",
				name, n, propagated.sampled, propagated.both, pct(propagated.both, propagated.sampled), propagated.half(),
				independent.both, independent.sampled, pct(independent.both, independent.sampled), pct(independent.both, n))
			if propagated.sampled < n/20 || propagated.sampled > n/5 {
				t.Fatalf("%d of %d producers sampled at 10%%", propagated.sampled, n)
			}
			if propagated.half() != 0 {
				t.Fatalf("%d traces half-sampled with propagation", propagated.half())
			}
			if independent.both > independent.sampled/3 {
				t.Fatalf("independent sampling kept %d of %d: the comparison is broken", independent.both, independent.sampled)
			}
		})
	}
}

type samplingResult struct {
	sampled      int // producers sampled
	both         int // sampled producers whose message has a recorded process span in the same trace
	consumerOnly int // recorded process spans whose producer was not sampled
}

func (r samplingResult) half() int { return r.sampled - r.both + r.consumerOnly }

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func runSampling(t *testing.T, h Harness, n int, parent middleware.ProcessParent) samplingResult {
	env := h.Setup(t)
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))
	producerTP := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler))
	consumerRec := tracetest.NewSpanRecorder()
	consumerTP := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(consumerRec))
	producer := middleware.NewTracing(middleware.WithTracerProvider(producerTP))
	dest := middleware.Describe(env.Publisher, env.Destination)
	sub := middleware.NewTracing(middleware.WithTracerProvider(consumerTP), middleware.WithProcessParent(parent)).Subscriber(env.Subscriber)

	producerSampled := map[string]bool{} // body -> sampled
	var bodies []string
	var batch []*middleware.Message
	tracer := producerTP.Tracer("producer")
	for i := range n {
		body := fmt.Sprintf("s-%d", i)
		ctx, span := tracer.Start(context.Background(), "produce")
		msg := middleware.NewMessage([]byte(body))
		// Inject per message, so the batch publish below keeps each
		// message in its own producer's trace.
		producer.InjectCreate(ctx, dest, propagation.MapCarrier(msg.Headers), false)
		span.End()
		producerSampled[body] = span.SpanContext().IsSampled()
		bodies = append(bodies, body)
		batch = append(batch, msg)
		if len(batch) == 50 || i == n-1 {
			if err := env.Publisher.Publish(context.Background(), env.Destination, batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	r := &rig{Env: env, t: t, h: h}
	c := r.consume(sub, nil)
	c.waitFor(3*h.timeout(), bodies...)
	c.stop()

	var res samplingResult
	processed := map[string]bool{}
	for _, d := range c.deliveries() {
		if d.span.IsSampled() {
			processed[string(d.msg.Body)] = true
		}
	}
	for _, body := range bodies {
		switch {
		case producerSampled[body] && processed[body]:
			res.sampled++
			res.both++
		case producerSampled[body]:
			res.sampled++
		case processed[body]:
			res.consumerOnly++
		}
	}
	if parent == middleware.ParentMessage && len(consumerRec.Ended()) == 0 {
		t.Fatal("the consumer recorded nothing")
	}
	return res
}
