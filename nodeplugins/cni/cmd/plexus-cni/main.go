// Command plexus-cni is the Plexus CNI plugin (CNI spec 1.1: ADD, DEL,
// CHECK, STATUS, VERSION, GC). Addresses come from the node's
// plexus-cni-node over a unix socket.
//
// It works two ways, told apart by the network configuration:
//   - "type": "plexus-cni": the main plugin. It creates a veth pair, gives
//     the pod its addresses as /32 and /128 with a default route through a
//     link-local next hop answered by a permanent neighbour entry (no proxy
//     ARP), and routes each pod address to the host-side veth.
//   - another "type" (bridge, ptp) with "ipam": {"type": "plexus-cni"}: the
//     IPAM plugin. It only returns addresses (with the node CIDR's prefix and
//     gateway) and releases them on DEL.
//
// `plexus-cni install` (outside a runtime call) copies the binary and a
// configuration list into the node's CNI dirs; see install.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/plexus-net/plexus/nodeplugins/cni/client"
)

// pluginType is the plugin's name in network configurations.
const pluginType = "plexus-cni"

// callTimeout bounds one call to the agent; an ADD may wait for the node to
// receive a CIDR (the agent's --cidr-wait, 30 s by default).
const callTimeout = 60 * time.Second

// netConf is the network configuration the runtime passes on stdin.
type netConf struct {
	types.PluginConf
	// Socket is the agent's socket (main mode).
	Socket string `json:"socket,omitempty"`
	// MTU of both veth ends (main mode); 1500 when unset.
	MTU  int      `json:"mtu,omitempty"`
	IPAM ipamConf `json:"ipam,omitempty"`
}

type ipamConf struct {
	Type string `json:"type,omitempty"`
	// Socket is the agent's socket (IPAM mode).
	Socket string `json:"socket,omitempty"`
}

// ipamOnly reports whether the plugin runs as another plugin's IPAM.
func (c *netConf) ipamOnly() bool { return c.Type != pluginType }

func (c *netConf) socket() string {
	if c.ipamOnly() {
		return c.IPAM.Socket
	}
	return c.Socket
}

func parseConf(stdin []byte) (*netConf, error) {
	c := &netConf{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "network configuration is not valid JSON", err.Error())
	}
	if c.ipamOnly() && c.IPAM.Type != pluginType {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("plexus-cni called for plugin type %q without ipam type %q", c.Type, pluginType), "")
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.MTU < 68 || c.MTU > 65535 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("mtu %d is out of range (68–65535)", c.MTU), "")
	}
	return c, nil
}

// k8sArgs are the CNI_ARGS Kubernetes runtimes pass.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive // CNI_ARGS names
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive
	K8S_POD_UID       types.UnmarshallableString //nolint:revive
}

func key(args *skel.CmdArgs) client.Key {
	return client.Key{ContainerID: args.ContainerID, IfName: args.IfName}
}

// cniError passes the agent's CNI error code on; failures to reach the agent
// are transient.
func cniError(err error, what string) error {
	var ce *client.Error
	if errors.As(err, &ce) {
		return types.NewError(ce.Code, ce.Message, "")
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return types.NewError(types.ErrTryAgainLater, what+": "+err.Error(), "")
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	var ka k8sArgs
	if err := types.LoadArgs(args.Args, &ka); err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS do not parse", err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := client.New(conf.socket(), callTimeout)
	al, err := c.Allocate(ctx, client.AllocateRequest{
		Key:          key(args),
		PodNamespace: string(ka.K8S_POD_NAMESPACE),
		PodName:      string(ka.K8S_POD_NAME),
		PodUID:       string(ka.K8S_POD_UID),
	})
	if err != nil {
		return cniError(err, "allocating addresses")
	}
	ips, err := parseIPs(al)
	if err != nil {
		_ = c.Release(ctx, key(args))
		return types.NewError(types.ErrInternal, err.Error(), "")
	}

	var result *current.Result
	if conf.ipamOnly() {
		result = ipamResult(ips)
	} else if result, err = setupPod(args, conf.MTU, ips); err != nil {
		// Leave nothing behind: the runtime may never call DEL for a failed ADD.
		_ = teardownPod(args)
		if rerr := c.Release(ctx, key(args)); rerr != nil {
			err = fmt.Errorf("%w (and releasing the addresses failed: %w)", err, rerr)
		}
		return types.NewError(types.ErrInternal, "setting up the pod interface: "+err.Error(), "")
	}
	result.CNIVersion = current.ImplementedSpecVersion
	return types.PrintResult(result, conf.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if !conf.ipamOnly() {
		if err := teardownPod(args); err != nil {
			return types.NewError(types.ErrInternal, "removing the pod's veth: "+err.Error(), "")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := client.New(conf.socket(), callTimeout).Release(ctx, key(args)); err != nil {
		return cniError(err, "releasing addresses")
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	al, err := client.New(conf.socket(), callTimeout).Check(ctx, key(args))
	if err != nil {
		return cniError(err, "checking the allocation")
	}
	if conf.ipamOnly() {
		return nil
	}
	ips, err := parseIPs(al)
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	if err := checkPod(args, ips); err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	return nil
}

// cmdStatus is ready only when the agent is reachable and holds a CIDR.
func cmdStatus(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := client.New(conf.socket(), 5*time.Second).Status(ctx)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "plexus CNI agent is not reachable", err.Error())
	}
	if !st.Ready {
		return types.NewError(types.ErrPluginNotAvailable, "plexus CNI agent is not ready: "+st.Reason, "")
	}
	return nil
}

// cmdGC has nothing to do: the agent collects the addresses of pods that no
// longer exist on its own, from the API server's view of the node's pods.
func cmdGC(*skel.CmdArgs) error { return nil }

// podIP is one allocated address in parsed form.
type podIP struct {
	addr    net.IP
	network *net.IPNet // the node CIDR
	gateway net.IP     // nil when the CIDR has none
}

func (p podIP) is4() bool { return p.addr.To4() != nil }

func parseIPs(al *client.Allocation) ([]podIP, error) {
	if len(al.IPs) == 0 {
		return nil, errors.New("the agent returned no address")
	}
	var out []podIP
	for _, ip := range al.IPs {
		addr, network, err := net.ParseCIDR(ip.Address)
		if err != nil {
			return nil, fmt.Errorf("the agent returned a bad address %q", ip.Address)
		}
		p := podIP{addr: addr, network: network}
		if ip.Gateway != "" {
			if p.gateway = net.ParseIP(ip.Gateway); p.gateway == nil {
				return nil, fmt.Errorf("the agent returned a bad gateway %q", ip.Gateway)
			}
		}
		if p.is4() {
			p.addr = addr.To4()
		}
		out = append(out, p)
	}
	return out, nil
}

// ipamResult is the answer as an IPAM plugin: addresses with the node CIDR's
// prefix length and its gateway, no interfaces.
func ipamResult(ips []podIP) *current.Result {
	r := &current.Result{}
	for _, p := range ips {
		r.IPs = append(r.IPs, &current.IPConfig{
			Address: net.IPNet{IP: p.addr, Mask: p.network.Mask},
			Gateway: p.gateway,
		})
	}
	return r
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "install" && os.Getenv("CNI_COMMAND") == "" {
		if err := install(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "plexus-cni install:", err)
			os.Exit(1)
		}
		return
	}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus, GC: cmdGC},
		version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"),
		"plexus-cni: Plexus pod networking (main plugin, or IPAM for bridge/ptp)")
}
