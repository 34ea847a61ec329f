package compiler

import (
	"testing"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/identity"
)

func TestSelectorSourcesAndNamespaces(t *testing.T) {
	web := identity.Labels{"k8s:app": "web", "k8s:io.kubernetes.pod.namespace": "shop"}
	host := identity.Labels{"reserved:host": ""}
	sel := func(ns string, labels map[string]ciliumv2.MatchLabelsValue, exprs ...ciliumv2.SelectorRequirement) selector {
		t.Helper()
		s, err := newSelector(&ciliumv2.EndpointSelector{MatchLabels: labels, MatchExpressions: exprs}, ns)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name     string
		s        selector
		l        identity.Labels
		reserved bool
		want     bool
	}{
		{"no source matches k8s", sel("", map[string]ciliumv2.MatchLabelsValue{"app": "web"}), web, false, true},
		{"any: matches k8s", sel("", map[string]ciliumv2.MatchLabelsValue{"any:app": "web"}), web, false, true},
		{"k8s: matches k8s", sel("", map[string]ciliumv2.MatchLabelsValue{"k8s:app": "web"}), web, false, true},
		{"other value", sel("", map[string]ciliumv2.MatchLabelsValue{"app": "db"}), web, false, false},
		{"policy namespace added", sel("other", map[string]ciliumv2.MatchLabelsValue{"app": "web"}), web, false, false},
		{"own namespace", sel("shop", nil), web, false, true},
		{"named namespace wins", sel("other", map[string]ciliumv2.MatchLabelsValue{"io.kubernetes.pod.namespace": "shop"}), web, false, true},
		{"empty never selects reserved", sel("", nil), host, true, false},
		{"NotIn never selects reserved", sel("", nil, ciliumv2.SelectorRequirement{Key: "app", Operator: "NotIn", Values: []string{"x"}}), host, true, false},
		{"reserved key selects reserved", sel("", map[string]ciliumv2.MatchLabelsValue{"reserved:host": ""}), host, true, true},
		{"Exists", sel("", nil, ciliumv2.SelectorRequirement{Key: "k8s:app", Operator: "Exists"}), web, false, true},
		{"DoesNotExist", sel("", nil, ciliumv2.SelectorRequirement{Key: "app", Operator: "DoesNotExist"}), web, false, false},
		{"In", sel("", nil, ciliumv2.SelectorRequirement{Key: "app", Operator: "In", Values: []string{"db", "web"}}), web, false, true},
	} {
		if got := tc.s.matches(tc.l, tc.reserved); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := newSelector(&ciliumv2.EndpointSelector{MatchExpressions: []ciliumv2.SelectorRequirement{{Key: "app", Operator: "in", Values: []string{"a"}}}}, ""); err == nil {
		t.Error("operator \"in\" accepted")
	}
}
