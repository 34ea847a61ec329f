package agent

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	cniclient "github.com/plexus-net/plexus/nodeplugins/cni/client"
	"github.com/plexus-net/plexus/nodeplugins/cni/ipam"
)

// setListed plays the actor that manages a crd-mode node's addresses: it sets
// spec.ipam.pool (IPv4) and ipv6-pool (IPv6) to exactly ips.
func (h *harness) setListed(ips ...string) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var n ciliumv2.CiliumNode
		if err := h.c.Get(h.ctx, types.NamespacedName{Name: h.node}, &n); err != nil {
			return err
		}
		n.Spec.IPAM.Pool, n.Spec.IPAM.IPv6Pool = nil, nil
		for _, ip := range ips {
			m := &n.Spec.IPAM.Pool
			if strings.Contains(ip, ":") {
				m = &n.Spec.IPAM.IPv6Pool
			}
			if *m == nil {
				*m = ciliumv2.AllocationMap{}
			}
			(*m)[ip] = ciliumv2.AllocationIP{Resource: "eni-test"}
		}
		return h.c.Update(h.ctx, &n)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// waitServed waits until the agent serves n listed addresses.
func (h *harness) waitServed(n int) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("the agent serves %d listed addresses", n), func() error {
		for _, p := range h.agent.Allocator().Pools() {
			if p.Name == DefaultPool && len(p.CIDRs) == n {
				return nil
			}
		}
		return fmt.Errorf("pools %v", h.agent.Allocator().Pools())
	})
}

// used renders status.ipam.used and ipv6-used as sorted "ip=owner" pairs.
func (h *harness) used() string {
	n := h.ciliumNode()
	var out []string
	for _, m := range []ciliumv2.AllocationMap{n.Status.IPAM.Used, n.Status.IPAM.IPv6Used} {
		for _, ip := range slices.Sorted(maps.Keys(m)) {
			out = append(out, ip+"="+m[ip].Owner)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func addrOf(al *cniclient.Allocation) string {
	return netip.MustParsePrefix(al.IPs[0].Address).Addr().String()
}

// I24: pods get only the listed addresses, and each one in use shows in
// status.ipam.used with its pod as owner, in both families. I26: an address
// taken off the list stays with its pod and is not handed out again once
// released. A restart changes nothing.
func TestI24_I26_CRDModeHandsOutOnlyListedAddresses(t *testing.T) {
	h := newHarness(t, ModeCRD, nil, func(c *Config) { c.UsedUpdateInterval = 100 * time.Millisecond; c.CIDRWait = time.Second })
	h.setListed("10.40.0.7", "10.40.0.9", "10.40.1.3", "fd40::7", "fd40::9", "fd40::1:3")
	h.waitServed(6)
	listed4 := []string{"10.40.0.7", "10.40.0.9", "10.40.1.3"}

	owners := map[string]string{}
	pods := map[string]*corev1.Pod{}
	var want []string
	for i := range 3 {
		p := h.pod(h.ns, fmt.Sprintf("p%d", i), nil)
		pods[p.Name] = p
		al := h.mustAdd(p)
		if len(al.IPs) != 2 {
			t.Fatalf("pod %s: want one address per family, got %+v", p.Name, al.IPs)
		}
		for _, ip := range al.IPs {
			a := netip.MustParsePrefix(ip.Address)
			if a.Bits() != a.Addr().BitLen() || ip.Gateway != "" {
				t.Errorf("pod %s: a listed address is a host prefix without gateway, got %+v", p.Name, ip)
			}
			want = append(want, a.Addr().String()+"="+h.ns+"/"+p.Name)
		}
		if !slices.Contains(listed4, addrOf(al)) {
			t.Errorf("pod %s got %s, which is not listed", p.Name, addrOf(al))
		}
		owners[addrOf(al)] = p.Name
	}
	if len(owners) != 3 {
		t.Fatalf("two pods share an address: %v", owners)
	}
	slices.Sort(want)
	h.eventuallyEqual("status.ipam.used", strings.Join(want, " "), h.used)

	_, err := h.add(h.pod(h.ns, "p3", nil))
	var ce *cniclient.Error
	if !errors.As(err, &ce) || ce.Code != codeTryLater || !strings.Contains(ce.Message, "no free IPv4 address") {
		t.Fatalf("ADD beyond the list: %v, want a try-later error naming the pool", err)
	}

	// I26: take p0's addresses off the list.
	var gone4 string
	for ip, name := range owners {
		if name == "p0" {
			gone4 = ip
		}
	}
	var keep []string
	for _, ip := range append(slices.Clone(listed4), "fd40::7", "fd40::9", "fd40::1:3") {
		if ip != gone4 {
			keep = append(keep, ip)
		}
	}
	h.setListed(keep...)
	h.waitServed(len(keep))
	if al, ok := h.agent.Allocator().Get(ipam.Key{ContainerID: "ctr-" + string(pods["p0"].UID), IfName: "eth0"}); !ok || al.IPs[0].Address.String() != gone4 {
		t.Fatalf("p0 lost its address when it left the list: %+v %v", al, ok)
	}
	h.eventuallyEqual("status.ipam.used still lists p0", strings.Join(want, " "), h.used)

	h.restart()
	rv := h.ciliumNode().ResourceVersion
	h.eventually("ready after restart", func() error {
		st, err := h.cni.Status(h.ctx)
		if err == nil && !st.Ready {
			err = errors.New(st.Reason)
		}
		return err
	})
	time.Sleep(500 * time.Millisecond) // several update intervals
	if got := h.ciliumNode().ResourceVersion; got != rv {
		t.Errorf("a restart with nothing changed wrote the CiliumNode (resourceVersion %s → %s)", rv, got)
	}

	h.del(pods["p0"])
	if _, err := h.add(h.pod(h.ns, "p4", nil)); err == nil {
		t.Fatalf("the released address %s, no longer listed, was handed out again", gone4)
	}
	h.setListed(append(keep, "10.40.2.1", "fd40::2:1")...)
	h.waitServed(len(keep) + 2)
	if al := h.mustAdd(h.pod(h.ns, "p5", nil)); addrOf(al) != "10.40.2.1" {
		t.Errorf("p5 got %s, want the newly listed 10.40.2.1", addrOf(al))
	}
}

// I25: with no address listed the agent is not ready and says why in the
// seed system's words; an ADD waits, and listing an address ends the wait.
func TestI25_CRDModeWaitsForAnAddress(t *testing.T) {
	h := newHarness(t, ModeCRD, nil, func(c *Config) { c.CIDRWait = 15 * time.Second })
	want := fmt.Sprintf("Waiting for initial IP to become available in '%s' custom resource", h.node)
	h.eventually("not ready", func() error {
		st, err := h.cni.Status(h.ctx)
		if err == nil && (st.Ready || st.Reason != want) {
			err = fmt.Errorf("%+v, want not ready with %q", st, want)
		}
		return err
	})
	p := h.pod(h.ns, "early", nil)
	added := make(chan error, 1)
	go func() {
		al, err := h.add(p)
		if err == nil && addrOf(al) != "10.41.0.5" {
			err = fmt.Errorf("got %s, want 10.41.0.5", addrOf(al))
		}
		added <- err
	}()
	time.Sleep(300 * time.Millisecond) // the ADD is waiting
	h.setListed("10.41.0.5")
	select {
	case err := <-added:
		if err != nil {
			t.Fatalf("the waiting ADD: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting ADD did not end when an address was listed")
	}
	st, err := h.cni.Status(h.ctx)
	if err != nil || !st.Ready {
		t.Errorf("status with an address listed: %+v %v", st, err)
	}
}

// I27: status.ipam.used is written at most once per update interval, so a
// burst of pods costs one write after the first, which comes at once.
func TestI27_CRDUsedStatusIsWrittenAtMostOncePerInterval(t *testing.T) {
	const interval = 2 * time.Second
	h := newHarness(t, ModeCRD, nil, func(c *Config) { c.UsedUpdateInterval = interval })
	var ips []string
	for i := range 8 {
		ips = append(ips, fmt.Sprintf("10.42.0.%d", 10+i))
	}
	h.setListed(ips...)
	h.waitServed(len(ips))

	type seen struct {
		at   time.Time
		used string
	}
	var states []seen
	observe := func() {
		if u := h.used(); len(states) == 0 || states[len(states)-1].used != u {
			states = append(states, seen{time.Now(), u})
		}
	}
	observe()
	start := time.Now()
	for i := range 6 {
		h.mustAdd(h.pod(h.ns, fmt.Sprintf("burst-%d", i), nil))
	}
	burst := time.Since(start)
	for deadline := time.Now().Add(2*interval + 2*time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		observe()
	}
	final := states[len(states)-1].used
	if n := strings.Count(final, "="); n != 6 {
		t.Fatalf("status.ipam.used ended with %d entries, want 6: %q", n, final)
	}
	// states[0] is the empty status before the burst.
	writes := states[1:]
	if len(writes) > 2 {
		t.Errorf("a burst of 6 pods within %s gave %d writes of status.ipam.used, want at most 2: %+v", burst, len(writes), writes)
	}
	for i := 1; i < len(writes); i++ {
		// Polling every 50 ms blurs each time by that much.
		if gap := writes[i].at.Sub(writes[i-1].at); gap < interval-200*time.Millisecond {
			t.Errorf("writes %d and %d of status.ipam.used came %s apart, want at least %s", i-1, i, gap, interval)
		}
	}
}

// The listed addresses come in address order whatever the maps' order, so
// that an unchanged list never counts as changed pools; an address in both
// maps counts once, and keys that are no address are left out.
func TestListedAddressesInAddressOrder(t *testing.T) {
	node := &ciliumv2.CiliumNode{}
	node.Spec.IPAM.Pool = ciliumv2.AllocationMap{"10.0.0.9": {}, "10.0.0.10": {}, "10.0.0.2": {}, "not-an-ip": {}, "fd00::1": {}}
	node.Spec.IPAM.IPv6Pool = ciliumv2.AllocationMap{"fd00::1": {}, "10.0.0.2": {}}
	want := "[10.0.0.2/32 10.0.0.9/32 10.0.0.10/32 fd00::1/128]"
	for range 20 { // map order differs between iterations
		if got := fmt.Sprint(listedAddresses(node, logr.Discard())); got != want {
			t.Fatalf("listed %s, want %s", got, want)
		}
	}
}
