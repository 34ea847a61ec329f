// Package arpresponder answers ARP requests for IPv4 addresses that no
// interface holds (virtual IPs), on chosen interfaces, with the interface's
// MAC, from one packet socket per interface in use. It announces each
// address by gratuitous ARP when it is added and periodically while it is
// held, and stops answering for an address as soon as it is removed.
//
// It knows nothing of who should hold which address: callers (the L2
// announcer, the egress gateway) decide, and hand it the whole desired set
// with Set.
package arpresponder

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// Defaults of Config.
const (
	DefaultGARPInterval = 10 * time.Second
	DefaultRescan       = time.Second
)

// DefaultGARPBurst is when, after an address is added, its gratuitous ARPs
// go out: three, so one lost frame does not leave a neighbour on the old MAC.
var DefaultGARPBurst = []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond}

// etherTypeARP is the EtherType the packet sockets bind to.
const etherTypeARP = 0x0806

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// Pair is an address to answer for on one interface.
type Pair struct {
	IP        netip.Addr
	Interface string
}

func (p Pair) String() string { return p.IP.String() + "%" + p.Interface }

// Compare orders pairs by address, then interface.
func (p Pair) Compare(o Pair) int {
	return cmp.Or(p.IP.Compare(o.IP), cmp.Compare(p.Interface, o.Interface))
}

// Config configures a Responder.
type Config struct {
	// GARPInterval between gratuitous ARPs while a pair is held.
	// Default DefaultGARPInterval.
	GARPInterval time.Duration
	// GARPBurst: offsets after a pair is added (or its interface reopened)
	// at which gratuitous ARPs go out. Default DefaultGARPBurst.
	GARPBurst []time.Duration
	// Rescan is how often interfaces in use are looked up again, so that
	// one that disappeared and came back (new index or MAC) is reopened.
	// Default DefaultRescan.
	Rescan time.Duration
	// InNamespace runs f in the network namespace the interfaces are in.
	// Nil: the caller's.
	InNamespace func(f func() error) error
	Log         logr.Logger
}

// Stats are a pair's counters.
type Stats struct {
	// Answered counts ARP requests answered.
	Answered uint64
	// GARPs counts gratuitous ARPs sent.
	GARPs uint64
	// Active: the interface's socket is open, so the pair is answered.
	Active bool
	// Error says why the pair is not active.
	Error string
}

// Responder answers ARP for a set of pairs. It is safe for concurrent use.
type Responder struct {
	cfg Config

	mu     sync.Mutex
	pairs  map[Pair]*pairState
	links  map[string]*link
	closed bool

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

type pairState struct {
	answered atomic.Uint64
	garps    atomic.Uint64
	// stopGARP ends the pair's gratuitous ARP goroutine; nil while none
	// runs (the interface is not open).
	stopGARP chan struct{}
}

// link is one interface in use.
type link struct {
	name string
	// held is what the reader answers for, replaced (never mutated) on
	// every change, so that a removal takes effect before Set returns.
	held atomic.Pointer[map[netip.Addr]*pairState]

	// Set while the socket is open.
	conn  *packet.Conn
	index int
	mac   net.HardwareAddr
	// err is why the socket is not open.
	err error
}

// New starts a responder with no pairs.
func New(cfg Config) *Responder {
	if cfg.GARPInterval <= 0 {
		cfg.GARPInterval = DefaultGARPInterval
	}
	if cfg.GARPBurst == nil {
		cfg.GARPBurst = DefaultGARPBurst
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.InNamespace == nil {
		cfg.InNamespace = func(f func() error) error { return f() }
	}
	r := &Responder{
		cfg:   cfg,
		pairs: map[Pair]*pairState{},
		links: map[string]*link{},
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	r.wg.Add(1)
	go r.rescanLoop()
	return r
}

// Set makes pairs the set answered for: removed pairs stop being answered
// before Set returns, added ones are answered and announced. Pairs on an
// interface that cannot be opened stay wanted and are retried every Rescan;
// the error says which.
func (r *Responder) Set(pairs []Pair) error {
	var errs []error
	want := make(map[Pair]bool, len(pairs))
	for _, p := range pairs {
		if !p.IP.Is4() || p.Interface == "" {
			errs = append(errs, fmt.Errorf("pair %v: want an IPv4 address and an interface", p))
			continue
		}
		want[p] = true
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("responder closed")
	}
	for p, st := range r.pairs {
		if !want[p] {
			stopGARP(st)
			delete(r.pairs, p)
		}
	}
	var added []Pair
	for p := range want {
		if _, ok := r.pairs[p]; !ok {
			r.pairs[p] = &pairState{}
			added = append(added, p)
		}
	}

	byLink := map[string]map[netip.Addr]*pairState{}
	for p, st := range r.pairs {
		if byLink[p.Interface] == nil {
			byLink[p.Interface] = map[netip.Addr]*pairState{}
		}
		byLink[p.Interface][p.IP] = st
	}
	for name, l := range r.links {
		if byLink[name] == nil {
			r.closeLink(l, nil)
			l.held.Store(&map[netip.Addr]*pairState{})
			delete(r.links, name)
		}
	}
	opened := map[string]bool{} // their pairs' GARPs started on opening
	for name, held := range byLink {
		l := r.links[name]
		if l == nil {
			l = &link{name: name}
			r.links[name] = l
		}
		l.held.Store(&held)
		if l.conn == nil && l.err == nil {
			r.openLink(l)
			opened[name] = true
		}
	}
	for _, p := range added {
		if l := r.links[p.Interface]; l.conn != nil && !opened[p.Interface] {
			r.startGARP(l, p, r.pairs[p])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.links)) {
		if err := r.links[name].err; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		r.poke() // retry soon rather than after a whole Rescan
	}
	return errors.Join(errs...)
}

// Stats returns every pair's counters.
func (r *Responder) Stats() map[Pair]Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Pair]Stats, len(r.pairs))
	for p, st := range r.pairs {
		s := Stats{Answered: st.answered.Load(), GARPs: st.garps.Load()}
		if l := r.links[p.Interface]; l != nil {
			s.Active = l.conn != nil
			if l.err != nil {
				s.Error = l.err.Error()
			}
		}
		out[p] = s
	}
	return out
}

// Close stops answering for everything and closes every socket.
func (r *Responder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	for _, l := range r.links {
		r.closeLink(l, nil)
		l.held.Store(&map[netip.Addr]*pairState{})
	}
	r.links = map[string]*link{}
	r.pairs = map[Pair]*pairState{}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

func (r *Responder) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// openLink opens l's socket and starts its reader and its pairs' GARPs.
// Called with r.mu held.
func (r *Responder) openLink(l *link) {
	var (
		ifi  *net.Interface
		conn *packet.Conn
	)
	err := r.cfg.InNamespace(func() (err error) {
		if ifi, err = net.InterfaceByName(l.name); err != nil {
			return err
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("interface %s has no Ethernet address", l.name)
		}
		conn, err = packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
		return err
	})
	if err != nil {
		l.err = fmt.Errorf("interface %s: %w", l.name, err)
		return
	}
	l.conn, l.index, l.mac, l.err = conn, ifi.Index, ifi.HardwareAddr, nil
	r.cfg.Log.V(1).Info("answering ARP", "interface", l.name, "index", l.index, "mac", l.mac.String())
	r.wg.Add(1)
	go r.read(l, conn, l.mac)
	for ip, st := range *l.held.Load() {
		r.startGARP(l, Pair{IP: ip, Interface: l.name}, st)
	}
}

// closeLink closes l's socket and stops its GARPs; err (if any) is why.
// Called with r.mu held.
func (r *Responder) closeLink(l *link, err error) {
	for _, st := range *l.held.Load() {
		stopGARP(st)
	}
	if l.conn != nil {
		_ = l.conn.Close()
		l.conn = nil
	}
	l.err = err
}

// read answers requests on one socket until it is closed or fails.
func (r *Responder) read(l *link, conn *packet.Conn, mac net.HardwareAddr) {
	defer r.wg.Done()
	buf := make([]byte, 1500)
	var f ethernet.Frame
	var req arp.Packet
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			r.mu.Lock()
			if l.conn == conn { // not closed on purpose: the interface went away
				r.cfg.Log.Info("ARP socket failed; reopening", "interface", l.name, "error", err.Error())
				r.closeLink(l, fmt.Errorf("interface %s: %w", l.name, err))
				r.poke()
			}
			r.mu.Unlock()
			return
		}
		if f.UnmarshalBinary(buf[:n]) != nil || f.EtherType != ethernet.EtherTypeARP ||
			slices.Equal(f.Source, mac) || // our own frames, seen on the way out
			req.UnmarshalBinary(f.Payload) != nil || req.Operation != arp.OperationRequest ||
			!req.TargetIP.Is4() || req.SenderIP == req.TargetIP { // someone's gratuitous ARP
			continue
		}
		st := (*l.held.Load())[req.TargetIP]
		if st == nil {
			continue
		}
		reply, err := arp.NewPacket(arp.OperationReply, mac, req.TargetIP, req.SenderHardwareAddr, req.SenderIP)
		if err != nil {
			continue
		}
		if err := write(conn, reply, f.Source); err == nil {
			st.answered.Add(1)
		}
	}
}

func write(conn *packet.Conn, p *arp.Packet, to net.HardwareAddr) error {
	payload, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	frame, err := (&ethernet.Frame{Destination: to, Source: p.SenderHardwareAddr, EtherType: ethernet.EtherTypeARP, Payload: payload}).MarshalBinary()
	if err != nil {
		return err
	}
	_, err = conn.WriteTo(frame, &packet.Addr{HardwareAddr: to})
	return err
}

// startGARP announces p on l's current socket: the burst, then every
// GARPInterval, until stopped. Called with r.mu held.
func (r *Responder) startGARP(l *link, p Pair, st *pairState) {
	stopGARP(st)
	stop := make(chan struct{})
	st.stopGARP = stop
	conn, mac := l.conn, l.mac
	// A gratuitous ARP request (sender = target = the address) updates an
	// existing neighbour entry even with arp_accept=0.
	garp, err := arp.NewPacket(arp.OperationRequest, mac, p.IP, zeroMAC, p.IP)
	if err != nil {
		return
	}
	send := func() {
		if err := write(conn, garp, ethernet.Broadcast); err != nil {
			r.cfg.Log.V(1).Info("gratuitous ARP failed", "pair", p.String(), "error", err.Error())
			return
		}
		st.garps.Add(1)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		start := time.Now()
		for _, at := range r.cfg.GARPBurst {
			if !sleep(time.Until(start.Add(at)), stop) {
				return
			}
			send()
		}
		t := time.NewTicker(r.cfg.GARPInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				send()
			}
		}
	}()
}

func stopGARP(st *pairState) {
	if st.stopGARP != nil {
		close(st.stopGARP)
		st.stopGARP = nil
	}
}

// sleep waits d unless stop closes first; it reports whether it waited.
func sleep(d time.Duration, stop <-chan struct{}) bool {
	if d <= 0 {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// rescanLoop reopens interfaces that failed, disappeared or came back
// changed (a new index or MAC: the old socket is bound to a dead device).
func (r *Responder) rescanLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.Rescan)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		case <-r.kick:
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		for _, l := range r.links {
			var ifi *net.Interface
			err := r.cfg.InNamespace(func() (err error) {
				ifi, err = net.InterfaceByName(l.name)
				return err
			})
			switch {
			case err != nil:
				if l.conn != nil {
					r.cfg.Log.Info("interface gone; not answering on it", "interface", l.name)
				}
				r.closeLink(l, fmt.Errorf("interface %s: %w", l.name, err))
			case l.conn == nil:
				r.openLink(l)
			case ifi.Index != l.index || !slices.Equal(ifi.HardwareAddr, l.mac):
				r.cfg.Log.Info("interface changed; reopening", "interface", l.name)
				r.closeLink(l, nil)
				r.openLink(l)
			}
		}
		r.mu.Unlock()
	}
}
