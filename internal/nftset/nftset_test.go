package nftset

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestIPv4Ranges(t *testing.T) {
	got := IPv4Ranges(prefixes(
		"10.2.0.0/16", "10.0.0.0/8", // inside another
		"192.168.1.0/24", "192.168.0.0/24", // adjacent: one range
		"172.16.5.7/12", // host bits set
		"fd00::/8",      // IPv6: skipped
		"::ffff:198.18.0.0/112",
		"255.255.255.255/32",
	))
	var s []string
	for _, r := range got {
		s = append(s, r.First.String()+"-"+r.Last.String())
	}
	want := []string{
		"10.0.0.0-10.255.255.255", "172.16.0.0-172.31.255.255", "192.168.0.0-192.168.1.255",
		"198.18.0.0-198.18.255.255", "255.255.255.255-255.255.255.255",
	}
	if !slices.Equal(s, want) {
		t.Errorf("got %q\nwant %q", s, want)
	}
}

// The encodings nft 1.0.6 sends for the same sets (nft --debug=netlink).
func TestIntervalElements(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"10.0.0.0/8", "192.168.0.0/16"}, "[0.0.0.0 end 10.0.0.0 11.0.0.0 end 192.168.0.0 192.169.0.0 end]"},
		{[]string{"0.0.0.0/0"}, "[0.0.0.0]"},
		{[]string{"0.0.0.0/8", "240.0.0.0/4"}, "[0.0.0.0 1.0.0.0 end 240.0.0.0]"},
		{nil, "[]"},
	} {
		var got []string
		for _, e := range IntervalElements(IPv4Ranges(prefixes(tc.in...))) {
			a, _ := netip.AddrFromSlice(e.Key)
			got = append(got, a.String())
			if e.IntervalEnd {
				got = append(got, "end")
			}
		}
		if s := fmt.Sprint(got); s != tc.want {
			t.Errorf("%v: got %s, want %s", tc.in, s, tc.want)
		}
	}
}

func TestIPv4Addrs(t *testing.T) {
	in := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::1"), netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	if got := fmt.Sprint(IPv4Addrs(in)); got != "[10.0.0.1 10.0.0.2]" {
		t.Errorf("got %s", got)
	}
}
