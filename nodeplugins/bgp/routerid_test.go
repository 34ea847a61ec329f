package bgp

import (
	"net"
	"net/netip"
	"testing"
)

func TestB46_RouterIDFromMAC(t *testing.T) {
	for _, tc := range []struct {
		mac  string
		want string
	}{
		{"02:42:c0:a8:01:0b", "192.168.1.11"},
		{"aa:bb:00:00:00:01", "0.0.0.1"},
		{"aa:bb:00:00:00:00", ""}, // 0.0.0.0 is not an identifier
	} {
		mac, err := net.ParseMAC(tc.mac)
		if err != nil {
			t.Fatal(err)
		}
		got := RouterIDFromMAC(mac)
		if (tc.want == "" && got.IsValid()) || (tc.want != "" && got != netip.MustParseAddr(tc.want)) {
			t.Errorf("%s: router ID %v, want %q", tc.mac, got, tc.want)
		}
	}
	if got := RouterIDFromMAC(nil); got.IsValid() {
		t.Errorf("no MAC: %v", got)
	}
	if _, err := DeviceRouterID("lo"); err == nil {
		t.Error("lo has no MAC, yet a router ID was derived")
	}
}
