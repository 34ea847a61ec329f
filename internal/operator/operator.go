// Package operator holds what every Plexus controller binary shares: its
// standard flags, a controller-runtime manager with leader election, metrics
// and probes, and structured logging. A feature's main is then a few lines:
// bind flags, NewManager, register its reconcilers, Run.
package operator

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/plexus-net/plexus/internal/passes"
)

// Flags are the command-line settings every controller binary has.
type Flags struct {
	MetricsAddr             string
	ProbeAddr               string
	PprofAddr               string
	LeaderElect             bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	LeaseDuration           time.Duration
	RenewDeadline           time.Duration
	RetryPeriod             time.Duration
	KubeAPIQPS              float64
	KubeAPIBurst            int
	// Passes are the settings of the controller's pass runner.
	Passes passes.Settings
	Log    zap.Options
}

// Bind registers the flags on fs; name is the controller's name (lbipam, bgp, …).
func (f *Flags) Bind(fs *flag.FlagSet, name string) {
	fs.StringVar(&f.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (/metrics); \"0\" turns it off")
	fs.StringVar(&f.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	fs.StringVar(&f.PprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints for profiling; \"0\" (the default) turns them off")
	fs.BoolVar(&f.LeaderElect, "leader-elect", true, "elect a leader so that only one replica acts at a time")
	fs.StringVar(&f.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader-election Lease (default: the pod's own namespace)")
	fs.StringVar(&f.LeaderElectionID, "leader-election-id", "plexus-"+name, "name of the leader-election Lease")
	fs.DurationVar(&f.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's Lease lasts without renewal")
	fs.DurationVar(&f.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it steps down")
	fs.DurationVar(&f.RetryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to take or renew the Lease")
	fs.Float64Var(&f.KubeAPIQPS, "kube-api-qps", 100, "client-side limit of API requests per second (a negative value turns it off; the API server's priority and fairness still apply)")
	fs.IntVar(&f.KubeAPIBurst, "kube-api-burst", 200, "burst above --kube-api-qps")
	fs.IntVar(&f.Passes.Workers, "workers", 16, "API writes in flight at once")
	fs.DurationVar(&f.Passes.MinPassInterval, "min-pass-interval", 100*time.Millisecond, "least time between the starts of two passes while events keep coming; an event after a quiet spell is handled at once")
	f.Log.BindFlags(fs)
}

// NewScheme returns a scheme with the built-in kinds and those added by adders.
func NewScheme(adders ...func(*runtime.Scheme) error) (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range append([]func(*runtime.Scheme) error{clientgoscheme.AddToScheme}, adders...) {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewManager builds the manager of controller name with the shared settings.
// Probes answer as soon as the process serves; readiness waits for the
// informer caches, so a replica is ready only once it can act.
// Options change the manager's options before it is built (e.g. its cache).
func NewManager(name string, f *Flags, scheme *runtime.Scheme, options ...func(*ctrl.Options)) (ctrl.Manager, error) {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.Log)).WithName(name))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(f.KubeAPIQPS), f.KubeAPIBurst
	leaseDuration, renewDeadline, retryPeriod := f.LeaseDuration, f.RenewDeadline, f.RetryPeriod
	opts := ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: f.MetricsAddr},
		HealthProbeBindAddress:        f.ProbeAddr,
		PprofBindAddress:              f.PprofAddr,
		LeaderElection:                f.LeaderElect,
		LeaderElectionID:              f.LeaderElectionID,
		LeaderElectionNamespace:       f.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true, // a clean shutdown hands over at once
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
	}
	for _, o := range options {
		o(&opts)
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// Run starts mgr and blocks until SIGTERM or SIGINT; it exits the process with
// a non-zero status when the manager fails.
func Run(mgr ctrl.Manager) {
	log := ctrl.Log.WithName("setup")
	log.Info("starting")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// Fatal logs err and exits; for errors while a main sets up.
func Fatal(err error, msg string) {
	ctrl.Log.WithName("setup").Error(err, msg)
	os.Exit(1)
}
