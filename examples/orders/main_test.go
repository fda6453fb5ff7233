package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// TestDemo runs the demo end to end (SQS on goaws and Kafka on kfake in
// process; RabbitMQ when one answers, else the in-memory transport) and
// checks the shape of each order's trace, not the printed text.
func TestDemo(t *testing.T) {
	for _, batch := range []bool{false, true} {
		name := "one request per order"
		if batch {
			name = "one batch"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out, logs bytes.Buffer
			rep, err := run(ctx, config{orders: 3, fail: 2, batch: batch, parent: middleware.ParentMessage, logs: &logs}, &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			t.Logf("RabbitMQ hop: %s", rep.rabbit)
			if os.Getenv("CI") == "true" && !strings.HasPrefix(rep.rabbit, "RabbitMQ:") {
				t.Errorf("CI=true but the RabbitMQ hop ran in memory: %s", rep.rabbit)
			}
			rabbitSystem := propagation.SystemRabbitMQ
			if !strings.HasPrefix(rep.rabbit, "RabbitMQ:") {
				rabbitSystem = propagation.SystemMemory
			}
			if len(rep.orders) != 3 {
				t.Fatalf("%d orders reported, want 3", len(rep.orders))
			}
			for _, o := range rep.orders {
				checkOrder(t, o, o.id == 2, rabbitSystem)
			}
			if !strings.Contains(logs.String(), "trace_id=") {
				t.Errorf("handler logs carry no trace_id:\n%s", logs.String())
			}
		})
	}
}

func checkOrder(t *testing.T, o orderReport, failed bool, rabbitSystem string) {
	t.Helper()
	want := map[bool]string{false: "fulfilled", true: "dead-lettered"}[failed]
	if o.outcome != want {
		t.Errorf("order %d: outcome %q, want %q", o.id, o.outcome, want)
	}
	if len(o.traces) != 1 {
		t.Errorf("order %d: spans in %d traces %v, want 1", o.id, len(o.traces), o.traces)
	}
	tid := o.traces[0]
	for _, s := range o.spans {
		if s.SpanContext().TraceID() != tid {
			t.Errorf("order %d: span %q in trace %s, want %s", o.id, s.Name(), s.SpanContext().TraceID(), tid)
		}
	}

	// Process spans per messaging system, and DLQ ones apart.
	process := map[string]int{}
	dlq := 0
	kinds := map[trace.SpanKind]int{}
	shipped := false
	for _, s := range o.spans {
		kinds[s.SpanKind()]++
		if s.Name() == "ship order" {
			shipped = true
		}
		if s.SpanKind() != trace.SpanKindConsumer {
			continue
		}
		if isDeadLetter(s) {
			dlq++
			if svc := service(s); svc != svcDeadLetters {
				t.Errorf("order %d: DLQ process span from service %q", o.id, svc)
			}
			continue
		}
		process[attr(s, "messaging.system")]++
	}
	for _, system := range []string{propagation.SystemSQS, rabbitSystem} {
		if process[system] == 0 {
			t.Errorf("order %d: no process span on %s (have %v)", o.id, system, process)
		}
	}
	if failed {
		if dlq == 0 {
			t.Errorf("order %d failed but has no DLQ process span in its trace", o.id)
		}
		if process[propagation.SystemKafka] != 0 || shipped {
			t.Errorf("order %d failed but reached fulfilment", o.id)
		}
		if !hasError(o.spans, "fraud_rejected") {
			t.Errorf("order %d: no span records error.type fraud_rejected", o.id)
		}
	} else {
		if process[propagation.SystemKafka] == 0 || !shipped {
			t.Errorf("order %d: not processed on kafka / not shipped (process spans %v)", o.id, process)
		}
		if dlq != 0 {
			t.Errorf("order %d succeeded but was dead-lettered", o.id)
		}
	}
	for _, k := range []trace.SpanKind{trace.SpanKindServer, trace.SpanKindProducer, trace.SpanKindConsumer} {
		if kinds[k] == 0 {
			t.Errorf("order %d: no %s span", o.id, k)
		}
	}
	services := map[string]bool{}
	for _, s := range o.spans {
		services[service(s)] = true
	}
	for _, svc := range []string{svcAPI, svcPayment, svcFraud} {
		if !services[svc] {
			t.Errorf("order %d: no span from service %s", o.id, svc)
		}
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func hasError(spans []sdktrace.ReadOnlySpan, errorType string) bool {
	for _, s := range spans {
		if attr(s, "error.type") == errorType {
			return true
		}
	}
	return false
}

// TestParentNone checks the other side of WithProcessParent: process spans
// start new traces, linked to the message, and the demo reports the split
// instead of failing.
func TestParentNone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, config{orders: 1, parent: middleware.ParentNone}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	o := rep.orders[0]
	if len(o.traces) < 2 {
		t.Fatalf("-parent none: order spans in %d trace(s), want process spans in their own", len(o.traces))
	}
	for _, s := range o.spans {
		if s.SpanKind() == trace.SpanKindConsumer && s.SpanContext().TraceID() == o.traces[0] {
			t.Errorf("-parent none: process span %q is in the order's trace", s.Name())
		}
		if s.SpanKind() == trace.SpanKindConsumer && len(s.Links()) == 0 {
			t.Errorf("-parent none: process span %q has no link to its message", s.Name())
		}
	}
}

// TestParentBoth: -parent both keeps each order one trace, as the default
// does, and its process spans on the pull-based hops link their receive
// spans, which the default's do not.
func TestParentBoth(t *testing.T) {
	linked := func(parent middleware.ProcessParent) int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var out bytes.Buffer
		rep, err := run(ctx, config{orders: 1, parent: parent}, &out)
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		o := rep.orders[0]
		if len(o.traces) != 1 {
			t.Fatalf("-parent %s: order spans in %d traces, want 1", parentName(parent), len(o.traces))
		}
		n := 0
		for _, s := range o.spans {
			if s.SpanKind() == trace.SpanKindConsumer && len(s.Links()) > 0 {
				n++
			}
		}
		return n
	}
	if n := linked(middleware.ParentMessage); n != 0 {
		t.Errorf("-parent message: %d process spans have links, want none", n)
	}
	if n := linked(middleware.ParentMessageLinkReceive); n == 0 {
		t.Error("-parent both: no process span links a receive span")
	}
	if p, err := parseParent("both"); err != nil || p != middleware.ParentMessageLinkReceive {
		t.Errorf(`parseParent("both") = %v, %v`, p, err)
	}
}
