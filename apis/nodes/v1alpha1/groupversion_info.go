// Package v1alpha1 holds Plexus's own per-node desired-state kinds, group
// nodes.plexus.dev: one object per node and feature, named after the node,
// written by the feature's controller and carried out (and reported on) by
// that node's plugin.
//
// +kubebuilder:object:generate=true
// +groupName=nodes.plexus.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "nodes.plexus.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
