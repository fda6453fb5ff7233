package middleware_test

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelmq/otelmq/middleware"
)

type otherKey struct{}

func TestRequireConfirm(t *testing.T) {
	plain := context.WithValue(context.Background(), otherKey{}, "v")
	if middleware.ConfirmRequired(plain) {
		t.Fatal("an unmarked context requires confirms")
	}
	marked := middleware.RequireConfirm(plain)
	if !middleware.ConfirmRequired(marked) || marked.Value(otherKey{}) != "v" {
		t.Fatal("the mark is missing, or the parent's values are lost")
	}
	// What Publishers do with ctx keeps the mark.
	derived, cancel := context.WithCancel(context.WithoutCancel(marked))
	defer cancel()
	if !middleware.ConfirmRequired(derived) {
		t.Fatal("a context derived from a marked one lost the mark")
	}
	// Publishers check every call: the check must cost no allocation,
	// marked or not.
	for name, ctx := range map[string]context.Context{"unmarked": plain, "marked": derived} {
		if got := testing.AllocsPerRun(100, func() { _ = middleware.ConfirmRequired(ctx) }); got != 0 {
			t.Errorf("ConfirmRequired on a %s context allocates %.0f times", name, got)
		}
	}
}

// confirmRecorder is a Publisher that records whether each Publish's
// context required confirms.
type confirmRecorder struct{ required []bool }

func (r *confirmRecorder) publisher() middleware.Publisher {
	return middleware.PublisherFunc(func(ctx context.Context, _ string, _ ...*middleware.Message) error {
		r.required = append(r.required, middleware.ConfirmRequired(ctx))
		return nil
	})
}

// TestSettlingPublishesRequireConfirm: Relay and DeadLetter settle the
// source message when their Publish returns nil, so they mark its context;
// the handler DeadLetter wraps gets the context unmarked, and DualPublish
// hands the mark to both its publishers.
func TestSettlingPublishesRequireConfirm(t *testing.T) {
	ctx := context.Background()
	msg := func() *middleware.Message { return middleware.NewMessage([]byte("m")) }

	var relay confirmRecorder
	if err := middleware.RelayHandler(relay.publisher(), "dst").Handle(ctx, msg()); err != nil {
		t.Fatal(err)
	}
	if len(relay.required) != 1 || !relay.required[0] {
		t.Errorf("RelayHandler's publishes required confirms: %v, want [true]", relay.required)
	}

	// Relay, through a traced publisher that starts a send span: the
	// context it passes on keeps the mark.
	var traced confirmRecorder
	tr := middleware.NewTracing(middleware.WithTracerProvider(sdktrace.NewTracerProvider()))
	src := middleware.SubscriberFunc(func(ctx context.Context, _ string, h middleware.Handler) error {
		return h.Handle(ctx, msg())
	})
	if err := middleware.Relay(ctx, src, "src", tr.Publisher(traced.publisher()), "dst"); err != nil {
		t.Fatal(err)
	}
	if len(traced.required) != 1 || !traced.required[0] {
		t.Errorf("Relay's publishes through tracing required confirms: %v, want [true]", traced.required)
	}

	var dead, primary, secondary confirmRecorder
	handlerMarked := false
	failing := middleware.HandlerFunc(func(ctx context.Context, _ *middleware.Message) error {
		handlerMarked = middleware.ConfirmRequired(ctx)
		return errors.New("bad payload")
	})
	if err := middleware.DeadLetter(dead.publisher(), "dlq")(failing).Handle(ctx, msg()); err != nil {
		t.Fatalf("dead-lettered message not settled: %v", err)
	}
	if len(dead.required) != 1 || !dead.required[0] {
		t.Errorf("DeadLetter's publishes required confirms: %v, want [true]", dead.required)
	}
	if handlerMarked {
		t.Error("the handler inside DeadLetter got a context that requires confirms")
	}

	dual := middleware.DualPublish(primary.publisher(), "a", secondary.publisher(), "b")
	if err := middleware.RelayHandler(dual, "ignored").Handle(ctx, msg()); err != nil {
		t.Fatal(err)
	}
	if len(primary.required) != 1 || !primary.required[0] || len(secondary.required) != 1 || !secondary.required[0] {
		t.Errorf("DualPublish under Relay: primary %v, secondary %v, want [true] each", primary.required, secondary.required)
	}

	// A plain Publish is not marked.
	var plain confirmRecorder
	if err := plain.publisher().Publish(ctx, "dst", msg()); err != nil {
		t.Fatal(err)
	}
	if plain.required[0] {
		t.Error("a plain Publish required confirms")
	}
}
