package heartbeat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Defaults of Config.
const (
	DefaultPort        = 7947
	DefaultInterval    = 100 * time.Millisecond
	DefaultDeadAfter   = 400 * time.Millisecond
	DefaultRejoinAfter = time.Second
)

// Peer is another member and the address its datagrams come from and go to.
type Peer struct {
	Name string
	Addr netip.Addr
}

// Config configures a Member.
type Config struct {
	// Name is this member's name (the node name); it must be at most 255
	// bytes.
	Name string
	// Address is this member's own address: it listens on Address:Port and
	// sends from it.
	Address netip.Addr
	// Port is the UDP port every member uses. Default DefaultPort.
	Port int
	// Interval between datagrams to each peer. Default DefaultInterval.
	Interval time.Duration
	// DeadAfter, RejoinAfter: see Timing. Defaults DefaultDeadAfter,
	// DefaultRejoinAfter.
	DeadAfter   time.Duration
	RejoinAfter time.Duration
	// SelfDelay: see Timing. Zero means Interval; negative means none.
	SelfDelay time.Duration
	// InNamespace runs f in the network namespace the socket belongs to
	// (tests run several members, each in its own namespace). Nil: the
	// caller's.
	InNamespace func(f func() error) error
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	Log logr.Logger
}

func (c *Config) defaults() error {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = DefaultDeadAfter
	}
	if c.RejoinAfter == 0 {
		c.RejoinAfter = DefaultRejoinAfter
	}
	switch {
	case c.SelfDelay == 0:
		c.SelfDelay = c.Interval
	case c.SelfDelay < 0:
		c.SelfDelay = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.InNamespace == nil {
		c.InNamespace = func(f func() error) error { return f() }
	}
	return c.Validate()
}

// Validate checks the settings: every datagram interval must fit at least
// twice into DeadAfter, so that one lost datagram does not kill a peer.
func (c *Config) Validate() error {
	switch {
	case c.Name == "" || len(c.Name) > 255:
		return fmt.Errorf("name %q: want 1 to 255 bytes", c.Name)
	case !c.Address.Is4() && !c.Address.Is6():
		return fmt.Errorf("address %v: want an IP address", c.Address)
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("port %d: want 1 to 65535", c.Port)
	case c.Interval <= 0:
		return fmt.Errorf("interval %v: want a positive duration", c.Interval)
	case c.DeadAfter <= 2*c.Interval:
		return fmt.Errorf("dead-after %v: must be more than 2 × interval (%v), or one lost datagram kills a peer", c.DeadAfter, c.Interval)
	case c.RejoinAfter < 0:
		return fmt.Errorf("rejoin-after %v: want zero or more", c.RejoinAfter)
	}
	return nil
}

// Member sends and receives heartbeats and keeps the View.
type Member struct {
	cfg         Config
	conn        *net.UDPConn
	incarnation uint64

	mu    sync.Mutex
	view  *View
	peers []Peer
	live  []string
	seq   uint64

	changes chan struct{} // coalesced: the live set changed
	kick    chan struct{} // coalesced: re-evaluate the view now
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// Start binds Address:Port (in the namespace InNamespace selects) and starts
// sending to and hearing from peers. Self may be among peers; it is skipped.
func Start(cfg Config, peers []Peer) (*Member, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var conn *net.UDPConn
	err := cfg.InNamespace(func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Address, uint16(cfg.Port))))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("heartbeat socket: %w", err)
	}
	now := cfg.Now()
	m := &Member{
		cfg:         cfg,
		conn:        conn,
		incarnation: uint64(now.UnixNano()), // grows across restarts
		view: NewView(cfg.Name, Timing{
			DeadAfter: cfg.DeadAfter, RejoinAfter: cfg.RejoinAfter, SelfDelay: cfg.SelfDelay,
		}, now),
		changes: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	m.SetPeers(peers)
	m.wg.Add(3)
	go m.sendLoop()
	go m.receiveLoop()
	go m.evaluateLoop()
	return m, nil
}

// SetPeers replaces the peers. Peers that stay keep their state.
func (m *Member) SetPeers(peers []Peer) {
	m.mu.Lock()
	m.peers = slices.DeleteFunc(slices.Clone(peers), func(p Peer) bool { return p.Name == m.cfg.Name })
	names := make([]string, 0, len(m.peers))
	for _, p := range m.peers {
		names = append(names, p.Name)
	}
	now := m.cfg.Now()
	m.view.SetPeers(names, now)
	// Live answers for the new group at once: a caller deciding right
	// after SetPeers must not act on the old group (new peers are presumed
	// alive; see View).
	live := m.view.Alive(now)
	changed := !slices.Equal(live, m.live)
	m.live = live
	m.mu.Unlock()
	if changed {
		select {
		case m.changes <- struct{}{}:
		default:
		}
	}
	m.poke()
}

// Live returns the members alive now (self included once it counts), sorted.
func (m *Member) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.live)
}

// Changes receives a value (coalesced) whenever Live changes.
func (m *Member) Changes() <-chan struct{} { return m.changes }

// Close stops at once, as a killed process does: peers notice after
// DeadAfter.
func (m *Member) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		err = m.conn.Close()
		m.wg.Wait()
	})
	return err
}

// Leave tells the peers that this member is going (they treat it as dead at
// once), then closes. Callers stop the work the group assigned to this
// member before calling Leave, so no one takes it over while it still runs.
func (m *Member) Leave() error {
	m.mu.Lock()
	peers := slices.Clone(m.peers)
	m.mu.Unlock()
	msg := encode(message{name: m.cfg.Name, incarnation: m.incarnation, goodbye: true})
	for range 2 { // a lost goodbye only costs DeadAfter, but it is cheap to repeat
		for _, p := range peers {
			_, _ = m.conn.WriteToUDPAddrPort(msg, netip.AddrPortFrom(p.Addr, uint16(m.cfg.Port)))
		}
	}
	return m.Close()
}

func (m *Member) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Member) sendLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.mu.Lock()
		m.seq++
		msg := encode(message{name: m.cfg.Name, incarnation: m.incarnation, seq: m.seq, ready: m.view.selfReady(m.cfg.Now())})
		peers := m.peers
		m.mu.Unlock()
		for _, p := range peers {
			// Errors (no route yet, peer's host unreachable) are the
			// normal state of a dead peer; the view shows them.
			_, _ = m.conn.WriteToUDPAddrPort(msg, netip.AddrPortFrom(p.Addr, uint16(m.cfg.Port)))
		}
		select {
		case <-m.done:
			return
		case <-t.C:
		}
	}
}

func (m *Member) receiveLoop() {
	defer m.wg.Done()
	buf := make([]byte, 512)
	for {
		n, _, err := m.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors surface as read errors on Linux; keep going.
			continue
		}
		msg, err := decode(buf[:n])
		if err != nil || msg.name == m.cfg.Name {
			continue
		}
		m.mu.Lock()
		if msg.goodbye {
			m.view.Left(msg.name, msg.incarnation)
		} else {
			m.view.Heard(msg.name, msg.incarnation, msg.ready, m.cfg.Now())
		}
		m.mu.Unlock()
		m.poke()
	}
}

// evaluateLoop recomputes the live set on every datagram and at the moments
// the view says it may change by itself.
func (m *Member) evaluateLoop() {
	defer m.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-m.kick:
		case <-timer.C:
		}
		now := m.cfg.Now()
		m.mu.Lock()
		live := m.view.Alive(now)
		changed := !slices.Equal(live, m.live)
		m.live = live
		next := m.view.NextChange(now)
		m.mu.Unlock()
		if changed {
			m.cfg.Log.V(1).Info("live members changed", "live", live)
			select {
			case m.changes <- struct{}{}:
			default:
			}
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
		}
	}
}

// Wire format, big endian:
//
//	"PXHB" | version 1 | flags (bit 0: goodbye, bit 1: ready) | incarnation u64 | seq u64 | name length u8 | name
const (
	magic      = "PXHB"
	version    = 1
	headerSize = 4 + 1 + 1 + 8 + 8 + 1
	flagBye    = 1
	flagReady  = 2 // the sender counts itself alive
)

type message struct {
	name        string
	incarnation uint64
	seq         uint64
	goodbye     bool
	ready       bool
}

func encode(m message) []byte {
	b := make([]byte, 0, headerSize+len(m.name))
	b = append(b, magic...)
	var flags byte
	if m.goodbye {
		flags |= flagBye
	}
	if m.ready {
		flags |= flagReady
	}
	b = append(b, version, flags)
	b = binary.BigEndian.AppendUint64(b, m.incarnation)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = append(b, byte(len(m.name)))
	return append(b, m.name...)
}

func decode(b []byte) (message, error) {
	if len(b) < headerSize || string(b[:4]) != magic || b[4] != version {
		return message{}, errors.New("not a heartbeat")
	}
	n := int(b[headerSize-1])
	if len(b) != headerSize+n || n == 0 {
		return message{}, errors.New("bad name length")
	}
	return message{
		goodbye:     b[5]&flagBye != 0,
		ready:       b[5]&flagReady != 0,
		incarnation: binary.BigEndian.Uint64(b[6:14]),
		seq:         binary.BigEndian.Uint64(b[14:22]),
		name:        string(b[headerSize:]),
	}, nil
}
