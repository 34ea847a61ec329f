package bgp

import (
	"fmt"
	"net"
	"net/netip"
)

// RouterIDFromMAC is the router ID an IPv6-only node gives itself (B46):
// the low 32 bits of a MAC address, read as an IPv4 address. The seed takes
// those of its cilium_host device; Plexus has none and uses the node's
// underlay device (--device). Zero when mac has fewer than 4 bytes or its
// low 32 bits are all zero (not a usable BGP identifier).
func RouterIDFromMAC(mac net.HardwareAddr) netip.Addr {
	if len(mac) < 4 {
		return netip.Addr{}
	}
	id := netip.AddrFrom4([4]byte(mac[len(mac)-4:]))
	if id.IsUnspecified() {
		return netip.Addr{}
	}
	return id
}

// DeviceRouterID derives the router ID from device's MAC address.
func DeviceRouterID(device string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(device)
	if err != nil {
		return netip.Addr{}, err
	}
	id := RouterIDFromMAC(ifi.HardwareAddr)
	if !id.IsValid() {
		return id, fmt.Errorf("device %s has no MAC address to derive a router ID from", device)
	}
	return id, nil
}
