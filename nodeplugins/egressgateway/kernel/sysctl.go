package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netns"
)

// sysctls are what a node that steers or translates needs: forwarding, and
// no ICMP redirects (a gateway forwards out of the link it received on, and a
// redirect would teach the sender to bypass it). conf/all and conf/default do
// not override an existing interface's own send_redirects (the kernel ORs
// them): the table's output chain drops the redirects those would send.
var sysctls = []struct{ key, value string }{
	{"net/ipv4/ip_forward", "1"},
	{"net/ipv4/conf/all/send_redirects", "0"},
	{"net/ipv4/conf/default/send_redirects", "0"},
}

// setSysctls writes the sysctls that differ, through /proc/sys of the
// calling thread (its network namespace).
func (k *Kernel) setSysctls() error {
	cur, err := netns.Get()
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer cur.Close()
	if !cur.Equal(k.ns) {
		return errors.New("sysctls: Apply runs in another network namespace than New did")
	}
	for _, s := range sysctls {
		path := k.procSys + "/" + s.key
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", s.key, err)
		}
		if strings.TrimSpace(string(b)) == s.value {
			continue
		}
		if err := os.WriteFile(path, []byte(s.value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", s.key, s.value, err)
		}
		k.writes++
	}
	return nil
}
