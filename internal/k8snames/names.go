// Package k8snames makes the names of generated Kubernetes objects: valid
// DNS labels, stable for the same input, shared by the controllers that
// write the objects and the commands that look them up.
package k8snames

import (
	"crypto/sha256"
	"encoding/hex"
)

// maxLabel is the longest DNS label: a Service's name, a label's value.
const maxLabel = 63

// ShortName is name when it fits in a DNS label, else its first characters
// and a hash of the whole, so two long names that share a prefix stay
// apart and the same name always maps to the same result.
func ShortName(name string) string {
	if len(name) <= maxLabel {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:10]
	return name[:maxLabel-len(suffix)-1] + "-" + suffix
}

// Gateway is the name of a Gateway's generated Service, EndpointSlice and
// CiliumEnvoyConfig (the seed's cilium-gateway-<name>).
func Gateway(name string) string { return ShortName("cilium-gateway-" + name) }
