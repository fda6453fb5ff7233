package main

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

const (
	// kafkaBatch is the records per produce call: ProduceSync in the raw
	// and kotel modes, Publish in the otelmq ones, which is ProduceSync too.
	kafkaBatch = 100
	// kafkaPartitions spreads a topic over enough partitions that the
	// otelmq Subscriber's per-partition concurrency is exercised.
	kafkaPartitions = 4
	// kafkaPoll is the records per poll, the otelmq Subscriber's default.
	kafkaPoll = 500
)

// newKafka starts a kfake cluster with a topic per mode and repetition, so
// no run reads another's records and every consumer group starts empty.
func newKafka(runs int) (*transport, error) {
	names := []string{modeRaw, modeNoop, modeSDK, modeRatio, modeRatioPB, modeKotel, modeHooks}
	var topics []string
	for _, m := range names {
		for rep := range runs {
			topics = append(topics, kafkaTopic(m, rep))
		}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(kafkaPartitions, topics...))
	if err != nil {
		return nil, fmt.Errorf("starting kfake: %w", err)
	}
	seeds := c.ListenAddrs()
	return &transport{
		name:     "kafka",
		defaultN: 100_000,
		notes: []string{
			fmt.Sprintf("kfake runs in this process (1 broker, %d partitions): its CPU and allocations count in every mode's.", kafkaPartitions),
			"kotel-sdk is franz-go's plugin/kotel hooks on both clients, plus kotel's process span per record, on the same SDK pipeline.",
			"otelmq-hooks-sdk is otelmq's kgo hooks (kafka.Hooks) on both clients, with ReceiveContext per poll and StartProcess per record, on the same SDK pipeline.",
		},
		modes: []mode{
			kgoMode(modeRaw, tracingNone, seeds),
			otelmqMode(modeNoop, tracingNoop, kafkaBatch, kafkaPair(modeNoop, seeds)),
			otelmqMode(modeSDK, tracingAlways, kafkaBatch, kafkaPair(modeSDK, seeds)),
			otelmqMode(modeRatio, tracingRatio, kafkaBatch, kafkaPair(modeRatio, seeds)),
			otelmqMode(modeRatioPB, tracingRatioPB, kafkaBatch, kafkaPair(modeRatioPB, seeds)),
			kgoMode(modeKotel, tracingAlways, seeds),
			kgoMode(modeHooks, tracingAlways, seeds),
		},
		targets: func(r *results) []verdict {
			vs := []verdict{noopTarget(r, 0.90)}
			x := r.ratio(modeSDK, modeKotel, rate)
			vs = append(vs, verdict{"otelmq-sdk throughput >= 1.5x kotel-sdk", fmt.Sprintf("%.2fx", x), x >= 1.5})
			a := r.med(modeSDK, allocs)
			vs = append(vs, verdict{"otelmq-sdk allocs <= 25 per record", fmt.Sprintf("%.1f", a), a <= 25})
			x = r.ratio(modeHooks, modeKotel, rate)
			vs = append(vs, verdict{"otelmq-hooks-sdk throughput >= 1.5x kotel-sdk", fmt.Sprintf("%.2fx", x), x >= 1.5})
			a = r.med(modeHooks, allocs)
			vs = append(vs, verdict{"otelmq-hooks-sdk allocs <= 25 per record", fmt.Sprintf("%.1f", a), a <= 25})
			return vs
		},
		close: c.Close,
	}, nil
}

func kafkaTopic(mode string, rep int) string { return fmt.Sprintf("bench-%s-%d", mode, rep) }

// kafkaClients returns a producer and a group consumer for topic, the
// consumer built as the otelmq Subscriber requires (and the raw modes use
// it the same way, so they commit as much as it does).
func kafkaClients(seeds []string, topic string, hooks []kgo.Hook) (prod, cons *kgo.Client, err error) {
	common := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if len(hooks) > 0 {
		common = append(common, kgo.WithHooks(hooks...))
	}
	prod, err = kgo.NewClient(slices.Concat(common, []kgo.Opt{kgo.DefaultProduceTopic(topic)})...)
	if err != nil {
		return nil, nil, err
	}
	cons, err = kgo.NewClient(slices.Concat(common, []kgo.Opt{
		kgo.ConsumerGroup("g-" + topic),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	})...)
	if err != nil {
		prod.Close()
		return nil, nil, err
	}
	return prod, cons, nil
}

func kafkaPair(name string, seeds []string) func(context.Context, int) (middleware.Publisher, middleware.Subscriber, string, func(), error) {
	return func(_ context.Context, rep int) (middleware.Publisher, middleware.Subscriber, string, func(), error) {
		topic := kafkaTopic(name, rep)
		prod, cons, err := kafkaClients(seeds, topic, nil)
		if err != nil {
			return nil, nil, "", nil, err
		}
		release := func() { cons.Close(); prod.Close() }
		return kafka.NewPublisher(prod), kafka.NewSubscriber(cons), topic, release, nil
	}
}

// kgoMode is plain franz-go: ProduceSync in batches, and a poll loop that
// handles each record and commits each poll synchronously, as the otelmq
// Subscriber does. With a provider it adds kotel's hooks on both clients
// and a kotel process span around each record's handling.
func kgoMode(name string, tr tracing, seeds []string) mode {
	return mode{name: name, tracing: tr, build: func(ctx context.Context, rep int, tp trace.TracerProvider, cnt *counter) (*pipeline, error) {
		topic := kafkaTopic(name, rep)
		var (
			kt    *kotel.Tracer
			oh    *kafka.Hooks
			hooks []kgo.Hook
		)
		switch {
		case tp != nil && name == modeHooks:
			// Tracing alone, as in the otelmq modes: kotel's tracer has no
			// meter either.
			oh = kafka.NewHooksWithTracing(middleware.NewTracing(tracingOptions(tp, tr)...))
			hooks = []kgo.Hook{oh}
		case tp != nil:
			kt = kotel.NewTracer(kotel.TracerProvider(tp), kotel.ConsumerGroup("g-"+topic))
			hooks = kotel.NewKotel(kotel.WithTracer(kt)).Hooks()
		}
		prod, cons, err := kafkaClients(seeds, topic, hooks)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			// With BlockRebalanceOnPoll a poll blocks rebalances until
			// AllowRebalance, and so does Close's leave: allow on every exit.
			defer cons.AllowRebalance()
			for {
				fs := cons.PollRecords(sctx, kafkaPoll)
				if fs.IsClientClosed() || sctx.Err() != nil {
					return
				}
				recs := fs.Records()
				rctx := sctx
				if oh != nil && len(recs) > 0 {
					rctx = oh.ReceiveContext(sctx, fs)
				}
				for _, r := range recs {
					switch {
					case oh != nil:
						_, span := oh.StartProcess(rctx, r)
						cnt.add(1)
						span.End()
					case kt != nil:
						_, span := kt.WithProcessSpan(r)
						cnt.add(1)
						span.End()
					default:
						cnt.add(1)
					}
				}
				if len(recs) > 0 {
					if err := cons.CommitRecords(sctx, recs...); err != nil && sctx.Err() == nil {
						cnt.fail(fmt.Errorf("commit: %w", err))
						return
					}
				}
				cons.AllowRebalance()
			}
		})
		return &pipeline{
			publish: func(ctx context.Context, n int) error {
				for sent := 0; sent < n; {
					k := min(kafkaBatch, n-sent)
					recs := make([]*kgo.Record, k)
					for i := range recs {
						recs[i] = &kgo.Record{Value: body}
					}
					if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
						return err
					}
					sent += k
				}
				return nil
			},
			stop: func() error {
				cancel()
				wg.Wait()
				cons.Close()
				prod.Close()
				return nil
			},
		}, nil
	}}
}
