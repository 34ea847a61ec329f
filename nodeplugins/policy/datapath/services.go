package datapath

import (
	"net/netip"
	"slices"

	"github.com/plexus-net/plexus/bpf/policybpf"
)

// MaxServiceBackends is how many distinct (identity, target port) pairs a
// Service frontend's entry holds (SVC_MAX_BACKENDS in bpf/src/policy.c).
const MaxServiceBackends = 16

// svcOverflow marks an entry whose backends did not all fit.
const svcOverflow = 1

// Service is a Service frontend as kube-proxy translates it: packets to
// Frontend over Proto go to one of Backends (ready endpoints' address and
// target port).
type Service struct {
	Frontend netip.AddrPort
	Proto    uint8
	Backends []netip.AddrPort
}

// ServiceKey is a services map key.
type ServiceKey struct {
	Addr  netip.Addr // IPv4 unmapped
	Port  uint16
	Proto uint8
}

// ServiceBackend is a backend as the programs judge it.
type ServiceBackend struct {
	Identity uint32
	Port     uint16
}

// ServiceValue is a services map value: comparable, so unchanged entries
// are recognised and left alone.
type ServiceValue struct {
	Count    uint8
	Overflow bool
	Backends [MaxServiceBackends]ServiceBackend
}

// serviceEntries resolves each frontend's backends to the identities the
// programs will judge them as (the ipcache's answer for their address),
// keeping the distinct pairs in a stable order. A frontend without
// backends gets no entry: its address is judged as itself (and
// kube-proxy refuses the connection anyway).
func serviceEntries(svcs []Service, ipcache map[netip.Prefix]uint32, cidrIDs map[netip.Prefix]uint32) map[ServiceKey]ServiceValue {
	out := map[ServiceKey]ServiceValue{}
	for _, s := range svcs {
		var pairs []ServiceBackend
		for _, b := range s.Backends {
			a := b.Addr().Unmap()
			pairs = append(pairs, ServiceBackend{Identity: identityOf(a, ipcache, cidrIDs), Port: b.Port()})
		}
		if len(pairs) == 0 {
			continue
		}
		slices.SortFunc(pairs, func(x, y ServiceBackend) int {
			if x.Identity != y.Identity {
				return int(int64(x.Identity) - int64(y.Identity))
			}
			return int(x.Port) - int(y.Port)
		})
		pairs = slices.Compact(pairs)
		k := ServiceKey{Addr: s.Frontend.Addr().Unmap(), Port: s.Frontend.Port(), Proto: s.Proto}
		v := out[k] // two Services never share a frontend; if they did, judge by both
		for _, p := range pairs {
			if slices.Contains(v.Backends[:v.Count], p) {
				continue
			}
			if int(v.Count) == MaxServiceBackends {
				v.Overflow = true
				break
			}
			v.Backends[v.Count] = p
			v.Count++
		}
		out[k] = v
	}
	return out
}

// identityOf is what the ipcache gives an address: its own entry, else
// the most specific CIDR prefix holding it, else the world.
func identityOf(a netip.Addr, ipcache map[netip.Prefix]uint32, cidrIDs map[netip.Prefix]uint32) uint32 {
	if id, ok := ipcache[netip.PrefixFrom(a, a.BitLen())]; ok {
		return id
	}
	best, id := -1, uint32(worldIdentity)
	for p, cid := range cidrIDs {
		if p.Bits() > best && p.Contains(a) {
			best, id = p.Bits(), cid
		}
	}
	return id
}

func serviceKey(k ServiceKey) policybpf.PolicyServiceKey {
	return policybpf.PolicyServiceKey{Addr: k.Addr.As16(), Port: be16(k.Port), Proto: k.Proto}
}

func serviceKeyOf(k policybpf.PolicyServiceKey) ServiceKey {
	return ServiceKey{Addr: netip.AddrFrom16(k.Addr).Unmap(), Port: fromBE16(k.Port), Proto: k.Proto}
}

func serviceValue(v ServiceValue) policybpf.PolicyServiceValue {
	out := policybpf.PolicyServiceValue{Count: uint32(v.Count)}
	if v.Overflow {
		out.Flags = svcOverflow
	}
	for i, b := range v.Backends[:v.Count] {
		out.Backends[i].Identity, out.Backends[i].Port = b.Identity, be16(b.Port)
	}
	return out
}

func serviceValueOf(v policybpf.PolicyServiceValue) ServiceValue {
	out := ServiceValue{Count: uint8(min(v.Count, MaxServiceBackends)), Overflow: v.Flags&svcOverflow != 0}
	for i := range out.Count {
		out.Backends[i] = ServiceBackend{Identity: v.Backends[i].Identity, Port: fromBE16(v.Backends[i].Port)}
	}
	return out
}
