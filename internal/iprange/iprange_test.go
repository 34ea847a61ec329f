package iprange

import (
	"net/netip"
	"testing"
)

func TestFromPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix      string
		reserve     bool
		first, last string
		size        string
	}{
		{"10.0.10.0/24", false, "10.0.10.0", "10.0.10.255", "256"},
		{"10.0.10.0/24", true, "10.0.10.1", "10.0.10.254", "254"},
		{"10.0.10.7/24", true, "10.0.10.1", "10.0.10.254", "254"}, // host bits are masked
		{"10.0.0.0/30", true, "10.0.0.1", "10.0.0.2", "2"},
		{"10.0.0.0/31", true, "10.0.0.0", "10.0.0.1", "2"},
		{"10.0.0.9/32", true, "10.0.0.9", "10.0.0.9", "1"},
		{"2004::/64", false, "2004::", "2004::ffff:ffff:ffff:ffff", "18446744073709551616"},
		{"2004::/64", true, "2004::1", "2004::ffff:ffff:ffff:fffe", "18446744073709551614"},
		{"2004::/127", true, "2004::", "2004::1", "2"},
		{"2004::5/128", true, "2004::5", "2004::5", "1"},
		{"0.0.0.0/0", false, "0.0.0.0", "255.255.255.255", "4294967296"},
	} {
		r, ok := FromPrefix(netip.MustParsePrefix(tc.prefix), tc.reserve)
		if !ok || r.First.String() != tc.first || r.Last.String() != tc.last || r.Size().String() != tc.size {
			t.Errorf("FromPrefix(%s, %v) = %v (size %s, ok %v), want %s-%s size %s", tc.prefix, tc.reserve, r, r.Size(), ok, tc.first, tc.last, tc.size)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		start, stop string
		want        string
		wantErr     bool
	}{
		{"20.0.20.100", "20.0.20.200", "20.0.20.100-20.0.20.200", false},
		{"1.2.3.4", "", "1.2.3.4", false},
		{"2004::10", "2004::1f", "2004::10-2004::1f", false},
		{"20.0.20.200", "20.0.20.100", "", true},
		{"2004::20", "2004::1", "", true},
		{"1.2.3.4", "2004::1", "", true},
		{"1.2.3", "", "", true},
		{"1.2.3.4", "x", "", true},
	} {
		r, err := Parse(tc.start, tc.stop)
		if (err != nil) != tc.wantErr || (err == nil && r.String() != tc.want) {
			t.Errorf("Parse(%q, %q) = %v, %v; want %q (error %v)", tc.start, tc.stop, r, err, tc.want, tc.wantErr)
		}
	}
}

func TestOverlapsAndContains(t *testing.T) {
	a, _ := Parse("10.0.0.10", "10.0.0.20")
	b, _ := Parse("10.0.0.20", "10.0.0.30")
	c, _ := Parse("10.0.0.21", "10.0.0.30")
	v6, _ := Parse("::a", "::1e")
	if !a.Overlaps(b) || !b.Overlaps(a) {
		t.Error("ranges sharing an end must overlap")
	}
	if a.Overlaps(c) || c.Overlaps(a) {
		t.Error("adjacent ranges must not overlap")
	}
	if a.Overlaps(v6) {
		t.Error("ranges of different families never overlap")
	}
	if !a.Contains(netip.MustParseAddr("10.0.0.20")) || a.Contains(netip.MustParseAddr("10.0.0.21")) || a.Contains(netip.MustParseAddr("::10")) {
		t.Error("Contains is wrong at the edges or across families")
	}
}

func TestMerge(t *testing.T) {
	r := func(s, e string) Range { x, _ := Parse(s, e); return x }
	got := Merge([]Range{r("10.0.0.21", "10.0.0.30"), r("::1", "::5"), r("10.0.0.1", "10.0.0.20"), r("10.0.0.25", "10.0.0.26"), r("10.0.1.0", "10.0.1.0")})
	want := []string{"10.0.0.1-10.0.0.30", "10.0.1.0", "::1-::5"}
	if len(got) != len(want) {
		t.Fatalf("Merge = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("Merge = %v, want %v", got, want)
		}
	}
	if TotalSize(got).String() != "36" {
		t.Errorf("TotalSize = %s, want 36", TotalSize(got))
	}
}
