package translate

import "strings"

// Host names follow the Gateway API: "*.example.com" matches any name with
// one or more labels before ".example.com" (as Envoy's suffix domains do),
// and an empty name matches everything.

// intersect returns the names a route serves through a listener: each route
// name that the listener's name covers, or the listener's own name where it
// is the narrower. No route names means the listener's name ("" for any).
// ok is false when nothing overlaps.
func intersect(listener string, route []string) (names []string, ok bool) {
	if len(route) == 0 {
		return []string{listener}, true
	}
	if listener == "" {
		return route, true
	}
	for _, r := range route {
		switch {
		case covers(listener, r):
			names = append(names, r)
		case covers(r, listener):
			names = append(names, listener)
		}
	}
	return dedupe(names), len(names) > 0
}

// covers says whether pattern matches every name that name matches.
func covers(pattern, name string) bool {
	if pattern == "" || pattern == name {
		return true
	}
	suffix, wild := strings.CutPrefix(pattern, "*")
	if !wild {
		return false
	}
	// "*.a.com" covers "b.a.com", "c.b.a.com" and "*.b.a.com".
	return strings.HasSuffix(name, suffix) && len(strings.TrimPrefix(name, "*")) > len(suffix)
}

// specificity orders listener host names for isolation: an exact name beats
// any wildcard, a longer wildcard beats a shorter one, and any name beats
// none.
func specificity(name string) int {
	switch {
	case name == "":
		return 0
	case strings.HasPrefix(name, "*"):
		return 1 + len(name)
	default:
		return 1 << 20
	}
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
