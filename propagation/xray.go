package propagation

import "go.opentelemetry.io/otel/trace"

// ParseXRay parses an X-Ray trace header
// (Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1)
// into a remote SpanContext. ok is false for anything malformed.
func ParseXRay(header string) (sc trace.SpanContext, ok bool) {
	// TODO(helper)
	return trace.SpanContext{}, false
}

// FormatXRay renders sc as an X-Ray trace header; "" when sc is invalid.
func FormatXRay(sc trace.SpanContext) string {
	// TODO(helper)
	return ""
}
