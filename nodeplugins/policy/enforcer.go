// Package policy is the policy node plugin: it keeps the node's eBPF
// policy datapath (nodeplugins/policy/datapath) in line with the node's
// NodePolicy, the cluster's IdentityAddresses and the local pods, and
// reports what it enforces in the NodePolicy's status.
package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/internal/nldump"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
)

// LocalPod is a pod of this node as the enforcer needs it.
type LocalPod struct {
	Name       string // namespace/name, for reports
	IPs        []netip.Addr
	NamedPorts []datapath.NamedPort
}

// Veth finds the host side of a local pod's veth: the interface the
// node's route to the pod's address goes through.
type Veth func(ip netip.Addr) (name string, index int, err error)

// Devices finds the node's own devices (name → index), which a host
// policy is enforced on.
type Devices func() (map[string]int, error)

// Report is what the enforcer achieved, for the NodePolicy's status.
type Report struct {
	Generation int64
	Identities int
	Entries    int
	// Problems are entries or pods that are not enforced as written.
	Problems []string
}

// Enforcer programs the datapath from its inputs whenever one changes.
type Enforcer struct {
	Maps *datapath.Maps
	Veth Veth
	// NodeAddresses are this node's own addresses (identity host).
	NodeAddresses []netip.Addr
	// HostDevices finds the devices a host policy is enforced on; nil
	// leaves host policies unenforced (and said so).
	HostDevices Devices
	Log         logr.Logger

	mu         sync.Mutex
	spec       *nodesv1alpha1.NodePolicySpec
	generation int64
	pods       []LocalPod
	addresses  map[netip.Addr]uint32 // pods of the cluster and other nodes
	services   []datapath.Service
	report     Report
	wake       chan struct{}
	reports    chan struct{}
	attached   map[string]attachment // interface name → what this process attached
	// rules and names (ifindex → namespace/name) explain flows, as of
	// the last sync.
	rules datapath.Rules
	names map[uint32]string
	at    map[netip.Addr]string
	// applied is what the maps hold, as this process last wrote them
	// (nil: unknown, read them back); only Run's goroutine touches it.
	applied *datapath.State
}

// NewEnforcer makes an enforcer; Run starts it.
func NewEnforcer(m *datapath.Maps, veth Veth, nodeAddrs []netip.Addr, log logr.Logger) *Enforcer {
	return &Enforcer{Maps: m, Veth: veth, NodeAddresses: nodeAddrs, Log: log,
		wake: make(chan struct{}, 1), reports: make(chan struct{}, 1)}
}

func (e *Enforcer) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// SetSpec hands over the node's NodePolicy (nil: none, nothing enforced).
func (e *Enforcer) SetSpec(spec *nodesv1alpha1.NodePolicySpec, generation int64) {
	e.mu.Lock()
	e.spec, e.generation = spec, generation
	e.mu.Unlock()
	e.poke()
}

// SetPods hands over the node's pods.
func (e *Enforcer) SetPods(pods []LocalPod) {
	e.mu.Lock()
	e.pods = pods
	e.mu.Unlock()
	e.poke()
}

// SetAddresses hands over every known address's identity: pods of the
// cluster (IdentityAddresses) and the other nodes (remote-node).
func (e *Enforcer) SetAddresses(addrs map[netip.Addr]uint32) {
	e.mu.Lock()
	e.addresses = addrs
	e.mu.Unlock()
	e.poke()
}

// SetServices hands over the cluster's Service frontends and backends.
func (e *Enforcer) SetServices(svcs []datapath.Service) {
	e.mu.Lock()
	e.services = svcs
	e.mu.Unlock()
	e.poke()
}

// Reports receives a value whenever the report changes.
func (e *Enforcer) Reports() <-chan struct{} { return e.reports }

// Report is the last report.
func (e *Enforcer) Report() Report {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.report
}

// Run programs the datapath on every change until ctx ends.
func (e *Enforcer) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		}
		rep := e.sync()
		e.mu.Lock()
		changed := !reportsEqual(rep, e.report)
		e.report = rep
		e.mu.Unlock()
		if changed {
			select {
			case e.reports <- struct{}{}:
			default:
			}
		}
	}
}

func reportsEqual(a, b Report) bool {
	return a.Generation == b.Generation && a.Identities == b.Identities && a.Entries == b.Entries && slices.Equal(a.Problems, b.Problems)
}

// sync computes and applies the maps once. Until the NodePolicy has been
// seen nothing is touched, so a restarting plugin keeps what the pinned
// maps enforce.
func (e *Enforcer) sync() Report {
	e.mu.Lock()
	spec, gen, pods, addrs, svcs := e.spec, e.generation, e.pods, e.addresses, e.services
	e.mu.Unlock()
	if addrs == nil {
		return Report{} // the cluster's addresses are not known yet
	}
	rep := Report{Generation: gen}
	if spec == nil {
		spec = &nodesv1alpha1.NodePolicySpec{}
	}

	all := make(map[netip.Addr]uint32, len(addrs)+len(e.NodeAddresses))
	for a, id := range addrs {
		all[a] = id
	}
	for _, a := range e.NodeAddresses {
		all[a] = uint32(identity.Host)
	}
	var endpoints []datapath.Endpoint
	want := map[string]attachment{}
	names, at := map[uint32]string{}, map[netip.Addr]string{}
	for _, p := range pods {
		ep, name, err := e.endpoint(p, all)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("pod %s: %v", p.Name, err))
			continue
		}
		endpoints = append(endpoints, ep)
		want[name] = attachment{index: int(ep.Ifindex)}
		names[ep.Ifindex] = p.Name
		for _, a := range p.IPs {
			at[a] = p.Name
		}
	}
	var hostDevices []uint32
	if h := spec.Host; h != nil && e.HostDevices != nil {
		devs, err := e.HostDevices()
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("finding the node's devices for the host policy: %v", err))
			// A failed lookup takes no device out of enforcement.
			kept := map[string]int{}
			for name, a := range e.attached {
				if a.host {
					kept[name] = a.index
				}
			}
			maps.Copy(kept, devs)
			devs = kept
		}
		for name, idx := range devs {
			want[name] = attachment{index: idx, host: true}
			hostDevices = append(hostDevices, uint32(idx))
		}
	}
	e.attach(want, &rep)

	// The maps are read back only at the start and after a failed write:
	// otherwise they hold what this process wrote last, and reading every
	// map on every pod change would cost as much as the maps are large.
	if e.applied == nil {
		have, err := e.Maps.Read()
		if err != nil {
			rep.Problems = append(rep.Problems, err.Error())
			return rep
		}
		e.applied = &have
	}
	have := *e.applied
	res := datapath.Desired(datapath.Input{Spec: *spec, Endpoints: endpoints, Addresses: all, CIDRIdentities: have.CIDRIdentities(),
		Services: svcs, HostDevices: hostDevices})
	desired := res.State
	e.mu.Lock()
	e.rules, e.names, e.at = res.Rules, names, at
	e.mu.Unlock()
	for _, p := range res.Problems {
		if p.Identity == 0 { // about the NodePolicy, not one identity
			rep.Problems = append(rep.Problems, p.Message)
			continue
		}
		rep.Problems = append(rep.Problems, fmt.Sprintf("identity %d: %s", p.Identity, p.Message))
	}
	if h := spec.Host; h != nil && e.HostDevices == nil {
		// Said, never skipped in silence: the policies stay not Ready.
		rep.Problems = append(rep.Problems, fmt.Sprintf("the host policy of %s is not enforced: this plugin runs without host devices",
			strings.Join(h.Policies, ", ")))
	}
	c, err := e.Maps.Apply(have, desired)
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		e.applied = nil // partly written: read back next time
	} else {
		e.applied = &desired
	}
	if c.Put+c.Deleted > 0 {
		e.Log.V(1).Info("datapath updated", "generation", gen, "put", c.Put, "deleted", c.Deleted)
	}
	rep.Identities, rep.Entries = len(spec.Identities), len(desired.Policy)
	slices.Sort(rep.Problems)
	return rep
}

// Explain names the policies that allow and deny a packet, as the maps
// enforce them now (see datapath.Rules.Explain).
func (e *Enforcer) Explain(local, peer uint32, dir datapath.Direction, proto uint8, port uint16) (allowedBy, deniedBy []string) {
	e.mu.Lock()
	rules := e.rules
	e.mu.Unlock()
	return rules.Explain(local, peer, dir, proto, port)
}

// PodOf is the namespace/name of the local pod behind a veth (by the
// ifindex of its host side).
func (e *Enforcer) PodOf(ifindex uint32) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	name, ok := e.names[ifindex]
	return name, ok
}

// PodAt is the namespace/name of the local pod with an address.
func (e *Enforcer) PodAt(a netip.Addr) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	name, ok := e.at[a]
	return name, ok
}

// attachment is an interface the programs are on: a pod's veth, or a
// device of the node (host).
type attachment struct {
	index int
	host  bool
}

// attach puts the programs on the interfaces of want that do not have
// them yet (after a restart: adopting the pinned links, with this
// binary's programs) and takes them off the veths of pods gone and the
// devices no host policy needs any more.
func (e *Enforcer) attach(want map[string]attachment, rep *Report) {
	if e.attached == nil {
		e.attached = map[string]attachment{}
	}
	for name, a := range want {
		if cur, ok := e.attached[name]; ok && cur == a {
			continue
		}
		if err := e.Maps.Attach(name, a.index, a.host); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
			continue
		}
		e.attached[name] = a
	}
	pinned, err := e.Maps.Attached()
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		return
	}
	for _, name := range pinned {
		if _, ok := want[name]; ok {
			continue
		}
		if err := e.Maps.Detach(name); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
			continue
		}
		delete(e.attached, name)
	}
}

// endpoint is a local pod's datapath endpoint: its identity (by its
// address, from IdentityAddresses) and the veth its route goes through.
func (e *Enforcer) endpoint(p LocalPod, all map[netip.Addr]uint32) (datapath.Endpoint, string, error) {
	if len(p.IPs) == 0 {
		return datapath.Endpoint{}, "", fmt.Errorf("no address yet")
	}
	id, ok := all[p.IPs[0]]
	if !ok || id == uint32(identity.Host) {
		return datapath.Endpoint{}, "", fmt.Errorf("no identity for %s yet", p.IPs[0])
	}
	name, idx, err := e.Veth(p.IPs[0])
	if err != nil {
		return datapath.Endpoint{}, "", fmt.Errorf("finding its veth: %w", err)
	}
	return datapath.Endpoint{Ifindex: uint32(idx), Identity: id, NamedPorts: p.NamedPorts}, name, nil
}

// Summary is the report in a sentence, for the Ready condition.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d identities, %d policy entries in the datapath", r.Identities, r.Entries)
	if len(r.Problems) > 0 {
		s += "; not enforced as written: " + strings.Join(r.Problems, "; ")
	}
	return s
}

// RouteVeth is the Veth of a node whose CNI routes each pod address to
// the pod's veth (Plexus's CNI, and most others): the interface of the
// node's route to the address, which must be a veth.
func RouteVeth(ip netip.Addr) (string, int, error) {
	routes, err := netlink.RouteGet(ip.AsSlice())
	if err != nil {
		return "", 0, err
	}
	if len(routes) == 0 {
		return "", 0, fmt.Errorf("no route to %s", ip)
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", 0, err
	}
	if l.Type() != "veth" {
		return "", 0, fmt.Errorf("the route to %s leaves through %s, a %s, not a pod's veth", ip, l.Attrs().Name, l.Type())
	}
	return l.Attrs().Name, l.Attrs().Index, nil
}

// NamedDevices is the Devices of a fixed list of interface names.
func NamedDevices(names []string) Devices {
	return func() (map[string]int, error) {
		out := map[string]int{}
		var errs []error
		for _, n := range names {
			l, err := netlink.LinkByName(n)
			if err != nil {
				errs = append(errs, fmt.Errorf("device %s: %w", n, err))
				continue
			}
			out[n] = l.Attrs().Index
		}
		return out, errors.Join(errs...)
	}
}

// DefaultRouteDevices are the devices of the node's default routes
// (IPv4 and IPv6): its way to the other nodes and beyond, which is what a
// host policy guards.
func DefaultRouteDevices() (map[string]int, error) {
	out := map[string]int{}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := nldump.Routes(nil, family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			if r.Dst != nil {
				// A default route has no destination, or a /0 one.
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			for _, idx := range routeLinks(r) {
				l, err := netlink.LinkByIndex(idx)
				if err != nil {
					return nil, err
				}
				out[l.Attrs().Name] = idx
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the node has no default route: name its devices with --host-devices")
	}
	return out, nil
}

// routeLinks are the interfaces a route leaves through (one per next hop).
func routeLinks(r netlink.Route) []int {
	if len(r.MultiPath) == 0 {
		return []int{r.LinkIndex}
	}
	var out []int
	for _, nh := range r.MultiPath {
		out = append(out, nh.LinkIndex)
	}
	return out
}
