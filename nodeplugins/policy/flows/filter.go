package flows

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// matcher is one compiled FlowFilter: every field it sets must match,
// and a field matches when any of its values does.
type matcher []func(*flowpb.Flow) bool

func (m matcher) match(f *flowpb.Flow) bool {
	for _, fn := range m {
		if !fn(f) {
			return false
		}
	}
	return true
}

// Filter is a request's whitelist and blacklist: a flow passes when it
// matches some whitelist filter (or there is none) and no blacklist one.
type Filter struct {
	white, black []matcher
}

// Match tells whether f passes.
func (fl Filter) Match(f *flowpb.Flow) bool {
	if len(fl.white) > 0 && !slices.ContainsFunc(fl.white, func(m matcher) bool { return m.match(f) }) {
		return false
	}
	return !slices.ContainsFunc(fl.black, func(m matcher) bool { return m.match(f) })
}

// NewFilter compiles filters. A field this server cannot evaluate is an
// error naming it: silently ignoring it would show flows the user asked
// to exclude.
func NewFilter(whitelist, blacklist []*flowpb.FlowFilter) (Filter, error) {
	var fl Filter
	for _, list := range []struct {
		name string
		in   []*flowpb.FlowFilter
		out  *[]matcher
	}{{"whitelist", whitelist, &fl.white}, {"blacklist", blacklist, &fl.black}} {
		for i, ff := range list.in {
			m, err := compile(ff)
			if err != nil {
				return Filter{}, fmt.Errorf("%s[%d]: %w", list.name, i, err)
			}
			*list.out = append(*list.out, m)
		}
	}
	return fl, nil
}

func compile(ff *flowpb.FlowFilter) (matcher, error) {
	var m matcher
	var err error
	ff.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		var fn func(*flowpb.Flow) bool
		fn, err = field(ff, string(fd.Name()))
		if err != nil {
			return false
		}
		m = append(m, fn)
		return true
	})
	return m, err
}

// field compiles one set field of ff.
func field(ff *flowpb.FlowFilter, name string) (func(*flowpb.Flow) bool, error) {
	switch name {
	case "source_ip":
		return ipField(ff.SourceIp, func(f *flowpb.Flow) string { return f.GetIP().GetSource() })
	case "destination_ip":
		return ipField(ff.DestinationIp, func(f *flowpb.Flow) string { return f.GetIP().GetDestination() })
	case "source_pod":
		return podField(ff.SourcePod, (*flowpb.Flow).GetSource)
	case "destination_pod":
		return podField(ff.DestinationPod, (*flowpb.Flow).GetDestination)
	case "source_identity":
		return anyOf(ff.SourceIdentity, func(f *flowpb.Flow) uint32 { return f.GetSource().GetIdentity() }), nil
	case "destination_identity":
		return anyOf(ff.DestinationIdentity, func(f *flowpb.Flow) uint32 { return f.GetDestination().GetIdentity() }), nil
	case "verdict":
		return anyOf(ff.Verdict, (*flowpb.Flow).GetVerdict), nil
	case "drop_reason_desc":
		return anyOf(ff.DropReasonDesc, (*flowpb.Flow).GetDropReasonDesc), nil
	case "traffic_direction":
		return anyOf(ff.TrafficDirection, (*flowpb.Flow).GetTrafficDirection), nil
	case "ip_version":
		return anyOf(ff.IpVersion, func(f *flowpb.Flow) flowpb.IPVersion { return f.GetIP().GetIpVersion() }), nil
	case "reply":
		return anyOf(ff.Reply, func(f *flowpb.Flow) bool { return f.GetIsReply().GetValue() }), nil
	case "event_type":
		return eventTypeField(ff.EventType), nil
	case "protocol":
		return protocolField(ff.Protocol)
	case "source_port":
		return portField(ff.SourcePort, func(f *flowpb.Flow) (uint32, bool) { return ports(f, true) })
	case "destination_port":
		return portField(ff.DestinationPort, func(f *flowpb.Flow) (uint32, bool) { return ports(f, false) })
	case "node_name":
		return nodeField(ff.NodeName)
	}
	return nil, fmt.Errorf("the filter field %q is not supported by this server (Plexus serves L3/L4 policy verdicts); "+
		"supported: source/destination ip, pod, identity and port, verdict, drop_reason_desc, traffic_direction, "+
		"ip_version, reply, event_type, protocol, node_name", name)
}

func anyOf[T comparable](want []T, get func(*flowpb.Flow) T) func(*flowpb.Flow) bool {
	return func(f *flowpb.Flow) bool { return slices.Contains(want, get(f)) }
}

// ipField matches an address or a CIDR.
func ipField(values []string, get func(*flowpb.Flow) string) (func(*flowpb.Flow) bool, error) {
	var prefixes []netip.Prefix
	for _, v := range values {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither an IP address nor a CIDR", v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		prefixes = append(prefixes, p.Masked())
	}
	return func(f *flowpb.Flow) bool {
		a, err := netip.ParseAddr(get(f))
		return err == nil && slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
	}, nil
}

// podField matches "namespace/name-prefix", "namespace/" (a namespace)
// or "name-prefix" (in any namespace), as Hubble does.
func podField(values []string, get func(*flowpb.Flow) *flowpb.Endpoint) (func(*flowpb.Flow) bool, error) {
	type pod struct{ ns, prefix string }
	var want []pod
	for _, v := range values {
		if v == "" {
			return nil, fmt.Errorf("a pod filter must not be empty")
		}
		ns, name, ok := strings.Cut(v, "/")
		if !ok {
			ns, name = "", v
		}
		want = append(want, pod{ns, name})
	}
	return func(f *flowpb.Flow) bool {
		ep := get(f)
		if ep.GetNamespace() == "" && ep.GetPodName() == "" {
			return false
		}
		return slices.ContainsFunc(want, func(p pod) bool {
			return (p.ns == "" || p.ns == ep.GetNamespace()) && (p.prefix == "" || strings.HasPrefix(ep.GetPodName(), p.prefix))
		})
	}, nil
}

func eventTypeField(types []*flowpb.EventTypeFilter) func(*flowpb.Flow) bool {
	return func(f *flowpb.Flow) bool {
		return slices.ContainsFunc(types, func(t *flowpb.EventTypeFilter) bool {
			return t.GetType() == f.GetEventType().GetType() && (!t.GetMatchSubType() || t.GetSubType() == f.GetEventType().GetSubType())
		})
	}
}

func protocolOf(f *flowpb.Flow) string {
	switch f.GetL4().GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		return "tcp"
	case *flowpb.Layer4_UDP:
		return "udp"
	case *flowpb.Layer4_SCTP:
		return "sctp"
	case *flowpb.Layer4_ICMPv4:
		return "icmpv4"
	case *flowpb.Layer4_ICMPv6:
		return "icmpv6"
	}
	return ""
}

func protocolField(values []string) (func(*flowpb.Flow) bool, error) {
	var want []string
	for _, v := range values {
		v = strings.ToLower(v)
		switch v {
		case "tcp", "udp", "sctp", "icmpv4", "icmpv6":
			want = append(want, v)
		case "icmp":
			want = append(want, "icmpv4", "icmpv6")
		default:
			return nil, fmt.Errorf("protocol %q is not one of tcp, udp, sctp, icmp, icmpv4, icmpv6", v)
		}
	}
	return func(f *flowpb.Flow) bool { return slices.Contains(want, protocolOf(f)) }, nil
}

// ports are a flow's source or destination port (TCP, UDP, SCTP).
func ports(f *flowpb.Flow, source bool) (uint32, bool) {
	var src, dst uint32
	switch l := f.GetL4().GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		src, dst = l.TCP.GetSourcePort(), l.TCP.GetDestinationPort()
	case *flowpb.Layer4_UDP:
		src, dst = l.UDP.GetSourcePort(), l.UDP.GetDestinationPort()
	case *flowpb.Layer4_SCTP:
		src, dst = l.SCTP.GetSourcePort(), l.SCTP.GetDestinationPort()
	default:
		return 0, false
	}
	if source {
		return src, true
	}
	return dst, true
}

func portField(values []string, get func(*flowpb.Flow) (uint32, bool)) (func(*flowpb.Flow) bool, error) {
	var want []uint32
	for _, v := range values {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q is not a number from 0 to 65535", v)
		}
		want = append(want, uint32(p))
	}
	return func(f *flowpb.Flow) bool {
		p, ok := get(f)
		return ok && slices.Contains(want, p)
	}, nil
}

// nodeField matches node names with shell patterns ("worker-*"); Hubble's
// "cluster/node" form matches the node part.
func nodeField(values []string) (func(*flowpb.Flow) bool, error) {
	var patterns []string
	for _, v := range values {
		if _, node, ok := strings.Cut(v, "/"); ok {
			v = node
		}
		if _, err := path.Match(v, ""); err != nil {
			return nil, fmt.Errorf("node name pattern %q: %w", v, err)
		}
		patterns = append(patterns, v)
	}
	return func(f *flowpb.Flow) bool {
		return slices.ContainsFunc(patterns, func(p string) bool {
			ok, _ := path.Match(p, f.GetNodeName())
			return ok
		})
	}, nil
}
