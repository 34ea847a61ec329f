package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/plexus-net/plexus/internal/nldump"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
	"github.com/plexus-net/plexus/nodeplugins/bgp/gateway"
)

// readInterfaces reads the named interfaces of the plugin's network
// namespace; a missing one is left out.
func readInterfaces(names []string) (map[string]desired.Interface, error) {
	out := make(map[string]desired.Interface, len(names))
	for _, name := range names {
		link, err := netlink.LinkByName(name)
		if errors.As(err, &netlink.LinkNotFoundError{}) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading interface %s: %w", name, err)
		}
		a := link.Attrs()
		iface := desired.Interface{
			Up: a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown),
		}
		// Per family, so that an IPv4-mapped IPv6 address stays IPv6 (and
		// unusable) while an IPv4 one in 16-byte form becomes IPv4.
		for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			addrs, err := nldump.Addrs(nil, link, family)
			if err != nil {
				return nil, fmt.Errorf("reading the addresses of %s: %w", name, err)
			}
			for _, addr := range addrs {
				ip, ok := netip.AddrFromSlice(addr.IP)
				if !ok {
					continue
				}
				if family == netlink.FAMILY_V4 {
					ip = ip.Unmap()
				}
				iface.Addrs = append(iface.Addrs, ip)
			}
		}
		slices.SortFunc(iface.Addrs, netip.Addr.Compare)
		out[name] = iface
	}
	return out, nil
}

func sameInterfaces(a, b map[string]desired.Interface) bool {
	return maps.EqualFunc(a, b, func(x, y desired.Interface) bool { return x.Up == y.Up && slices.Equal(x.Addrs, y.Addrs) })
}

// watchInterfaces re-checks the interfaces the last pass read whenever
// they may have changed: address and link changes show up as route events
// (their local and connected routes), and a poll catches the rest.
func (p *Plugin) watchInterfaces(ctx context.Context) error {
	gateway.Watch(ctx, netns.None(), p.Config.InterfacePoll, p.checkInterfaces)
	return nil
}

// checkInterfaces starts a pass if an interface the last pass read has
// changed: its addresses, or whether it is up.
func (p *Plugin) checkInterfaces() {
	p.mu.Lock()
	names, last := p.ifaceNames, p.ifaces
	p.mu.Unlock()
	if len(names) == 0 {
		return
	}
	now, err := p.readInterfaces(names)
	if err != nil || sameInterfaces(now, last) {
		return
	}
	select {
	case p.kicks <- event.GenericEvent{Object: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p.Config.NodeName}}}:
	default: // a pass is queued already
	}
}

func (p *Plugin) readInterfaces(names []string) (map[string]desired.Interface, error) {
	if p.Interfaces != nil {
		return p.Interfaces(names)
	}
	return readInterfaces(names)
}
