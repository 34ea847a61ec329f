package reconciler

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/bgp/planner"
)

// toClusterConfig compiles a config's node selector. A selector the API
// server let through but that does not parse selects no node; the error is
// reported on the config.
func toClusterConfig(c *ciliumv2.CiliumBGPClusterConfig) (planner.ClusterConfig, error) {
	out := planner.ClusterConfig{Name: c.Name, Created: c.CreationTimestamp.Time, Instances: c.Spec.BGPInstances}
	if c.Spec.NodeSelector == nil {
		return out, nil // every node
	}
	sel, err := metav1.LabelSelectorAsSelector(c.Spec.NodeSelector)
	if err != nil {
		out.Nodes = labels.Nothing()
		return out, err
	}
	out.Nodes = sel
	return out, nil
}

// toNode is a node's labels and its first IPv4 InternalIP.
func toNode(n *corev1.Node) planner.Node {
	out := planner.Node{Name: n.Name, Labels: labels.Set(n.Labels)}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
			out.IPv4 = ip
			break
		}
	}
	return out
}

// currentRouterIDs are the router IDs the node configs hold now, node →
// instance → ID: in ip-pool mode they are kept, so that IDs survive a
// restart of the controller and do not move when other nodes come and go.
func currentRouterIDs(items []ciliumv2.CiliumBGPNodeConfig) map[string]map[string]string {
	out := map[string]map[string]string{}
	for i := range items {
		for _, inst := range items[i].Spec.BGPInstances {
			if inst.RouterID == nil {
				continue
			}
			if out[items[i].Name] == nil {
				out[items[i].Name] = map[string]string{}
			}
			out[items[i].Name][inst.Name] = *inst.RouterID
		}
	}
	return out
}

// ownerReference makes a node config a dependent of its cluster config, so
// deleting the cluster config deletes its node configs even while this
// controller is down. BlockOwnerDeletion is left unset: it would need the
// update permission on the cluster configs' finalizers, for nothing this
// controller relies on.
func ownerReference(c *ciliumv2.CiliumBGPClusterConfig) metav1.OwnerReference {
	controller := true
	return metav1.OwnerReference{
		APIVersion: ciliumv2.GroupVersion.String(),
		Kind:       "CiliumBGPClusterConfig",
		Name:       c.Name,
		UID:        c.UID,
		Controller: &controller,
	}
}
