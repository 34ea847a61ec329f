package speaker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netns"

	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
	"github.com/plexus-net/plexus/nodeplugins/bgp/gateway"
)

// Speaker holds the node's GoBGP servers and keeps them equal to the last
// desired state it was given.
type Speaker struct {
	log     logr.Logger
	opts    options
	changes chan struct{}

	mu        sync.Mutex
	want      desired.State
	instances map[string]*instance
	stopped   bool

	cancel context.CancelFunc
	done   chan struct{}
}

type options struct {
	listen      []string
	findGateway func(family string) (netip.Addr, error)
	gatewayPoll time.Duration
}

// Option configures a Speaker.
type Option func(*options)

// WithListenAddresses sets the addresses an instance with a listen port
// binds; by default it binds every address (0.0.0.0, and :: if the host
// has IPv6).
func WithListenAddresses(addrs ...string) Option {
	return func(o *options) { o.listen = addrs }
}

// WithGatewayFinder replaces the default-gateway lookup of auto-discovery
// (by default package gateway in the process's network namespace).
func WithGatewayFinder(f func(family string) (netip.Addr, error)) Option {
	return func(o *options) { o.findGateway = f }
}

// WithGatewayPoll sets how often auto-discovery re-checks the gateway
// besides on route change events (default 5 s).
func WithGatewayPoll(d time.Duration) Option {
	return func(o *options) { o.gatewayPoll = d }
}

// New returns a Speaker with no instance; Apply gives it some.
func New(log logr.Logger, opts ...Option) *Speaker {
	o := options{
		findGateway: func(family string) (netip.Addr, error) { return gateway.Default(nil, family) },
		gatewayPoll: 5 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	if len(o.listen) == 0 {
		o.listen = defaultListenAddresses()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Speaker{
		log:       log,
		opts:      o,
		changes:   make(chan struct{}, 1),
		instances: map[string]*instance{},
		cancel:    cancel,
		done:      make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		gateway.Watch(ctx, netns.None(), o.gatewayPoll, s.recheckGateways)
	}()
	return s
}

// defaultListenAddresses are all IPv4 addresses, and all IPv6 addresses
// if the host has IPv6 (GoBGP fails to start if one listener fails).
func defaultListenAddresses() []string {
	addrs := []string{"0.0.0.0"}
	if l, err := net.Listen("tcp6", "[::]:0"); err == nil {
		l.Close()
		addrs = append(addrs, "::")
	}
	return addrs
}

// Changes fires (coalesced) when a session changes state or a peer's last
// error changes, so that the caller refreshes the status.
func (s *Speaker) Changes() <-chan struct{} { return s.changes }

func (s *Speaker) notify() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// Apply makes the speaker hold st: instances, peers and routes are added,
// changed and removed one by one, without touching what did not change.
// It goes as far as it can and returns every failure.
func (s *Speaker) Apply(ctx context.Context, st desired.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("speaker stopped")
	}
	s.want = st
	err := s.sync(ctx)
	s.notify()
	return err
}

func (s *Speaker) sync(ctx context.Context) error {
	var errs []error
	wanted := map[string]desired.Instance{}
	for _, in := range s.want.Instances {
		wanted[in.Name] = in
	}
	for _, name := range sortedKeys(s.instances) {
		inst := s.instances[name]
		if w, ok := wanted[name]; !ok || keyOf(w) != inst.key {
			inst.stop(ctx, false)
			delete(s.instances, name)
		}
	}
	for _, in := range s.want.Instances {
		inst := s.instances[in.Name]
		if inst == nil {
			var err error
			inst, err = startInstance(ctx, s.log.WithValues("instance", in.Name), in, s.opts.listen, s.notify)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.instances[in.Name] = inst
		}
		if err := inst.sync(ctx, in.Peers, s.resolve); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", in.Name, err))
		}
	}
	return errors.Join(errs...)
}

// resolve is a peer's address: the configured one, or its default gateway.
func (s *Speaker) resolve(p desired.Peer) (netip.Addr, string) {
	if p.AutoDiscovery == nil {
		if !p.Address.IsValid() {
			return netip.Addr{}, "peer has no address"
		}
		return p.Address, ""
	}
	gw, err := s.opts.findGateway(p.AutoDiscovery.Family)
	if err != nil {
		return netip.Addr{}, fmt.Sprintf("auto-discovery of the %s default gateway: %v", p.AutoDiscovery.Family, err)
	}
	return gw, ""
}

// recheckGateways re-applies the state when an auto-discovered peer's
// gateway is no longer the one its session uses (B53).
func (s *Speaker) recheckGateways() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || !s.gatewaysMoved() {
		return
	}
	if err := s.sync(context.Background()); err != nil {
		s.log.Error(err, "re-applying BGP state after a default gateway change")
	}
	s.notify()
}

func (s *Speaker) gatewaysMoved() bool {
	for _, in := range s.want.Instances {
		inst := s.instances[in.Name]
		if inst == nil {
			continue
		}
		for _, w := range in.Peers {
			if w.AutoDiscovery == nil {
				continue
			}
			addr, _ := s.resolve(w)
			if p := inst.peers[w.Name]; p == nil || p.addr != addr {
				return true
			}
		}
	}
	return false
}

// Stop stops every instance and the gateway watch. Sessions with graceful
// restart are cut without a NOTIFICATION so that their peers keep this
// node's routes while the plugin restarts; the others are closed with one
// (see the package doc). The Speaker cannot be used afterwards.
func (s *Speaker) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, inst := range s.instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst.stop(ctx, true)
		}()
	}
	wg.Wait()
	s.instances = map[string]*instance{}
	s.mu.Unlock()
	s.cancel()
	<-s.done
}
