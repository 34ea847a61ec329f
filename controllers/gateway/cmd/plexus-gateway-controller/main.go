// Command plexus-gateway-controller is Plexus's Gateway API and Ingress
// controller: it translates Gateways and their routes, and Ingresses, into
// Envoy configuration that the node proxies serve, gives each a
// LoadBalancer Service, and reports status, Programmed (or an Ingress's
// address) only once the proxies acknowledged.
package main

import (
	"flag"
	"fmt"
	"k8s.io/apimachinery/pkg/labels"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/reconciler"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags            operator.Flags
		secretsNamespace string
		proxyPorts       string
		ingress          ingressFlags
	)
	flags.Bind(flag.CommandLine, "gateway")
	gatewayAPI := flag.Bool("gateway-api", true, "serve the Gateway API (waits for its CRDs)")
	flag.StringVar(&secretsNamespace, "secrets-namespace", "cilium-secrets", "namespace the Gateways' certificates are copied to; node plugins read Secrets only there")
	flag.StringVar(&proxyPorts, "proxy-ports", "10000-10999", "ports the node proxies listen on, one per Gateway listener port (first-last)")
	hostNetwork := flag.Bool("host-network", false, "serve Gateways in host network mode: no LoadBalancer Service; the selected nodes' proxies listen on the listener ports themselves")
	hostNodes := flag.String("host-network-node-labels", "", "with --host-network, the nodes whose proxies listen, as a label selector (\"role=edge\"); empty: every node")
	ingress.bind(flag.CommandLine)
	flag.Parse()
	first, last, err := portRange(proxyPorts)
	if err != nil {
		operator.Fatal(err, "--proxy-ports")
	}
	ingressOptions, err := ingress.options()
	if err != nil {
		operator.Fatal(err, "Ingress flags")
	}
	var hosts *reconciler.HostNetwork
	if *hostNetwork {
		sel, err := labels.Parse(*hostNodes)
		if err != nil {
			operator.Fatal(err, "--host-network-node-labels")
		}
		hosts = &reconciler.HostNetwork{Nodes: sel}
	}

	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, ciliumv2alpha1.AddToScheme, nodesv1alpha1.AddToScheme, gwv1.Install)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("gateway", &flags, scheme)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	log := ctrl.Log.WithName("gateway")
	// Without the Gateway API CRDs there is nothing to do: say which are
	// missing and wait for them (the seed's behaviour), rather than crash.
	optional := map[string]bool{}
	for *gatewayAPI {
		missing, present := missingCRDs(mgr.GetRESTMapper())
		if len(missing) == 0 {
			optional = present
			break
		}
		log.Error(fmt.Errorf("missing: %s", strings.Join(missing, ", ")), "the Gateway API CRDs are not installed; install the standard channel (v1.6) and this controller starts on its own")
		time.Sleep(30 * time.Second)
		if m, ok := mgr.GetRESTMapper().(interface{ Reset() }); ok {
			m.Reset()
		}
	}
	for _, kind := range []string{"GRPCRoute", "TLSRoute", "BackendTLSPolicy"} {
		if *gatewayAPI && !optional[kind] {
			log.Info(fmt.Sprintf("the %s CRD is not installed: %s support is disabled", kind, kind))
		}
	}
	r := &reconciler.Reconciler{
		Client:             mgr.GetClient(),
		Recorder:           mgr.GetEventRecorder("plexus-gateway"),
		Passes:             flags.Passes,
		SecretsNamespace:   secretsNamespace,
		ProxyPortFirst:     first,
		ProxyPortLast:      last,
		GatewayAPI:         *gatewayAPI,
		GRPCRoutes:         optional["GRPCRoute"],
		TLSRoutes:          optional["TLSRoute"],
		BackendTLSPolicies: optional["BackendTLSPolicy"],
		Ingress:            ingressOptions,
		HostNetwork:        hosts,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the gateway controller")
	}
	operator.Run(mgr)
}

// missingCRDs names the required Gateway API kinds the API server does not
// serve, and says which optional ones (GRPCRoute, TLSRoute, BackendTLSPolicy
// at v1) it does.
func missingCRDs(m meta.RESTMapper) (missing []string, optional map[string]bool) {
	for _, kind := range []string{"GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant"} {
		if _, err := m.RESTMapping(schema.GroupKind{Group: gwv1.GroupName, Kind: kind}, "v1"); err != nil {
			missing = append(missing, kind)
		}
	}
	optional = map[string]bool{}
	for _, kind := range []string{"GRPCRoute", "TLSRoute", "BackendTLSPolicy"} {
		_, err := m.RESTMapping(schema.GroupKind{Group: gwv1.GroupName, Kind: kind}, "v1")
		optional[kind] = err == nil
	}
	return missing, optional
}

func portRange(s string) (first, last int32, err error) {
	a, b, ok := strings.Cut(s, "-")
	f, err1 := strconv.ParseInt(a, 10, 32)
	l, err2 := strconv.ParseInt(b, 10, 32)
	if !ok || err1 != nil || err2 != nil || f < 1 || l > 65535 || f > l {
		return 0, 0, fmt.Errorf("%q is not a port range first-last within 1-65535", s)
	}
	return int32(f), int32(l), nil
}

// ingressFlags are the Ingress controller's settings (Helm
// ingressController.*).
type ingressFlags struct {
	enabled       bool
	mode          string
	enforceHTTPS  bool
	defaultSecret string
	sharedService string
	prefixes      string
}

func (f *ingressFlags) bind(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "ingress", false, "serve Kubernetes Ingresses of the cilium IngressClass")
	fs.StringVar(&f.mode, "ingress-default-mode", "dedicated", "load-balancer mode of Ingresses without the ingress.cilium.io/loadbalancer-mode annotation: dedicated or shared")
	fs.BoolVar(&f.enforceHTTPS, "ingress-enforce-https", true, "redirect plain HTTP to HTTPS for hosts with TLS, unless an Ingress's ingress.cilium.io/force-https says otherwise")
	fs.StringVar(&f.defaultSecret, "ingress-default-secret", "", "namespace/name of the certificate Secret for Ingress TLS entries without a secretName")
	fs.StringVar(&f.sharedService, "ingress-shared-service", "kube-system/cilium-ingress", "namespace/name of the shared Ingress load balancer's Service")
	fs.StringVar(&f.prefixes, "ingress-lb-annotation-prefixes", "service.beta.kubernetes.io,service.kubernetes.io,lbipam.cilium.io,io.cilium/lb-ipam",
		"comma-separated annotation key prefixes copied from a dedicated Ingress to its Service")
}

// options returns the Ingress settings, or nil when Ingress support is off.
func (f *ingressFlags) options() (*translate.IngressOptions, error) {
	if !f.enabled {
		return nil, nil
	}
	o := &translate.IngressOptions{DefaultMode: translate.IngressMode(f.mode), EnforceHTTPS: f.enforceHTTPS}
	if o.DefaultMode != translate.Dedicated && o.DefaultMode != translate.Shared {
		return nil, fmt.Errorf("--ingress-default-mode %q: want dedicated or shared", f.mode)
	}
	var err error
	if o.SharedService, err = namespacedName("--ingress-shared-service", f.sharedService); err != nil {
		return nil, err
	}
	if f.defaultSecret != "" {
		if o.DefaultCertificate, err = namespacedName("--ingress-default-secret", f.defaultSecret); err != nil {
			return nil, err
		}
	}
	for _, p := range strings.Split(f.prefixes, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.AnnotationPrefixes = append(o.AnnotationPrefixes, p)
		}
	}
	return o, nil
}

func namespacedName(flagName, s string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%s %q: want namespace/name", flagName, s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}
