// Package flows makes the policy programs' verdict events visible the
// way Cilium users look at them: each event becomes a Hubble flow (the
// flow API of github.com/cilium/cilium), kept in a bounded buffer and
// served over the Hubble Observer gRPC API, so the upstream `hubble
// observe` CLI reads a Plexus node as it reads a Cilium agent.
package flows

import (
	"net/netip"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
)

// Cilium's monitor message types, which Hubble shows as the event type.
const (
	messageTypeDrop          = 1
	messageTypePolicyVerdict = 5
)

// Lookup names what an event only numbers. Every function may be nil.
type Lookup struct {
	NodeName string
	// PodOf names the local pod (namespace/name) behind a veth.
	PodOf func(ifindex uint32) (string, bool)
	// PodAt names the local pod (namespace/name) with an address.
	PodAt func(netip.Addr) (string, bool)
	// Labels are an identity's security labels, as "source:key=value".
	Labels func(id uint32) []string
	// Explain names the policies (Kind/namespace/name) that allow and
	// deny a packet.
	Explain func(local, peer uint32, dir datapath.Direction, proto uint8, port uint16) (allowedBy, deniedBy []string)
}

// Flow is the Hubble flow of a verdict event.
func Flow(e datapath.Event, l Lookup) *flowpb.Flow {
	f := &flowpb.Flow{
		Time:      timestamppb.New(e.Time),
		Type:      flowpb.FlowType_L3_L4,
		NodeName:  l.NodeName,
		IsReply:   wrapperspb.Bool(false),
		Interface: &flowpb.NetworkInterface{Index: e.Ifindex},
		IP:        ipOf(e),
		L4:        l4Of(e),
	}
	local := &flowpb.Endpoint{Identity: e.Local}
	// The host's verdicts name no pod as the local end, even those taken
	// on a pod's veth (what a local pod sends to the node).
	if l.PodOf != nil && e.Local != uint32(identity.Host) {
		if name, ok := l.PodOf(e.Ifindex); ok {
			local.Namespace, local.PodName, _ = strings.Cut(name, "/")
		}
	}
	peer := &flowpb.Endpoint{Identity: e.Peer}
	peerAddr := e.Src
	if e.Direction == datapath.Egress {
		peerAddr = e.Dst
	}
	if l.PodAt != nil {
		if name, ok := l.PodAt(peerAddr); ok {
			peer.Namespace, peer.PodName, _ = strings.Cut(name, "/")
		}
	}
	for _, ep := range []*flowpb.Endpoint{local, peer} {
		if l.Labels != nil && ep.Identity != 0 {
			ep.Labels = l.Labels(ep.Identity)
		}
		if ep.Namespace == "" {
			ep.Namespace = namespaceOf(ep.Labels)
		}
	}
	if e.Direction == datapath.Ingress {
		f.Source, f.Destination = peer, local
		f.TrafficDirection = flowpb.TrafficDirection_INGRESS
	} else {
		f.Source, f.Destination = local, peer
		f.TrafficDirection = flowpb.TrafficDirection_EGRESS
	}

	var allowedBy, deniedBy []string
	if l.Explain != nil && e.Kind != datapath.DropUnparsed {
		allowedBy, deniedBy = l.Explain(e.Local, e.Peer, e.Direction, e.Protocol, policyPort(e))
	}
	switch e.Kind {
	case datapath.AllowNew:
		f.Verdict = flowpb.Verdict_FORWARDED
		f.EventType = &flowpb.CiliumEventType{Type: messageTypePolicyVerdict}
		if e.Direction == datapath.Ingress {
			f.IngressAllowedBy = policies(allowedBy)
		} else {
			f.EgressAllowedBy = policies(allowedBy)
		}
	default:
		reason := dropReason(e.Kind)
		f.Verdict = flowpb.Verdict_DROPPED
		f.DropReasonDesc = reason
		f.DropReason = uint32(reason)
		f.EventType = &flowpb.CiliumEventType{Type: messageTypeDrop, SubType: int32(reason)}
		if e.Kind == datapath.DropDeny {
			if e.Direction == datapath.Ingress {
				f.IngressDeniedBy = policies(deniedBy)
			} else {
				f.EgressDeniedBy = policies(deniedBy)
			}
		}
	}
	return f
}

func dropReason(k datapath.EventKind) flowpb.DropReason {
	switch k {
	case datapath.DropPolicy:
		return flowpb.DropReason_POLICY_DENIED
	case datapath.DropDeny:
		return flowpb.DropReason_POLICY_DENY
	default:
		return flowpb.DropReason_INVALID_PACKET_DROPPED
	}
}

// policyPort is what the policy matched: the destination port, or the
// ICMP type.
func policyPort(e datapath.Event) uint16 {
	if e.Protocol == protoICMP || e.Protocol == protoICMPv6 {
		return uint16(e.ICMPType)
	}
	return e.DstPort
}

const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

func ipOf(e datapath.Event) *flowpb.IP {
	ip := &flowpb.IP{Source: addrString(e.Src), Destination: addrString(e.Dst), IpVersion: flowpb.IPVersion_IPv6}
	if e.Src.Is4() {
		ip.IpVersion = flowpb.IPVersion_IPv4
	}
	return ip
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func l4Of(e datapath.Event) *flowpb.Layer4 {
	src, dst := uint32(e.SrcPort), uint32(e.DstPort)
	switch e.Protocol {
	case protoTCP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: src, DestinationPort: dst}}}
	case protoUDP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: src, DestinationPort: dst}}}
	case protoSCTP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: src, DestinationPort: dst}}}
	case protoICMP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: uint32(e.ICMPType)}}}
	case protoICMPv6:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv6{ICMPv6: &flowpb.ICMPv6{Type: uint32(e.ICMPType)}}}
	}
	return nil
}

// policies are Hubble's Policy messages for names as Kind/namespace/name
// (Kind/name for cluster-wide policies).
func policies(names []string) []*flowpb.Policy {
	var out []*flowpb.Policy
	for _, n := range names {
		parts := strings.SplitN(n, "/", 3)
		p := &flowpb.Policy{Kind: parts[0]}
		switch len(parts) {
		case 3:
			p.Namespace, p.Name = parts[1], parts[2]
		case 2:
			p.Name = parts[1]
		}
		out = append(out, p)
	}
	return out
}

// namespaceOf is the namespace label of a pod identity's labels.
func namespaceOf(labels []string) string {
	prefix := identity.SourceK8s + ":" + identity.LabelNamespace + "="
	for _, l := range labels {
		if ns, ok := strings.CutPrefix(l, prefix); ok {
			return ns
		}
	}
	return ""
}
