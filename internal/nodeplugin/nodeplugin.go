// Package nodeplugin holds what every Plexus node plugin process shares: its
// manager (one instance per node, no leader election, a cache that holds
// only the node's own desired-state object) and the asynchronous status
// writer that keeps the datapath from ever waiting for the API server.
package nodeplugin

import (
	"context"
	"flag"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/plexus-net/plexus/internal/statuswrite"
)

// startTimeout bounds NewManager's retries.
const startTimeout = time.Minute

// Flags are the process flags every node plugin has.
type Flags struct {
	MetricsAddr  string
	ProbeAddr    string
	KubeAPIQPS   float64
	KubeAPIBurst int
	Log          zap.Options
}

// Bind registers the flags on fs (--kubeconfig is controller-runtime's).
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.StringVar(&f.MetricsAddr, "metrics-bind-address", "0", "address of the Prometheus metrics endpoint (/metrics); \"0\" turns it off")
	fs.StringVar(&f.ProbeAddr, "health-probe-bind-address", "0", "address of the /healthz and /readyz probes; \"0\" turns them off")
	fs.Float64Var(&f.KubeAPIQPS, "kube-api-qps", 20, "client-side limit of API requests per second")
	fs.IntVar(&f.KubeAPIBurst, "kube-api-burst", 40, "burst above --kube-api-qps")
	f.Log.BindFlags(fs)
}

// Logger is the process logger the flags ask for, named name; it is also
// set as controller-runtime's.
func (f *Flags) Logger(name string) logr.Logger {
	l := zap.New(zap.UseFlagOptions(&f.Log)).WithName(name)
	ctrl.SetLogger(l)
	return l
}

// OwnObject restricts the cache's informer for obj's kind to the object
// named nodeName, so a node reads one object whatever the cluster's size.
func OwnObject(obj client.Object, nodeName string) cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		obj: {Field: fields.OneTermEqualSelector("metadata.name", nodeName)},
	}}
}

// NewManager builds a node plugin's manager: one instance per node, each
// acting on its own node, so no leader election. Building it asks the API
// server about the kinds the cache is restricted for; while the API server
// cannot be reached (a node whose link just came back) it retries for up
// to startTimeout rather than leaving the node without its plugin until the
// next restart.
func NewManager(f *Flags, scheme *runtime.Scheme, c cache.Options) (ctrl.Manager, error) {
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	restCfg.QPS, restCfg.Burst = float32(f.KubeAPIQPS), f.KubeAPIBurst
	var mgr ctrl.Manager
	deadline := time.Now().Add(startTimeout)
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 4*time.Second) {
		mgr, err = ctrl.NewManager(restCfg, ctrl.Options{
			Scheme:                 scheme,
			Cache:                  c,
			Metrics:                metricsserver.Options{BindAddress: f.MetricsAddr},
			HealthProbeBindAddress: f.ProbeAddr,
		})
		if err == nil || time.Now().Add(wait).After(deadline) {
			break
		}
		ctrl.Log.Info("cannot create the manager yet; retrying", "error", err.Error(), "in", wait)
		time.Sleep(wait)
	}
	if err != nil {
		return nil, err
	}
	if f.ProbeAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
	}
	return mgr, nil
}

// WriteStatus calls write whenever a value arrives on changed or wake,
// after waiting coalesce for the rest of a burst (a failover changes a
// report more than once), with never more than one write in flight, and
// retries a failed write every second, until ctx ends.
func WriteStatus(ctx context.Context, log logr.Logger, coalesce time.Duration, changed, wake <-chan struct{}, write func(context.Context) error) error {
	retry := time.NewTimer(0)
	<-retry.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-wake:
		case <-retry.C:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(coalesce):
		}
		if err := write(ctx); err != nil {
			log.Info("status write failed; retrying", "error", err.Error())
			retry.Reset(time.Second)
		}
	}
}

// Wiring connects a node plugin's core, which needs no API server, to its
// node's own desired-state object of kind T: it hands the core every
// version of the object (nil once it is gone), runs the core, and writes
// the core's report into the object's status, asynchronously and coalesced,
// only when it changes something.
type Wiring[T any, P interface {
	*T
	client.Object
}] struct {
	// Name names the controller (in logs and metrics).
	Name     string
	Client   client.Client
	NodeName string
	// Feed receives the object (nil when it does not exist); it must not
	// block.
	Feed func(P)
	// Run is the core; Reports receives a value whenever its report changes.
	Run     func(context.Context) error
	Reports <-chan struct{}
	// HasReport is false while the core has nothing to say (it has not seen
	// the spec yet); Status puts its report into obj's status.
	HasReport func() bool
	Status    func(obj P)
	// Coalesce: after a report changes, wait this long for more changes
	// before writing. Default 100 ms.
	Coalesce time.Duration

	writer  statuswrite.Writer
	trigger chan struct{}
}

// SetupWithManager registers the feed, the core and the status writer.
func (w *Wiring[T, P]) SetupWithManager(mgr ctrl.Manager) error {
	if w.Coalesce <= 0 {
		w.Coalesce = 100 * time.Millisecond
	}
	w.writer.Client = w.Client
	w.trigger = make(chan struct{}, 1)
	own := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == w.NodeName })
	if err := ctrl.NewControllerManagedBy(mgr).
		Named(w.Name).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		For(P(new(T)), builder.WithPredicates(own)).
		Complete(reconcile.Func(w.reconcile)); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(w.Run)); err != nil {
		return err
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return WriteStatus(ctx, log.FromContext(ctx).WithName("status"), w.Coalesce, w.Reports, w.trigger, w.writeOnce)
	}))
}

// reconcile hands the cached object to the core. Every event (status ones
// too: the cache then shows the plugin's own write) also wakes the status
// writer, which writes only if something differs.
func (w *Wiring[T, P]) reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) { //nolint:unparam // reconcile.Func's signature
	obj := P(new(T))
	err := w.Client.Get(ctx, client.ObjectKey{Name: w.NodeName}, obj)
	switch {
	case apierrors.IsNotFound(err):
		w.Feed(nil)
	case err != nil:
		return reconcile.Result{}, err
	default:
		w.Feed(obj)
	}
	select {
	case w.trigger <- struct{}{}:
	default:
	}
	return reconcile.Result{}, nil
}

func (w *Wiring[T, P]) writeOnce(ctx context.Context) error {
	obj := P(new(T))
	if err := w.Client.Get(ctx, client.ObjectKey{Name: w.NodeName}, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !w.HasReport() {
		return nil
	}
	_, err := w.writer.Patch(ctx, obj, func(o client.Object) { w.Status(o.(P)) })
	return err
}
