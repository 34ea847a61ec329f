package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/plexus-net/plexus/internal/atomicfile"
	"github.com/plexus-net/plexus/test/lab/proc"
)

// State is everything one lab made, written after every change so that
// `lab down` (or a later `lab up`) can undo it even after a crash.
type State struct {
	Name        string `json:"name"`
	Segment     int    `json:"segment"`
	Nodes       []Node `json:"nodes"`
	RoutingMode string `json:"routingMode"`
	IPAMMode    string `json:"ipamMode"`
	IPFamily    string `json:"ipFamily,omitempty"`
	CNI         string `json:"cni"`      // plexus | standin
	Datapath    string `json:"datapath"` // plexus | standin
	// L2Announcer: the plexus-l2announcer node plugin runs on every node
	// (when its binary and RBAC exist).
	L2Announcer bool `json:"l2Announcer,omitempty"`
	// EgressGateway: the plexus-egressgateway node plugin runs on every
	// node (its binary and RBAC were there at `lab up`).
	EgressGateway bool `json:"egressGateway,omitempty"`
	// BGP: the plexus-bgp-node plugin runs on every node (its binary and
	// RBAC were there at `lab up`).
	BGP bool `json:"bgp,omitempty"`
	// Policy: the identity and policy controllers and the plexus-policy-node
	// plugin run (Options.Policy).
	Policy bool `json:"policy,omitempty"`
	// Gateway: the gateway controller, the plexus-l7proxy-node plugin and
	// the stand-in proxy run (Options.Gateway).
	Gateway bool `json:"gateway,omitempty"`
	// GatewayHostNetwork and GatewayHostNodes: Options'.
	GatewayHostNetwork bool   `json:"gatewayHostNetwork,omitempty"`
	GatewayHostNodes   string `json:"gatewayHostNodes,omitempty"`
	// Client is the external client's namespace on the segment.
	Client string `json:"client,omitempty"`
	// Router is the BGP router's namespace (FRR, see router.go), empty
	// when FRR is not installed; its processes are those of node Router.
	Router string `json:"router,omitempty"`
	// Bird is the second router's namespace (BIRD, see bird.go), empty when
	// BIRD is not installed.
	Bird string `json:"bird,omitempty"`
	// PodCIDRs are the nodes' pod CIDRs the stand-in parts use: from the
	// nodes' CiliumNodes when the IPAM controller runs, else static.
	PodCIDRs  map[string]string `json:"podCIDRs,omitempty"`
	Processes []Process         `json:"processes"`
	Netns     []string          `json:"netns"`
	Links     []string          `json:"links"` // in the host namespace
	// Paths the lab needs again after up (node-delete, restart, down).
	BinDir          string `json:"binDir"`
	ControlPlaneBin string `json:"controlPlaneBin"`
	CNIBin          string `json:"cniBin"`

	path string
}

// Node is one simulated node.
type Node struct {
	Index int    `json:"index"`
	Name  string `json:"name"` // Node object and network namespace
	IP    string `json:"ip"`
	IPv6  string `json:"ipv6,omitempty"` // with --ip-family dual or ipv6 (then IP is empty)
}

// IPv4 and IPv6 report whether the lab runs each family (--ip-family ipv4,
// dual or ipv6).
func (s *State) IPv4() bool { return s.IPFamily != "ipv6" }

// IPv6 reports whether the lab runs IPv6.
func (s *State) IPv6() bool { return s.IPFamily == "dual" || s.IPFamily == "ipv6" }

// IPs are the node's addresses, IPv4 first.
func (n Node) IPs() []string {
	var out []string
	for _, a := range []string{n.IP, n.IPv6} {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Addr is the node's first address: IPv4, or IPv6 on an IPv6-only lab.
func (n Node) Addr() string { return n.IPs()[0] }

// Process is one long-running process the lab started.
type Process struct {
	Name   string      `json:"name"`           // component: etcd, kube-apiserver, podrunner, ...
	Node   string      `json:"node,omitempty"` // empty for control-plane processes
	Spec   proc.Spec   `json:"spec"`
	Handle proc.Handle `json:"handle"`
}

// ID is how `lab restart` and the status table name a process.
func (p Process) ID() string {
	if p.Node == "" {
		return p.Name
	}
	return p.Node + "/" + p.Name
}

func loadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &State{path: path}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func (s *State) save() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(s.path, 0o644, b)
}

func (s *State) addNetns(name string) error {
	if !slices.Contains(s.Netns, name) {
		s.Netns = append(s.Netns, name)
	}
	return s.save()
}

func (s *State) addLink(name string) error {
	if !slices.Contains(s.Links, name) {
		s.Links = append(s.Links, name)
	}
	return s.save()
}

func (s *State) node(name string) (Node, error) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	names := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		names[i] = n.Name
	}
	return Node{}, fmt.Errorf("no node %q in lab %s (nodes: %v)", name, s.Name, names)
}

// findProcess returns the index of the process with node and name.
func (s *State) findProcess(node, name string) int {
	return slices.IndexFunc(s.Processes, func(p Process) bool { return p.Node == node && p.Name == name })
}

var errNoLab = errors.New("no lab state")
