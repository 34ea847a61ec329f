package bgp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
	"github.com/plexus-net/plexus/nodeplugins/bgp/speaker"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// freePort is a TCP port free on 127.0.0.2.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startReceiver is a GoBGP router at 127.0.0.2:port (AS 65000) that accepts
// the plugin's session from 127.0.0.1 (AS 65001).
func startReceiver(t *testing.T, port int) *server.BgpServer {
	ctx := context.Background()
	s := server.NewBgpServer()
	go s.Serve()
	t.Cleanup(s.Stop)
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: "127.0.0.2", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.2"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}}},
	}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// runPlugin runs the plugin with its real speaker and its own cache
// restrictions, as the binary does.
func runPlugin(t *testing.T, cfg Config, opts ...func(*Plugin)) (stop func()) {
	sp := speaker.New(testr.New(t).WithName("speaker"))
	stopMgr := env.RunManager(t, func(mgr ctrl.Manager) error {
		p := &Plugin{Client: mgr.GetClient(), Config: cfg, Speaker: sp, Log: testr.New(t)}
		for _, o := range opts {
			o(p)
		}
		return p.SetupWithManager(mgr)
	}, func(o *ctrl.Options) { o.Cache = CacheOptions(cfg) })
	return func() { stopMgr(); sp.Stop() }
}

func condition(nc *ciliumv2.CiliumBGPNodeConfig, typ string) *metav1.Condition {
	return meta.FindStatusCondition(nc.Status.Conditions, typ)
}

// TestB7_B14_B21_B64_B65_PluginStatus runs the plugin, with its real speaker,
// against a real API server and a GoBGP router on loopback: the session
// comes up and a Service's ClusterIP reaches the router; the NodeConfig's
// status shows the session, its timers, counts and routes; a missing auth
// Secret gives a condition (a Secret of that name in another namespace does
// not count) and one that exists clears it; a resync writes nothing; and
// with status reporting off the status is cleared.
func TestB7_B14_B21_B64_B65_PluginStatus(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	c := env.Client
	port := freePort(t)
	rcv := startReceiver(t, port)
	node := "bgp-plugin-node"
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "bgp-plugin-web", Namespace: "default", Labels: map[string]string{"bgp": "yes"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	objs := []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}},
		svc,
		&ciliumv2.CiliumBGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp-plugin", Labels: map[string]string{"test": "bgp-plugin"}},
			Spec: ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: []ciliumv2.BGPAdvertisement{{
				AdvertisementType: ciliumv2.BGPServiceAdvert,
				Service:           &ciliumv2.BGPServiceOptions{Addresses: []ciliumv2.BGPServiceAddressType{ciliumv2.BGPClusterIPAddr}},
				Selector:          &metav1.LabelSelector{MatchLabels: map[string]string{"bgp": "yes"}},
				Attributes:        &ciliumv2.BGPAttributes{Communities: &ciliumv2.BGPCommunities{Standard: []ciliumv2.BGPStandardCommunity{"65000:99"}}},
			}}}},
		&ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: "bgp-plugin"}, Spec: ciliumv2.CiliumBGPPeerConfigSpec{
			Transport:     &ciliumv2.CiliumBGPTransport{PeerPort: ptr.To(int32(port))},
			Timers:        &ciliumv2.CiliumBGPTimers{ConnectRetryTimeSeconds: ptr.To[int32](1), HoldTimeSeconds: ptr.To[int32](9), KeepAliveTimeSeconds: ptr.To[int32](3)},
			AuthSecretRef: ptr.To("bgp-plugin-auth"),
			Families: []ciliumv2.CiliumBGPFamilyWithAdverts{{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"},
				Advertisements: &metav1.LabelSelector{MatchLabels: map[string]string{"test": "bgp-plugin"}}}},
		}},
		&ciliumv2.CiliumBGPNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: ciliumv2.CiliumBGPNodeSpec{BGPInstances: []ciliumv2.CiliumBGPNodeInstance{{
			Name: "main", LocalASN: ptr.To[int64](65001), RouterID: ptr.To("127.0.0.1"),
			Peers: []ciliumv2.CiliumBGPNodePeer{{Name: "router", PeerAddress: ptr.To("127.0.0.2"), PeerASN: ptr.To[int64](65000),
				LocalAddress: ptr.To("127.0.0.1"), PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "bgp-plugin"}}},
		}}}},
		// B21: the right name in the wrong namespace.
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bgp-plugin-auth", Namespace: "default"}, StringData: map[string]string{"password": "x"}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
	}
	cfg := Config{NodeName: node, IPAMMode: desired.IPAMClusterPool, IPv4: true, SecretNamespace: "kube-system",
		StatusReport: true, RouteLimit: 10, StatusInterval: time.Second}
	stop := runPlugin(t, cfg)

	clusterIP := svc.Spec.ClusterIP + "/32"
	var nc ciliumv2.CiliumBGPNodeConfig
	eventually(t, 30*time.Second, "session established, route advertised and reported", func() error {
		if err := c.Get(ctx, client.ObjectKey{Name: node}, &nc); err != nil {
			return err
		}
		if len(nc.Status.BGPInstances) != 1 || len(nc.Status.BGPInstances[0].Peers) != 1 {
			return fmt.Errorf("status %+v", nc.Status)
		}
		p := nc.Status.BGPInstances[0].Peers[0]
		if p.PeeringState != ciliumv2.BGPPeeringStateEstablished || len(p.AdvertisedRoutes) != 1 {
			return fmt.Errorf("peer %+v", p)
		}
		return nil
	})
	p := nc.Status.BGPInstances[0].Peers[0]
	if p.Timers == nil || *p.Timers.AppliedHoldTimeSeconds != 9 || *p.Timers.AppliedKeepaliveSeconds != 3 {
		t.Errorf("applied timers %+v, want 9/3", p.Timers)
	}
	if r := p.AdvertisedRoutes[0]; r.Prefix != clusterIP || r.NextHop != "127.0.0.1" || strings.Join(r.Communities, ",") != "65000:99" {
		t.Errorf("advertised %+v, want %s via 127.0.0.1 with 65000:99", r, clusterIP)
	}
	if len(p.RouteCount) != 1 || p.RouteCount[0].Advertised != 1 {
		t.Errorf("route counts %+v, want 1 advertised", p.RouteCount)
	}
	if nc.Status.PeersEstablished != 1 || nc.Status.PeersTotal != 1 || nc.Status.ObservedGeneration != nc.Generation {
		t.Errorf("summary %d/%d gen %d", nc.Status.PeersEstablished, nc.Status.PeersTotal, nc.Status.ObservedGeneration)
	}
	var received int
	if err := rcv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}},
		func(d *api.Destination) {
			if d.Prefix == clusterIP {
				received++
			}
		}); err != nil || received != 1 {
		t.Errorf("the router holds %s %d times (%v)", clusterIP, received, err)
	}
	// B7 and B21: the Secret is missing from kube-system, whatever default holds.
	if cond := condition(&nc, ConditionMissingAuthSecret); cond == nil || cond.Status != metav1.ConditionTrue || !strings.Contains(cond.Message, "bgp-plugin-auth") {
		t.Errorf("MissingAuthSecret %+v, want True naming the Secret", cond)
	}
	if cond := condition(&nc, ciliumv2.BGPNodeConditionReady); cond == nil || cond.Status != metav1.ConditionFalse {
		t.Errorf("Ready %+v with a missing Secret", cond)
	}

	// A resync (the status interval ticks every second) writes nothing.
	rv := nc.ResourceVersion
	time.Sleep(3 * time.Second)
	if err := c.Get(ctx, client.ObjectKey{Name: node}, &nc); err != nil {
		t.Fatal(err)
	}
	if nc.ResourceVersion != rv {
		t.Errorf("status rewritten while nothing changed: resourceVersion %s -> %s", rv, nc.ResourceVersion)
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bgp-plugin-auth", Namespace: "kube-system"}, StringData: map[string]string{"password": "s3cret"}}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), secret) })
	eventually(t, 30*time.Second, "MissingAuthSecret clears once the Secret exists", func() error {
		if err := c.Get(ctx, client.ObjectKey{Name: node}, &nc); err != nil {
			return err
		}
		if cond := condition(&nc, ConditionMissingAuthSecret); cond == nil || cond.Status != metav1.ConditionFalse {
			return fmt.Errorf("MissingAuthSecret %+v", cond)
		}
		return nil
	})

	// B65: with status reporting off, the status is emptied.
	stop()
	cfg.StatusReport = false
	runPlugin(t, cfg)
	eventually(t, 30*time.Second, "status cleared with status reporting off", func() error {
		if err := c.Get(ctx, client.ObjectKey{Name: node}, &nc); err != nil {
			return err
		}
		if len(nc.Status.BGPInstances) > 0 || len(nc.Status.Conditions) > 0 || nc.Status.PeersTotal != 0 {
			return fmt.Errorf("status %+v", nc.Status)
		}
		return nil
	})
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, timeout, err)
}
