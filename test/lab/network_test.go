package lab

import "testing"

// The leftover sweep deletes host links by name: exactly the lab's own.
func TestIsLabLink(t *testing.T) {
	for link, want := range map[string]bool{
		"plxlabbr0": true, "plxlabn1": true, "plxlabn12": true, "plxlabcl": true, "plxlabrt": true, "plxlabbd": true,
		"plxlabn": false, "plxlabnx": false, "plxlabcl0": false, "plxlab2br0": false, "eth0": false, "plxlabc": false, "plxlabrt0": false,
	} {
		if got := isLabLink("plxlab", link); got != want {
			t.Errorf("isLabLink(plxlab, %s) = %v, want %v", link, got, want)
		}
	}
}
