package reconciler

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
	"github.com/plexus-net/plexus/internal/conditions"
)

// list plays the actor that owns a crd-mode node's addresses: it sets
// spec.ipam.pool to ips.
func (h *harness) list(node string, ips ...string) {
	h.t.Helper()
	h.eventually("pool of "+node+" written", func() error {
		cn, err := h.ciliumNode(node)
		if err != nil {
			return err
		}
		orig := cn.DeepCopy()
		cn.Spec.IPAM.Pool = ciliumv2.AllocationMap{}
		for _, ip := range ips {
			cn.Spec.IPAM.Pool[ip] = ciliumv2.AllocationIP{Resource: "eni-1"}
		}
		return h.c.Patch(h.ctx, cn, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
}

// nodeCondition waits until the node's condition of type has reason and a
// message containing want, at the CiliumNode's generation.
func (h *harness) nodeCondition(node, typ, reason, want string) *ciliumv2.CiliumNode {
	h.t.Helper()
	var out *ciliumv2.CiliumNode
	h.eventually(fmt.Sprintf("%s of %s is %s", typ, node, reason), func() error {
		cn, err := h.ciliumNode(node)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(cn.Status.Conditions, typ)
		if c == nil || c.Reason != reason || !strings.Contains(c.Message, want) || c.ObservedGeneration != cn.Generation {
			return fmt.Errorf("%s = %+v (generation %d)", typ, c, cn.Generation)
		}
		out = cn
		return nil
	})
	return out
}

// I24 (controller side): in crd mode the controller creates each node's
// CiliumNode and never writes its spec.ipam, which belongs to the actor that
// lists the addresses; its status says whether the node has addresses, and
// names an address two nodes list (on the newer node), with an Event.
func TestI24_CRDModeCreatesNodesAndChecksTheirLists(t *testing.T) {
	h := newHarness(t)
	h.start(allocator.Config{Mode: allocator.ModeCRD, IPv4: true})
	h.node("crd-a", withAddress("198.18.0.11"))
	cn := h.nodeCondition("crd-a", ciliumv2.NodeConditionPodCIDRsAllocated, ReasonWaitingForPool, "lists no address yet")
	if len(cn.Spec.IPAM.PodCIDRs) > 0 || len(cn.Spec.Addresses) != 1 {
		t.Errorf("spec %+v: want the node's address and no CIDR", cn.Spec)
	}
	if r := meta.FindStatusCondition(cn.Status.Conditions, conditions.TypeReady); r == nil || r.Status != "False" {
		t.Errorf("Ready %+v: want False while no address is listed", r)
	}

	h.list("crd-a", "10.50.0.1", "10.50.0.2")
	h.nodeCondition("crd-a", conditions.TypeReady, ReasonAllocated, "lists 2 addresses")
	h.node("crd-b")
	h.nodeCondition("crd-b", ciliumv2.NodeConditionPodCIDRsAllocated, ReasonWaitingForPool, "")
	h.list("crd-b", "10.50.0.2", "10.50.0.3")
	cn = h.nodeCondition("crd-b", ciliumv2.NodeConditionPodCIDRsAllocated, ReasonAllocationFailed, "10.50.0.2 is also listed in the pool of node crd-a")
	if !strings.Contains(cn.Status.IPAM.OperatorStatus.Error, "10.50.0.2") {
		t.Errorf("operator-status.error %q does not name the address", cn.Status.IPAM.OperatorStatus.Error)
	}
	h.eventually("a warning Event on crd-b", func() error {
		var evs corev1.EventList
		if err := h.c.List(h.ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "crd-b" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "10.50.0.2") {
				return nil
			}
		}
		return fmt.Errorf("none among %d events", len(evs.Items))
	})

	// The Node's addresses change: the controller writes spec.addresses and
	// leaves the list as its owner wrote it.
	var n corev1.Node
	must(t, h.c.Get(h.ctx, client.ObjectKey{Name: "crd-a"}, &n))
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.12"}}
	must(t, h.c.Status().Update(h.ctx, &n))
	h.eventually("new address on crd-a", func() error {
		cn, err := h.ciliumNode("crd-a")
		if err != nil {
			return err
		}
		if len(cn.Spec.Addresses) != 1 || cn.Spec.Addresses[0].IP != "198.18.0.12" {
			return fmt.Errorf("addresses %+v", cn.Spec.Addresses)
		}
		if len(cn.Spec.IPAM.Pool) != 2 || cn.Spec.IPAM.Pool["10.50.0.1"].Resource != "eni-1" {
			return fmt.Errorf("the controller changed spec.ipam.pool: %+v", cn.Spec.IPAM.Pool)
		}
		return nil
	})

	// Fixing the list clears the error.
	h.list("crd-b", "10.50.0.3")
	h.nodeCondition("crd-b", ciliumv2.NodeConditionPodCIDRsAllocated, ReasonAllocated, "lists 1 address (")
}
