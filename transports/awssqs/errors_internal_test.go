package awssqs

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/otelmq/otelmq/middleware"
)

// TestNamedKeepsWrapperOverNamelessCause: named gives an SDK-wrapped error
// its cause's type, but a cause whose type says nothing (errors.New,
// fmt.Errorf: "_OTHER") does not replace the wrapper's type, which at least
// says the call failed.
func TestNamedKeepsWrapperOverNamelessCause(t *testing.T) {
	for _, tc := range []struct {
		cause error
		want  string
	}{
		{errors.New("boom"), "*smithy.OperationError"},
		{fmt.Errorf("dialing: %w", errors.New("boom")), "*smithy.OperationError"},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, "*net.OpError"},
	} {
		err := &smithy.OperationError{ServiceID: "SQS", OperationName: "SendMessage", Err: tc.cause}
		got := named(err)
		if typ := middleware.ErrorType(got); typ != tc.want {
			t.Errorf("named(%v): error.type %q, want %q", err, typ, tc.want)
		}
		if !errors.Is(got, err) {
			t.Errorf("named(%v) lost the SDK's error", err)
		}
	}
}
