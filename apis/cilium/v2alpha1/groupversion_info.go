// Package v2alpha1 holds the cilium.io/v2alpha1 kinds Plexus serves whose
// storage version is v2alpha1 (CiliumPodIPPool, CiliumL2AnnouncementPolicy,
// CiliumBGPPeeringPolicy, CiliumGatewayClassConfig).
//
// +kubebuilder:object:generate=true
// +groupName=cilium.io
package v2alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "cilium.io", Version: "v2alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
