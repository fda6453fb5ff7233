// Command bench measures what otelmq costs end to end: for each transport it
// publishes and consumes N small messages with the native client alone
// (raw), through otelmq with a no-op TracerProvider, through otelmq with
// the OpenTelemetry SDK sampling everything, and with the SDK sampling 10 %
// of traces; Kafka adds franz-go's kotel plugin on the same SDK and
// RabbitMQ a hand-written tracer, the two alternatives users weigh otelmq
// against. It prints a table per transport with the targets otelmq sets
// itself and whether this run met them, then the cost of the middleware
// path alone, then a sustained run of 1,000,000 in-memory messages checking
// that the heap and the goroutine count stay flat.
//
//	go run ./examples/bench                    # defaults, about 2 minutes
//	go run ./examples/bench -quick             # N / 10
//	go run ./examples/bench -transports kafka -n 50000 -runs 7
//	go run ./examples/bench -transports memory -path=false -sustained 5000000
//	go run ./examples/bench -transports kafka -modes otelmq-sdk -path=false -sustained 0 -cpuprofile cpu.out
//
// Kafka runs on an in-process kfake cluster and SQS on an in-process goaws,
// so their client CPU includes the broker's; RabbitMQ needs a broker
// (AMQP_URL, 127.0.0.1:5672 or a testcontainers container) and is skipped
// without one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// bodySize is the payload of every message: small, so the per-message
// overhead being measured is not hidden behind copying payload bytes.
const bodySize = 64

// body is printable because SQS only accepts XML characters in a body.
var body = []byte(strings.Repeat("x", bodySize))

type config struct {
	n          int // messages per run; 0 picks each transport's default
	runs       int
	transports []string
	quick      bool
	path       bool
	sustained  int      // in-memory messages of the sustained-load run; 0: none
	modes      []string // modes to run; empty: all
	cpuprofile string
	memprofile string
	settle     bool // settle spans in the otelmq modes
	create     bool // create spans in the otelmq modes
	link       bool // process spans link their receive span in the otelmq modes
}

func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&c.n, "n", 0, "messages per run for every transport (default: memory 100000, kafka 100000, rabbitmq 20000, sqs 2000)")
	fs.IntVar(&c.runs, "runs", 5, "interleaved repetitions; the tables show medians")
	list := fs.String("transports", "memory,kafka,rabbitmq,sqs", "comma-separated transports to run")
	fs.BoolVar(&c.quick, "quick", false, "divide the default message counts by 10 and shorten the path benchmark")
	fs.BoolVar(&c.path, "path", true, "also measure the middleware path alone (testing.Benchmark)")
	fs.IntVar(&c.sustained, "sustained", 1_000_000, "in-memory messages of the sustained-load run checking heap and goroutines stay flat (0: skip; -quick divides the default by 10)")
	modes := fs.String("modes", "", "comma-separated modes to run (e.g. otelmq-sdk,kotel-sdk); empty: all, and only then are targets judged")
	fs.BoolVar(&c.create, "create-spans", true, "record a create span per message of a batch publish in the otelmq modes; false runs them with middleware.WithCreateSpans(false): the messages of a batch carry the send span's context")
	fs.BoolVar(&c.link, "link-receive", false, "run the otelmq modes (and the kgo hooks) with middleware.WithProcessParent(middleware.ParentMessageLinkReceive): each process span also links its receive span")
	fs.BoolVar(&c.settle, "settle-spans", true, "record settle spans (ack, delete, commit) in the otelmq modes; false runs them with middleware.WithSettleSpans(false)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the transport runs to this file (go tool pprof -top)")
	fs.StringVar(&c.memprofile, "memprofile", "", "write an allocation profile of the transport runs to this file (go tool pprof -sample_index=alloc_space -top)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for m := range strings.SplitSeq(*modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.modes = append(c.modes, m)
		}
	}
	if c.runs < 1 {
		return c, errors.New("-runs must be at least 1")
	}
	if c.n < 0 {
		return c, errors.New("-n must not be negative")
	}
	if c.sustained < 0 {
		return c, errors.New("-sustained must not be negative")
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if c.quick && !explicit["sustained"] {
		c.sustained /= 10
	}
	for t := range strings.SplitSeq(*list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.transports = append(c.transports, t)
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "otelmq bench: %d runs per mode, mode order rotated each run, medians shown; GOMAXPROCS=%d, %s\n",
		cfg.runs, runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintln(out, "CPU is the process's user+sys time (getrusage) per message; allocs are runtime mallocs per message.")
	settleSpans, createSpans, linkReceive = cfg.settle, cfg.create, cfg.link
	if !settleSpans {
		fmt.Fprintln(out, "otelmq modes run with middleware.WithSettleSpans(false): no settle spans.")
	}
	if !createSpans {
		fmt.Fprintln(out, "otelmq modes run with middleware.WithCreateSpans(false): no create spans.")
	}
	if linkReceive {
		fmt.Fprintln(out, "otelmq modes run with middleware.WithProcessParent(middleware.ParentMessageLinkReceive): process spans link their receive span.")
	}
	start := time.Now()
	stopProfiles, err := startProfiles(cfg)
	if err != nil {
		return err
	}
	for _, name := range cfg.transports {
		tr, err := newTransport(ctx, name, cfg)
		if err != nil {
			return err
		}
		if tr.skip != "" {
			fmt.Fprintf(out, "\n== %s: skipped: %s\n", name, tr.skip)
			continue
		}
		err = bench(ctx, tr, cfg, out)
		tr.close()
		if err != nil {
			_ = stopProfiles()
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := stopProfiles(); err != nil {
		return err
	}
	if cfg.path {
		pathCost(out, cfg.quick, cfg.runs)
	}
	if cfg.sustained > 0 {
		if err := sustained(ctx, out, cfg.sustained); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\ntotal %s\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// tracing says which TracerProvider a mode's pipeline gets.
type tracing int

const (
	tracingNone   tracing = iota // raw client, no provider
	tracingNoop                  // noop.NewTracerProvider()
	tracingAlways                // SDK, AlwaysSample
	tracingRatio                 // SDK, ParentBased(TraceIDRatioBased(0.1))
	// tracingRatioPB is tracingRatio with the tracing middleware told the
	// sampler is ParentBased (WithParentBasedSampling).
	tracingRatioPB
)

// mode is one way of publishing and consuming over a transport.
type mode struct {
	name    string
	tracing tracing
	// build sets up a fresh pipeline for repetition rep: its own queue or
	// topic, clients and a running consumer that calls cnt.add per message.
	build func(ctx context.Context, rep int, tp trace.TracerProvider, cnt *counter) (*pipeline, error)
}

// pipeline is a mode set up for one repetition.
type pipeline struct {
	publish func(ctx context.Context, n int) error
	// stop stops the consumer and releases what build made.
	stop func() error
}

// transport is a broker with its modes and the targets otelmq holds itself
// to on it.
type transport struct {
	name     string
	skip     string // why the transport cannot run here
	defaultN int
	notes    []string
	modes    []mode
	targets  func(r *results) []verdict
	close    func()
}

const (
	modeRaw   = "raw"
	modeNoop  = "otelmq-noop"
	modeSDK   = "otelmq-sdk"
	modeRatio = "otelmq-sdk-ratio0.1"
	// modeRatioPB is modeRatio with middleware.WithParentBasedSampling.
	modeRatioPB = "otelmq-sdk-ratio0.1-pb"
	modeKotel   = "kotel-sdk"
	modeHooks   = "otelmq-hooks-sdk"
	modeHand    = "handwritten-sdk"
)

func newTransport(ctx context.Context, name string, cfg config) (*transport, error) {
	switch name {
	case "memory":
		return newMemory(), nil
	case "kafka":
		return newKafka(cfg.runs)
	case "rabbitmq":
		return newRabbitMQ(ctx)
	case "sqs":
		return newSQS()
	}
	return nil, fmt.Errorf("unknown transport %q (want memory, kafka, rabbitmq or sqs)", name)
}

// counter counts consumed messages and tells a waiter when a target is
// reached, or that the consumer failed.
type counter struct {
	mu     sync.Mutex
	n      int64
	target int64
	done   chan struct{}
	err    error
}

func newCounter() *counter { return &counter{} }

func (c *counter) add(k int) {
	c.mu.Lock()
	c.n += int64(k)
	if c.done != nil && c.n >= c.target {
		close(c.done)
		c.done = nil
	}
	c.mu.Unlock()
}

// fail ends any wait with err: a consumer that died must not leave the
// benchmark waiting for messages that will never come.
func (c *counter) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	if c.done != nil {
		close(c.done)
		c.done = nil
	}
	c.mu.Unlock()
}

// expect returns a channel closed once k more messages were consumed.
func (c *counter) expect(k int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	c.target = c.n + int64(k)
	if c.n >= c.target || c.err != nil {
		close(ch)
	} else {
		c.done = ch
	}
	return ch
}

func (c *counter) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// deliverTimeout bounds one run's wait for its messages, so a lost message
// fails the benchmark instead of hanging it.
const deliverTimeout = 2 * time.Minute

// deliver publishes n messages and waits until the consumer has seen them.
func deliver(ctx context.Context, p *pipeline, cnt *counter, n int) error {
	done := cnt.expect(n)
	if err := p.publish(ctx, n); err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	t := time.NewTimer(deliverTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return fmt.Errorf("timed out waiting for %d messages", n)
	case <-ctx.Done():
		return ctx.Err()
	}
	return cnt.failure()
}

// sample is one mode's measurement in one repetition.
type sample struct {
	rate    float64 // messages per second
	cpu     float64 // process CPU ns per message
	allocs  float64 // mallocs per message
	spans   int64   // spans ended (SDK modes)
	spanMsg float64 // spans per message, warm-up included
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure sets up m for repetition rep, warms it up with one message (so
// connections, consumer-group joins and lazily opened channels are not
// timed), then times n messages end to end.
func measure(ctx context.Context, m mode, rep, n int) (s sample, err error) {
	var tp trace.TracerProvider
	var sdk *sdkProvider
	switch m.tracing {
	case tracingNoop:
		tp = noop.NewTracerProvider()
	case tracingAlways:
		sdk = newSDK(sdktrace.AlwaysSample(), n)
	case tracingRatio, tracingRatioPB:
		sdk = newSDK(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1)), n)
	}
	if sdk != nil {
		tp = sdk.tp
	}
	cnt := newCounter()
	p, err := m.build(ctx, rep, tp, cnt)
	if err != nil {
		return s, fmt.Errorf("%s: setup: %w", m.name, err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p.stop()
		}
	}()
	if err := deliver(ctx, p, cnt, 1); err != nil {
		return s, fmt.Errorf("%s: warm-up: %w", m.name, err)
	}
	// Garbage left by setup would otherwise be collected on the timed
	// run's account.
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, t0 := cpuTime(), time.Now()
	err = deliver(ctx, p, cnt, n)
	elapsed, cpu1 := time.Since(t0), cpuTime()
	runtime.ReadMemStats(&ms1)
	if err != nil {
		return s, fmt.Errorf("%s: %w", m.name, err)
	}
	stopped = true
	if err := p.stop(); err != nil {
		return s, fmt.Errorf("%s: stopping: %w", m.name, err)
	}
	s = sample{
		rate:   float64(n) / elapsed.Seconds(),
		cpu:    float64(cpu1-cpu0) / float64(n),
		allocs: float64(ms1.Mallocs-ms0.Mallocs) / float64(n),
	}
	if sdk != nil {
		// Spans still ending (settle spans end after the handler) are
		// flushed here, outside the timed part.
		ended, _, err := sdk.finish(ctx)
		if err != nil {
			return s, fmt.Errorf("%s: %w", m.name, err)
		}
		s.spans, s.spanMsg = ended, float64(ended)/float64(n+1)
	}
	return s, nil
}

// results holds every sample of a transport, by mode then repetition.
type results struct {
	modes   []string
	samples map[string][]sample
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *results) has(mode string) bool { return len(r.samples[mode]) > 0 }

func (r *results) med(mode string, f func(sample) float64) float64 {
	var xs []float64
	for _, s := range r.samples[mode] {
		xs = append(xs, f(s))
	}
	return median(xs)
}

// ratio is the median over repetitions of f(a)/f(b), both measured in the
// same repetition, so drift between repetitions cancels out.
func (r *results) ratio(a, b string, f func(sample) float64) float64 {
	sa, sb := r.samples[a], r.samples[b]
	var xs []float64
	for i := range min(len(sa), len(sb)) {
		if d := f(sb[i]); d > 0 {
			xs = append(xs, f(sa[i])/d)
		}
	}
	return median(xs)
}

func rate(s sample) float64   { return s.rate }
func cpu(s sample) float64    { return s.cpu }
func allocs(s sample) float64 { return s.allocs }

// verdict is one target and whether the run met it.
type verdict struct {
	what string
	got  string
	ok   bool
}

func bench(ctx context.Context, tr *transport, cfg config, out io.Writer) error {
	n := tr.defaultN
	if cfg.quick {
		n = max(n/10, 1)
	}
	if cfg.n > 0 {
		n = cfg.n
	}
	r := &results{samples: map[string][]sample{}}
	var modes []mode
	for _, m := range tr.modes {
		if len(cfg.modes) == 0 || slices.Contains(cfg.modes, m.name) {
			modes = append(modes, m)
			r.modes = append(r.modes, m.name)
		}
	}
	if len(modes) == 0 {
		fmt.Fprintf(out, "\n== %s: skipped: none of -modes %s is one of its modes\n", tr.name, strings.Join(cfg.modes, ","))
		return nil
	}
	start := time.Now()
	for rep := range cfg.runs {
		// Rotating the order gives every mode every slot, so a trend over
		// the run (a heating CPU, a filling broker) hits all modes alike.
		for i := range modes {
			m := modes[(i+rep)%len(modes)]
			s, err := measure(ctx, m, rep, n)
			if err != nil {
				return err
			}
			r.samples[m.name] = append(r.samples[m.name], s)
		}
	}
	fmt.Fprintf(out, "\n== %s: %d messages of %d B per run, %d runs, %s\n", tr.name, n, bodySize, cfg.runs, time.Since(start).Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tmsgs/s\tspread\tx raw\tCPU µs/msg\tallocs/msg\tspans/msg\tspans ended=exported\t")
	for _, name := range r.modes {
		ss := r.samples[name]
		rates := make([]float64, len(ss))
		for i, s := range ss {
			rates[i] = s.rate
		}
		med := median(rates)
		spread := "-"
		if med > 0 && len(rates) > 1 {
			spread = fmt.Sprintf("±%.0f%%", 50*(slices.Max(rates)-slices.Min(rates))/med)
		}
		spans, ended := "-", "-"
		if ss[0].spans > 0 || strings.Contains(name, "sdk") {
			var total int64
			for _, s := range ss {
				total += s.spans
			}
			spans = fmt.Sprintf("%.2f", r.med(name, func(s sample) float64 { return s.spanMsg }))
			ended = fmt.Sprintf("%d ok", total)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.3f\t%.2f\t%.1f\t%s\t%s\t\n", name, med, spread,
			r.ratio(name, modeRaw, rate), r.med(name, cpu)/1e3, r.med(name, allocs), spans, ended)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, note := range tr.notes {
		fmt.Fprintln(out, "note:", note)
	}
	if len(cfg.modes) > 0 {
		fmt.Fprintln(out, "targets not judged: -modes ran a subset of the modes")
		return nil
	}
	for _, v := range append(tr.targets(r), ratioTargets(r)...) {
		printVerdict(out, v)
	}
	return nil
}

// startProfiles starts the profiles cfg asks for; the func it returns stops
// them and writes them out.
func startProfiles(cfg config) (func() error, error) {
	var cpuFile *os.File
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, err
		}
		cpuFile = f
	}
	return func() error {
		if cpuFile != nil {
			pprof.StopCPUProfile()
			if err := cpuFile.Close(); err != nil {
				return err
			}
		}
		if cfg.memprofile == "" {
			return nil
		}
		f, err := os.Create(cfg.memprofile)
		if err != nil {
			return err
		}
		// The allocs profile counts every allocation since the start,
		// which is what the allocs/msg column counts too.
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	}, nil
}

func printVerdict(out io.Writer, v verdict) {
	status := "MISS"
	if v.ok {
		status = "PASS"
	}
	fmt.Fprintf(out, "target %-58s %-22s %s\n", v.what, v.got, status)
}

// ratioTargets is the target every transport has for the SDK sampling 10 %
// of traces, what production tracing usually runs with: judged on the
// default configuration and on the one a user with this ParentBased
// sampler would choose, WithParentBasedSampling on.
func ratioTargets(r *results) []verdict {
	var vs []verdict
	for _, m := range []string{modeRatio, modeRatioPB} {
		got := r.ratio(m, modeRaw, rate)
		vs = append(vs, verdict{m + " throughput >= 0.90x raw", fmt.Sprintf("%.3fx", got), got >= 0.90})
	}
	return vs
}

// noopTarget is the target every transport has: a no-op provider must cost
// (almost) nothing next to the raw client.
func noopTarget(r *results, min float64) verdict {
	got := r.ratio(modeNoop, modeRaw, rate)
	return verdict{fmt.Sprintf("otelmq-noop throughput >= %.2fx raw", min), fmt.Sprintf("%.3fx", got), got >= min}
}
