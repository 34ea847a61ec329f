// Package selectors matches the label selectors of Plexus's APIs, including
// the special keys the seed system defines for selecting objects by namespace
// and name.
package selectors

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Special keys that match a Service's namespace and name as if they were labels.
const (
	ServiceNamespaceKey = "io.kubernetes.service.namespace"
	ServiceNameKey      = "io.kubernetes.service.name"
)

// ServiceLabels is what a Service selector is matched against: the Service's
// labels plus its namespace and name under the special keys. Special keys win
// over real labels of the same name, so a label cannot impersonate a namespace.
func ServiceLabels(namespace, name string, lbls map[string]string) labels.Set {
	set := make(labels.Set, len(lbls)+2)
	for k, v := range lbls {
		set[k] = v
	}
	set[ServiceNamespaceKey] = namespace
	set[ServiceNameKey] = name
	return set
}

// Compile turns an API selector into a matcher. A nil selector matches
// everything when nilMatchesAll is set and nothing otherwise (the APIs differ:
// LB pools and L2 policies select all, BGP advertisements none).
func Compile(sel *metav1.LabelSelector, nilMatchesAll bool) (labels.Selector, error) {
	if sel == nil {
		if nilMatchesAll {
			return labels.Everything(), nil
		}
		return labels.Nothing(), nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("invalid selector: %w", err)
	}
	return s, nil
}
