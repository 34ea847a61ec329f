package translate

import (
	"slices"
	"testing"
)

func TestGW28_Intersect(t *testing.T) {
	for _, c := range []struct {
		listener string
		route    []string
		want     []string
		ok       bool
	}{
		{"", nil, []string{""}, true},
		{"", []string{"a.com"}, []string{"a.com"}, true},
		{"a.com", nil, []string{"a.com"}, true},
		{"a.com", []string{"a.com", "b.com"}, []string{"a.com"}, true},
		{"a.com", []string{"b.com"}, nil, false},
		{"*.a.com", []string{"x.a.com", "y.x.a.com", "a.com", "xa.com"}, []string{"x.a.com", "y.x.a.com"}, true},
		{"*.a.com", []string{"*.x.a.com"}, []string{"*.x.a.com"}, true},
		{"*.x.a.com", []string{"*.a.com"}, []string{"*.x.a.com"}, true},
		{"x.a.com", []string{"*.a.com"}, []string{"x.a.com"}, true},
		{"*.a.com", []string{"*.b.com"}, nil, false},
		{"a.com", []string{"*.a.com"}, nil, false},
	} {
		got, ok := intersect(c.listener, c.route)
		if ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("intersect(%q, %q) = %q, %v; want %q, %v", c.listener, c.route, got, ok, c.want, c.ok)
		}
	}
}

func TestSpecificity(t *testing.T) {
	order := []string{"", "*.com", "*.a.com", "*.x.a.com", "x.a.com"}
	for i := 1; i < len(order); i++ {
		if specificity(order[i]) <= specificity(order[i-1]) {
			t.Errorf("specificity(%q) <= specificity(%q)", order[i], order[i-1])
		}
	}
}
