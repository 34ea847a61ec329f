// Command kubectl-plexus is the kubectl plugin of Plexus (`kubectl plexus
// ...` once it is on PATH). It reads state from the API server only; it
// never talks to nodes.
//
//	kubectl plexus status [--wait] [--wait-duration 5m] [--plexus-namespace plexus-system]
//	kubectl plexus bgp peers
//	kubectl plexus bgp routes [available|advertised] [ipv4|ipv6 unicast] [peer <address>] [vrouter <asn>]
//	kubectl plexus policy get <pod> [-n <namespace>]
//	kubectl plexus gateway status <gateway> [-n <namespace>]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/cli/bgpcli"
	"github.com/plexus-net/plexus/internal/cli/gatewaycli"
	"github.com/plexus-net/plexus/internal/cli/policycli"
	"github.com/plexus-net/plexus/internal/cli/statuscli"
	"github.com/plexus-net/plexus/internal/k8snames"
	"github.com/plexus-net/plexus/internal/operator"
)

const usage = `usage:
  kubectl plexus status [--wait] [--wait-duration 5m] [--plexus-namespace plexus-system]
  kubectl plexus bgp peers
  kubectl plexus bgp routes [available|advertised] [ipv4|ipv6 unicast] [peer <address>] [vrouter <asn>]
  kubectl plexus policy get <pod> [-n <namespace>]
  kubectl plexus gateway status <gateway> [-n <namespace>]

flags:
`

func main() {
	fs := flag.NewFlagSet("kubectl-plexus", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	kubeContext := fs.String("context", "", "the kubeconfig context to use")
	node := fs.String("node", "", "only this node")
	namespace := fs.String("namespace", "default", "the pod's (policy get) or Gateway's (gateway status) namespace")
	fs.StringVar(namespace, "n", "default", "shorthand for --namespace")
	plexusNamespace := fs.String("plexus-namespace", "plexus-system", "the namespace Plexus is installed in (status)")
	wait := fs.Bool("wait", false, "status: wait until everything is ready, or --wait-duration passes")
	waitDuration := fs.Duration("wait-duration", 5*time.Minute, "status: how long --wait waits")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	words, err := parseInterleaved(fs, os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	cmd, err := parse(words)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		fs.Usage()
		os.Exit(2)
	}
	c, err := newClient(*kubeconfig, *kubeContext)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	if cmd.status {
		if err := status(c, *plexusNamespace, *wait, *waitDuration, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch {
	case cmd.pod != "":
		err = podPolicy(ctx, c, *namespace, cmd.pod, os.Stdout)
	case cmd.gateway != "":
		err = gatewayStatus(ctx, c, *namespace, cmd.gateway, os.Stdout)
	default:
		err = cmd.run(ctx, c, *node, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// parseInterleaved parses flags wherever they stand, as kubectl does
// (`policy get web-1 -n shop`), and returns the other words in order; the
// flag package alone stops at the first word.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return words, nil
		}
		words, args = append(words, args[0]), args[1:]
	}
}

// command is a parsed command line.
type command struct {
	peers  bool
	routes bgpcli.RouteFilter
	// pod is the pod of `policy get <pod>`.
	pod string
	// status is `status`.
	status bool
	// gateway is the Gateway of `gateway status <gateway>`.
	gateway string
}

// parse reads the seed's word-style arguments.
func parse(args []string) (command, error) {
	if len(args) >= 1 && args[0] == "status" {
		if len(args) > 1 {
			return command{}, fmt.Errorf("unexpected arguments after status: %v", args[1:])
		}
		return command{status: true}, nil
	}
	if len(args) >= 1 && args[0] == "gateway" {
		if len(args) != 3 || args[1] != "status" {
			return command{}, errors.New("expected `gateway status <gateway>`")
		}
		return command{gateway: args[2]}, nil
	}
	if len(args) >= 1 && args[0] == "policy" {
		if len(args) != 3 || args[1] != "get" {
			return command{}, errors.New("expected `policy get <pod>`")
		}
		return command{pod: args[2]}, nil
	}
	if len(args) < 2 || args[0] != "bgp" {
		return command{}, errors.New("expected `status`, `bgp peers`, `bgp routes`, `policy get <pod>` or `gateway status <gateway>`")
	}
	switch args[1] {
	case "peers":
		if len(args) > 2 {
			return command{}, fmt.Errorf("unexpected arguments after peers: %v", args[2:])
		}
		return command{peers: true}, nil
	case "routes":
		return parseRoutes(args[2:])
	}
	return command{}, fmt.Errorf("unknown bgp subcommand %q: want peers or routes", args[1])
}

func parseRoutes(args []string) (command, error) {
	f := bgpcli.RouteFilter{Family: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"}}
	if len(args) > 0 && (args[0] == "available" || args[0] == "advertised") {
		f.Advertised = args[0] == "advertised"
		args = args[1:]
	}
	if len(args) >= 2 && (args[0] == "ipv4" || args[0] == "ipv6") {
		fam, err := bgpcli.ParseFamily(args[0], args[1])
		if err != nil {
			return command{}, err
		}
		f.Family = fam
		args = args[2:]
	}
	for len(args) > 0 {
		if len(args) < 2 {
			return command{}, fmt.Errorf("%q needs a value", args[0])
		}
		switch args[0] {
		case "peer", "neighbor":
			if !f.Advertised {
				return command{}, errors.New("peer filters advertised routes: use `routes advertised ... peer <address>`")
			}
			a, err := netip.ParseAddr(args[1])
			if err != nil {
				return command{}, fmt.Errorf("peer: %w", err)
			}
			f.Peer = a
		case "vrouter":
			n, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || n <= 0 {
				return command{}, fmt.Errorf("vrouter: want an AS number, got %q", args[1])
			}
			f.VRouter = n
		default:
			return command{}, fmt.Errorf("unknown argument %q", args[0])
		}
		args = args[2:]
	}
	return command{routes: f}, nil
}

func (c command) run(ctx context.Context, cl client.Client, node string, out io.Writer) error {
	var list ciliumv2.CiliumBGPNodeConfigList
	if err := cl.List(ctx, &list); err != nil {
		return fmt.Errorf("listing CiliumBGPNodeConfigs: %w", err)
	}
	items := list.Items
	if node != "" {
		items = nil
		for _, nc := range list.Items {
			if nc.Name == node {
				items = append(items, nc)
			}
		}
	}
	if len(items) == 0 {
		fmt.Fprintln(out, "no CiliumBGPNodeConfigs: no node is selected by a CiliumBGPClusterConfig (see `kubectl describe ciliumbgpclusterconfigs`)")
		return nil
	}
	if c.peers {
		return bgpcli.Peers(out, items, time.Now())
	}
	return bgpcli.Routes(out, items, c.routes)
}

// errNotReady is status's answer when something is not ready.
var errNotReady = errors.New("not everything is ready")

// status prints the report; with wait it polls until everything is ready
// or the time is up, and prints the last report. It fails when not
// everything is ready.
func status(c client.Client, namespace string, wait bool, waitFor time.Duration, out io.Writer) error {
	deadline := time.Now().Add(waitFor)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := statuscli.Collect(ctx, c, namespace, time.Now())
		cancel()
		if err != nil {
			if !wait || time.Now().After(deadline) {
				return err
			}
			time.Sleep(2 * time.Second) // the API server may be restarting
			continue
		}
		if r.Healthy() || !wait || time.Now().After(deadline) {
			if err := statuscli.Render(out, r); err != nil {
				return err
			}
			if !r.Healthy() {
				return errNotReady
			}
			return nil
		}
		time.Sleep(2 * time.Second)
	}
}

func newClient(kubeconfig, kubeContext string) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, nodesv1alpha1.AddToScheme, gwv1.Install)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// gatewayStatus shows a Gateway's conditions and, per node, which
// generation of its Envoy configuration the node's proxy acknowledged.
func gatewayStatus(ctx context.Context, cl client.Client, namespace, name string, out io.Writer) error {
	v := gatewaycli.View{Gateway: &gwv1.Gateway{}}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, v.Gateway); err != nil {
		return err
	}
	var cec ciliumv2.CiliumEnvoyConfig
	switch err := cl.Get(ctx, client.ObjectKey{Namespace: namespace, Name: k8snames.Gateway(name)}, &cec); {
	case err == nil:
		v.Config = &cec
	case !apierrors.IsNotFound(err):
		return err
	}
	var proxies nodesv1alpha1.L7ProxyList
	if err := cl.List(ctx, &proxies); err != nil {
		return fmt.Errorf("listing L7Proxies: %w", err)
	}
	v.Proxies = proxies.Items
	return gatewaycli.Render(out, v)
}

// podPolicy shows a pod's identity, the policies that select it and what
// its node enforces for it.
func podPolicy(ctx context.Context, cl client.Client, namespace, name string, out io.Writer) error {
	var pod corev1.Pod
	if err := cl.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pod); err != nil {
		return err
	}
	v := policycli.PodView{Pod: namespace + "/" + name, Node: pod.Spec.NodeName, IP: pod.Status.PodIP, Labels: map[int64]map[string]string{}}
	if pod.Spec.HostNetwork {
		fmt.Fprintf(out, "%s uses the host's network: the node's (host) policy applies\n", v.Pod)
		return nil
	}
	var addrs nodesv1alpha1.IdentityAddressesList
	if err := cl.List(ctx, &addrs); err != nil {
		return fmt.Errorf("listing IdentityAddresses (is the policy controller installed?): %w", err)
	}
	for _, ia := range addrs.Items {
		if slices.Contains(ia.Spec.Addresses, pod.Status.PodIP) {
			v.Identity = ia.Spec.Identity
		}
	}
	var ids ciliumv2.CiliumIdentityList
	if err := cl.List(ctx, &ids); err != nil {
		return fmt.Errorf("listing CiliumIdentities: %w", err)
	}
	for _, id := range ids.Items {
		if n, err := strconv.ParseInt(id.Name, 10, 64); err == nil {
			v.Labels[n] = id.SecurityLabels
		}
	}
	var np nodesv1alpha1.NodePolicy
	switch err := cl.Get(ctx, client.ObjectKey{Name: pod.Spec.NodeName}, &np); {
	case err == nil:
		v.NodePolicy = &np
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading the NodePolicy of %s: %w", pod.Spec.NodeName, err)
	}
	return policycli.Render(out, v)
}
