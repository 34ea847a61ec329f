// Package egressgateway is the egress gateway node plugin. It reads its
// node's Egress object and:
//   - steers the local pods' traffic to their gateway: to the floating
//     egress IP, to the gateway node's address, or, with no gateway, into a
//     drop (package kernel does the packet work);
//   - for every floating egress IP it is a candidate for, takes part in the
//     candidates' election (heartbeats) and, while it is the first live
//     candidate, answers ARP for the address, announces it with gratuitous
//     ARP and translates the gateway's traffic to it. The election and ARP
//     are the L2 announcer's Announcer, reused as is;
//   - reports its role in each gateway in the Egress status.
//
// The Agent is the core and needs no API server: it takes its spec from
// SetDesired. The API wiring (plugin.go) feeds it and writes its Report.
package egressgateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/equality"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/l2announce"
	"github.com/plexus-net/plexus/internal/latest"
	"github.com/plexus-net/plexus/internal/nldump"
	"github.com/plexus-net/plexus/nodeplugins/egressgateway/kernel"
)

// Gateway states in status.
const (
	StateActive  = "Active"
	StateStandby = "Standby"
)

// DefaultRescan is how often the node's addresses are read again.
const DefaultRescan = 2 * time.Second

// Datapath is what the agent needs of package kernel.
type Datapath interface {
	Apply(kernel.State) error
	Clear() error
}

// Config configures an Agent.
type Config struct {
	// Announcer settings (node name, heartbeat port and timings, GARP).
	Announcer l2announce.Config
	Datapath  Datapath
	// Rescan is how often addresses are read again; zero takes DefaultRescan.
	Rescan time.Duration
	// ClearOnStop removes the datapath state when Run ends. A plugin being
	// upgraded keeps it, so traffic flows while it restarts.
	ClearOnStop bool
	Log         logr.Logger
}

// Desired is the spec to carry out and its generation.
type Desired struct {
	Generation int64
	Spec       nodesv1alpha1.EgressSpec
}

// Report is what the node does now.
type Report struct {
	Generation     int64
	SteeredSources int
	Gateways       []nodesv1alpha1.EgressGatewayState
	LivePeers      []string
	Joining        bool
	Problems       []string
}

// Agent runs one node's egress gateway datapath.
type Agent struct {
	cfg       Config
	announcer *l2announce.Announcer

	desired *latest.Value[Desired]
	report  *latest.Value[Report]
	since   map[string]time.Time // gateway key → when its state began
	// lastScan is the last complete reading of the node's addresses; a
	// reading that fails (an interrupted dump while pods come and go)
	// leaves it as it is, so a pass never plans from a partial list.
	lastScan *nodeReading
}

// nodeReading is what the agent reads of the node's network: its IPv4
// addresses and the interface of its default route.
type nodeReading struct {
	addrs       []address
	defaultLink string
}

// New returns an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Datapath == nil {
		return nil, errors.New("a datapath is required")
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.Announcer.InNamespace == nil {
		cfg.Announcer.InNamespace = func(f func() error) error { return f() }
	}
	cfg.Announcer.Log = cfg.Log.WithName("announcer")
	ann, err := l2announce.New(cfg.Announcer)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, announcer: ann, since: map[string]time.Time{},
		desired: latest.New(Desired{}, func(x, y Desired) bool {
			return x.Generation == y.Generation && equality.Semantic.DeepEqual(x.Spec, y.Spec)
		}),
		report: latest.New(Report{Joining: true}, func(x, y Report) bool { return reflect.DeepEqual(x, y) }),
	}, nil
}

// SetDesired hands the agent a new spec; it never blocks, the latest wins.
func (a *Agent) SetDesired(d Desired) { a.desired.Set(d) }

// Report returns what the node does now.
func (a *Agent) Report() Report {
	r, _ := a.report.Get()
	return r
}

// Reports receives a value (coalesced) whenever Report changes.
func (a *Agent) Reports() <-chan struct{} { return a.report.Changes() }

// Run carries out the spec until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	annCtx, stopAnn := context.WithCancelCause(ctx)
	annDone := make(chan struct{})
	go func() {
		defer close(annDone)
		_ = a.announcer.Run(annCtx)
	}()
	defer func() {
		stopAnn(context.Cause(ctx))
		<-annDone
		if a.cfg.ClearOnStop {
			if err := a.cfg.Datapath.Clear(); err != nil {
				a.cfg.Log.Error(err, "clearing the datapath")
			}
		}
	}()
	rescan := time.NewTicker(a.cfg.Rescan)
	defer rescan.Stop()
	for {
		a.pass()
		select {
		case <-ctx.Done():
			return nil
		case <-a.desired.Changes():
		case <-a.announcer.Reports():
		case <-rescan.C:
		}
	}
}

// pass brings the announcer, the datapath and the report in line with the
// spec, the node's addresses and who holds which egress IP.
func (a *Agent) pass() {
	d, seen := a.desired.Get()
	self := a.cfg.Announcer.NodeName

	var problems []string
	if scan, err := a.scan(); err != nil {
		problems = append(problems, fmt.Sprintf("reading the node's addresses: %v; acting on the last complete reading", err))
	} else {
		a.lastScan = &scan
	}
	if !seen {
		// A restarted plugin leaves the kernel as it was until it knows
		// the spec: applying an empty state first would drop the steering
		// and translation for a moment, and new connections would leave
		// with other source addresses.
		return
	}
	if a.lastScan == nil {
		// Nothing complete to plan from yet: the kernel stays as it is
		// until a reading succeeds (the next rescan).
		rep := a.Report()
		rep.Problems = problems
		a.report.Set(rep)
		return
	}
	addrs, defaultLink := a.lastScan.addrs, a.lastScan.defaultLink
	// The announcer starts its heartbeats with its first spec (see
	// l2announce.Announcer).
	a.announcer.SetDesired(l2announce.Desired{Generation: d.Generation, Spec: announcements(d.Spec, addrs)})
	ann := a.announcer.Report()
	problems = append(problems, ann.Problems...)
	held := map[string]string{}
	for _, an := range ann.Announcing {
		held[an.IP] = strings.Join(an.Interfaces, ",")
	}

	state, gateways, steered, probs := plan(d.Spec, self, held, addrs, defaultLink)
	problems = append(problems, probs...)
	if err := a.cfg.Datapath.Apply(state); err != nil {
		problems = append(problems, fmt.Sprintf("datapath: %v", err))
	}

	now := time.Now()
	current := map[string]bool{}
	for i := range gateways {
		g := &gateways[i]
		key := fmt.Sprintf("%s/%d/%s", g.Policy, g.Gateway, g.State)
		current[key] = true
		if _, ok := a.since[key]; !ok {
			a.since[key] = now
			if g.State == StateActive {
				a.cfg.Log.Info("active gateway", "policy", g.Policy, "gateway", g.Gateway, "egressIP", g.EgressIP, "interface", g.Interface)
			}
		}
		g.Since.Time = a.since[key].Truncate(time.Second)
	}
	for k := range a.since {
		if !current[k] {
			delete(a.since, k)
		}
	}
	slices.Sort(problems)
	rep := Report{Generation: d.Generation, SteeredSources: steered, Gateways: gateways,
		LivePeers: ann.LivePeers, Joining: ann.Joining && len(d.Spec.Peers) > 0, Problems: slices.Compact(problems)}
	a.report.Set(rep)
}

// address is an IPv4 address of an interface.
type address struct {
	link   string
	prefix netip.Prefix
}

// scan reads the node's IPv4 addresses (up, non-loopback interfaces, in
// the kernel's order, so "first address" means what `ip addr` shows first)
// and the interface of the default route. A dump that keeps being
// interrupted is an error, never a partial list.
func (a *Agent) scan() (nodeReading, error) {
	var out nodeReading
	err := a.cfg.Announcer.InNamespace(func() error {
		las, err := nldump.UpAddrs(nil, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("listing addresses: %w", err)
		}
		for _, la := range las {
			out.addrs = append(out.addrs, address{link: la.Link, prefix: la.Prefix})
		}
		links, err := nldump.Links(nil)
		if err != nil {
			return fmt.Errorf("listing interfaces: %w", err)
		}
		up := map[int]string{} // index → name of the up, non-loopback links
		for _, l := range links {
			if at := l.Attrs(); at.Flags&net.FlagUp != 0 && at.Flags&net.FlagLoopback == 0 {
				up[at.Index] = at.Name
			}
		}
		routes, err := nldump.Routes(nil, netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("listing routes: %w", err)
		}
		for _, r := range routes {
			if name := up[r.LinkIndex]; name != "" && (r.Dst == nil || r.Dst.IP.IsUnspecified() && maskBits(r.Dst) == 0) {
				out.defaultLink = name
				break
			}
		}
		return nil
	})
	return out, err
}

func maskBits(n *net.IPNet) int {
	ones, _ := n.Mask.Size()
	return ones
}

// announcements is the announcer's spec: every floating egress IP this node
// is a candidate for, answered on the interface whose subnet holds it. An
// egress IP in no subnet of the node keeps no interface: the announcer then
// reports it and never holds it.
func announcements(spec nodesv1alpha1.EgressSpec, addrs []address) nodesv1alpha1.L2AnnouncementSpec {
	out := nodesv1alpha1.L2AnnouncementSpec{Peers: spec.Peers}
	seen := map[string]bool{}
	for _, g := range spec.Gateways {
		if g.EgressIP == "" || seen[g.EgressIP] {
			continue
		}
		seen[g.EgressIP] = true
		ip, err := netip.ParseAddr(g.EgressIP)
		if err != nil {
			continue
		}
		link := linkFor(ip, addrs)
		if link == "" {
			link = "(no interface has a subnet with " + g.EgressIP + ")"
		}
		out.Addresses = append(out.Addresses, nodesv1alpha1.L2Address{
			IP: g.EgressIP, Services: []string{fmt.Sprintf("egress:%s/%d", g.Policy, g.Gateway)},
			Interfaces: []string{"^" + regexp.QuoteMeta(link) + "$"}, Candidates: g.Candidates,
		})
	}
	slices.SortFunc(out.Addresses, func(x, y nodesv1alpha1.L2Address) int { return strings.Compare(x.IP, y.IP) })
	return out
}

// linkFor is the interface with a subnet that holds ip (the most specific).
func linkFor(ip netip.Addr, addrs []address) string {
	best, bits := "", -1
	for _, a := range addrs {
		if a.prefix.Masked().Contains(ip) && a.prefix.Bits() > bits {
			best, bits = a.link, a.prefix.Bits()
		}
	}
	return best
}
