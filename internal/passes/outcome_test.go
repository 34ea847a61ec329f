package passes

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestClassify(t *testing.T) {
	gr := schema.GroupResource{Resource: "things"}
	for _, tc := range []struct {
		name string
		err  error
		want Outcome
	}{
		{"conflict", apierrors.NewConflict(gr, "a", errors.New("changed")), Repass},
		{"gone", apierrors.NewNotFound(gr, "a"), Repass},
		{"made meanwhile", apierrors.NewAlreadyExists(gr, "a"), Repass},
		{"wrapped conflict", fmt.Errorf("status of X a: %w", apierrors.NewConflict(gr, "a", errors.New("changed"))), Repass},
		{"invalid", apierrors.NewInvalid(schema.GroupKind{Kind: "Thing"}, "a", nil), Drop},
		{"bad request", apierrors.NewBadRequest("no"), Drop},
		{"unavailable", apierrors.NewServiceUnavailable("later"), Retry},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), Retry},
		{"forbidden: an admin may grant it", apierrors.NewForbidden(gr, "a", errors.New("rbac")), Retry},
		{"not an API error", errors.New("speaker refused"), Retry},
		{"marked", WithOutcome(apierrors.NewConflict(gr, "a", errors.New("x")), Drop), Drop},
		{"marked and wrapped", fmt.Errorf("outer: %w", WithOutcome(errors.New("x"), Repass)), Repass},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("%s: Classify(%v) = %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
	if WithOutcome(nil, Drop) != nil {
		t.Error("WithOutcome(nil) is not nil")
	}
}

func TestRepassDelayBacksOffAndIsCapped(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 20; n++ {
		d := repassDelay(100*time.Millisecond, n)
		if d < prev || d > 10*time.Second {
			t.Fatalf("repass %d: %v after %v", n, d, prev)
		}
		prev = d
	}
	if repassDelay(100*time.Millisecond, 1) != 100*time.Millisecond || prev != 10*time.Second {
		t.Errorf("first %v, last %v", repassDelay(100*time.Millisecond, 1), prev)
	}
}

// WriteFailures reads the failed-writes counter, for the runner tests
// (package passes_test).
func WriteFailures(controller string, o Outcome) float64 {
	return testutil.ToFloat64(writeFailures.WithLabelValues(controller, o.String()))
}
