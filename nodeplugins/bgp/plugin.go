// Package bgp is the BGP node plugin: it reads what its node's BGP state
// depends on (its CiliumBGPNodeConfig, the peer configs and advertisements,
// Services and their local endpoints, its pod CIDRs, legacy peering
// policies, and auth Secrets from one namespace), computes the desired
// state (package desired), has the in-process GoBGP speaker match it
// (package speaker), and writes what the speaker reports into the
// NodeConfig's status.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/internal/statuswrite"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliumbgpnodeconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumbgpnodeconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumbgppeerconfigs;ciliumbgpadvertisements;ciliumbgppeeringpolicies;ciliumpodippools;ciliumloadbalancerippools;ciliumnodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
//
// Secrets are read in the BGP secrets namespace only: the chart grants that
// with a Role there (bgp.secretNamespace), not with a marker here, whose
// namespace would be fixed at generation time.

// Speaker is what the plugin needs of the GoBGP speaker.
type Speaker interface {
	Apply(ctx context.Context, st desired.State) error
	Status(ctx context.Context, routeLimit int) []ciliumv2.CiliumBGPNodeInstanceStatus
	Changes() <-chan struct{}
}

// Config is the plugin's part of the node's settings.
type Config struct {
	NodeName string
	// IPAMMode is the cluster's IPAM mode (which pod CIDRs the node has).
	IPAMMode string
	// IPv4 and IPv6 are the families the node runs.
	IPv4, IPv6 bool
	// DerivedRouterID is the router ID made from the underlay device's MAC,
	// used on nodes without an IPv4 InternalIP (B46); zero if none.
	DerivedRouterID netip.Addr
	// SecretNamespace is the only namespace auth Secrets are read from.
	SecretNamespace string
	// StatusReport off leaves the NodeConfig status empty (B65).
	StatusReport bool
	// RouteLimit caps the routes listed per instance and per peer in status.
	RouteLimit int
	// StatusInterval is how often counts and routes are re-read from the
	// speaker for status (session state changes are written at once).
	StatusInterval time.Duration
	// InterfacePoll is how often the interfaces that advertisements and
	// peer configs name are re-read besides on route events (default 5 s).
	InterfacePoll time.Duration
}

// CacheOptions restricts the cache to what this node needs: its own Node,
// CiliumNode and NodeConfig, Secrets of one namespace (with only their
// password kept), EndpointSlices with only this node's endpoints, and no
// managed fields anywhere.
func CacheOptions(cfg Config) cache.Options {
	own := fields.OneTermEqualSelector("metadata.name", cfg.NodeName)
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&ciliumv2.CiliumBGPNodeConfig{}: {Field: own},
			&corev1.Node{}:                  {Field: own},
			&ciliumv2.CiliumNode{}:          {Field: own},
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{cfg.SecretNamespace: {}},
				Transform:  keepPassword,
			},
			&discoveryv1.EndpointSlice{}: {Transform: localEndpointsOnly(cfg.NodeName)},
		},
	}
}

// keepPassword drops every key of a Secret but "password": the plugin
// caches the namespace's Secrets and should hold no other credentials.
func keepPassword(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	s.ManagedFields, s.Annotations = nil, nil
	pw, has := s.Data[passwordKey]
	s.Data, s.StringData = nil, nil
	if has {
		s.Data = map[string][]byte{passwordKey: pw}
	}
	return s, nil
}

const passwordKey = "password"

// localEndpointsOnly keeps an EndpointSlice's endpoints on this node: a
// Local traffic policy only asks whether the node has one.
func localEndpointsOnly(node string) func(any) (any, error) {
	return func(obj any) (any, error) {
		es, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return obj, nil
		}
		es.ManagedFields, es.Annotations = nil, nil
		kept := es.Endpoints[:0]
		for _, ep := range es.Endpoints {
			if ep.NodeName != nil && *ep.NodeName == node {
				kept = append(kept, ep)
			}
		}
		es.Endpoints = kept
		return es, nil
	}
}

// Plugin wires the speaker to the API server.
type Plugin struct {
	Client  client.Client
	Config  Config
	Speaker Speaker
	Log     logr.Logger
	// Interfaces reads the named interfaces of the node; nil reads them
	// from the kernel, in the plugin's network namespace.
	Interfaces func(names []string) (map[string]desired.Interface, error)

	writer  statuswrite.Writer
	trigger chan struct{}
	kicks   chan event.GenericEvent
	// runner paces passes to a fifth of a core under a stream of events
	// (every EndpointSlice change in the cluster wakes the plugin); a pass
	// after a quiet spell runs at once.
	runner passes.Runner

	mu      sync.Mutex
	applied applied
	// ifaceNames and ifaces are the interfaces the last pass read, for the
	// interface watch to compare against.
	ifaceNames []string
	ifaces     map[string]desired.Interface
}

// applied is the outcome of the last reconcile, for status.
type applied struct {
	done     bool
	state    desired.State
	applyErr error
}

// SetupWithManager registers the reconciler, fed by every input kind, and
// the status writer.
func (p *Plugin) SetupWithManager(mgr ctrl.Manager) error {
	p.writer.Client = p.Client
	p.trigger = make(chan struct{}, 1)
	p.kicks = make(chan event.GenericEvent, 1)
	if p.Config.InterfacePoll <= 0 {
		p.Config.InterfacePoll = 5 * time.Second
	}
	p.runner = passes.Runner{Name: "bgp", Client: p.Client, Decide: p.decide, Kicks: p.kicks}
	var watches []passes.Watch
	for _, kind := range []client.Object{
		&ciliumv2.CiliumBGPNodeConfig{}, &ciliumv2.CiliumBGPPeerConfig{}, &ciliumv2.CiliumBGPAdvertisement{},
		&ciliumv2alpha1.CiliumBGPPeeringPolicy{}, &ciliumv2alpha1.CiliumPodIPPool{}, &ciliumv2.CiliumLoadBalancerIPPool{},
		&ciliumv2.CiliumNode{}, &corev1.Node{}, &corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Secret{},
	} {
		watches = append(watches, passes.For(kind))
	}
	if err := p.runner.SetupWithManager(mgr, watches...); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(p.watchInterfaces)); err != nil {
		return err
	}
	return mgr.Add(manager.RunnableFunc(p.runStatus))
}

// decide reads every input from the cache and computes the node's desired
// state; its one write has the speaker apply it. The plugin never writes to
// the API server in a pass: the status writer does that on its own
// schedule.
func (p *Plugin) decide(ctx context.Context, pass *passes.Pass) error {
	in, err := p.readInput(ctx)
	if err != nil {
		return err
	}
	st := desired.Compute(in)
	pass.Write(func(ctx context.Context) error {
		applyErr := p.Speaker.Apply(ctx, st)
		p.mu.Lock()
		p.applied = applied{done: true, state: st, applyErr: applyErr}
		p.mu.Unlock()
		p.wake()
		if applyErr != nil {
			return fmt.Errorf("applying the BGP state of %s: %w", st.Source, applyErr)
		}
		return nil
	})
	return nil
}

func (p *Plugin) readInput(ctx context.Context) (desired.Input, error) {
	in := desired.Input{
		NodeName: p.Config.NodeName, IPAMMode: p.Config.IPAMMode,
		IPv4Enabled: p.Config.IPv4, IPv6Enabled: p.Config.IPv6, DerivedRouterID: p.Config.DerivedRouterID,
		SecretsNamespace: p.Config.SecretNamespace, Secrets: map[string]string{},
	}
	own := client.ObjectKey{Name: p.Config.NodeName}
	var (
		node     corev1.Node
		cnode    ciliumv2.CiliumNode
		nc       ciliumv2.CiliumBGPNodeConfig
		pcs      ciliumv2.CiliumBGPPeerConfigList
		ads      ciliumv2.CiliumBGPAdvertisementList
		pols     ciliumv2alpha1.CiliumBGPPeeringPolicyList
		pools    ciliumv2alpha1.CiliumPodIPPoolList
		lbpools  ciliumv2.CiliumLoadBalancerIPPoolList
		svcs     corev1.ServiceList
		slices   discoveryv1.EndpointSliceList
		secrets  corev1.SecretList
		optional = func(err error) (bool, error) {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		}
	)
	if ok, err := optional(p.Client.Get(ctx, own, &node)); err != nil {
		return in, err
	} else if ok {
		in.Node = &node
	}
	if ok, err := optional(p.Client.Get(ctx, own, &cnode)); err != nil {
		return in, err
	} else if ok {
		in.CiliumNode = &cnode
	}
	if ok, err := optional(p.Client.Get(ctx, own, &nc)); err != nil {
		return in, err
	} else if ok {
		in.NodeConfig = &nc
	}
	err := errors.Join(
		p.Client.List(ctx, &pcs), p.Client.List(ctx, &ads), p.Client.List(ctx, &pols),
		p.Client.List(ctx, &pools), p.Client.List(ctx, &lbpools), p.Client.List(ctx, &svcs),
		p.Client.List(ctx, &slices), p.Client.List(ctx, &secrets, client.InNamespace(p.Config.SecretNamespace)))
	if err != nil {
		return in, err
	}
	in.PeerConfigs, in.Advertisements, in.PeeringPolicies = pcs.Items, ads.Items, pols.Items
	in.PodIPPools, in.LoadBalancerIPPools = pools.Items, lbpools.Items
	in.Services, in.EndpointSlices = svcs.Items, slices.Items
	for _, s := range secrets.Items {
		if pw, ok := s.Data[passwordKey]; ok {
			in.Secrets[s.Name] = string(pw)
		}
	}
	names := desired.ReferencedInterfaces(in.Advertisements, in.PeerConfigs)
	if in.Interfaces, err = p.readInterfaces(names); err != nil {
		return in, err
	}
	p.mu.Lock()
	p.ifaceNames, p.ifaces = names, in.Interfaces
	p.mu.Unlock()
	return in, nil
}

// runStatus writes status when the speaker reports a change, after each
// reconcile, and every StatusInterval (route counts change without a
// session event): the ticks share the reconciler's wake channel.
func (p *Plugin) runStatus(ctx context.Context) error {
	interval := p.Config.StatusInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.wake()
			}
		}
	}()
	return nodeplugin.WriteStatus(ctx, p.Log.WithName("status"), 200*time.Millisecond, p.Speaker.Changes(), p.trigger, p.writeStatus)
}

// wake asks the status writer for a look, without blocking.
func (p *Plugin) wake() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// writeStatus puts the speaker's report into the NodeConfig's status,
// writing only if it differs.
func (p *Plugin) writeStatus(ctx context.Context) error {
	p.mu.Lock()
	a := p.applied
	p.mu.Unlock()
	if !a.done {
		return nil // nothing applied yet: no report to make
	}
	var nc ciliumv2.CiliumBGPNodeConfig
	if err := p.Client.Get(ctx, client.ObjectKey{Name: p.Config.NodeName}, &nc); err != nil {
		return client.IgnoreNotFound(err)
	}
	var want ciliumv2.CiliumBGPNodeStatus
	if p.Config.StatusReport {
		want = BuildStatus(nc.Generation, nc.Status.Conditions, a.state, a.applyErr, p.Speaker.Status(ctx, p.Config.RouteLimit))
	}
	_, err := p.writer.Patch(ctx, &nc, func(o client.Object) { o.(*ciliumv2.CiliumBGPNodeConfig).Status = want })
	return err
}
