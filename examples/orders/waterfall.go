package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const barWidth = 40

// printWaterfall prints the spans of trace id as a tree with kinds, start
// offsets and duration bars, so the queue gap between producer and consumer
// is visible.
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
	sort.Slice(spans, func(i, j int) bool { return spans[i].StartTime().Before(spans[j].StartTime()) })
	start, end := spans[0].StartTime(), spans[0].EndTime()
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	present := map[trace.SpanID]bool{}
	for _, s := range spans {
		present[s.SpanContext().SpanID()] = true
		if s.EndTime().After(end) {
			end = s.EndTime()
		}
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent().SpanID(); s.Parent().IsValid() && present[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	total := end.Sub(start)
	if total <= 0 {
		total = time.Nanosecond
	}
	fmt.Fprintf(w, "trace %s  (%d spans, %s)\n", id, len(spans), total.Round(time.Microsecond))
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		off := s.StartTime().Sub(start)
		dur := s.EndTime().Sub(s.StartTime())
		from := int(float64(off) / float64(total) * barWidth)
		width := max(1, int(float64(dur)/float64(total)*barWidth))
		if from+width > barWidth {
			from = max(0, barWidth-width)
		}
		bar := strings.Repeat(" ", from) + strings.Repeat("█", width) + strings.Repeat(" ", barWidth-from-width)
		label := strings.Repeat("  ", depth) + s.Name()
		fmt.Fprintf(w, "  %-44s %-8s |%s| +%-9s %s\n", label, strings.ToLower(s.SpanKind().String()), bar,
			off.Round(time.Microsecond), dur.Round(time.Microsecond))
		for _, c := range children[s.SpanContext().SpanID()] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
}
