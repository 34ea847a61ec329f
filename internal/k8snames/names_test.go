package k8snames

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Generated names stay valid DNS labels, stable, and apart.
func TestShortName(t *testing.T) {
	long := "cilium-gateway-gateway-tlsroute-invalid-backend-ref-unknown-kind"
	a, b := ShortName(long), ShortName(long+"-2")
	if len(validation.IsDNS1123Label(a)) > 0 || len(validation.IsDNS1123Label(b)) > 0 {
		t.Errorf("not DNS labels: %q %q", a, b)
	}
	if a == b || a != ShortName(long) || !strings.HasPrefix(a, "cilium-gateway-gateway-tlsroute") {
		t.Errorf("ShortName(%q) = %q, of the longer %q", long, a, b)
	}
	if ShortName("cilium-gateway-web") != "cilium-gateway-web" {
		t.Error("a short name changed")
	}
}
