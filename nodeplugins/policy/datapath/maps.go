package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plexus-net/plexus/bpf/policybpf"
)

// Maps are the policy programs and their maps, pinned under a directory
// of bpffs: a new process opens the same maps, so a restart keeps the
// entries (and enforcement) and only writes what changed meanwhile.
type Maps struct {
	objs   policybpf.PolicyObjects
	pinDir string
}

// DefaultPolicyEntries is the policy map's size unless told otherwise.
const DefaultPolicyEntries = 256 * 1024

// Options are the load-time settings of the programs and maps.
type Options struct {
	// PolicyEntries sizes the policy map (all endpoints of the node share
	// it); 0 is DefaultPolicyEntries.
	PolicyEntries uint32
	// TunnelPort is the node's VXLAN UDP port, which a host policy leaves
	// alone (the tunnel carries pods' packets); 0 for none.
	TunnelPort uint16
	// StackOnly leaves all traffic between the node's pods to its IP stack.
	// By default a pod's established connection to another pod of the node
	// is delivered straight into that pod once both sides track it,
	// past the node's forwarding and netfilter (deliver_local in the
	// programs); a host firewall that must see that traffic needs this.
	StackOnly bool
}

// Open loads the programs and opens the maps pinned in pinDir, creating
// and pinning those that do not exist yet, with the default options.
func Open(pinDir string) (*Maps, error) { return OpenWith(pinDir, Options{}) }

// OpenWith is Open with options. A pinned policy map of another size
// cannot be resized in place: that is an error saying what to do.
func OpenWith(pinDir string, o Options) (*Maps, error) {
	policyEntries := o.PolicyEntries
	if policyEntries == 0 {
		policyEntries = DefaultPolicyEntries
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating pin directory: %w", err)
	}
	spec, err := policybpf.LoadPolicy()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables["tunnel_port"].Set(o.TunnelPort); err != nil {
		return nil, fmt.Errorf("setting the tunnel port: %w", err)
	}
	if err := spec.Variables["local_redirect"].Set(boolByte(!o.StackOnly)); err != nil {
		return nil, fmt.Errorf("setting local delivery: %w", err)
	}
	spec.Maps[policybpf.PolicyMapPlxPolicy].MaxEntries = policyEntries
	restoreConntrack, err := upgradeConntrack(pinDir)
	if err != nil {
		return nil, err
	}
	m := &Maps{pinDir: pinDir}
	err = spec.LoadAndAssign(&m.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("the pinned policy maps in %s were made with another size than %d policy entries: "+
			"a pinned map cannot be resized; keep the old size, or remove %s (enforcement on this node stops until the plugin has rewritten it): %w",
			pinDir, policyEntries, filepath.Join(pinDir, policybpf.PolicyMapPlxPolicy), err)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading the policy programs: %w\nverifier log:\n%s", err, strings.Join(ve.Log, "\n"))
		}
		return nil, fmt.Errorf("loading the policy programs: %w", err)
	}
	if err := errors.Join(restoreConntrack(m.objs.PlxConntrack), m.startGeneration(), m.rebuildEndpointIndex()); err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// oldConntrackMap is the conntrack map of earlier plugins, keyed by a
// connection as its opening packet went (and that packet's direction),
// so that a packet looked up two keys: with values of the expiry alone
// (8 bytes) or of the expiry and a generation (16).
const oldConntrackMap = "plx_ct"

type oldConntrackKey struct {
	Saddr, Daddr [16]byte
	Sport, Dport uint16
	Proto, Dir   uint8
	_            [2]byte
}

// localAddr is the address of the endpoint whose side of the connection
// an old key holds: the opening packet's sender if it went out (egress).
func (k oldConntrackKey) localAddr() netip.Addr {
	if Direction(k.Dir) == Egress {
		return netip.AddrFrom16(k.Saddr).Unmap()
	}
	return netip.AddrFrom16(k.Daddr).Unmap()
}

// conntrackKey is the programs' key (ct_key_of) of the entry an old
// conntrack key stood for: the endpoint's side of the connection, behind
// interface ifindex (0 for the node's own).
func (k oldConntrackKey) conntrackKey(ifindex uint32) policybpf.PolicyCtKey {
	icmp := k.Proto == unix.IPPROTO_ICMP || k.Proto == unix.IPPROTO_ICMPV6
	sport, dport := k.Sport, k.Dport
	if icmp { // the echo identifier is no end's port
		sport, dport = 0, 0
	}
	srcFirst := endBefore(k.Saddr, sport, k.Daddr, dport)
	n := policybpf.PolicyCtKey{AddrA: k.Saddr, AddrB: k.Daddr, PortA: k.Sport, PortB: k.Dport, Proto: k.Proto, Ifindex: ifindex}
	if !srcFirst {
		n.AddrA, n.AddrB = k.Daddr, k.Saddr
		if !icmp {
			n.PortA, n.PortB = k.Dport, k.Sport
		}
	}
	// The endpoint sent the opening packet if it went out (egress).
	localSrc := Direction(k.Dir) == Egress
	if localSrc != srcFirst {
		n.LocalB = 1
	}
	return n
}

// endBefore is end_before of the programs: the order of a conntrack key's
// ends, which compares each address as two 8-byte words in the machine's
// byte order (the programs' loads), then the ports as they lie in memory.
func endBefore(a [16]byte, ap uint16, b [16]byte, bp uint16) bool {
	for _, off := range []int{0, 8} {
		x, y := binary.NativeEndian.Uint64(a[off:]), binary.NativeEndian.Uint64(b[off:])
		if x != y {
			return x < y
		}
	}
	return ap < bp
}

// localInterface is the interface of the local endpoint with an address:
// the pod's veth the node routes the address to, or 0 for an address of
// the node's own; false when the node has no such route (the endpoint is
// gone).
func localInterface(a netip.Addr) (uint32, bool) {
	routes, err := netlink.RouteGet(a.AsSlice())
	if err != nil || len(routes) == 0 {
		return 0, false
	}
	if routes[0].Type == unix.RTN_LOCAL {
		return 0, true
	}
	if routes[0].Gw != nil || routes[0].LinkIndex <= 0 {
		return 0, false // routed on, so no endpoint of this node
	}
	return uint32(routes[0].LinkIndex), true
}

// upgradeConntrack takes the entries out of a conntrack map pinned by an
// earlier plugin (oldConntrackMap) and unpins it; the function returned
// writes them into the new map, at no generation: each connection's
// replies keep passing and its next packet in the opening direction is
// judged again. An entry's interface is the one the node routes its
// endpoint's address to; entries of endpoints gone are left behind. (The
// old programs keep their map until the new ones replace them;
// connections they open in that moment are not carried over.)
func upgradeConntrack(pinDir string) (restore func(*ebpf.Map) error, err error) {
	none := func(*ebpf.Map) error { return nil }
	old, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, oldConntrackMap), nil)
	if errors.Is(err, os.ErrNotExist) {
		return none, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the pinned conntrack map of the old layout: %w", err)
	}
	defer old.Close()
	type entry struct {
		key   policybpf.PolicyCtKey
		value policybpf.PolicyCtValue
	}
	var (
		entries []entry
		k       oldConntrackKey
		v       = make([]byte, old.ValueSize())
	)
	if old.KeySize() != uint32(binary.Size(k)) || (len(v) != 8 && len(v) != 16) {
		return nil, fmt.Errorf("the pinned conntrack map %s has a layout this plugin does not know (key %d, value %d bytes): remove it",
			filepath.Join(pinDir, oldConntrackMap), old.KeySize(), len(v))
	}
	type found struct {
		ifindex uint32
		ok      bool
	}
	interfaces := map[netip.Addr]found{}
	it := old.Iterate()
	for it.Next(&k, v) {
		local := k.localAddr()
		at, seen := interfaces[local]
		if !seen {
			at.ifindex, at.ok = localInterface(local)
			interfaces[local] = at
		}
		if !at.ok {
			continue
		}
		entries = append(entries, entry{k.conntrackKey(at.ifindex), policybpf.PolicyCtValue{Expires: binary.NativeEndian.Uint64(v), Opener: k.Dir}})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the pinned conntrack map of the old layout: %w", err)
	}
	if err := old.Unpin(); err != nil {
		return nil, fmt.Errorf("unpinning the conntrack map of the old layout: %w", err)
	}
	return func(ct *ebpf.Map) error {
		for _, e := range entries {
			err := ct.Update(e.key, e.value, ebpf.UpdateNoExist)
			if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
				return fmt.Errorf("carrying conntrack entries over to the new layout: %w", err)
			}
		}
		return nil
	}, nil
}

// startGeneration makes a new generation map start at 1: 0 is never a
// generation, so conntrack entries carried over (or made when the
// generation could not be read) never count as judged.
func (m *Maps) startGeneration() error {
	var gen uint32
	if err := m.objs.PlxGeneration.Lookup(uint32(0), &gen); err != nil {
		return fmt.Errorf("reading the maps' generation: %w", err)
	}
	if gen != 0 {
		return nil
	}
	if err := m.objs.PlxGeneration.Put(uint32(0), uint32(1)); err != nil {
		return fmt.Errorf("starting the maps' generation: %w", err)
	}
	return nil
}

// endpointIndexSize is ENDPOINT_INDEX_SIZE of the programs: the interface
// indexes whose endpoints plx_endpoint_index mirrors.
const endpointIndexSize = 65536

// epIndexed marks an entry of the endpoint index that holds an endpoint.
const epIndexed = 8

// rebuildEndpointIndex makes the endpoint index what the endpoints map
// says, in one write: after an upgrade from plugins without it, or a stop
// between the two writes of an endpoint, before any program of this
// process reads it.
func (m *Maps) rebuildEndpointIndex() error {
	keys := make([]uint32, endpointIndexSize)
	values := make([]policybpf.PolicyEndpointValue, endpointIndexSize)
	for i := range keys {
		keys[i] = uint32(i)
	}
	var (
		k uint32
		v policybpf.PolicyEndpointValue
	)
	it := m.objs.PlxEndpoints.Iterate()
	for it.Next(&k, &v) {
		if k < endpointIndexSize {
			values[k] = policybpf.PolicyEndpointValue{Identity: v.Identity, Flags: v.Flags | epIndexed}
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading the endpoints: %w", err)
	}
	if _, err := m.objs.PlxEndpointIndex.BatchUpdate(keys, values, nil); err != nil {
		return fmt.Errorf("rebuilding the endpoint index: %w", err)
	}
	return nil
}

// putEndpoint writes an endpoint to the endpoints map, then to the index.
func (m *Maps) putEndpoint(ifindex uint32, v EndpointValue) error {
	if err := m.objs.PlxEndpoints.Put(ifindex, policybpf.PolicyEndpointValue{Identity: v.Identity, Flags: v.Flags}); err != nil {
		return err
	}
	if ifindex < endpointIndexSize {
		return m.objs.PlxEndpointIndex.Put(ifindex, policybpf.PolicyEndpointValue{Identity: v.Identity, Flags: v.Flags | epIndexed})
	}
	return nil
}

// deleteEndpoint takes an endpoint out of the index, then out of the
// endpoints map.
func (m *Maps) deleteEndpoint(ifindex uint32) error {
	if ifindex < endpointIndexSize {
		if err := m.objs.PlxEndpointIndex.Put(ifindex, policybpf.PolicyEndpointValue{}); err != nil {
			return err
		}
	}
	return deleteEntry(m.objs.PlxEndpoints, ifindex)
}

// Close releases this process's handles; pinned maps stay.
func (m *Maps) Close() error { return m.objs.Close() }

// Unpin removes the pinned maps (the policy is switched off for good).
func (m *Maps) Unpin() error {
	for _, mp := range []*ebpf.Map{m.objs.PlxIpcache, m.objs.PlxEndpoints, m.objs.PlxEndpointIndex, m.objs.PlxPolicy, m.objs.PlxServices, m.objs.PlxConntrack,
		m.objs.PlxEvents, m.objs.PlxCounters, m.objs.PlxGeneration} {
		if err := mp.Unpin(); err != nil {
			return err
		}
	}
	return os.RemoveAll(filepath.Join(m.pinDir, linksDir))
}

// IPCache is the address-to-identity map (for measuring its memory).
func (m *Maps) IPCache() *ebpf.Map { return m.objs.PlxIpcache }

// be16 is v in network byte order, as a little-endian machine's uint16.
func be16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func fromBE16(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

func ipcacheKey(p netip.Prefix) policybpf.PolicyIpcacheKey {
	k := policybpf.PolicyIpcacheKey{Prefixlen: uint32(p.Bits())}
	if p.Addr().Is4() {
		k.Prefixlen += 96
	}
	k.Addr = p.Addr().As16()
	return k
}

func prefixOf(k policybpf.PolicyIpcacheKey) netip.Prefix {
	a := netip.AddrFrom16(k.Addr)
	bits := int(k.Prefixlen)
	if a.Is4In6() && bits >= 96 {
		return netip.PrefixFrom(a.Unmap(), bits-96)
	}
	return netip.PrefixFrom(a, bits)
}

func policyKey(k PolicyKey) policybpf.PolicyPolicyKey {
	return policybpf.PolicyPolicyKey{
		Prefixlen: 32 + 32 + 8 + 8 + uint32(k.PortBits),
		Local:     k.Local, Peer: k.Peer, Dir: k.Dir, Proto: k.Proto, Dport: be16(k.Port),
	}
}

func policyKeyOf(k policybpf.PolicyPolicyKey) PolicyKey {
	return PolicyKey{Local: k.Local, Peer: k.Peer, Dir: k.Dir, Proto: k.Proto, Port: fromBE16(k.Dport), PortBits: uint8(k.Prefixlen - 80)}
}

// Read is what the maps hold now.
func (m *Maps) Read() (State, error) {
	st := State{Endpoints: map[uint32]EndpointValue{}, Policy: map[PolicyKey]uint32{}, IPCache: map[netip.Prefix]uint32{},
		Services: map[ServiceKey]ServiceValue{}}
	var (
		ik policybpf.PolicyIpcacheKey
		iv policybpf.PolicyIpcacheValue
	)
	it := m.objs.PlxIpcache.Iterate()
	for it.Next(&ik, &iv) {
		st.IPCache[prefixOf(ik)] = iv.Identity
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("reading the ipcache: %w", err)
	}
	var (
		ek uint32
		ev policybpf.PolicyEndpointValue
	)
	it = m.objs.PlxEndpoints.Iterate()
	for it.Next(&ek, &ev) {
		st.Endpoints[ek] = EndpointValue{Identity: ev.Identity, Flags: ev.Flags}
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("reading the endpoints: %w", err)
	}
	var (
		pk policybpf.PolicyPolicyKey
		pv policybpf.PolicyPolicyValue
	)
	it = m.objs.PlxPolicy.Iterate()
	for it.Next(&pk, &pv) {
		st.Policy[policyKeyOf(pk)] = pv.Flags
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("reading the policy: %w", err)
	}
	var (
		sk policybpf.PolicyServiceKey
		sv policybpf.PolicyServiceValue
	)
	it = m.objs.PlxServices.Iterate()
	for it.Next(&sk, &sv) {
		st.Services[serviceKeyOf(sk)] = serviceValueOf(sv)
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("reading the services: %w", err)
	}
	return st, nil
}

// CIDRIdentities are the CIDR identities the ipcache holds, to be kept
// by the next Desired.
func (st State) CIDRIdentities() map[netip.Prefix]uint32 {
	out := map[netip.Prefix]uint32{}
	for p, id := range st.IPCache {
		if id >= CIDRIdentityBase {
			out[p] = id
		}
	}
	return out
}

// Changes counts what Apply wrote.
type Changes struct{ Put, Deleted int }

// Apply makes the maps hold want, given that they hold have (Read). It
// writes every new or changed entry before it deletes any, so a flow that
// both the old and the new policy allow is never dropped in between; an
// entry that is already right is not touched.
func (m *Maps) Apply(have, want State) (c Changes, err error) {
	defer func() {
		// The programs' cached verdicts were computed from the maps as
		// they were: whatever was written, even in part, retires them.
		if c.Put+c.Deleted > 0 {
			err = errors.Join(err, m.retireVerdicts())
		}
	}()
	for p, id := range want.IPCache {
		if cur, ok := have.IPCache[p]; ok && cur == id {
			continue
		}
		if err := m.objs.PlxIpcache.Put(ipcacheKey(p), policybpf.PolicyIpcacheValue{Identity: id}); err != nil {
			return c, fmt.Errorf("ipcache %s: %w", p, err)
		}
		c.Put++
	}
	for k, flags := range want.Policy {
		if cur, ok := have.Policy[k]; ok && cur == flags {
			continue
		}
		if err := m.objs.PlxPolicy.Put(policyKey(k), policybpf.PolicyPolicyValue{Flags: flags}); err != nil {
			return c, fmt.Errorf("policy %+v: %w", k, err)
		}
		c.Put++
	}
	for k, v := range want.Services {
		if cur, ok := have.Services[k]; ok && cur == v {
			continue
		}
		if err := m.objs.PlxServices.Put(serviceKey(k), serviceValue(v)); err != nil {
			return c, fmt.Errorf("service %s:%d/%d: %w", k.Addr, k.Port, k.Proto, err)
		}
		c.Put++
	}
	for ifindex, v := range want.Endpoints {
		if cur, ok := have.Endpoints[ifindex]; ok && cur == v {
			continue
		}
		if err := m.putEndpoint(ifindex, v); err != nil {
			return c, fmt.Errorf("endpoint %d: %w", ifindex, err)
		}
		c.Put++
	}
	for ifindex := range have.Endpoints {
		if _, ok := want.Endpoints[ifindex]; !ok {
			if err := m.deleteEndpoint(ifindex); err != nil {
				return c, fmt.Errorf("endpoint %d: %w", ifindex, err)
			}
			c.Deleted++
		}
	}
	for k := range have.Policy {
		if _, ok := want.Policy[k]; !ok {
			if err := deleteEntry(m.objs.PlxPolicy, policyKey(k)); err != nil {
				return c, fmt.Errorf("policy %+v: %w", k, err)
			}
			c.Deleted++
		}
	}
	for k := range have.Services {
		if _, ok := want.Services[k]; !ok {
			if err := deleteEntry(m.objs.PlxServices, serviceKey(k)); err != nil {
				return c, fmt.Errorf("service %s:%d/%d: %w", k.Addr, k.Port, k.Proto, err)
			}
			c.Deleted++
		}
	}
	for p := range have.IPCache {
		if _, ok := want.IPCache[p]; !ok {
			if err := deleteEntry(m.objs.PlxIpcache, ipcacheKey(p)); err != nil {
				return c, fmt.Errorf("ipcache %s: %w", p, err)
			}
			c.Deleted++
		}
	}
	return c, nil
}

// retireVerdicts moves the programs to a new generation, so that no
// verdict cached before counts any more, nor any connection judged before.
// Past 2^32-1 the generation goes round to 1, never 0.
func (m *Maps) retireVerdicts() error {
	var gen uint32
	if err := m.objs.PlxGeneration.Lookup(uint32(0), &gen); err != nil {
		return fmt.Errorf("reading the verdict generation: %w", err)
	}
	if gen++; gen == 0 {
		gen = 1
	}
	if err := m.objs.PlxGeneration.Put(uint32(0), gen); err != nil {
		return fmt.Errorf("retiring cached verdicts: %w", err)
	}
	return nil
}

func deleteEntry(mp *ebpf.Map, key any) error {
	if err := mp.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// bpffsMagic is the filesystem type of bpffs (statfs f_type).
const bpffsMagic = 0xcafe4a11

// EnsureBPFFS makes dir a bpffs mount unless it is one: pins only live
// on bpffs. A node plugin's DaemonSet mounts the host's /sys/fs/bpf; this
// covers hosts where nothing mounted it yet.
func EnsureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && uint32(st.Type) == bpffsMagic {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting bpffs at %s: %w", dir, err)
	}
	return nil
}

// TestRun runs the program of one direction of an endpoint (Ingress:
// to_pod, Egress: from_pod) on an Ethernet frame with BPF_PROG_TEST_RUN,
// as if it came on interface 1 (loopback), and returns the program's
// verdict (0: pass, 2: drop). It is how tests outside this package judge
// packets with the real programs and maps, without an interface per
// endpoint: point the endpoints map's entry 1 at the endpoint first.
func (m *Maps) TestRun(dir Direction, frame []byte) (uint32, error) {
	prog := m.objs.ToPod
	if dir == Egress {
		prog = m.objs.FromPod
	}
	ret, _, err := prog.Benchmark(frame, 1, nil)
	return ret, err
}
