package reconciler

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/l2announcer/planner"
	"github.com/plexus-net/plexus/internal/selectors"
)

func toPolicy(p *ciliumv2alpha1.CiliumL2AnnouncementPolicy, interfaces *interfaceChecks) planner.Policy {
	out := planner.Policy{Name: p.Name, Interfaces: p.Spec.Interfaces, ExternalIPs: p.Spec.ExternalIPs, LoadBalancerIPs: p.Spec.LoadBalancerIPs}
	out.Services, out.ServiceErr = selectors.Compile(p.Spec.ServiceSelector, true)
	out.Nodes, out.NodeErr = selectors.Compile(p.Spec.NodeSelector, true)
	out.InterfacesErr = interfaces.check(p.Spec.Interfaces)
	return out
}

// interfaceChecks remembers whether a policy's interface expressions
// compile, so a pass compiles only expressions it has not seen (policies
// change rarely; passes run on every Service and EndpointSlice event).
type interfaceChecks struct {
	last, next map[string]error
}

func (c *interfaceChecks) check(exprs []string) error {
	key := strings.Join(exprs, "\x00")
	err, ok := c.last[key]
	if !ok {
		err = planner.CheckInterfaces(exprs)
	}
	if c.next == nil {
		c.next = map[string]error{}
	}
	c.next[key] = err
	return err
}

// endPass keeps only what this pass used.
func (c *interfaceChecks) endPass() { c.last, c.next = c.next, nil }

// readyEndpointNodes maps each Service (namespace/name) to the nodes with a
// ready endpoint of it.
func readyEndpointNodes(slices []discoveryv1.EndpointSlice) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for i := range slices {
		es := &slices[i]
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		key := es.Namespace + "/" + svc
		for _, ep := range es.Endpoints {
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			if out[key] == nil {
				out[key] = map[string]bool{}
			}
			out[key][*ep.NodeName] = true
		}
	}
	return out
}

func toService(s *corev1.Service, endpoints map[string]map[string]bool) planner.Service {
	out := planner.Service{
		Namespace: s.Namespace, Name: s.Name,
		Labels:      selectors.ServiceLabels(s.Namespace, s.Name, s.Labels),
		ExternalIPs: s.Spec.ExternalIPs,
		LocalOnly:   s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
	}
	if s.Spec.LoadBalancerClass != nil {
		out.Class = *s.Spec.LoadBalancerClass
	}
	if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				out.LoadBalancerIPs = append(out.LoadBalancerIPs, in.IP)
			}
		}
	}
	out.EndpointNodes = endpoints[s.Namespace+"/"+s.Name]
	return out
}

func toNode(n *corev1.Node) planner.Node {
	out := planner.Node{Name: n.Name, Labels: labels.Set(n.Labels)}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && out.Address == "" {
			out.Address = a.Address
		}
	}
	return out
}

// desiredSpec is a node's L2Announcement spec from its plan.
func desiredSpec(np *planner.NodePlan) nodesv1alpha1.L2AnnouncementSpec {
	var spec nodesv1alpha1.L2AnnouncementSpec
	for _, p := range np.Peers {
		spec.Peers = append(spec.Peers, nodesv1alpha1.L2Peer{Node: p.Node, Address: p.Address})
	}
	for _, a := range np.Addresses {
		spec.Addresses = append(spec.Addresses, nodesv1alpha1.L2Address{
			IP: a.IP, Services: slices.Clone(a.Services), Interfaces: slices.Clone(a.Interfaces), Candidates: slices.Clone(a.Candidates),
		})
	}
	return spec
}
