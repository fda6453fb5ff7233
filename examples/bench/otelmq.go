package main

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
)

// settleSpans, createSpans and linkReceive are the -settle-spans,
// -create-spans and -link-receive flags, for every otelmq mode of the run.
var settleSpans, createSpans, linkReceive = true, true, false

// tracingOptions are the otelmq modes' options beside the provider, as the
// flags set them.
func tracingOptions(tp trace.TracerProvider, tr tracing) []middleware.Option {
	parent := middleware.ParentMessage
	if linkReceive {
		parent = middleware.ParentMessageLinkReceive
	}
	return []middleware.Option{
		middleware.WithTracerProvider(tp),
		middleware.WithParentBasedSampling(tr == tracingRatioPB),
		middleware.WithSettleSpans(settleSpans),
		middleware.WithCreateSpans(createSpans),
		middleware.WithProcessParent(parent),
	}
}

// otelmqMode is the mode that runs a transport's otelmq Publisher and
// Subscriber wrapped in the tracing middleware over the mode's provider
// (or unwrapped when tp is nil: the memory transport's raw mode). newPair
// builds the transport's Publisher and Subscriber for repetition rep and
// returns the destination and a func releasing what it made.
func otelmqMode(name string, tr tracing, batch int,
	newPair func(ctx context.Context, rep int) (middleware.Publisher, middleware.Subscriber, string, func(), error),
) mode {
	return mode{name: name, tracing: tr, build: func(ctx context.Context, rep int, tp trace.TracerProvider, cnt *counter) (*pipeline, error) {
		pub, sub, dest, release, err := newPair(ctx, rep)
		if err != nil {
			return nil, err
		}
		if tp != nil {
			// Tracing alone, not NewTelemetry: the comparison is with
			// tracers, and metrics would add a cost none of them has.
			t := middleware.NewTracing(tracingOptions(tp, tr)...)
			pub, sub = t.Publisher(pub), t.Subscriber(sub)
		}
		return runSubscriber(ctx, pub, sub, dest, batch, cnt, release), nil
	}}
}

// runSubscriber starts sub on dest with a handler that counts, and returns
// the pipeline publishing through pub in batches of batch messages.
func runSubscriber(ctx context.Context, pub middleware.Publisher, sub middleware.Subscriber, dest string, batch int, cnt *counter, release func()) *pipeline {
	sctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		err := sub.Subscribe(sctx, dest, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			cnt.add(1)
			return nil
		}))
		if err == nil && sctx.Err() == nil {
			err = errors.New("subscribe returned early")
		}
		if err != nil {
			cnt.fail(err)
		}
		errc <- err
	}()
	return &pipeline{
		publish: func(ctx context.Context, n int) error {
			for sent := 0; sent < n; {
				k := min(batch, n-sent)
				// Fresh messages each call, as an application builds them;
				// Publish writes their IDs and trace headers.
				msgs := make([]*middleware.Message, k)
				for i := range msgs {
					msgs[i] = &middleware.Message{Body: body}
				}
				if err := pub.Publish(ctx, dest, msgs...); err != nil {
					return err
				}
				sent += k
			}
			return nil
		},
		stop: func() error {
			cancel()
			err := <-errc
			release()
			return err
		},
	}
}
