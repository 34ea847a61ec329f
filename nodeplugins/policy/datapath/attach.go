package datapath

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

const linksDir = "links"

type hook struct {
	suffix string
	attach ebpf.AttachType
	prog   func(*Maps) *ebpf.Program
}

// podHooks are the two attachments per pod veth: the host side's TCX
// ingress sees what the pod sends (the pod's egress), its egress what the
// pod receives (the pod's ingress).
var podHooks = []hook{
	{"from", ebpf.AttachTCXIngress, func(m *Maps) *ebpf.Program { return m.objs.FromPod }},
	{"to", ebpf.AttachTCXEgress, func(m *Maps) *ebpf.Program { return m.objs.ToPod }},
}

// hostHooks are those of a node device, the other way round: its ingress
// is what reaches the node (the host's ingress), its egress what the
// node sends (the host's egress).
var hostHooks = []hook{
	{"hin", ebpf.AttachTCXIngress, func(m *Maps) *ebpf.Program { return m.objs.ToPod }},
	{"hout", ebpf.AttachTCXEgress, func(m *Maps) *ebpf.Program { return m.objs.FromPod }},
}

// Attach puts the programs on the host side of a pod's veth (ifname with
// index ifindex, in the calling thread's network namespace), or with
// host on a device of the node, and pins the links. A link already pinned
// for this interface is adopted: its program is replaced in place (an
// upgrade) without a moment unattached. A pin left by an earlier
// interface of the same name is replaced.
func (m *Maps) Attach(ifname string, ifindex int, host bool) error {
	dir := filepath.Join(m.pinDir, linksDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	hooks := podHooks
	if host {
		hooks = hostHooks
	}
	for _, h := range hooks {
		pin := filepath.Join(dir, pinName(ifname, h.suffix))
		if l, err := link.LoadPinnedLink(pin, nil); err == nil {
			info, ierr := l.Info()
			if ierr == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
				err := l.Update(h.prog(m))
				l.Close()
				if err != nil {
					return fmt.Errorf("updating the %s program on %s: %w", h.suffix, ifname, err)
				}
				continue
			}
			// The interface was replaced: the old link went with it.
			_ = l.Unpin()
			l.Close()
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: h.prog(m), Attach: h.attach})
		if err != nil {
			return fmt.Errorf("attaching the %s program to %s: %w", h.suffix, ifname, err)
		}
		err = l.Pin(pin)
		l.Close()
		if err != nil {
			return fmt.Errorf("pinning the %s link of %s: %w", h.suffix, ifname, err)
		}
	}
	return nil
}

// Detach removes the programs from ifname (a pod that left while its veth
// lingers, a device no longer under a host policy) and their pins; an
// interface already gone leaves only pins.
func (m *Maps) Detach(ifname string) error {
	var errs []error
	for _, h := range append(slices.Clone(podHooks), hostHooks...) {
		pin := filepath.Join(m.pinDir, linksDir, pinName(ifname, h.suffix))
		l, err := link.LoadPinnedLink(pin, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, os.Remove(pin))
			continue
		}
		errs = append(errs, l.Unpin())
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// pinName is the pin of a hook's link on ifname: bpffs refuses names
// with a dot, which interface names may have, so the name is hex.
func pinName(ifname, suffix string) string {
	return hex.EncodeToString([]byte(ifname)) + "-" + suffix
}

// Attached are the interface names with pinned links.
func (m *Maps) Attached() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(m.pinDir, linksDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		enc, _, ok := strings.Cut(e.Name(), "-")
		name, err := hex.DecodeString(enc)
		if !ok || err != nil || seen[string(name)] {
			continue
		}
		seen[string(name)] = true
		out = append(out, string(name))
	}
	return out, nil
}
