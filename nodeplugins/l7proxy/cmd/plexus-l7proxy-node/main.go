// Command plexus-l7proxy-node is the L7 proxy node plugin: on every node it
// serves the node's Envoy (over ADS, on a Unix socket or a loopback port)
// the Envoy configs its L7Proxy names, with the certificates of the secrets
// namespace, and reports what the proxy acknowledged.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/l7proxy"
	"github.com/plexus-net/plexus/nodeplugins/l7proxy/frontends"
)

func main() {
	var (
		flags            nodeplugin.Flags
		nodeName         string
		secretsNamespace string
		xdsAddress       string
		stateFile        string
		takeFrontends    bool
	)
	flags.Bind(flag.CommandLine)
	flag.StringVar(&nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (its L7Proxy's name and the proxy's node id)")
	flag.StringVar(&secretsNamespace, "secrets-namespace", "cilium-secrets", "the one namespace whose TLS Secrets are served to the proxy")
	flag.StringVar(&xdsAddress, "xds-address", "unix:///var/run/plexus/l7proxy/xds.sock", "where the proxy connects: unix://<path> or <loopback address>:<port>")
	flag.BoolVar(&takeFrontends, "take-frontends", true, "redirect connections to the Gateways' and Ingresses' load-balancer addresses that reach this node to its own proxy (nftables table ip "+frontends.TableName+"), so the proxy sees the clients' addresses; needs CAP_NET_ADMIN")
	flag.StringVar(&stateFile, "state-file", "/var/run/plexus/l7proxy/accepted.json", "the last snapshot the proxy accepted, served at once after a restart (\"\": none)")
	flag.Parse()
	log := flags.Logger("l7proxy")
	if nodeName == "" {
		operator.Fatal(fmt.Errorf("--node-name (or NODE_NAME) is required"), "bad flags")
	}
	l, err := listen(xdsAddress)
	if err != nil {
		operator.Fatal(err, "--xds-address")
	}
	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	opts := nodeplugin.OwnObject(&nodesv1alpha1.L7Proxy{}, nodeName)
	// Secrets only from the secrets namespace: the plugin's Role allows no
	// more, and a cluster-wide informer would be refused.
	opts.ByObject[&corev1.Secret{}] = cache.ByObject{Namespaces: map[string]cache.Config{secretsNamespace: {}}, Field: fields.Everything()}
	mgr, err := nodeplugin.NewManager(&flags, scheme, opts)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	srv := l7proxy.NewServer(nodeName, log.WithName("xds"))
	p := &l7proxy.Plugin{Client: mgr.GetClient(), NodeName: nodeName, SecretsNamespace: secretsNamespace, Server: srv, StatePath: stateFile}
	if takeFrontends {
		tbl, err := frontends.New()
		if err != nil {
			operator.Fatal(err, "--take-frontends")
		}
		p.Frontends = tbl
		// A stopped plugin takes its redirects with it (uninstalling must
		// not leave the addresses pointing at a proxy that is gone); while
		// it restarts, connections arrive through the Service.
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			<-ctx.Done()
			return tbl.Remove()
		})); err != nil {
			operator.Fatal(err, "adding the frontend cleanup")
		}
	}
	if err := p.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the plugin")
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return srv.Serve(ctx, l) })); err != nil {
		operator.Fatal(err, "adding the xDS server")
	}
	operator.Run(mgr)
}

// listen opens the xDS endpoint: a Unix socket (its directory made, a stale
// socket replaced) or a TCP port, which must be on loopback: the proxy is on
// the same node, and nothing else may configure it.
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, err
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, err
		}
		// Envoy runs in another container of the pod, maybe as another
		// user; the socket's directory is the pod's own volume.
		if err := os.Chmod(path, 0o666); err != nil { //nolint:gosec // only the pod's containers see the directory
			l.Close()
			return nil, err
		}
		return l, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%s is not on loopback", addr)
	}
	return net.Listen("tcp", addr)
}
