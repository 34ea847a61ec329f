package ipam

import (
	"fmt"
	"net/netip"
	"testing"
)

// FuzzAllocatorInvariant drives the allocator with a byte-coded sequence of
// allocations, releases, pool changes and restarts, and checks after every
// step that no two keys share an address, that every new address lies in a
// node CIDR of its pool and is neither reserved nor a gateway, and that the
// store agrees with memory.
func FuzzAllocatorInvariant(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0x00, 0x40, 0x01, 0x80, 0xc0, 0x02, 0x42, 0x03})
	f.Add([]byte{0x10, 0x11, 0x12, 0xd0, 0x13, 0x50, 0x14, 0x90, 0xd1, 0x15})
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\xc3\xff"))
	cidrSets := [][]Pool{
		{pool("default", "10.0.0.0/29", "fd00::/126"), pool("mars", "10.1.0.0/31", "10.1.0.4/32")},
		{pool("default", "10.0.0.0/29", "10.0.0.8/30"), pool("mars", "10.1.0.0/30")},
		{pool("default", "fd00::/125"), {Name: "mars", CIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/32"), netip.MustParsePrefix("10.1.0.1/32")}, Layout: Layout{Reserved: []netip.Addr{netip.MustParseAddr("10.1.0.0")}}}},
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		store := &MemoryStore{}
		pools := cidrSets[0]
		a, err := New(store, Options{Node: "n"})
		if err != nil {
			t.Fatal(err)
		}
		a.SetPools(pools)
		for step, op := range ops {
			key := Key{ContainerID: fmt.Sprint(op & 0x0f), IfName: "eth0"}
			switch op >> 6 {
			case 0, 1: // allocate in default (0) or mars (1)
				name := "default"
				if op>>6 == 1 {
					name = "mars"
				}
				_, existed := a.Get(key)
				al, err := a.Allocate(Request{Key: key, Pool: name})
				if err == nil && !existed { // a retried ADD keeps what it had
					checkInPool(t, al, pools)
				}
			case 2:
				if _, _, err := a.Release(key); err != nil {
					t.Fatal(err)
				}
			case 3: // pool change (op&3) then restart
				pools = cidrSets[int(op&3)%len(cidrSets)]
				if a, err = New(store, Options{Node: "n"}); err != nil {
					t.Fatalf("step %d: restore: %v", step, err)
				}
				a.SetPools(pools)
			}
			checkUnique(t, a.List())
			if len(store.State.Allocations) != len(a.List()) {
				t.Fatalf("step %d: store has %d allocations, memory %d", step, len(store.State.Allocations), len(a.List()))
			}
		}
	})
}

func checkUnique(t *testing.T, all []Allocation) {
	t.Helper()
	seen := map[netip.Addr]Key{}
	for _, al := range all {
		for _, ip := range al.IPs {
			if other, dup := seen[ip.Address]; dup {
				t.Fatalf("%s held by %s and %s", ip.Address, other, al.Key)
			}
			seen[ip.Address] = al.Key
		}
	}
}

func checkInPool(t *testing.T, al Allocation, pools []Pool) {
	t.Helper()
	for _, p := range pools {
		if p.Name != al.Pool {
			continue
		}
		for _, ip := range al.IPs {
			in := false
			for _, c := range p.CIDRs {
				in = in || c.Contains(ip.Address)
			}
			gw, hasGW := Gateway(ip.CIDR)
			if !in || hasGW && gw == ip.Address || ip.Address == ip.CIDR.Masked().Addr() && ip.CIDR.Bits() < ip.Address.BitLen()-1 {
				t.Fatalf("%s of %s is outside its pool or reserved", ip.Address, al.Key)
			}
			for _, r := range p.Reserved {
				if r == ip.Address {
					t.Fatalf("%s is reserved", ip.Address)
				}
			}
		}
		return
	}
	t.Fatalf("allocation in unknown pool %s", al.Pool)
}
