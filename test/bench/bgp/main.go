// Command bgp measures how long the BGP node plugin takes to get a large
// number of prefixes to its peer, beside a ceiling: one GoBGP server
// sending the same number of prefixes straight to another (no Kubernetes,
// no translation). It also reports the plugin's CPU time and peak memory.
//
// The plugin run: a fresh kube-apiserver and etcd, N ClusterIP Services,
// the bin/plexus-bgp-node binary as its own process with a
// CiliumBGPNodeConfig that peers with a GoBGP server in this process over
// loopback. Once the session is up, a CiliumBGPAdvertisement that selects
// every Service's ClusterIP is created; the clock runs from that create
// until the peer holds every prefix.
//
//	go run ./test/bench/bgp -prefixes 10000 -runs 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/bench/benchutil"
)

const (
	peerASN  = 65000
	localASN = 65001
	nodeName = "bench-node"
)

var ipv4Unicast = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}

func main() {
	prefixes := flag.Int("prefixes", 10000, "prefixes (Services) per run")
	runs := flag.Int("runs", 3, "runs per mode; the median is reported")
	pluginBin := flag.String("plugin", "bin/plexus-bgp-node", "the BGP node plugin binary")
	port := flag.Int("port", 11179, "TCP port the peers listen on (loopback only)")
	flag.Parse()
	fmt.Printf("machine: %d CPUs, %s; %d prefixes, %d runs\n", runtime.NumCPU(), runtime.Version(), *prefixes, *runs)

	var ceiling, plugin, convergeCPU, idleCPU, rss, peak []time.Duration
	for r := range *runs {
		d, err := ceilingRun(*prefixes, *port)
		if err != nil {
			fail(err)
		}
		ceiling = append(ceiling, d)
		fmt.Printf("run %d: GoBGP to GoBGP: %d prefixes at the peer after %v\n", r+1, *prefixes, d.Round(time.Millisecond))

		p, err := pluginRun(*pluginBin, *prefixes, *port)
		if err != nil {
			fail(err)
		}
		plugin, convergeCPU, idleCPU = append(plugin, p.converge), append(convergeCPU, p.convergeCPU), append(idleCPU, p.idleCPU)
		rss, peak = append(rss, time.Duration(p.rssKB)), append(peak, time.Duration(p.peakRSSKB))
		fmt.Printf("run %d: plexus-bgp-node: %d prefixes at the peer after %v; CPU %v to converge, %v in %v at rest; RSS %d MiB (peak %d MiB)\n",
			r+1, *prefixes, p.converge.Round(time.Millisecond), p.convergeCPU, p.idleCPU, idle, p.rssKB/1024, p.peakRSSKB/1024)
	}
	fmt.Printf("\nmedian of %d runs, %d prefixes:\n", *runs, *prefixes)
	fmt.Printf("  GoBGP to GoBGP (ceiling):  %v\n", benchutil.Median(ceiling).Round(time.Millisecond))
	fmt.Printf("  plexus-bgp-node:           %v (advertisement created -> all prefixes at the peer)\n", benchutil.Median(plugin).Round(time.Millisecond))
	fmt.Printf("  plugin CPU to converge:    %v\n", benchutil.Median(convergeCPU))
	fmt.Printf("  plugin CPU at rest:        %v per %v\n", benchutil.Median(idleCPU), idle)
	fmt.Printf("  plugin RSS at rest:        %d MiB (peak %d MiB)\n", int(benchutil.Median(rss))/1024, int(benchutil.Median(peak))/1024)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

// receiver is a GoBGP server that accepts one neighbour and counts what it
// receives.
type receiver struct{ *server.BgpServer }

func newReceiver(ctx context.Context, addr string, port int, neighbour string, neighbourASN uint32) (*receiver, error) {
	s := quietServer()
	go s.Serve()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: peerASN, RouterId: addr, ListenPort: int32(port), ListenAddresses: []string{addr},
	}}); err != nil {
		return nil, err
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: neighbour, PeerAsn: neighbourASN},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: ipv4Unicast, Enabled: true}}},
	}}); err != nil {
		s.Stop()
		return nil, err
	}
	return &receiver{s}, nil
}

func (r *receiver) count(ctx context.Context) (int, error) {
	t, err := r.GetTable(ctx, &api.GetTableRequest{TableType: api.TableType_GLOBAL, Family: ipv4Unicast})
	if err != nil {
		return 0, err
	}
	return int(t.NumDestination), nil
}

// waitCount polls until the receiver holds n prefixes.
func (r *receiver) waitCount(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := r.count(ctx); err == nil && c >= n {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	c, _ := r.count(ctx)
	return fmt.Errorf("the peer holds %d of %d prefixes after %v", c, n, timeout)
}

func (r *receiver) waitEstablished(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		established := false
		_ = r.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			established = established || p.State.SessionState == api.PeerState_ESTABLISHED
		})
		if established {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no session established within " + timeout.String())
}

// ceilingRun: GoBGP at 127.0.0.3 sends n /32s to GoBGP at 127.0.0.4.
func ceilingRun(n, port int) (time.Duration, error) {
	ctx := context.Background()
	rcv, err := newReceiver(ctx, "127.0.0.4", port, "127.0.0.3", localASN)
	if err != nil {
		return 0, err
	}
	defer rcv.Stop()
	snd := quietServer()
	go snd.Serve()
	defer snd.Stop()
	if err := snd.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: localASN, RouterId: "127.0.0.3", ListenPort: -1}}); err != nil {
		return 0, err
	}
	if err := snd.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.4", PeerAsn: peerASN},
		Transport: &api.Transport{LocalAddress: "127.0.0.3", RemotePort: uint32(port)},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1}},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: ipv4Unicast, Enabled: true}}},
	}}); err != nil {
		return 0, err
	}
	if err := rcv.waitEstablished(ctx, 30*time.Second); err != nil {
		return 0, err
	}
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0})
	nh, _ := anypb.New(&api.NextHopAttribute{NextHop: "0.0.0.0"})
	start := time.Now()
	for i := range n {
		nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: hostAddr(i).String(), PrefixLen: 32})
		if _, err := snd.AddPath(ctx, &api.AddPathRequest{Path: &api.Path{Family: ipv4Unicast, Nlri: nlri, Pattrs: []*anypb.Any{origin, nh}}}); err != nil {
			return 0, err
		}
	}
	if err := rcv.waitCount(ctx, n, 2*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// quietServer is a GoBGP server that logs nothing (the bench prints its
// own lines).
func quietServer() *server.BgpServer {
	l := gobgplog.NewDefaultLogger()
	l.SetLevel(gobgplog.PanicLevel)
	return server.NewBgpServer(server.LoggerOption(l))
}

// hostAddr is the i-th address of 10.200.0.0/16 and beyond.
func hostAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(200 + i>>16), byte(i >> 8), byte(i)})
}

// pluginRun: n ClusterIP Services; the plugin peers with a receiver at
// 127.0.0.2; the advertisement is created once the session is up.
func pluginRun(bin string, n, port int) (pluginResult, error) {
	ctx := context.Background()
	cp, err := benchutil.Start()
	if err != nil {
		return pluginResult{}, err
	}
	defer cp.Stop()
	c := cp.Client
	for _, o := range []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}},
		&ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: ciliumv2.CiliumBGPPeerConfigSpec{
			Transport: &ciliumv2.CiliumBGPTransport{PeerPort: ptr.To(int32(port))},
			Timers:    &ciliumv2.CiliumBGPTimers{ConnectRetryTimeSeconds: ptr.To[int32](1)},
			Families: []ciliumv2.CiliumBGPFamilyWithAdverts{{
				CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"},
				Advertisements:  &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "bgp"}},
			}},
		}},
		&ciliumv2.CiliumBGPNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: nodeName}, Spec: ciliumv2.CiliumBGPNodeSpec{
			BGPInstances: []ciliumv2.CiliumBGPNodeInstance{{
				Name: "bench", LocalASN: ptr.To[int64](localASN), RouterID: ptr.To("127.0.0.1"),
				Peers: []ciliumv2.CiliumBGPNodePeer{{
					Name: "receiver", PeerAddress: ptr.To("127.0.0.2"), PeerASN: ptr.To[int64](peerASN),
					LocalAddress: ptr.To("127.0.0.1"), PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "bench"},
				}},
			}},
		}},
	} {
		if err := c.Create(ctx, o); err != nil {
			return pluginResult{}, fmt.Errorf("creating %T: %w", o, err)
		}
	}
	if _, err := benchutil.Create(n, 32, func(i int) error {
		return c.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%05d", i), Namespace: "default"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		})
	}); err != nil {
		return pluginResult{}, fmt.Errorf("creating Services: %w", err)
	}
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs); err != nil {
		return pluginResult{}, err
	}
	want := len(svcs.Items) // every Service has a ClusterIP, the API server's own included

	rcv, err := newReceiver(ctx, "127.0.0.2", port, "127.0.0.1", localASN)
	if err != nil {
		return pluginResult{}, err
	}
	defer rcv.Stop()
	proc, err := cp.StartProcess(bin, "--node-name="+nodeName, "--status-interval=5s")
	if err != nil {
		return pluginResult{}, err
	}
	stop := proc.Stop
	if err := rcv.waitEstablished(ctx, time.Minute); err != nil {
		stop()
		return pluginResult{}, err
	}
	before := proc.Usage()
	start := time.Now()
	if err := c.Create(ctx, &ciliumv2.CiliumBGPAdvertisement{
		ObjectMeta: metav1.ObjectMeta{Name: "all-cluster-ips", Labels: map[string]string{"bench": "bgp"}},
		Spec: ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: []ciliumv2.BGPAdvertisement{{
			AdvertisementType: ciliumv2.BGPServiceAdvert,
			Service:           &ciliumv2.BGPServiceOptions{Addresses: []ciliumv2.BGPServiceAddressType{ciliumv2.BGPClusterIPAddr}},
			Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "bench-never", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"x"}},
			}},
		}}},
	}); err != nil {
		stop()
		return pluginResult{}, err
	}
	if err := rcv.waitCount(ctx, want, 5*time.Minute); err != nil {
		stop()
		return pluginResult{}, err
	}
	r := pluginResult{converge: time.Since(start)}
	converged := proc.Usage()
	r.convergeCPU = converged.CPU - before.CPU
	// At rest with every prefix advertised: status refreshes every 5 s.
	time.Sleep(idle)
	r.idleCPU = proc.Usage().CPU - converged.CPU
	r.rssKB = proc.RSSKB()
	r.peakRSSKB = stop().PeakRSSKB
	return r, nil
}

// idle is how long the plugin is watched at rest after converging.
const idle = 20 * time.Second

type pluginResult struct {
	converge, convergeCPU, idleCPU time.Duration
	rssKB, peakRSSKB               int
}
