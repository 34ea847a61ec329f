package podrunner

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// loopbackConf brings up lo in every pod, as container runtimes do outside
// the configured network list.
const loopbackConf = `{"cniVersion":"1.0.0","name":"cni-loopback","type":"loopback"}`

// CNI runs the node's network configuration for pods through libcni, the
// library container runtimes use, so plugins see exactly what a kubelet's
// runtime would give them.
type CNI struct {
	ConfDir  string   // the first *.conflist in it, by name, is the pod network
	BinDirs  []string // where plugins are looked up
	CacheDir string   // libcni's result cache (kept in the runner's state dir)
	cni      *libcni.CNIConfig
}

// Attachment identifies one pod's network attachment; it is stored with the
// pod so DEL gets the same config and arguments as ADD even when the conf
// dir changed in between.
type Attachment struct {
	ContainerID string      `json:"containerID"`
	Netns       string      `json:"netns"` // path
	ConfList    []byte      `json:"confList"`
	Args        [][2]string `json:"args"`
}

func (c *CNI) init() {
	if c.cni == nil {
		c.cni = libcni.NewCNIConfigWithCacheDir(c.BinDirs, c.CacheDir, nil)
	}
}

// LoadConfList returns the bytes of the pod network's config list.
func (c *CNI) LoadConfList() ([]byte, error) {
	files, err := libcni.ConfFiles(c.ConfDir, []string{".conflist"})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.conflist in %s", c.ConfDir)
	}
	slices.Sort(files) // 10-x.conflist wins over 20-y.conflist, as in runtimes
	raw, err := os.ReadFile(files[0])
	if err != nil {
		return nil, err
	}
	if _, err := libcni.ConfListFromBytes(raw); err != nil {
		return nil, fmt.Errorf("%s: %w", files[0], err)
	}
	return raw, nil
}

// Add attaches the pod: loopback first, then the pod network on eth0. It
// returns the pod's IPs.
func (c *CNI) Add(ctx context.Context, a Attachment) ([]string, error) {
	c.init()
	list, err := libcni.ConfListFromBytes(a.ConfList)
	if err != nil {
		return nil, fmt.Errorf("CNI config: %w", err)
	}
	lo, err := libcni.NetworkPluginConfFromBytes([]byte(loopbackConf))
	if err != nil {
		return nil, err
	}
	if _, err := c.cni.AddNetwork(ctx, lo, c.runtimeConf(a, "lo")); err != nil {
		return nil, fmt.Errorf("CNI ADD loopback: %w", err)
	}
	res, err := c.cni.AddNetworkList(ctx, list, c.runtimeConf(a, "eth0"))
	if err != nil {
		return nil, fmt.Errorf("CNI ADD %s: %w", list.Name, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI result of %s: %w", list.Name, err)
	}
	var ips []string
	for _, ip := range r.IPs {
		ips = append(ips, ip.Address.IP.String())
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("CNI ADD %s returned no IP address", list.Name)
	}
	return ips, nil
}

// Del detaches the pod; plugins must treat a second DEL as success.
func (c *CNI) Del(ctx context.Context, a Attachment) error {
	c.init()
	list, err := libcni.ConfListFromBytes(a.ConfList)
	if err != nil {
		return fmt.Errorf("CNI config: %w", err)
	}
	if err := c.cni.DelNetworkList(ctx, list, c.runtimeConf(a, "eth0")); err != nil {
		return fmt.Errorf("CNI DEL %s: %w", list.Name, err)
	}
	lo, _ := libcni.NetworkPluginConfFromBytes([]byte(loopbackConf))
	_ = c.cni.DelNetwork(ctx, lo, c.runtimeConf(a, "lo"))
	return nil
}

func (c *CNI) runtimeConf(a Attachment, ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: a.Netns, IfName: ifName, Args: a.Args}
}
