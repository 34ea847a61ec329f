// Command plexus-gateway-controller is Plexus's Gateway API controller: it
// translates Gateways and their routes into Envoy configuration that the
// node proxies serve, gives each Gateway a LoadBalancer Service, and reports
// the Gateway API's status, Programmed only once the proxies acknowledged.
package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/reconciler"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags            operator.Flags
		secretsNamespace string
		proxyPorts       string
	)
	flags.Bind(flag.CommandLine, "gateway")
	flag.StringVar(&secretsNamespace, "secrets-namespace", "cilium-secrets", "namespace the Gateways' certificates are copied to; node plugins read Secrets only there")
	flag.StringVar(&proxyPorts, "proxy-ports", "10000-10999", "ports the node proxies listen on, one per Gateway listener port (first-last)")
	flag.Parse()
	first, last, err := portRange(proxyPorts)
	if err != nil {
		operator.Fatal(err, "--proxy-ports")
	}

	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, nodesv1alpha1.AddToScheme, gwv1.Install)
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
	var optional map[string]bool
	for {
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
	for _, kind := range []string{"GRPCRoute", "TLSRoute"} {
		if !optional[kind] {
			log.Info(fmt.Sprintf("the %s CRD is not installed: %s support is disabled", kind, kind))
		}
	}
	r := &reconciler.Reconciler{
		Client:           mgr.GetClient(),
		Recorder:         mgr.GetEventRecorder("plexus-gateway"),
		Passes:           flags.Passes,
		SecretsNamespace: secretsNamespace,
		ProxyPortFirst:   first,
		ProxyPortLast:    last,
		GRPCRoutes:       optional["GRPCRoute"],
		TLSRoutes:        optional["TLSRoute"],
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the gateway controller")
	}
	operator.Run(mgr)
}

// missingCRDs names the required Gateway API kinds the API server does not
// serve, and says which optional ones (GRPCRoute, TLSRoute at v1) it does.
func missingCRDs(m meta.RESTMapper) (missing []string, optional map[string]bool) {
	for _, kind := range []string{"GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant"} {
		if _, err := m.RESTMapping(schema.GroupKind{Group: gwv1.GroupName, Kind: kind}, "v1"); err != nil {
			missing = append(missing, kind)
		}
	}
	optional = map[string]bool{}
	for _, kind := range []string{"GRPCRoute", "TLSRoute"} {
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
