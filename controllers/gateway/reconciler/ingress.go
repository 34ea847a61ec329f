package reconciler

import (
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/passes"
)

// ingressStatuses writes each of our Ingresses' status.loadBalancer: its
// load balancer's addresses once every node's proxy serves its
// configuration (so an address shows only when requests to it are
// answered), and raises an Event for each new set of problems. Ingress has
// no conditions, so Events are where a user reads what is not served.
func (r *Reconciler) ingressStatuses(p *passes.Pass, ings []networkingv1.Ingress, out translate.IngressOutput, states map[types.NamespacedName]frontendState) {
	r.reported.forget(ings)
	for i := range ings {
		ing := &ings[i]
		svc, ours := out.FrontendOf[keyOf(ing)]
		if !ours {
			continue
		}
		r.reportProblems(ing, out.Problems[keyOf(ing)])
		st := states[svc]
		var lb []networkingv1.IngressLoadBalancerIngress
		if served(st) {
			lb = ingressAddresses(st.service)
		}
		p.Write(statusWrite(p, ing, func(o *networkingv1.Ingress) { o.Status.LoadBalancer.Ingress = lb }))
	}
}

// served says every node's proxy acknowledged the current configuration.
func served(st frontendState) bool {
	b, a := st.built, st.acks
	return b != nil && b.err == nil && !b.pending && len(a.refused) == 0 && a.nodes > 0 && a.acked == a.nodes
}

func ingressAddresses(svc *corev1.Service) []networkingv1.IngressLoadBalancerIngress {
	if svc == nil {
		return nil
	}
	var out []networkingv1.IngressLoadBalancerIngress
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" || in.Hostname != "" {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: in.IP, Hostname: in.Hostname})
		}
	}
	return out
}

// reported remembers the problems last reported per Ingress, so a resync
// does not repeat its Events.
type reported struct {
	mu   sync.Mutex
	last map[types.UID]string
}

// forget drops what was reported for Ingresses that are gone.
func (rp *reported) forget(live []networkingv1.Ingress) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	keep := map[types.UID]bool{}
	for i := range live {
		keep[live[i].UID] = true
	}
	for uid := range rp.last {
		if !keep[uid] {
			delete(rp.last, uid)
		}
	}
}

func (r *Reconciler) reportProblems(ing *networkingv1.Ingress, problems []string) {
	r.reported.mu.Lock()
	defer r.reported.mu.Unlock()
	if r.reported.last == nil {
		r.reported.last = map[types.UID]string{}
	}
	key := strings.Join(problems, "\n")
	if r.reported.last[ing.UID] == key {
		return
	}
	r.reported.last[ing.UID] = key
	for _, msg := range problems {
		r.Recorder.Eventf(ing, nil, corev1.EventTypeWarning, "NotServed", "Translate", "%s", msg)
	}
}
