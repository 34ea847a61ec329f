// Package policycli renders what `kubectl plexus policy get <pod>` shows:
// a pod's identity, the policies that select it, and what its node
// enforces for it, from the objects the policy controller and plugin
// write (IdentityAddresses, NodePolicy, CiliumIdentity).
package policycli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/api/meta"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/identity"
)

// PodView is everything the view shows about one pod.
type PodView struct {
	Pod, Node, IP string
	// Identity is the pod's, 0 while it has none.
	Identity int64
	// Labels are the security labels of identities by number (the pod's
	// and its peers'), from the CiliumIdentities.
	Labels map[int64]map[string]string
	// NodePolicy is the pod's node's (nil: the node enforces nothing).
	NodePolicy *nodesv1alpha1.NodePolicy
}

// Render writes the view.
func Render(w io.Writer, v PodView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Pod:\t%s on %s (%s)\n", v.Pod, v.Node, v.IP)
	if v.Identity == 0 {
		fmt.Fprintf(tw, "Identity:\tnone yet (the identity controller has not given this pod's labels a number): no policy applies\n")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "Identity:\t%d %s\n", v.Identity, labelText(v.Labels[v.Identity]))
	var ip *nodesv1alpha1.IdentityPolicy
	if v.NodePolicy != nil {
		for i := range v.NodePolicy.Spec.Identities {
			if v.NodePolicy.Spec.Identities[i].Identity == v.Identity {
				ip = &v.NodePolicy.Spec.Identities[i]
			}
		}
	}
	if ip == nil {
		fmt.Fprintf(tw, "Policies:\tnone select it: all traffic is allowed\n")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "Selected by:\t%s\n", orNone(strings.Join(ip.Policies, ", ")))
	sets := map[string]nodesv1alpha1.PeerSet{}
	for _, ps := range v.NodePolicy.Spec.PeerSets {
		sets[ps.Name] = ps
	}
	for _, d := range []struct {
		name, way string
		dir       nodesv1alpha1.PolicyDirection
	}{{"Ingress", "from", ip.Ingress}, {"Egress", "to", ip.Egress}} {
		state := "not enforced (all allowed but what is denied)"
		if d.dir.Enforced {
			state = "enforced (only what is allowed)"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", d.name, state)
		for _, e := range d.dir.Entries {
			verdict := "allow"
			if e.Deny {
				verdict = "deny"
			}
			by := ""
			if i := int(e.Source); i > 0 && i <= len(ip.Policies) {
				by = "  (" + ip.Policies[i-1] + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s %s%s\n", verdict, port(e), d.way, peers(e.Peers, sets, v.Labels), by)
		}
	}
	st := v.NodePolicy.Status
	if c := meta.FindStatusCondition(st.Conditions, conditions.TypeReady); c != nil && st.ObservedGeneration == v.NodePolicy.Generation {
		fmt.Fprintf(tw, "Datapath:\t%s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	} else {
		fmt.Fprintf(tw, "Datapath:\tthe node has not reported generation %d yet\n", v.NodePolicy.Generation)
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

var protocols = map[int32]string{0: "any", 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}

func port(e nodesv1alpha1.PolicyEntry) string {
	proto, ok := protocols[e.Protocol]
	if !ok {
		proto = "proto " + strconv.Itoa(int(e.Protocol))
	}
	switch {
	case e.Protocol == 0:
		return "any"
	case e.PortName != "":
		return proto + "/" + e.PortName
	case e.Port == 0 && e.EndPort == 65535:
		return proto
	case e.Port == e.EndPort:
		return fmt.Sprintf("%s/%d", proto, e.Port)
	default:
		return fmt.Sprintf("%s/%d-%d", proto, e.Port, e.EndPort)
	}
}

// peers names a peer set: reserved identities by name, others by their
// labels, then the CIDRs.
func peers(name string, sets map[string]nodesv1alpha1.PeerSet, labels map[int64]map[string]string) string {
	if name == nodesv1alpha1.AnyPeer {
		return "any peer"
	}
	ps, ok := sets[name]
	if !ok {
		return "peer set " + name + " (missing)"
	}
	var parts []string
	for _, n := range ps.Identities {
		if r := identity.ReservedName(identity.Number(n)); r != "" {
			parts = append(parts, r)
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, labelText(labels[n])))
	}
	parts = append(parts, ps.CIDRs...)
	const most = 8
	if len(parts) > most {
		parts = append(parts[:most], fmt.Sprintf("and %d more", len(parts)-most))
	}
	return strings.Join(parts, "; ")
}

// labelText is a label set without the k8s: source and with the namespace
// key shortened, sorted: "app=web,namespace=shop".
func labelText(l map[string]string) string {
	if l == nil {
		return "(labels unknown)"
	}
	var parts []string
	for k, v := range l {
		k = strings.TrimPrefix(k, identity.SourceK8s+":")
		switch {
		case k == identity.LabelNamespace:
			k = "namespace"
		case strings.HasPrefix(k, "io.cilium.k8s."):
			continue // namespace labels, ServiceAccount and cluster: in kubectl get ciliumidentity
		}
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
