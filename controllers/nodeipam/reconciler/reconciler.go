// Package reconciler is Node IPAM's reconciler: it reads every Service,
// Node and EndpointSlice from the cache, lets the planner decide which node
// addresses each served LoadBalancer Service gets, and writes the Service
// statuses that changed. A Service that stops being Node IPAM's (another
// class or type) loses the node addresses and the condition Node IPAM
// wrote.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/plexus-net/plexus/controllers/nodeipam/planner"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// What Node IPAM reads and writes; nothing else.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// ServiceConditionType is the condition Node IPAM writes on the Services it
// serves (Cilium writes none: a Service left without addresses says
// nothing there).
const ServiceConditionType = "plexus.dev/NodeIPAMSatisfied"

// lbipamConditionType is the condition LB-IPAM writes on the Services it
// serves.
const lbipamConditionType = "cilium.io/IPAMRequestSatisfied"

// Reconciler gives LoadBalancer Services their nodes' addresses.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Config   planner.Config
	Passes   passes.Settings

	runner passes.Runner
}

// TrimEndpointSlices keeps of each EndpointSlice in the manager's cache only
// what Node IPAM reads: which node has a ready endpoint of which Service.
func TrimEndpointSlices(o *ctrl.Options) {
	if o.Cache.ByObject == nil {
		o.Cache.ByObject = map[client.Object]cache.ByObject{}
	}
	o.Cache.ByObject[&discoveryv1.EndpointSlice{}] = cache.ByObject{Transform: func(obj any) (any, error) {
		es, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return obj, nil
		}
		es.ManagedFields, es.Annotations, es.Ports = nil, nil, nil
		for i := range es.Endpoints {
			es.Endpoints[i].Addresses, es.Endpoints[i].TargetRef, es.Endpoints[i].Hints = nil, nil, nil
		}
		return es, nil
	}}
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil {
		return errors.New("nodeipam: Client and Recorder must be set")
	}
	r.runner = passes.Runner{Name: "nodeipam", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	return r.runner.SetupWithManager(mgr, passes.For(&corev1.Service{}), passes.For(&corev1.Node{}, nodeChanged),
		passes.For(&discoveryv1.EndpointSlice{}))
}

// nodeChanged passes the Node events that matter here: not heartbeats.
var nodeChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
		return !reflect.DeepEqual(o.Labels, n.Labels) || !reflect.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
			!reflect.DeepEqual(o.Status.Addresses, n.Status.Addresses) || !reflect.DeepEqual(o.DeletionTimestamp, n.DeletionTimestamp)
	},
}

func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var (
		services corev1.ServiceList
		nodes    corev1.NodeList
		eps      discoveryv1.EndpointSliceList
	)
	if err := p.ListAll(ctx, &services, &nodes, &eps); err != nil {
		return err
	}
	plan := planner.Plan(r.Config, services.Items, nodes.Items, eps.Items)
	nodeAddr := nodeAddresses(nodes.Items)
	for i := range services.Items {
		svc := &services.Items[i]
		res, served := plan[client.ObjectKeyFromObject(svc)]
		switch {
		case served && !statusCurrent(svc, res):
			p.Write(r.serviceWrite(p.Status, svc, res))
		case !served && svc.DeletionTimestamp == nil && meta.FindStatusCondition(svc.Status.Conditions, ServiceConditionType) != nil:
			p.Write(r.serviceRelease(p.Status, svc, nodeAddr))
		}
	}
	return nil
}

// nodeAddresses reports whether an address is one of a node's.
func nodeAddresses(nodes []corev1.Node) func(netip.Addr) bool {
	set := map[netip.Addr]bool{}
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				set[ip.Unmap()] = true
			}
		}
	}
	return func(a netip.Addr) bool { return set[a] }
}

func (r *Reconciler) serviceWrite(status *statuswrite.Writer, svc *corev1.Service, res planner.Result) func(context.Context) error {
	return func(ctx context.Context) error {
		before := meta.FindStatusCondition(svc.Status.Conditions, ServiceConditionType)
		wrote, err := status.Patch(ctx, svc, func(o client.Object) { setStatus(o.(*corev1.Service), res) })
		if err != nil {
			return fmt.Errorf("status of Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		if wrote && !res.Satisfied && (before == nil || before.Reason != res.Reason || before.Message != res.Message) {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, res.Reason, "Assign", "%s", res.Message)
		}
		return nil
	}
}

func (r *Reconciler) serviceRelease(status *statuswrite.Writer, svc *corev1.Service, isNodeAddr func(netip.Addr) bool) func(context.Context) error {
	return func(ctx context.Context) error {
		wrote, err := status.Patch(ctx, svc, func(o client.Object) {
			s := o.(*corev1.Service)
			// While Node IPAM served the Service the whole ingress was its
			// own, addresses of nodes gone since included; once LB-IPAM
			// serves it (its condition is there), only node addresses are
			// Node IPAM's to take away.
			lbipam := meta.FindStatusCondition(s.Status.Conditions, lbipamConditionType) != nil
			s.Status.LoadBalancer.Ingress = slices.DeleteFunc(s.Status.LoadBalancer.Ingress, func(ing corev1.LoadBalancerIngress) bool {
				ip, err := netip.ParseAddr(ing.IP)
				return !lbipam || err == nil && isNodeAddr(ip.Unmap())
			})
			conditions.Remove(&s.Status.Conditions, ServiceConditionType)
		})
		if err != nil {
			return fmt.Errorf("releasing Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		if wrote {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, "Released", "Release", "Node IPAM no longer serves this Service (type %s): its node addresses are removed", svc.Spec.Type)
		}
		return nil
	}
}

// setStatus makes svc show res: the node addresses as its ingress (keeping
// what the API server filled in for addresses it already had) and the
// condition.
func setStatus(svc *corev1.Service, res planner.Result) {
	ingress := make([]corev1.LoadBalancerIngress, 0, len(res.Addresses))
	for _, a := range res.Addresses {
		ing := corev1.LoadBalancerIngress{IP: a.String(), IPMode: ptrTo(corev1.LoadBalancerIPModeVIP)}
		for _, old := range svc.Status.LoadBalancer.Ingress {
			if old.IP == a.String() {
				ing = old
			}
		}
		ingress = append(ingress, ing)
	}
	if !sameIPs(svc.Status.LoadBalancer.Ingress, ingress) {
		svc.Status.LoadBalancer.Ingress = ingress
	}
	conditions.Set(&svc.Status.Conditions, svc.Generation, metav1.Condition{
		Type: ServiceConditionType, Status: conditions.Status(res.Satisfied), Reason: res.Reason, Message: res.Message,
	})
}

// statusCurrent says, without copying, whether svc already shows res.
func statusCurrent(svc *corev1.Service, res planner.Result) bool {
	ing := svc.Status.LoadBalancer.Ingress
	if len(ing) != len(res.Addresses) {
		return false
	}
	for i, a := range res.Addresses {
		if ing[i].IP != a.String() {
			return false
		}
	}
	c := meta.FindStatusCondition(svc.Status.Conditions, ServiceConditionType)
	return c != nil && c.Status == conditions.Status(res.Satisfied) && c.Reason == res.Reason && c.Message == res.Message &&
		c.ObservedGeneration == svc.Generation
}

func sameIPs(a, b []corev1.LoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool { return x.IP == y.IP })
}

func ptrTo[T any](v T) *T { return &v }
