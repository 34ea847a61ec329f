// Package v2 holds the cilium.io/v2 API types that Plexus serves. The kinds and
// fields are those of the system Plexus re-implements, so manifests written for
// it apply unchanged.
//
// +kubebuilder:object:generate=true
// +groupName=cilium.io
package v2

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "cilium.io", Version: "v2"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
