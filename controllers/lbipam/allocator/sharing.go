package allocator

import (
	"fmt"
	"maps"
	"slices"
)

// compatibleWithAll says whether s may share an address with every one of
// holders, and if not, why not (for the Service condition).
func compatibleWithAll(s *Service, holders []*serviceState) (bool, string) {
	for _, h := range holders {
		if ok, why := compatible(s, h.Service); !ok {
			return false, why
		}
	}
	return true, ""
}

// compatible applies the sharing rules: the same sharing key; the same
// namespace unless both Services allow each other's namespace; no port number
// in common (the datapath cannot tell protocols apart on one address); the same
// externalTrafficPolicy; and with Local, the same non-empty pod selector, since
// both must be served by the same nodes.
func compatible(a, b *Service) (bool, string) {
	switch {
	case a.SharingKey == "" || a.SharingKey != b.SharingKey:
		return false, "the sharing keys differ"
	case a.Key.Namespace != b.Key.Namespace && !(allowsNamespace(a, b.Key.Namespace) && allowsNamespace(b, a.Key.Namespace)):
		return false, fmt.Sprintf("the services are in different namespaces (%s, %s) and do not both allow sharing across them", a.Key.Namespace, b.Key.Namespace)
	case a.ExternalTrafficPolicy != b.ExternalTrafficPolicy:
		return false, "the services have different externalTrafficPolicy"
	case a.ExternalTrafficPolicy == ExternalTrafficPolicyLocal &&
		(len(a.PodSelector) == 0 || !maps.Equal(a.PodSelector, b.PodSelector)):
		return false, "the services have externalTrafficPolicy Local and different pod selectors"
	}
	for _, p := range a.Ports {
		if slices.Contains(b.Ports, p) {
			return false, fmt.Sprintf("the services both use port %d", p)
		}
	}
	return true, ""
}

func allowsNamespace(s *Service, ns string) bool {
	return slices.Contains(s.CrossNamespace, "*") || slices.Contains(s.CrossNamespace, ns)
}
