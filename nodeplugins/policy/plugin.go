package policy

import (
	"context"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
)

// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=nodepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=nodepolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=identityaddresses,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods;nodes;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// Ready reasons of a NodePolicy.
const (
	ReasonProgrammed = "Programmed"
	ReasonPartial    = "PartlyProgrammed"
)

// CacheOptions restrict the plugin's cache to its node: its NodePolicy
// and its pods (IdentityAddresses, Nodes, Services and EndpointSlices are
// cluster-wide by nature, as for kube-proxy). Managed fields are dropped:
// nothing here reads them, and at scale they are most of an object.
func CacheOptions(nodeName string) cache.Options {
	o := nodeplugin.OwnObject(&nodesv1alpha1.NodePolicy{}, nodeName)
	o.ByObject[&corev1.Pod{}] = cache.ByObject{Field: fields.OneTermEqualSelector("spec.nodeName", nodeName)}
	o.DefaultTransform = cache.TransformStripManagedFields()
	return o
}

// Plugin connects an Enforcer to the API server.
type Plugin struct {
	Client   client.Client
	NodeName string
	Enforcer *Enforcer
}

// SetupWithManager feeds the enforcer the NodePolicy, the node's pods and
// every address's identity, runs it, and writes its report into the
// NodePolicy's status.
func (p *Plugin) SetupWithManager(mgr ctrl.Manager) error {
	w := &nodeplugin.Wiring[nodesv1alpha1.NodePolicy, *nodesv1alpha1.NodePolicy]{
		Name: "policy", Client: p.Client, NodeName: p.NodeName,
		Feed: func(np *nodesv1alpha1.NodePolicy) {
			if np == nil {
				p.Enforcer.SetSpec(nil, 0)
				return
			}
			p.Enforcer.SetSpec(np.Spec.DeepCopy(), np.Generation)
		},
		Run: p.Enforcer.Run, Reports: p.Enforcer.Reports(),
		HasReport: func() bool { return p.Enforcer.Report().Generation != 0 },
		Status:    func(np *nodesv1alpha1.NodePolicy) { ApplyReport(&np.Status, p.Enforcer.Report()) },
	}
	if err := w.SetupWithManager(mgr); err != nil {
		return err
	}
	// Pods, addresses, nodes, Services and their endpoints: any change
	// re-reads them all from the cache (one key, so bursts collapse into
	// one read).
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{}}
	})
	return ctrl.NewControllerManagedBy(mgr).Named("policy-inputs").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Watches(&corev1.Pod{}, all).Watches(&nodesv1alpha1.IdentityAddresses{}, all).Watches(&corev1.Node{}, all).
		Watches(&corev1.Service{}, all).Watches(&discoveryv1.EndpointSlice{}, all).
		Complete(reconcile.Func(p.feedInputs))
}

func (p *Plugin) feedInputs(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var (
		pods  corev1.PodList
		addrs nodesv1alpha1.IdentityAddressesList
		nodes corev1.NodeList
		svcs  corev1.ServiceList
		eps   discoveryv1.EndpointSliceList
	)
	for _, l := range []client.ObjectList{&pods, &addrs, &nodes, &svcs, &eps} {
		if err := p.Client.List(ctx, l); err != nil {
			return reconcile.Result{}, err
		}
	}
	p.Enforcer.SetPods(localPods(pods.Items, p.NodeName))
	p.Enforcer.SetAddresses(addressIdentities(addrs.Items, nodes.Items, eps.Items, p.NodeName))
	p.Enforcer.SetServices(serviceFrontends(svcs.Items, eps.Items, p.NodeName))
	return reconcile.Result{}, nil
}

// localPods are the node's running pods with their own network.
func localPods(pods []corev1.Pod, node string) []LocalPod {
	var out []LocalPod
	for i := range pods {
		pod := &pods[i]
		if pod.Spec.NodeName != node || !identity.HasOwnIdentity(pod) {
			continue
		}
		lp := LocalPod{Name: pod.Namespace + "/" + pod.Name}
		for _, ip := range pod.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				lp.IPs = append(lp.IPs, a)
			}
		}
		for _, c := range pod.Spec.Containers {
			for _, port := range c.Ports {
				if proto, ok := protocolNumber(port.Protocol); ok && port.Name != "" {
					lp.NamedPorts = append(lp.NamedPorts, datapath.NamedPort{Name: port.Name, Protocol: proto, Port: uint16(port.ContainerPort)})
				}
			}
		}
		out = append(out, lp)
	}
	slices.SortFunc(out, func(a, b LocalPod) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return out
}

// addressIdentities maps every pod address to its identity, the other
// nodes' addresses to remote-node (this node's are host, which the
// enforcer adds), and the API server's (the endpoints of the Service
// default/kubernetes) to kube-apiserver unless they are a node's.
func addressIdentities(items []nodesv1alpha1.IdentityAddresses, nodes []corev1.Node, eps []discoveryv1.EndpointSlice, self string) map[netip.Addr]uint32 {
	out := map[netip.Addr]uint32{}
	for i := range nodes {
		n := &nodes[i]
		id := uint32(identity.RemoteNode)
		if n.Name == self {
			id = uint32(identity.Host)
		}
		for _, a := range n.Status.Addresses {
			if addr, err := netip.ParseAddr(a.Address); err == nil && (a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP) {
				out[addr] = id
			}
		}
	}
	for i := range eps {
		s := &eps[i]
		if s.Namespace != metav1.NamespaceDefault || s.Labels[discoveryv1.LabelServiceName] != "kubernetes" {
			continue
		}
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				if addr, err := netip.ParseAddr(a); err == nil {
					if _, isNode := out[addr]; !isNode {
						out[addr] = uint32(identity.KubeAPIServer)
					}
				}
			}
		}
	}
	for i := range items {
		for _, a := range items[i].Spec.Addresses {
			if addr, err := netip.ParseAddr(a); err == nil {
				out[addr] = uint32(items[i].Spec.Identity)
			}
		}
	}
	return out
}

// ApplyReport puts the enforcer's report into a NodePolicy's status.
func ApplyReport(st *nodesv1alpha1.NodePolicyStatus, rep Report) {
	st.ObservedGeneration = rep.Generation
	st.Identities, st.Entries = int32(rep.Identities), int32(rep.Entries)
	c := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: ReasonProgrammed, Message: rep.Summary()}
	if len(rep.Problems) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, ReasonPartial
	}
	conditions.Set(&st.Conditions, rep.Generation, c)
}
