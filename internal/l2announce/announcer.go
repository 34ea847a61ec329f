// Package l2announce moves addresses between nodes on one L2 segment: an
// Announcer learns which candidate nodes are alive from heartbeats they
// exchange directly (internal/heartbeat), answers ARP for the addresses whose
// first live candidate is its node (internal/arpresponder), and reports what
// it announces.
//
// It needs no API server: it takes its spec from SetDesired. Two node
// plugins use it: the L2 announcer (LoadBalancer addresses) and the egress
// gateway (floating egress IPs); each feeds it from its own per-node object
// and writes its Report to status asynchronously, so a failover never waits
// for the API server.
package l2announce

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"k8s.io/apimachinery/pkg/api/equality"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/arpresponder"
	"github.com/plexus-net/plexus/internal/heartbeat"
	"github.com/plexus-net/plexus/internal/latest"
	"github.com/plexus-net/plexus/internal/nldump"
)

// DefaultInterfaceRescan is how often the node's interfaces are listed again.
const DefaultInterfaceRescan = 2 * time.Second

// Config configures an Announcer.
type Config struct {
	// NodeName is this node's name (required).
	NodeName string
	// Address is this node's heartbeat address; invalid (zero) means its
	// own entry in spec.peers.
	Address netip.Addr
	// Heartbeat timings and port; zero values take heartbeat's defaults.
	HeartbeatPort     int
	HeartbeatInterval time.Duration
	DeadAfter         time.Duration
	RejoinAfter       time.Duration
	// GARPInterval between gratuitous ARPs while an address is held; zero
	// takes arpresponder's default.
	GARPInterval time.Duration
	// InterfaceRescan is how often interfaces are listed again; zero takes
	// DefaultInterfaceRescan.
	InterfaceRescan time.Duration
	// InNamespace runs f in the node's network namespace (tests run several
	// nodes in one process). Nil: the caller's.
	InNamespace func(f func() error) error
	Log         logr.Logger
}

// Desired is the spec to carry out and its generation.
type Desired struct {
	Generation int64
	Spec       nodesv1alpha1.L2AnnouncementSpec
}

// Report is what the node does now.
type Report struct {
	// Generation of the spec acted on.
	Generation   int64
	AddressCount int
	Announcing   []AnnouncingAddress
	// LivePeers: the members alive as this node sees them, itself included
	// once it counts itself (see heartbeat.Timing.RejoinAfter).
	LivePeers []string
	// Joining: this node does not count itself alive yet, so it announces
	// nothing.
	Joining  bool
	Problems []string
}

// AnnouncingAddress is an address this node answers for, where, and since.
type AnnouncingAddress struct {
	IP         string
	Interfaces []string
	Since      time.Time
}

// Announcer runs one node's announcements.
type Announcer struct {
	cfg Config

	desired *latest.Value[Desired]
	report  *latest.Value[Report]

	respMu sync.Mutex
	resp   *arpresponder.Responder
}

// SameDesired reports whether two specs are the same (same generation,
// semantically equal).
func SameDesired(a, b Desired) bool {
	return a.Generation == b.Generation && equality.Semantic.DeepEqual(a.Spec, b.Spec)
}

// sameReport compares reports deeply (at worst a spurious status pass).
func sameReport(a, b Report) bool { return reflect.DeepEqual(a, b) }

// New returns an announcer; Run starts it.
func New(cfg Config) (*Announcer, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("node name is required")
	}
	if cfg.InterfaceRescan <= 0 {
		cfg.InterfaceRescan = DefaultInterfaceRescan
	}
	if cfg.InNamespace == nil {
		cfg.InNamespace = func(f func() error) error { return f() }
	}
	return &Announcer{
		cfg:     cfg,
		desired: latest.New(Desired{}, SameDesired),
		report:  latest.New(Report{Joining: true}, sameReport),
	}, nil
}

// SetDesired hands the announcer a new spec. It never blocks; the latest
// spec wins.
func (a *Announcer) SetDesired(d Desired) { a.desired.Set(d) }

// Report returns what the node does now.
func (a *Announcer) Report() Report {
	r, _ := a.report.Get()
	return r
}

// Reports receives a value (coalesced) whenever Report changes.
func (a *Announcer) Reports() <-chan struct{} { return a.report.Changes() }

// Stats returns the ARP responder's counters (empty before Run).
func (a *Announcer) Stats() map[arpresponder.Pair]arpresponder.Stats {
	a.respMu.Lock()
	resp := a.resp
	a.respMu.Unlock()
	if resp == nil {
		return nil
	}
	return resp.Stats()
}

// errKilled, as the cancel cause of Run's context, makes it stop as a killed
// process would: sockets closed, no goodbye to the peers.
var errKilled = errors.New("killed")

// Run announces until ctx ends. It starts with nothing announced and counts
// itself alive only after RejoinAfter, like a peer that sees it start. On a
// clean stop it stops answering first and then tells the peers it is
// leaving, so the next candidates take over at once and never overlap.
func (a *Announcer) Run(ctx context.Context) error {
	resp := arpresponder.New(arpresponder.Config{
		GARPInterval: a.cfg.GARPInterval,
		InNamespace:  a.cfg.InNamespace,
		Log:          a.cfg.Log.WithName("arp"),
	})
	a.respMu.Lock()
	a.resp = resp
	a.respMu.Unlock()
	r := &run{Announcer: a, resp: resp, since: map[string]time.Time{}}
	defer func() {
		_ = resp.Close()
		if r.member != nil {
			if errors.Is(context.Cause(ctx), errKilled) {
				_ = r.member.Close()
			} else {
				_ = r.member.Leave()
			}
		}
	}()

	rescan := time.NewTicker(a.cfg.InterfaceRescan)
	defer rescan.Stop()
	r.scanInterfaces()
	for {
		r.pass()
		var changes <-chan struct{}
		if r.member != nil {
			changes = r.member.Changes()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-a.desired.Changes():
		case <-rescan.C:
			r.scanInterfaces()
		}
	}
}

// run is the state of one Run.
type run struct {
	*Announcer
	resp *arpresponder.Responder

	member     *heartbeat.Member
	memberAddr netip.Addr
	peers      []heartbeat.Peer
	// memberErr is why there is no member (reported, retried each pass).
	memberErr error

	interfaces []string
	scanErr    error
	since      map[string]time.Time
}

// pass brings heartbeats, the responder and the report in line with the
// latest spec and view.
func (r *run) pass() {
	d, seen := r.desired.Get()

	// Heartbeats start with the first spec, not before: a restarted node's
	// peers start counting its rejoin time when its datagrams arrive, and
	// its own count must start then too, or it would take its addresses
	// back before they release them.
	if seen {
		r.syncMember(&d.Spec)
	}
	var live []string
	if r.member != nil {
		live = r.member.Live()
	}
	dec := Decide(&d.Spec, r.cfg.NodeName, live, r.interfaces)
	problems := dec.Problems
	if err := r.resp.Set(dec.Pairs); err != nil {
		problems = append(problems, err.Error())
	}
	if r.memberErr != nil {
		problems = append(problems, r.memberErr.Error())
	}
	if r.scanErr != nil {
		problems = append(problems, r.scanErr.Error())
	}

	now := time.Now()
	rep := Report{
		Generation:   d.Generation,
		AddressCount: len(d.Spec.Addresses),
		LivePeers:    live,
		Joining:      !slices.Contains(live, r.cfg.NodeName),
		Problems:     problems,
	}
	held := map[string]bool{}
	for _, an := range dec.Announcing {
		held[an.IP] = true
		if _, ok := r.since[an.IP]; !ok {
			r.since[an.IP] = now
			r.cfg.Log.Info("announcing", "ip", an.IP, "interfaces", an.Interfaces)
		}
		rep.Announcing = append(rep.Announcing, AnnouncingAddress{IP: an.IP, Interfaces: an.Interfaces, Since: r.since[an.IP]})
	}
	for ip := range r.since {
		if !held[ip] {
			delete(r.since, ip)
			r.cfg.Log.Info("stopped announcing", "ip", ip, "owner", dec.Owners[ip])
		}
	}

	r.report.Set(rep)
}

// syncMember starts, re-addresses or re-peers the heartbeat member.
func (r *run) syncMember(spec *nodesv1alpha1.L2AnnouncementSpec) {
	addr := r.cfg.Address
	var peers []heartbeat.Peer
	var errs []error
	for _, p := range spec.Peers {
		ip, err := netip.ParseAddr(p.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s: address %q: %w", p.Node, p.Address, err))
			continue
		}
		if p.Node == r.cfg.NodeName && !addr.IsValid() {
			addr = ip
		}
		peers = append(peers, heartbeat.Peer{Name: p.Node, Addr: ip})
	}
	if !addr.IsValid() {
		if len(spec.Peers) > 0 {
			errs = append(errs, fmt.Errorf("no heartbeat address: node %s is not in spec.peers and --address is not set", r.cfg.NodeName))
		}
		r.stopMember()
		r.memberErr = errors.Join(errs...)
		return
	}
	if r.member != nil && addr != r.memberAddr {
		r.stopMember()
	}
	if r.member == nil {
		m, err := heartbeat.Start(heartbeat.Config{
			Name:        r.cfg.NodeName,
			Address:     addr,
			Port:        r.cfg.HeartbeatPort,
			Interval:    r.cfg.HeartbeatInterval,
			DeadAfter:   r.cfg.DeadAfter,
			RejoinAfter: r.cfg.RejoinAfter,
			InNamespace: r.cfg.InNamespace,
			Log:         r.cfg.Log.WithName("heartbeat"),
		}, peers)
		if err != nil {
			r.memberErr = errors.Join(append(errs, err)...)
			return
		}
		r.member, r.memberAddr, r.peers = m, addr, peers
		r.cfg.Log.Info("heartbeats started", "address", addr.String(), "peers", len(peers))
	} else if !slices.Equal(peers, r.peers) {
		r.member.SetPeers(peers)
		r.peers = peers
	}
	r.memberErr = errors.Join(errs...)
}

func (r *run) stopMember() {
	if r.member != nil {
		// Without a usable address the node cannot be reached; peers see it
		// as dead either way.
		_ = r.member.Close()
		r.member = nil
	}
}

// scanInterfaces lists the interfaces that may answer: up, not loopback,
// with an IPv4 address.
func (r *run) scanInterfaces() {
	var names []string
	err := r.cfg.InNamespace(func() error {
		// Through nldump: a dump interrupted by pods' veths coming and
		// going is repeated, never taken as the whole list.
		las, err := nldump.UpAddrs(nil, netlink.FAMILY_V4)
		for _, la := range las {
			names = append(names, la.Link)
		}
		return err
	})
	slices.Sort(names)
	names = slices.Compact(names)
	if err != nil {
		r.scanErr = fmt.Errorf("listing interfaces: %w", err)
		return // keep the last list
	}
	r.scanErr = nil
	if !slices.Equal(names, r.interfaces) {
		r.cfg.Log.Info("interfaces", "names", names)
		r.interfaces = names
	}
}
