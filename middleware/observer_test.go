package middleware_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/middleware"
)

type countingObserver struct{ received int }

func (o *countingObserver) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	o.received++
	return ctx
}

func (o *countingObserver) Settled(context.Context, middleware.Destination, string, time.Time, []*middleware.Message, error) {
}

type ctxKey struct{}

func TestObserved(t *testing.T) {
	bg := context.Background()
	if middleware.Observed(bg) {
		t.Fatal("Observed(Background) = true")
	}
	if middleware.Observed(middleware.WithObserver(bg, nil)) {
		t.Fatal("a nil Observer counts as installed")
	}
	if middleware.Observed(context.WithValue(bg, ctxKey{}, 1)) {
		t.Fatal("an unrelated value counts as an Observer")
	}
	o := &countingObserver{}
	ctx := middleware.WithObserver(bg, o)
	if !middleware.Observed(ctx) {
		t.Fatal("Observed = false with an Observer installed")
	}
	child, cancel := context.WithCancel(context.WithValue(ctx, ctxKey{}, 1))
	defer cancel()
	if !middleware.Observed(child) || !middleware.Observed(middleware.WithObserver(child, &countingObserver{})) {
		t.Fatal("Observed = false in a context derived from one with an Observer")
	}
	if !middleware.Observed(context.WithoutCancel(ctx)) {
		t.Fatal("Observed = false in a WithoutCancel context")
	}
	// Observed agrees with what ObserverFrom reports to.
	middleware.ObserverFrom(ctx).Received(ctx, middleware.Destination{}, time.Now(), nil)
	if o.received != 1 {
		t.Fatalf("observer called %d times", o.received)
	}
	if n := testing.AllocsPerRun(100, func() { _ = middleware.Observed(child) }); n != 0 {
		t.Fatalf("Observed allocates %v times", n)
	}
}

// TestObservedInSubscribe: the Subscriber wrappers install their Observers
// in the context a transport's Subscribe gets (tracing and metrics install
// none with their no-op providers: they would record nothing).
func TestObservedInSubscribe(t *testing.T) {
	for name, mw := range map[string]interface {
		Subscriber(middleware.Subscriber) middleware.Subscriber
	}{
		"tracing":   middleware.NewTracing(middleware.WithTracerProvider(sdktrace.NewTracerProvider())),
		"metrics":   middleware.NewMetrics(middleware.WithMeterProvider(sdkmetric.NewMeterProvider())),
		"telemetry": middleware.NewTelemetry(middleware.WithTracerProvider(tracenoop.NewTracerProvider()), middleware.WithMeterProvider(sdkmetric.NewMeterProvider())),
	} {
		var observed bool
		transport := middleware.SubscriberFunc(func(ctx context.Context, _ string, _ middleware.Handler) error {
			observed = middleware.Observed(ctx)
			return nil
		})
		h := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })
		if err := mw.Subscriber(transport).Subscribe(context.Background(), "q", h); err != nil {
			t.Fatal(err)
		}
		if !observed {
			t.Errorf("%s: Observed = false in the transport's Subscribe context", name)
		}
		if err := transport.Subscribe(context.Background(), "q", h); err != nil || observed {
			t.Errorf("%s: unwrapped transport: Observed = %v", name, observed)
		}
	}
}
