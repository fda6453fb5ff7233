package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const barWidth = 40

// printWaterfall prints the spans of trace id as a tree, the way a tracing
// UI draws it: service, span name, kind, a bar placed at the span's start
// offset and as long as its duration, then offset and duration. The time a
// message waited in a queue (from the end of the send span to the start of
// its process span) is drawn with dots, so the broker's share of the
// latency is visible; failed spans and the dead-letter branch are marked.
func printWaterfall(w io.Writer, id trace.TraceID, all []sdktrace.ReadOnlySpan) {
	var spans []sdktrace.ReadOnlySpan
	for _, s := range all {
		if s.SpanContext().TraceID() == id {
			spans = append(spans, s)
		}
	}
	if len(spans) == 0 {
		fmt.Fprintf(w, "trace %s: no spans\n", id)
		return
	}
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].StartTime().Before(spans[j].StartTime()) })
	start, end := spans[0].StartTime(), spans[0].EndTime()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
		if s.EndTime().After(end) {
			end = s.EndTime()
		}
	}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent().SpanID(); s.Parent().IsValid() && byID[p] != nil {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	total := end.Sub(start)
	if total <= 0 {
		total = time.Nanosecond
	}
	col := func(t time.Time) int {
		return min(barWidth-1, max(0, int(float64(t.Sub(start))/float64(total)*barWidth)))
	}

	fmt.Fprintf(w, "trace %s  (%d spans, %s)\n", id, len(spans), total.Round(time.Millisecond))
	fmt.Fprintf(w, "  %-12s %-50s %-8s %-*s %9s %9s\n", "service", "span", "kind", barWidth+2, "", "start", "duration")
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		bar := []rune(strings.Repeat(" ", barWidth))
		var notes []string
		parent := byID[s.Parent().SpanID()]
		if s.SpanKind() == trace.SpanKindConsumer && parent != nil && parent.SpanKind() == trace.SpanKindProducer {
			if gap := s.StartTime().Sub(parent.EndTime()); gap > 0 {
				for i := col(parent.EndTime()); i < col(s.StartTime()); i++ {
					bar[i] = '·'
				}
				notes = append(notes, "queued "+gap.Round(time.Millisecond/10).String())
			}
		}
		from, to := col(s.StartTime()), col(s.EndTime())
		for i := from; i <= to; i++ {
			bar[i] = '█'
		}
		if s.Status().Code == codes.Error {
			notes = append(notes, "✗ "+errorType(s))
		}
		if isDeadLetter(s) {
			notes = append(notes, "dead letter")
		}
		label := strings.Repeat("  ", depth) + s.Name()
		if len(label) > 50 {
			label = label[:49] + "…"
		}
		fmt.Fprintf(w, "  %-12s %-50s %-8s |%s| %9s %9s  %s\n", service(s), label, kind(s), string(bar),
			"+"+s.StartTime().Sub(start).Round(time.Millisecond/10).String(),
			s.EndTime().Sub(s.StartTime()).Round(time.Millisecond/10).String(), strings.Join(notes, ", "))
		for _, c := range children[s.SpanContext().SpanID()] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		if r.Parent().IsValid() {
			// Its parent is in this trace but was not recorded here (another
			// process, or a span still open).
			fmt.Fprintf(w, "  %-12s %s\n", "", "(parent "+r.Parent().SpanID().String()+" not recorded)")
		}
		walk(r, 0)
	}
}

func service(s sdktrace.ReadOnlySpan) string {
	if r := s.Resource(); r != nil {
		if v, ok := r.Set().Value("service.name"); ok {
			return v.AsString()
		}
	}
	return "?"
}

func kind(s sdktrace.ReadOnlySpan) string {
	return strings.ToLower(s.SpanKind().String())
}

func errorType(s sdktrace.ReadOnlySpan) string {
	for _, kv := range s.Attributes() {
		if kv.Key == "error.type" {
			return kv.Value.AsString()
		}
	}
	return "error"
}

// isDeadLetter reports whether s sends to or processes from a dead-letter
// queue, which the demo names "orders-dlq-…".
func isDeadLetter(s sdktrace.ReadOnlySpan) bool {
	for _, kv := range s.Attributes() {
		if kv.Key == "messaging.destination.name" && strings.Contains(kv.Value.AsString(), "dlq") {
			return true
		}
	}
	return false
}
