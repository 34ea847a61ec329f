package l7proxy

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/test/testenv"
	"github.com/plexus-net/plexus/test/xdsclient"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	node      = "l7-node"
	secretsNS = "cilium-secrets"
	configNS  = "l7-test"
)

type harness struct {
	t     *testing.T
	ctx   context.Context
	c     client.Client
	state string
}

func newHarness(t *testing.T) *harness {
	testenv.Require(t, env)
	h := &harness{t: t, ctx: t.Context(), c: env.Client, state: filepath.Join(t.TempDir(), "accepted.json")}
	for _, ns := range []string{secretsNS, configNS} {
		if err := h.c.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	h.empty()
	t.Cleanup(h.empty)
	return h
}

func (h *harness) empty() {
	ctx := context.Background()
	h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &nodesv1alpha1.L7Proxy{})))
	h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &ciliumv2.CiliumClusterwideEnvoyConfig{})))
	h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &ciliumv2.CiliumEnvoyConfig{}, client.InNamespace(configNS))))
	h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(secretsNS))))
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// start runs the plugin as its binary does (cache restricted to the node's
// L7Proxy and the secrets namespace) with its xDS server on loopback, and
// returns the server's address.
func (h *harness) start() (addr string, stop func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	h.must(err)
	srv := NewServer(node, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	stopMgr := env.RunManager(h.t, func(mgr ctrl.Manager) error {
		return (&Plugin{Client: mgr.GetClient(), NodeName: node, SecretsNamespace: secretsNS, Server: srv, StatePath: h.state}).SetupWithManager(mgr)
	}, func(o *ctrl.Options) {
		o.Cache = nodeplugin.OwnObject(&nodesv1alpha1.L7Proxy{}, node)
		o.Cache.ByObject[&corev1.Secret{}] = ctrlcache.ByObject{Namespaces: map[string]ctrlcache.Config{secretsNS: {}}, Field: fields.Everything()}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stopMgr()
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("xDS server: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return l.Addr().String(), stop
}

// proxy connects an ADS client, as the node's Envoy would.
func (h *harness) proxy(addr string, check func(string, map[string]proto.Message) error) *xdsclient.Client {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	h.must(err)
	c := &xdsclient.Client{NodeID: node, Check: check}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = c.Run(ctx, conn) }()
	h.t.Cleanup(func() { cancel(); conn.Close() })
	return c
}

func (h *harness) eventually(what string, f func() error) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, what, f)
}

func (h *harness) status() nodesv1alpha1.L7ProxyStatus {
	var lp nodesv1alpha1.L7Proxy
	h.must(h.c.Get(h.ctx, client.ObjectKey{Name: node}, &lp))
	return lp.Status
}

func served(st nodesv1alpha1.L7ProxyStatus, name string) nodesv1alpha1.EnvoyConfigServed {
	for _, c := range st.Configs {
		if c.Name == name {
			return c
		}
	}
	return nodesv1alpha1.EnvoyConfigServed{}
}

func cecRef(name string) nodesv1alpha1.EnvoyConfigRef {
	return nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: configNS, Name: name}
}

// The plugin serves the node's configs to the proxy over ADS and reports
// what the proxy acknowledged: a bad config is named and left out, the
// others served; the proxy's refusal is reported on the config whose
// resource it names; a restarted plugin serves the accepted snapshot before
// it reads anything (L7-01, L7-02).
func TestTM1_TM2_ServesAndReportsAcknowledgements(t *testing.T) {
	h := newHarness(t)
	h.must(h.c.Create(h.ctx, &ciliumv2.CiliumEnvoyConfig{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: configNS},
		Spec: ciliumv2.CiliumEnvoyConfigSpec{Resources: app(t, "a", 10001)}}))
	h.must(h.c.Create(h.ctx, &ciliumv2.CiliumEnvoyConfig{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: configNS},
		Spec: ciliumv2.CiliumEnvoyConfigSpec{Resources: append(app(t, "bad", 10002),
			rawJSON(t, map[string]any{"@type": "type.googleapis.com/envoy.config.bogus.v3.Thing"}))}}))
	h.must(h.c.Create(h.ctx, &ciliumv2.CiliumClusterwideEnvoyConfig{ObjectMeta: metav1.ObjectMeta{Name: "cw"},
		Spec: ciliumv2.CiliumEnvoyConfigSpec{Resources: app(t, "cw", 10003)}}))
	h.must(h.c.Create(h.ctx, &nodesv1alpha1.L7Proxy{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: nodesv1alpha1.L7ProxySpec{Configs: []nodesv1alpha1.EnvoyConfigRef{
		{Kind: "CiliumClusterwideEnvoyConfig", Name: "cw"}, cecRef("a"), cecRef("bad"), cecRef("not-yet"),
	}}}))
	addr, stop := h.start()

	h.eventually("not connected before a proxy connects", func() error {
		st := h.status()
		if served(st, "bad").Error == "" || !strings.Contains(served(st, "bad").Error, "envoy.config.bogus.v3.Thing is not served") {
			return fmt.Errorf("bad config's error %q", served(st, "bad").Error)
		}
		return nil
	})

	var refuse atomic.Value // the route configuration the proxy refuses
	refuse.Store("")
	p := h.proxy(addr, func(typ string, rs map[string]proto.Message) error {
		name := refuse.Load().(string)
		if _, ok := rs[name]; ok && name != "" {
			return fmt.Errorf("route configuration %s: duplicate virtual host", name)
		}
		return nil
	})
	h.eventually("the proxy has a and cw, and the status says so", func() error {
		s := p.State()
		for _, l := range []string{"a-listener", "cw-listener"} {
			if _, ok := s.Resources[resource.ListenerType][l]; !ok {
				return fmt.Errorf("proxy listeners %v", keys(s.Resources[resource.ListenerType]))
			}
		}
		if _, ok := s.Resources[resource.ListenerType]["bad-listener"]; ok {
			return fmt.Errorf("the bad config was served")
		}
		st := h.status()
		if st.Version == "" || st.Version != s.Versions[resource.ListenerType] {
			return fmt.Errorf("status version %q, proxy has %q", st.Version, s.Versions[resource.ListenerType])
		}
		if served(st, "a").Generation != 1 || served(st, "cw").Generation != 1 || served(st, "not-yet").Generation != 0 || served(st, "not-yet").Error != "" {
			return fmt.Errorf("configs %+v", st.Configs)
		}
		ready := meta.FindStatusCondition(st.Conditions, "Ready")
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonNotServed || !strings.Contains(ready.Message, "bad") {
			return fmt.Errorf("Ready %+v", ready)
		}
		return nil
	})

	// The proxy refuses a's new route configuration: a keeps its old
	// generation and gets the refusal; cw is untouched.
	refuse.Store("a-route-v2")
	var a ciliumv2.CiliumEnvoyConfig
	h.must(h.c.Get(h.ctx, client.ObjectKey{Namespace: configNS, Name: "a"}, &a))
	a.Spec.Resources = raw(t, testListener(t, "a-listener", "a-route-v2", 10001), testRoute("a-route-v2", "a-cluster"), testCluster("a-cluster"), testEndpoints("a-cluster"))
	h.must(h.c.Update(h.ctx, &a))
	h.eventually("the refusal reported on a", func() error {
		st := h.status()
		sa := served(st, "a")
		if !strings.Contains(sa.Error, "the proxy refused it: route configuration a-route-v2: duplicate virtual host") || sa.Generation != 1 {
			return fmt.Errorf("a: %+v", sa)
		}
		if e := served(st, "cw").Error; e != "" {
			return fmt.Errorf("cw blamed: %s", e)
		}
		return nil
	})
	refuse.Store("")
	h.must(h.c.Get(h.ctx, client.ObjectKey{Namespace: configNS, Name: "a"}, &a))
	a.Spec.Resources = app(t, "a", 10011)
	h.must(h.c.Update(h.ctx, &a))
	var lp nodesv1alpha1.L7Proxy
	h.must(h.c.Get(h.ctx, client.ObjectKey{Name: node}, &lp))
	lp.Spec.Configs = []nodesv1alpha1.EnvoyConfigRef{{Kind: "CiliumClusterwideEnvoyConfig", Name: "cw"}, cecRef("a")}
	h.must(h.c.Update(h.ctx, &lp))
	h.eventually("serving once a is fixed and the bad config is gone", func() error {
		st := h.status()
		if served(st, "a").Generation != 3 || served(st, "a").Error != "" {
			return fmt.Errorf("a: %+v", served(st, "a"))
		}
		ready := meta.FindStatusCondition(st.Conditions, "Ready")
		if ready == nil || ready.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready %+v", ready)
		}
		return nil
	})
	accepted := h.status().Version

	// Restarted without the API server's objects (they are deleted first),
	// the plugin serves what the proxy last accepted at once.
	stop()
	srv := NewServer(node, logr.Discard())
	snap, ok, err := loadState(h.state)
	if err != nil || !ok {
		t.Fatalf("state file: ok=%v err=%v", ok, err)
	}
	h.must(srv.Set(h.ctx, snap))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	h.must(err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, l) }()
	p2 := h.proxy(l.Addr().String(), nil)
	h.eventually("the accepted snapshot served after a restart", func() error {
		s := p2.State()
		if s.Versions[resource.ListenerType] != accepted {
			return fmt.Errorf("version %q, want %q", s.Versions[resource.ListenerType], accepted)
		}
		if _, ok := s.Resources[resource.ListenerType]["a-listener"]; !ok {
			return fmt.Errorf("listeners %v", keys(s.Resources[resource.ListenerType]))
		}
		return nil
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
