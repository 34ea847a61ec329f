// Package reconciler is the policy controller's reconciler: every pass it
// reads the policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
// Kubernetes NetworkPolicy), the pods and their identities, compiles them
// (compiler.Compile) and writes each node's share as a NodePolicy, the
// pods' addresses per identity as IdentityAddresses, then each policy's
// status.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/policy/compiler"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/internal/passes"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnetworkpolicies;ciliumclusterwidenetworkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnetworkpolicies/status;ciliumclusterwidenetworkpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumidentities,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods;namespaces;nodes;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=nodepolicies;identityaddresses,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler keeps the NodePolicies and the policies' status.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Passes   passes.Settings
	// Settings must be the identity controller's, so that a pod's label
	// set finds its identity.
	identity.Settings
	// Mode is the policy enforcement mode; HostFirewall enables host
	// policies.
	Mode         compiler.Mode
	HostFirewall bool

	runner passes.Runner
	// reported are the problems last reported per NetworkPolicy, which
	// has no status: a change brings an Event.
	reported map[types.NamespacedName]string
	// checked remembers, per Cilium policy, the status summary last found
	// written on a version of the object: while both stay the same, the
	// status needs no second look (a pass over 1,000 policies spent most
	// of its time comparing statuses that had not changed).
	checked checkedStatuses
	// last is the last pass's plan (passes run one at a time).
	last *plan
	// programmed is, per NodePolicy (by UID), the spec its plugin last
	// reported programmed (see enforcement); it points into an earlier
	// pass's listing, which nothing modifies.
	programmed map[types.UID]*nodesv1alpha1.NodePolicySpec
	// The kinds written, each remembering this controller's own writes.
	nodePolicies      nodeobjects.Kind[nodesv1alpha1.NodePolicy, nodesv1alpha1.NodePolicySpec]
	identityAddresses nodeobjects.Kind[nodesv1alpha1.IdentityAddresses, nodesv1alpha1.IdentityAddressesSpec]
}

// checkedStatuses is safe for concurrent use: status writes run in
// parallel.
type checkedStatuses struct {
	mu   sync.Mutex
	byID map[types.UID]checkedStatus
}

type checkedStatus struct {
	resourceVersion string
	generation      int64
	summary         summary
	// since is when the summary was first recorded for this generation.
	since time.Time
}

// progressInterval is how often a policy's status follows the nodes'
// progress while it is Programming: a report that only moves a node from
// waiting to enforcing is written at most this often, so a change's
// status is written twice (Programming, then Ready) rather than once per
// node. Everything else is written at once.
const progressInterval = time.Second

// current says whether o, as cached, was last seen holding the status s.
func (c *checkedStatuses) current(o client.Object, s summary) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, ok := c.byID[o.GetUID()]
	return ok && got.resourceVersion == o.GetResourceVersion() && got.summary.equal(s)
}

// record notes that o, as cached, holds (or is being written to hold) s.
func (c *checkedStatuses) record(o client.Object, s summary, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = map[types.UID]checkedStatus{}
	}
	got, ok := c.byID[o.GetUID()]
	if !ok || got.generation != o.GetGeneration() || !got.summary.equal(s) {
		got.since = now
	}
	c.byID[o.GetUID()] = checkedStatus{resourceVersion: o.GetResourceVersion(), generation: o.GetGeneration(), summary: s, since: got.since}
}

// settling says how long the write of s may wait: while a policy whose
// spec did not change is Programming, and s only moves nodes from waiting
// to enforcing, until progressInterval after the status last changed.
func (c *checkedStatuses) settling(o client.Object, s summary, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, ok := c.byID[o.GetUID()]
	if !ok || got.generation != o.GetGeneration() || !progressOnly(got.summary, s) {
		return 0
	}
	return max(0, got.since.Add(progressInterval).Sub(now))
}

// retain forgets the policies not in live.
func (c *checkedStatuses) retain(live map[types.UID]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.byID {
		if !live[id] {
			delete(c.byID, id)
		}
	}
}

const managedBy = "plexus-policy-controller"

var identityAddresses = nodeobjects.Kind[nodesv1alpha1.IdentityAddresses, nodesv1alpha1.IdentityAddressesSpec]{
	Name: "IdentityAddresses", ManagedBy: managedBy,
	New:    func() *nodesv1alpha1.IdentityAddresses { return &nodesv1alpha1.IdentityAddresses{} },
	Spec:   func(n *nodesv1alpha1.IdentityAddresses) *nodesv1alpha1.IdentityAddressesSpec { return &n.Spec },
	Object: func(n *nodesv1alpha1.IdentityAddresses) client.Object { return n },
	Equal:  (*nodesv1alpha1.IdentityAddressesSpec).Equal,
}

var nodePolicies = nodeobjects.Kind[nodesv1alpha1.NodePolicy, nodesv1alpha1.NodePolicySpec]{
	Name: "NodePolicy", ManagedBy: managedBy,
	New:    func() *nodesv1alpha1.NodePolicy { return &nodesv1alpha1.NodePolicy{} },
	Spec:   func(n *nodesv1alpha1.NodePolicy) *nodesv1alpha1.NodePolicySpec { return &n.Spec },
	Object: func(n *nodesv1alpha1.NodePolicy) client.Object { return n },
	Equal:  (*nodesv1alpha1.NodePolicySpec).Equal,
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil || !r.Settings.Valid() {
		return errors.New("policy: Client, Recorder and Settings must be set")
	}
	switch r.Mode {
	case compiler.ModeDefault, compiler.ModeAlways, compiler.ModeNever:
	default:
		return fmt.Errorf("policy: enforcement mode %q is none of default, always, never", r.Mode)
	}
	r.nodePolicies, r.identityAddresses = nodePolicies, identityAddresses
	r.nodePolicies.Written, r.identityAddresses.Written = &nodeobjects.Written{}, &nodeobjects.Written{}
	r.runner = passes.Runner{Name: "policy", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	return r.runner.SetupWithManager(mgr,
		passes.For(&ciliumv2.CiliumNetworkPolicy{}), passes.For(&ciliumv2.CiliumClusterwideNetworkPolicy{}),
		passes.For(&networkingv1.NetworkPolicy{}), passes.For(&ciliumv2.CiliumIdentity{}),
		passes.For(&corev1.Pod{}), passes.For(&corev1.Namespace{}), passes.For(&corev1.Node{}),
		passes.For(&corev1.Service{}), passes.For(&discoveryv1.EndpointSlice{}),
		passes.For(&nodesv1alpha1.NodePolicy{}), passes.For(&nodesv1alpha1.IdentityAddresses{}))
}

// world is everything a pass reads.
type world struct {
	cnps       ciliumv2.CiliumNetworkPolicyList
	ccnps      ciliumv2.CiliumClusterwideNetworkPolicyList
	netpols    networkingv1.NetworkPolicyList
	identities ciliumv2.CiliumIdentityList
	pods       corev1.PodList
	namespaces corev1.NamespaceList
	nodes      corev1.NodeList
	services   corev1.ServiceList
	slices     discoveryv1.EndpointSliceList
	current    nodesv1alpha1.NodePolicyList
	addresses  nodesv1alpha1.IdentityAddressesList
}

// decide reads everything, compiles, and adds the writes of what changed.
func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var w world
	if err := p.ListAll(ctx, &w.cnps, &w.ccnps, &w.netpols, &w.identities, &w.pods, &w.namespaces,
		&w.nodes, &w.services, &w.slices, &w.current, &w.addresses); err != nil {
		return err
	}
	pl := r.plan(&w)
	local, out, desired := pl.pods.local, pl.out, pl.desired
	p.Write(r.nodePolicies.Writes(r.Client, nodeobjects.Ptrs(w.current.Items), desired)...)
	p.Write(r.identityAddresses.Writes(r.Client, nodeobjects.Ptrs(w.addresses.Items), pl.addresses)...)
	observe(out, pl.pods.unresolved)

	nodesOf := nodesByIdentity(local)
	enforced, programmed := enforcement(w.current.Items, desired, r.programmed)
	r.programmed = programmed
	live := make(map[types.UID]bool, len(w.cnps.Items)+len(w.ccnps.Items))
	now := time.Now()
	status := func(pol client.Object, ref compiler.PolicyRef) {
		live[pol.GetUID()] = true
		s := summarize(out.Policies[ref], nodesOf, enforced, r.Mode)
		switch wait := r.checked.settling(pol, s, now); {
		case r.checked.current(pol, s):
		case wait > 0:
			p.After(wait)
		default:
			p.Write(r.patchStatus(p, pol, s))
		}
	}
	for i := range w.cnps.Items {
		pol := &w.cnps.Items[i]
		status(pol, compiler.PolicyRef{Kind: compiler.KindCNP, Namespace: pol.Namespace, Name: pol.Name})
	}
	for i := range w.ccnps.Items {
		pol := &w.ccnps.Items[i]
		status(pol, compiler.PolicyRef{Kind: compiler.KindCCNP, Name: pol.Name})
	}
	r.checked.retain(live)
	r.reportNetworkPolicies(w.netpols.Items, out)
	return nil
}

// plan is what a pass computes from the cluster, before comparing it
// with what is written: the compiled policies, each node's NodePolicy and
// the IdentityAddresses objects.
type plan struct {
	key       planKey
	pods      podView
	out       *compiler.Output
	desired   map[string]nodesv1alpha1.NodePolicySpec
	addresses map[string]nodesv1alpha1.IdentityAddressesSpec
}

// plan computes the pass's plan, or reuses the last one when none of its
// inputs changed (a pass that only reads what the nodes report, which
// follows every change, then costs no compilation). A policy change
// reuses at least the view of the pods.
func (r *Reconciler) plan(w *world) *plan {
	key := inputsKey(w)
	if r.last != nil && r.last.key == key {
		return r.last
	}
	index := identity.NewIndex(r.Range, w.identities.Items)
	in := compiler.Input{
		Mode: r.Mode, Pods: map[identity.Number]identity.Labels{}, ClusterID: r.Range.Min.ClusterID(),
		HostFirewall: r.HostFirewall, Nodes: map[string]map[string]string{},
		CiliumPolicies: w.cnps.Items, ClusterwidePolicies: w.ccnps.Items, NetworkPolicies: w.netpols.Items,
		Services: services(w.services.Items, w.slices.Items),
	}
	for n, l := range index.Numbers() {
		in.Pods[n] = l
	}
	for i := range w.nodes.Items {
		in.Nodes[w.nodes.Items[i].Name] = w.nodes.Items[i].Labels
	}
	pl := &plan{key: key, desired: map[string]nodesv1alpha1.NodePolicySpec{}}
	if r.last != nil && r.last.key.pods == key.pods {
		pl.pods, pl.addresses = r.last.pods, r.last.addresses
	} else {
		pl.pods = r.podIdentities(w.pods.Items, w.namespaces.Items, index)
		pl.addresses = batches(pl.pods.addrs)
	}
	in.NamedPorts = pl.pods.namedPorts
	pl.out = compiler.Compile(in)
	for i := range w.nodes.Items {
		name := w.nodes.Items[i].Name
		spec := pl.out.NodeSpec(name, pl.pods.local[name])
		if len(spec.Identities) > 0 || spec.Host != nil {
			pl.desired[name] = spec
		}
	}
	r.last = pl
	return pl
}

// planKey identifies the inputs of a plan: pods those of the view of the
// pods (pods, namespaces, identities), all every input.
type planKey struct{ pods, all uint64 }

// inputsKey identifies every object a plan reads by UID and version,
// combined so that the order of the lists does not matter. Policies count
// by generation, which only their spec moves: the controller's own status
// writes must not make the next pass compile again.
func inputsKey(w *world) planKey {
	var pods, rest inputs
	addItems(&pods, "pod", w.pods.Items, metav1.Object.GetResourceVersion)
	addItems(&pods, "ns", w.namespaces.Items, metav1.Object.GetResourceVersion)
	addItems(&pods, "id", w.identities.Items, metav1.Object.GetResourceVersion)
	rest = pods
	addItems(&rest, "cnp", w.cnps.Items, generation)
	addItems(&rest, "ccnp", w.ccnps.Items, generation)
	addItems(&rest, "np", w.netpols.Items, generation)
	addItems(&rest, "node", w.nodes.Items, metav1.Object.GetResourceVersion)
	addItems(&rest, "svc", w.services.Items, metav1.Object.GetResourceVersion)
	addItems(&rest, "eps", w.slices.Items, metav1.Object.GetResourceVersion)
	return planKey{pods: pods.key(), all: rest.key()}
}

func generation(o metav1.Object) string { return strconv.FormatInt(o.GetGeneration(), 10) }

// inputs sums the hashes of objects' identities and versions.
type inputs struct{ sum, n uint64 }

func (k inputs) key() uint64 { return k.sum ^ k.n<<56 }

func addItems[T any, P interface {
	*T
	metav1.Object
}](k *inputs, kind string, items []T, version func(metav1.Object) string) {
	for i := range items {
		o := P(&items[i])
		h := fnv.New64a()
		h.Write([]byte(kind))
		h.Write([]byte(o.GetUID()))
		h.Write([]byte(version(o)))
		k.sum += h.Sum64()
		k.n++
	}
}

// podView is what a pass learns from the pods: per node the identities
// of its pods, per identity its pods' addresses and named container
// ports, and how many running pods have no identity yet (the identity
// controller has not made it, or runs with other label settings).
type podView struct {
	local      map[string][]identity.Number
	addrs      map[identity.Number][]string
	namedPorts map[identity.Number][]compiler.NamedPort
	unresolved int
}

func (r *Reconciler) podIdentities(pods []corev1.Pod, namespaces []corev1.Namespace, index *identity.Index) podView {
	nsLabels := make(map[string]map[string]string, len(namespaces))
	for i := range namespaces {
		nsLabels[namespaces[i].Name] = namespaces[i].Labels
	}
	v := podView{local: map[string][]identity.Number{}, addrs: map[identity.Number][]string{}, namedPorts: map[identity.Number][]compiler.NamedPort{}}
	for i := range pods {
		pod := &pods[i]
		nl, ok := nsLabels[pod.Namespace]
		if pod.Spec.NodeName == "" || !identity.HasOwnIdentity(pod) || !ok {
			continue
		}
		n, ok := index.Lookup(r.PodSet(pod, nl).Key())
		if !ok {
			v.unresolved++
			continue
		}
		v.local[pod.Spec.NodeName] = append(v.local[pod.Spec.NodeName], n)
		for _, ip := range pod.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				v.addrs[n] = append(v.addrs[n], a.String())
			}
		}
		for _, np := range namedPorts(pod) {
			if !slices.Contains(v.namedPorts[n], np) {
				v.namedPorts[n] = append(v.namedPorts[n], np)
			}
		}
	}
	return v
}

// namedPorts are a pod's container ports that have a name.
func namedPorts(pod *corev1.Pod) []compiler.NamedPort {
	var out []compiler.NamedPort
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "" {
				continue
			}
			out = append(out, compiler.NamedPort{Name: p.Name, Protocol: compiler.KubernetesProtocol(p.Protocol), Port: uint16(p.ContainerPort)})
		}
	}
	return out
}

// batches are the IdentityAddresses objects: each identity's addresses,
// sorted, in objects of at most MaxIdentityAddresses, so a pod's change
// rewrites one object.
func batches(addrs map[identity.Number][]string) map[string]nodesv1alpha1.IdentityAddressesSpec {
	out := map[string]nodesv1alpha1.IdentityAddressesSpec{}
	for n, as := range addrs {
		slices.SortFunc(as, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
		as = slices.Compact(as)
		for i := 0; i*nodesv1alpha1.MaxIdentityAddresses < len(as); i++ {
			name := n.String()
			if i > 0 {
				name = fmt.Sprintf("%s-%d", n, i)
			}
			chunk := as[i*nodesv1alpha1.MaxIdentityAddresses : min(len(as), (i+1)*nodesv1alpha1.MaxIdentityAddresses)]
			out[name] = nodesv1alpha1.IdentityAddressesSpec{Identity: int64(n), Addresses: chunk}
		}
	}
	return out
}

// services are what toServices rules read: each Service's labels and
// selector, and for a Service without a selector its endpoints' addresses.
func services(svcs []corev1.Service, eps []discoveryv1.EndpointSlice) map[types.NamespacedName]compiler.Service {
	out := make(map[types.NamespacedName]compiler.Service, len(svcs))
	for i := range svcs {
		s := &svcs[i]
		out[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = compiler.Service{Labels: s.Labels, Selector: s.Spec.Selector}
	}
	for i := range eps {
		es := &eps[i]
		key := types.NamespacedName{Namespace: es.Namespace, Name: es.Labels[discoveryv1.LabelServiceName]}
		svc, ok := out[key]
		if !ok || svc.Selector != nil {
			continue
		}
		for _, ep := range es.Endpoints {
			for _, a := range ep.Addresses {
				if addr, err := netip.ParseAddr(a); err == nil {
					svc.Addresses = append(svc.Addresses, addr)
				}
			}
		}
		slices.SortFunc(svc.Addresses, netip.Addr.Compare)
		svc.Addresses = slices.Compact(svc.Addresses)
		out[key] = svc
	}
	return out
}

// patchStatus writes a Cilium policy's status (generation, Valid, Ready).
func (r *Reconciler) patchStatus(p *passes.Pass, pol client.Object, s summary) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := p.Status.PatchReady(ctx, pol, func(o client.Object) []metav1.Condition {
			return policyStatus(o).Conditions
		}, func(o client.Object) { setStatus(policyStatus(o), o.GetGeneration(), s) }, r.Recorder, "Compile", ReasonProgramming)
		if err != nil {
			return fmt.Errorf("status of %s %s: %w", pol.GetObjectKind().GroupVersionKind().Kind, client.ObjectKeyFromObject(pol), err)
		}
		// Written (the cache will show a new version, looked at again)
		// or found right: this version needs no second look for s.
		r.checked.record(pol, s, time.Now())
		return nil
	}
}

func policyStatus(o client.Object) *ciliumv2.NetworkPolicyStatus {
	switch p := o.(type) {
	case *ciliumv2.CiliumNetworkPolicy:
		return &p.Status
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		return &p.Status
	}
	panic(fmt.Sprintf("policy: no status for %T", o))
}

// reportNetworkPolicies sends a Warning Event on a NetworkPolicy (which
// has no status to hold conditions) when its problems change.
func (r *Reconciler) reportNetworkPolicies(nps []networkingv1.NetworkPolicy, out *compiler.Output) {
	now := map[types.NamespacedName]string{}
	for i := range nps {
		np := &nps[i]
		res := out.Policies[compiler.PolicyRef{Kind: compiler.KindNetworkPolicy, Namespace: np.Namespace, Name: np.Name}]
		if res == nil || len(res.Problems) == 0 {
			continue
		}
		key := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}
		msg := problemText(res.Problems)
		now[key] = msg
		if r.reported[key] != msg {
			r.Recorder.Eventf(np, nil, corev1.EventTypeWarning, res.Problems[0].Reason, "Compile", "%s", msg)
		}
	}
	r.reported = now
}
