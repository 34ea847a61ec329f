// Package testenv runs controller tests against a real kube-apiserver and
// etcd (controller-runtime's envtest), with the binaries `make test` builds
// from Go modules (hack/build-controlplane.sh) and Plexus's own CRDs.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/operator"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	env    *envtest.Environment
}

// skipReason is set when no control plane could be started.
var skipReason string

// Start starts the control plane for a test binary's TestMain. Without
// KUBEBUILDER_ASSETS it returns nil and every Require skips with the reason;
// `make test` always sets it.
func Start() (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		skipReason = "KUBEBUILDER_ASSETS is not set: run `make test`, which builds kube-apiserver and etcd from Go modules and points this at them"
		return nil, nil
	}
	e := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases"), filepath.Join(repoRoot(), "config", "gateway-api")},
		ErrorIfCRDPathMissing: true,
	}
	// Dual-stack Service ranges, so that PreferDualStack and RequireDualStack
	// Services are admitted as in a dual-stack cluster.
	e.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112")
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	cfg.QPS, cfg.Burst = -1, -1 // no client-side throttling in tests
	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, ciliumv2alpha1.AddToScheme, nodesv1alpha1.AddToScheme, gwv1.Install)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &Env{Config: cfg, Client: c, env: e}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	if e == nil {
		return nil
	}
	return e.env.Stop()
}

// Require skips t when no control plane is running.
func Require(t testing.TB, e *Env) {
	t.Helper()
	if e == nil {
		t.Skip(skipReason)
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// RunManager runs a manager against the control plane, as a controller binary
// does, with setup registering the reconcilers. The returned func stops it and
// reports its error; the end of the test stops it too. Options change the
// manager's options (a plugin's cache restrictions, say).
func (e *Env) RunManager(t testing.TB, setup func(ctrl.Manager) error, options ...func(*ctrl.Options)) (stop func()) {
	t.Helper()
	o := ctrl.Options{
		Scheme:                 e.Client.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
	for _, f := range options {
		f(&o)
	}
	mgr, err := ctrl.NewManager(e.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := setup(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Main is a test binary's TestMain: it starts the control plane into *env
// (nil without KUBEBUILDER_ASSETS, so tests skip), runs the tests, stops it
// and exits with the tests' code. Controller logs are discarded.
func Main(m *testing.M, env **Env) {
	ctrl.SetLogger(logr.Discard())
	var err error
	if *env, err = Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := (*env).Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

// AdminKubeconfig returns a kubeconfig for a new cluster-admin user of the
// given name, for running a controller binary against the control plane.
func (e *Env) AdminKubeconfig(name string) ([]byte, error) {
	user, err := e.env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	return user.KubeConfig()
}

// Eventually polls check every 50 ms until it returns nil, failing t with
// what and check's last error after timeout. Controllers converge through
// watches, so tests wait for the state of the world, never for a call.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
