package compiler

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// Protocol is an IP protocol number; 0 is any protocol.
type Protocol uint8

// The protocols a policy can name.
const (
	ProtoAny    Protocol = 0
	ProtoICMP   Protocol = 1
	ProtoIGMP   Protocol = 2
	ProtoIPIP   Protocol = 4
	ProtoTCP    Protocol = 6
	ProtoUDP    Protocol = 17
	ProtoIPv6   Protocol = 41
	ProtoGRE    Protocol = 47
	ProtoESP    Protocol = 50
	ProtoAH     Protocol = 51
	ProtoICMPv6 Protocol = 58
	ProtoVRRP   Protocol = 112
	ProtoSCTP   Protocol = 132
)

var protocolNames = map[string]Protocol{
	"TCP": ProtoTCP, "UDP": ProtoUDP, "SCTP": ProtoSCTP, "ICMP": ProtoICMP, "ICMPv6": ProtoICMPv6,
	"VRRP": ProtoVRRP, "IGMP": ProtoIGMP, "GRE": ProtoGRE, "IPIP": ProtoIPIP, "IPV6": ProtoIPv6,
	"ESP": ProtoESP, "AH": ProtoAH,
}

func (p Protocol) String() string {
	for name, n := range protocolNames {
		if n == p {
			return name
		}
	}
	if p == ProtoAny {
		return "ANY"
	}
	return strconv.Itoa(int(p))
}

// KubernetesProtocol is the protocol a Kubernetes port names (TCP when
// unset, the API's default).
func KubernetesProtocol(p corev1.Protocol) Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return ProtoUDP
	case corev1.ProtocolSCTP:
		return ProtoSCTP
	}
	return ProtoTCP
}

// hasPorts says whether the protocol has ports (the others match whole).
func (p Protocol) hasPorts() bool { return p == ProtoTCP || p == ProtoUDP || p == ProtoSCTP }

// Port is what an entry matches beyond the peer: a protocol and, for TCP,
// UDP and SCTP, a destination port range; for ICMP and ICMPv6 the range
// holds message types. A whole protocol is the range 0-65535. Name is a
// named port, which the node resolves against its pods' container ports.
type Port struct {
	Protocol    Protocol
	First, Last uint16
	Name        string
}

const maxPort = 65535

func wholeProtocol(p Protocol) Port { return Port{Protocol: p, Last: maxPort} }

func (p Port) String() string {
	switch {
	case p.Protocol == ProtoAny:
		return "any"
	case p.Name != "":
		return fmt.Sprintf("%s/%s", p.Protocol, p.Name)
	case p.First == 0 && p.Last == maxPort:
		return p.Protocol.String()
	case p.First == p.Last:
		return fmt.Sprintf("%s/%d", p.Protocol, p.First)
	default:
		return fmt.Sprintf("%s/%d-%d", p.Protocol, p.First, p.Last)
	}
}

// allPorts is a rule without ports: every protocol, every port.
var allPorts = []Port{wholeProtocol(ProtoAny)}

// portsOf turns a policy's port list into Ports. A port rule's protocol
// ANY (or none) with a port means TCP, UDP and SCTP on that port; ANY
// without a port means every protocol.
func portsOf(pp ciliumv2.PortProtocol) ([]Port, error) {
	port := Port{Last: maxPort}
	if pp.Port != "" && pp.Port != "0" {
		if n, err := strconv.ParseUint(pp.Port, 10, 16); err == nil {
			port.First, port.Last = uint16(n), uint16(n)
		} else {
			port.First, port.Last, port.Name = 0, 0, pp.Port
		}
	}
	whole := port.First == 0 && port.Last == maxPort
	if pp.EndPort != 0 {
		switch {
		case port.Name != "":
			return nil, fmt.Errorf("endPort %d with the named port %q", pp.EndPort, port.Name)
		case whole:
			return nil, fmt.Errorf("endPort %d without a port", pp.EndPort)
		case pp.EndPort < int32(port.First):
			return nil, fmt.Errorf("endPort %d is below port %d", pp.EndPort, port.First)
		}
		port.Last = uint16(pp.EndPort)
	}
	if pp.Protocol == "" || pp.Protocol == "ANY" {
		if whole {
			return allPorts, nil
		}
		out := make([]Port, 0, 3)
		for _, proto := range []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP} {
			port.Protocol = proto
			out = append(out, port)
		}
		return out, nil
	}
	proto, ok := protocolNames[pp.Protocol]
	if !ok {
		return nil, fmt.Errorf("unknown protocol %q", pp.Protocol)
	}
	if !proto.hasPorts() {
		if !whole {
			return nil, fmt.Errorf("protocol %s has no ports", pp.Protocol)
		}
		return []Port{wholeProtocol(proto)}, nil
	}
	port.Protocol = proto
	return []Port{port}, nil
}

// icmpTypes are the ICMP and ICMPv6 message type names a policy may use.
var icmpTypes = map[string]map[string]uint16{
	"IPv4": {
		"EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8, "EchoRequest": 8,
		"RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11, "ParameterProblem": 12,
		"Timestamp": 13, "TimestampReply": 14, "Photuris": 40, "ExtendedEchoRequest": 42, "ExtendedEchoReply": 43,
	},
	"IPv6": {
		"DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
		"EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130, "MulticastListenerReport": 131,
		"MulticastListenerDone": 132, "RouterSolicitation": 133, "RouterAdvertisement": 134,
		"NeighborSolicitation": 135, "NeighborAdvertisement": 136, "RedirectMessage": 137,
		"RouterRenumbering": 138, "ICMPNodeInformationQuery": 139, "ICMPNodeInformationResponse": 140,
		"InverseNeighborDiscoverySolicitation": 141, "InverseNeighborDiscoveryAdvertisement": 142,
		"HomeAgentAddressDiscoveryRequest": 144, "HomeAgentAddressDiscoveryReply": 145,
		"MobilePrefixSolicitation": 146, "MobilePrefixAdvertisement": 147,
		"DuplicateAddressRequestCodeSuffix": 157, "DuplicateAddressConfirmationCodeSuffix": 158,
		"ExtendedEchoRequest": 160, "ExtendedEchoReply": 161,
	},
}

// icmpPort is one ICMP field as a Port whose range is the type.
func icmpPort(f ciliumv2.ICMPField) (Port, error) {
	family := f.Family
	if family == "" {
		family = "IPv4"
	}
	proto := ProtoICMP
	if family == "IPv6" {
		proto = ProtoICMPv6
	}
	if f.Type == nil {
		return Port{}, fmt.Errorf("ICMP field without a type")
	}
	var t uint16
	if f.Type.Type == intstr.Int {
		if f.Type.IntVal < 0 || f.Type.IntVal > 255 {
			return Port{}, fmt.Errorf("ICMP type %d is not 0-255", f.Type.IntVal)
		}
		t = uint16(f.Type.IntVal)
	} else if n, err := strconv.ParseUint(f.Type.StrVal, 10, 8); err == nil {
		t = uint16(n)
	} else {
		v, ok := icmpTypes[family][f.Type.StrVal]
		if !ok {
			return Port{}, fmt.Errorf("%q is no %s ICMP type", f.Type.StrVal, family)
		}
		t = v
	}
	return Port{Protocol: proto, First: t, Last: t}, nil
}
