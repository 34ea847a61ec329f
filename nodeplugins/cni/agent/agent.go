// Package agent is the node side of Plexus pod IPAM: a daemon on every node
// that hands out pod addresses to the CNI plugin over a unix socket, from the
// CIDRs the IPAM controller gave the node in its CiliumNode. In multi-pool
// mode it also asks the controller for CIDRs (spec.ipam.pools.requested) and
// gives back the ones it no longer needs. In crd mode it hands out the single
// addresses another actor lists in spec.ipam.pool and reports the ones in use
// in status.ipam.used. Allocations live in a file and survive restarts;
// addresses of pods that no longer exist are collected.
//
// The agent reads only what its node needs: its own CiliumNode, the pods
// scheduled to it, namespaces (for the pool annotation) and the pools.
package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/internal/selectors"
	"github.com/plexus-net/plexus/nodeplugins/cni/ipam"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnodes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnodes/status,verbs=get;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumpodippools,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnodeconfigs,verbs=get;list;watch

// Mode is the IPAM mode of the cluster.
type Mode string

// The modes.
const (
	// ModeClusterPool and ModeKubernetes: one pool, "default", made of the
	// node's spec.ipam.podCIDRs.
	ModeClusterPool Mode = "cluster-pool"
	ModeKubernetes  Mode = "kubernetes"
	// ModeMultiPool: per-pool CIDRs in spec.ipam.pools.allocated, asked for in
	// spec.ipam.pools.requested.
	ModeMultiPool Mode = "multi-pool"
	// ModeCRD: one pool, "default", made of the single addresses listed in
	// spec.ipam.pool and spec.ipam.ipv6-pool by another actor; the ones in
	// use are reported in status.ipam.used and ipv6-used.
	ModeCRD Mode = "crd"
)

// PoolAnnotation picks a pod's pool, on the pod or its namespace.
const PoolAnnotation = "ipam.cilium.io/ip-pool"

// RequirePoolMatchAnnotation makes, set to "true" on a pod or its
// namespace, a pod that no pool names or selects wait instead of taking the
// default pool (Cilium 1.19).
const RequirePoolMatchAnnotation = "ipam.cilium.io/require-pool-match"

// DefaultPool is the pool of pods that pick none.
const DefaultPool = "default"

// Config is the agent's settings.
type Config struct {
	NodeName string
	Mode     Mode
	// PreAllocate is, per pool, how many addresses per family to hold ahead
	// of need (multi-pool).
	PreAllocate map[string]int
	// SocketPath is where the CNI plugin reaches the agent.
	SocketPath string
	// StateDir keeps the allocations across restarts.
	StateDir string
	// GCInterval spaces garbage collections; GCGrace protects young
	// allocations, whose pod the cache may not have seen yet.
	GCInterval time.Duration
	GCGrace    time.Duration
	// CIDRWait bounds how long an ADD waits for the node to receive a CIDR of
	// the pod's pool.
	CIDRWait time.Duration
	// BootID identifies the kernel boot; allocations of an earlier boot are
	// dropped. Empty reads /proc/sys/kernel/random/boot_id.
	BootID string
	// NodeConfigNamespace is where CiliumNodeConfigs are read (multi-pool:
	// their ipam-default-ip-pool is the node's default pool); empty reads
	// none. It must match ManagerOptions.NodeConfigNamespace.
	NodeConfigNamespace string
	// UsedUpdateInterval spaces the writes of status.ipam.used (crd mode),
	// so that a burst of pods costs one write: Cilium's
	// ipam-cilium-node-update-rate, 15 s by default.
	UsedUpdateInterval time.Duration
}

func (c *Config) validate() error {
	if c.NodeName == "" {
		return errors.New("the node name is required (--node-name)")
	}
	switch c.Mode {
	case ModeClusterPool, ModeKubernetes, ModeMultiPool, ModeCRD:
	default:
		return fmt.Errorf("unknown IPAM mode %q: use cluster-pool, multi-pool, kubernetes or crd", c.Mode)
	}
	for pool, n := range c.PreAllocate {
		if n < 0 {
			return fmt.Errorf("pre-allocation of pool %q is negative", pool)
		}
	}
	if c.SocketPath == "" || c.StateDir == "" {
		return errors.New("the socket path and the state directory are required")
	}
	if c.GCInterval <= 0 {
		c.GCInterval = time.Minute
	}
	if c.CIDRWait <= 0 {
		c.CIDRWait = 30 * time.Second
	}
	if c.UsedUpdateInterval <= 0 {
		c.UsedUpdateInterval = 15 * time.Second
	}
	return nil
}

// NewManager returns a controller-runtime manager whose cache holds only what
// the agent of node reads. The agent acts for its own node, so there is no
// leader election.
func NewManager(rc *rest.Config, node string, opts ManagerOptions) (manager.Manager, error) {
	byObject := map[client.Object]cache.ByObject{
		&ciliumv2.CiliumNode{}: {Field: fields.OneTermEqualSelector("metadata.name", node)},
		&corev1.Pod{}:          {Field: fields.OneTermEqualSelector("spec.nodeName", node)},
		&corev1.Node{}:         {Field: fields.OneTermEqualSelector("metadata.name", node)},
	}
	if opts.NodeConfigNamespace != "" {
		byObject[&ciliumv2.CiliumNodeConfig{}] = cache.ByObject{Namespaces: map[string]cache.Config{opts.NodeConfigNamespace: {}}}
	}
	return ctrl.NewManager(rc, ctrl.Options{
		Scheme:                 opts.Scheme,
		Metrics:                metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress: opts.ProbeAddr,
		// One agent per process in production; tests run several in turn.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         byObject,
		},
	})
}

// ManagerOptions are NewManager's settings besides the node.
type ManagerOptions struct {
	Scheme *runtime.Scheme
	// MetricsAddr and ProbeAddr are the metrics and probe addresses; "0" (or
	// "" for probes) turns them off.
	MetricsAddr string
	ProbeAddr   string
	// NodeConfigNamespace is the only namespace whose CiliumNodeConfigs are
	// cached (see Config).
	NodeConfigNamespace string
}

// NewScheme returns the kinds the agent reads.
func NewScheme() (*runtime.Scheme, error) {
	return operator.NewScheme(ciliumv2.AddToScheme, ciliumv2alpha1.AddToScheme)
}

// Agent hands out pod addresses on one node.
type Agent struct {
	cfg    Config
	client client.Client // cache-backed reads, direct writes
	api    client.Reader // uncached reads: conflicts, pods the cache lacks
	cache  cache.Cache
	alloc  *ipam.Allocator
	log    logr.Logger

	trigger chan event.GenericEvent

	mu sync.Mutex
	// waiting are the pods whose ADD waits for a CIDR of a pool: they count
	// as pending even before the cache sees them.
	waiting map[string]string // pod UID (or key) → pool
	// retired are CIDRs the agent gave back; they are ignored while the
	// CiliumNode in the cache still lists them.
	retired map[netip.Prefix]bool
	// poolsChanged is closed (and replaced) whenever the pools change, to
	// wake ADDs that wait for a CIDR.
	poolsChanged chan struct{}
	// synced is set once the pools were read from the CiliumNode;
	// poolsSeen is what they were last.
	synced    bool
	poolsSeen string
	// usedWritten is when status.ipam.used was last written (crd mode).
	usedWritten time.Time
}

// New builds the agent on mgr: the reconciler of its CiliumNode, the garbage
// collector and the socket server, all started with the manager.
func New(mgr manager.Manager, cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.BootID == "" {
		if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
			cfg.BootID = strings.TrimSpace(string(b))
		}
	}
	log := mgr.GetLogger().WithName("cni-agent").WithValues("node", cfg.NodeName)
	alloc, err := ipam.New(ipam.FileStore{Path: filepath.Join(cfg.StateDir, "allocations.json")}, ipam.Options{
		Node:   cfg.NodeName,
		BootID: cfg.BootID,
		OnRelease: func(al ipam.Allocation, why string) {
			log.Info("released addresses", "pod", al.Namespace+"/"+al.Name, "podUID", al.UID, "container", al.ContainerID, "ips", ipsOf(al), "reason", why)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("restoring allocations: %w", err)
	}
	a := &Agent{
		cfg:          cfg,
		client:       mgr.GetClient(),
		api:          mgr.GetAPIReader(),
		cache:        mgr.GetCache(),
		alloc:        alloc,
		log:          log,
		trigger:      make(chan event.GenericEvent, 1),
		waiting:      map[string]string{},
		retired:      map[netip.Prefix]bool{},
		poolsChanged: make(chan struct{}),
	}
	log.Info("restored allocations", "count", len(alloc.List()), "mode", cfg.Mode)

	toNode := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: cfg.NodeName}}}
	})
	err = ctrl.NewControllerManagedBy(mgr).
		Named("plexus-cni-agent").
		For(&ciliumv2.CiliumNode{}).
		Watches(&corev1.Pod{}, toNode).
		Watches(&corev1.Namespace{}, toNode).
		Watches(&ciliumv2alpha1.CiliumPodIPPool{}, toNode).
		// Its labels choose its CiliumNodeConfigs, so the default pool of
		// pending pods.
		Watches(&corev1.Node{}, toNode, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(a.trigger, toNode)).
		Complete(reconcile.Func(a.reconcile))
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(manager.RunnableFunc(a.runGC)); err != nil {
		return nil, err
	}
	if err := mgr.Add(manager.RunnableFunc(a.serve)); err != nil {
		return nil, err
	}
	return a, nil
}

// Allocator exposes the allocator (tests read it).
func (a *Agent) Allocator() *ipam.Allocator { return a.alloc }

// poke asks for one more reconcile without blocking.
func (a *Agent) poke() {
	select {
	case a.trigger <- event.GenericEvent{Object: &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName}}}:
	default: // one is queued already
	}
}

// reconcile reads the node's CIDRs into the allocator and, in multi-pool
// mode, writes the node's requests and gives back unneeded CIDRs.
func (a *Agent) reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var node ciliumv2.CiliumNode
	if err := a.client.Get(ctx, types.NamespacedName{Name: a.cfg.NodeName}, &node); err != nil {
		if apierrors.IsNotFound(err) {
			a.setPools(nil)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	switch a.cfg.Mode {
	case ModeCRD:
		return a.reconcileListed(ctx, &node)
	case ModeClusterPool, ModeKubernetes:
		a.setPools([]ipam.Pool{{Name: DefaultPool, CIDRs: parseCIDRs(node.Spec.IPAM.PodCIDRs, a.log)}})
		return reconcile.Result{}, nil
	}

	var poolList ciliumv2alpha1.CiliumPodIPPoolList
	if err := a.client.List(ctx, &poolList); err != nil {
		return reconcile.Result{}, err
	}
	pools := map[string]*ciliumv2alpha1.CiliumPodIPPool{}
	layouts := map[string]ipam.Layout{}
	for i := range poolList.Items {
		p := &poolList.Items[i]
		pools[p.Name] = p
		layouts[p.Name] = poolLayout(p)
	}
	a.setPools(a.nodePools(node.Spec.IPAM.Pools.Allocated, layouts))

	demands, err := a.demands(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	requests := planRequests(pools, a.cfg.PreAllocate, demands)
	releases := planReleases(node.Spec.IPAM.Pools.Allocated, requests, layouts, a.cidrUsed)
	var give []netip.Prefix
	for pool, cidrs := range releases {
		for _, c := range cidrs {
			if a.alloc.Retire(pool, c) { // refuses if an ADD took an address meanwhile
				give = append(give, c)
			}
		}
	}
	a.mu.Lock()
	for _, c := range give {
		a.retired[c] = true
	}
	a.mu.Unlock()
	return reconcile.Result{}, a.writeNode(ctx, &node, requests, give)
}

// nodePools builds the allocator's pools from spec.ipam.pools.allocated,
// leaving out CIDRs the agent gave back and forgetting those the controller
// has taken away since.
func (a *Agent) nodePools(allocated []ciliumv2.IPAMPoolAllocation, layouts map[string]ipam.Layout) []ipam.Pool {
	a.mu.Lock()
	defer a.mu.Unlock()
	listed := map[netip.Prefix]bool{}
	var out []ipam.Pool
	for _, al := range allocated {
		p := ipam.Pool{Name: al.Pool, Layout: layouts[al.Pool]}
		for _, c := range parseCIDRs(al.CIDRs, a.log) {
			listed[c] = true
			if !a.retired[c] {
				p.CIDRs = append(p.CIDRs, c)
			}
		}
		out = append(out, p)
	}
	for c := range a.retired {
		if !listed[c] {
			delete(a.retired, c)
		}
	}
	return out
}

// setPools hands the pools to the allocator and wakes waiting ADDs when
// they changed.
func (a *Agent) setPools(pools []ipam.Pool) {
	sort.Slice(pools, func(i, j int) bool { return pools[i].Name < pools[j].Name })
	fingerprint := fmt.Sprint(pools)
	a.alloc.SetPools(pools)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.synced && fingerprint == a.poolsSeen {
		return
	}
	a.synced, a.poolsSeen = true, fingerprint
	close(a.poolsChanged)
	a.poolsChanged = make(chan struct{})
}

func (a *Agent) cidrUsed(c netip.Prefix) bool {
	for _, al := range a.alloc.List() {
		for _, ip := range al.IPs {
			if c.Contains(ip.Address) {
				return true
			}
		}
	}
	return false
}

// demands counts, per pool, the addresses in use per family and the pods
// that wait for one: pods on the node without an allocation (not finished,
// not on the host network) and ADDs waiting for a CIDR.
func (a *Agent) demands(ctx context.Context) (map[string]demand, error) {
	out := map[string]demand{}
	get := func(pool string) demand {
		d, ok := out[pool]
		if !ok {
			d = demand{inUse: map[ipam.Family]int{}}
		}
		return d
	}
	allocated := map[string]bool{}
	for _, al := range a.alloc.List() {
		d := get(al.Pool)
		for _, ip := range al.IPs {
			d.inUse[ipam.FamilyOf(ip.Address)]++
		}
		out[al.Pool] = d
		if al.UID != "" {
			allocated[al.UID] = true
		}
	}
	var pods corev1.PodList
	if err := a.client.List(ctx, &pods); err != nil {
		return nil, err
	}
	pending := map[string]string{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != a.cfg.NodeName || p.Spec.HostNetwork || allocated[string(p.UID)] ||
			p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		pool, err := a.poolOf(ctx, p)
		if err != nil {
			// Its ADD fails with this error; the other pods' demand stands.
			a.log.V(1).Info("pod left out of the pool demand", "pod", p.Namespace+"/"+p.Name, "error", err.Error())
			continue
		}
		pending[string(p.UID)] = pool
	}
	a.mu.Lock()
	for uid, pool := range a.waiting {
		pending[uid] = pool
	}
	a.mu.Unlock()
	for _, pool := range pending {
		d := get(pool)
		d.pending++
		out[pool] = d
	}
	return out, nil
}

// poolOf is the pool a pod picks: its own annotation, else its namespace's,
// else the default pool (I11–I13).
func (a *Agent) poolOf(ctx context.Context, p *corev1.Pod) (string, error) {
	if v := p.Annotations[PoolAnnotation]; v != "" {
		return v, nil
	}
	var ns corev1.Namespace
	if err := a.client.Get(ctx, types.NamespacedName{Name: p.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
		return "", err
	}
	if v := ns.Annotations[PoolAnnotation]; v != "" {
		return v, nil
	}
	var pools ciliumv2alpha1.CiliumPodIPPoolList
	if err := a.client.List(ctx, &pools); err != nil {
		return "", err
	}
	switch pool, err := selectedPool(p, ns.Labels, pools.Items); {
	case err != nil:
		return "", err
	case pool != "":
		return pool, nil
	}
	for _, on := range []struct {
		where string
		ann   map[string]string
	}{{"pod", p.Annotations}, {"namespace", ns.Annotations}} {
		if on.ann[RequirePoolMatchAnnotation] == "true" {
			return "", fmt.Errorf("no CiliumPodIPPool is named or selects pod %s/%s, and the %s annotation on the %s forbids the default pool", p.Namespace, p.Name, RequirePoolMatchAnnotation, on.where)
		}
	}
	return a.defaultPool(ctx)
}

// defaultPool is the pool of pods that pick none: the
// ipam-default-ip-pool of the CiliumNodeConfigs that select this node (of
// several, the one whose name sorts last), else the pool named "default".
func (a *Agent) defaultPool(ctx context.Context) (string, error) {
	if a.cfg.NodeConfigNamespace == "" {
		return DefaultPool, nil
	}
	var configs ciliumv2.CiliumNodeConfigList
	if err := a.client.List(ctx, &configs, client.InNamespace(a.cfg.NodeConfigNamespace)); err != nil {
		if meta.IsNoMatchError(err) {
			return DefaultPool, nil // the CRD is not installed (yet): no configs
		}
		return "", fmt.Errorf("reading CiliumNodeConfigs: %w", err)
	}
	if len(configs.Items) == 0 {
		return DefaultPool, nil
	}
	var node corev1.Node
	if err := a.client.Get(ctx, types.NamespacedName{Name: a.cfg.NodeName}, &node); err != nil {
		return "", fmt.Errorf("reading Node %s for its CiliumNodeConfigs: %w", a.cfg.NodeName, err)
	}
	return nodeDefaultPool(configs.Items, node.Labels), nil
}

// nodeDefaultPool applies Cilium's per-node configuration rule to one key:
// of the configs whose selector matches the node's labels, the last by name
// that sets ipam-default-ip-pool wins. A selector that does not parse
// matches nothing.
func nodeDefaultPool(configs []ciliumv2.CiliumNodeConfig, nodeLabels map[string]string) string {
	slices.SortFunc(configs, func(x, y ciliumv2.CiliumNodeConfig) int { return strings.Compare(x.Name, y.Name) })
	pool := DefaultPool
	for _, c := range configs {
		v, ok := c.Spec.Defaults[ciliumv2.NodeConfigDefaultIPPool]
		if !ok || v == "" || c.Spec.NodeSelector == nil {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(c.Spec.NodeSelector); err == nil && sel.Matches(labels.Set(nodeLabels)) {
			pool = v
		}
	}
	return pool
}

// selectedPool is the pool whose podSelector and namespaceSelector select
// the pod (Cilium 1.19): "" when none does, an error naming them when
// several do. A pool without either selector selects no pod, and so does
// one whose selector does not parse (its Ready condition says so).
func selectedPool(pod *corev1.Pod, nsLabels map[string]string, pools []ciliumv2alpha1.CiliumPodIPPool) (string, error) {
	podLabels := labels.Set{}
	maps.Copy(podLabels, pod.Labels)
	podLabels[podNamespaceLabel], podLabels[podNameLabel] = pod.Namespace, pod.Name
	var matched []string
	for _, p := range pools {
		if p.Spec.PodSelector == nil && p.Spec.NamespaceSelector == nil {
			continue
		}
		podSel, err1 := selectors.Compile(p.Spec.PodSelector, true)
		nsSel, err2 := selectors.Compile(p.Spec.NamespaceSelector, true)
		if err1 == nil && err2 == nil && podSel.Matches(podLabels) && nsSel.Matches(labels.Set(nsLabels)) {
			matched = append(matched, p.Name)
		}
	}
	slices.Sort(matched)
	if len(matched) > 1 {
		return "", fmt.Errorf("pod %s/%s is selected by several CiliumPodIPPools (%s): a pod must match exactly one; make their podSelector and namespaceSelector exclusive, or name the pool with the %s annotation",
			pod.Namespace, pod.Name, strings.Join(matched, ", "), PoolAnnotation)
	}
	if len(matched) == 1 {
		return matched[0], nil
	}
	return "", nil
}

// The synthetic labels a pool's podSelector also matches.
const (
	podNamespaceLabel = "io.kubernetes.pod.namespace"
	podNameLabel      = "io.kubernetes.pod.name"
)

// writeNode writes the requests and removes the given-back CIDRs from
// spec.ipam.pools.allocated, only when that changes the CiliumNode, with
// optimistic concurrency against the controller's writes.
// The first attempt works on the cached object; after a conflict, on a fresh
// read.
func (a *Agent) writeNode(ctx context.Context, cached *ciliumv2.CiliumNode, requests []ciliumv2.IPAMPoolRequest, give []netip.Prefix) error {
	node := cached.DeepCopy()
	fresh := false
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if fresh {
			node = &ciliumv2.CiliumNode{}
			if err := a.api.Get(ctx, types.NamespacedName{Name: a.cfg.NodeName}, node); err != nil {
				return client.IgnoreNotFound(err)
			}
		}
		fresh = true
		before := node.Spec.IPAM.Pools.DeepCopy()
		node.Spec.IPAM.Pools.Requested = requests
		var kept []ciliumv2.IPAMPoolAllocation
		for _, al := range node.Spec.IPAM.Pools.Allocated {
			var cidrs []string
			for _, s := range al.CIDRs {
				c, err := netip.ParsePrefix(s)
				if err == nil && containsPrefix(give, c) {
					continue
				}
				cidrs = append(cidrs, s)
			}
			if len(cidrs) > 0 {
				kept = append(kept, ciliumv2.IPAMPoolAllocation{Pool: al.Pool, CIDRs: cidrs})
			}
		}
		node.Spec.IPAM.Pools.Allocated = kept
		if equality.Semantic.DeepEqual(before, &node.Spec.IPAM.Pools) {
			return nil
		}
		if err := a.client.Update(ctx, node); err != nil {
			return err
		}
		a.log.Info("updated pool requests", "requested", requests, "released", give)
		return nil
	})
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, x := range ps {
		if x == p.Masked() {
			return true
		}
	}
	return false
}

func parseCIDRs(ss []string, log logr.Logger) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		c, err := netip.ParsePrefix(s)
		if err != nil {
			log.Info("ignoring a CIDR that does not parse", "cidr", s)
			continue
		}
		out = append(out, c.Masked())
	}
	return out
}

func ipsOf(al ipam.Allocation) []string {
	var out []string
	for _, ip := range al.IPs {
		out = append(out, ip.Address.String())
	}
	return out
}
