// Package l7standin is the lab's and the tests' stand-in for Envoy: no Envoy
// binary can be had on these machines, so this small HTTP data plane takes
// the same xDS a node's Envoy would (over ADS, from the l7proxy plugin),
// serves the subset the gateway controller emits (HTTP/1.1 and h2c, TLS
// termination by SNI, path/header/query/method matches, header edits,
// redirects, rewrites, weighted clusters, mirrors, timeouts, retries,
// X-Forwarded-For) following Envoy's documented behaviour, and refuses
// (NACKs) anything else, naming it. It is a test fixture: nothing ships it,
// and the controller must never emit what only it understands.
package l7standin

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// Config is everything served, resolved from the xDS resources.
type Config struct {
	Listeners map[string]*Listener // by address "ip:port"
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*Cluster
}

// Listener is one bound port.
type Listener struct {
	Name    string
	Address string
	// Chains are the filter chains; with TLS each has server names.
	Chains []*Chain
	TLS    bool
	// Passthrough listeners forward TLS connections unopened (tcp_proxy);
	// with TLS too, each connection goes by its SNI's chain.
	Passthrough bool
}

// mode is how a listener's socket is served.
func (l *Listener) mode() string {
	switch {
	case l.Passthrough && l.TLS:
		return "mixed"
	case l.Passthrough:
		return "tcp"
	case l.TLS:
		return "tls"
	}
	return "http"
}

// Chain is one filter chain: its SNI names, certificate, and the route
// configuration its HTTP connection manager uses.
type Chain struct {
	ServerNames    []string
	Certificates   []tls.Certificate
	RouteConfig    string
	XFFTrustedHops uint32
	// ServerHeader is the HTTP connection manager's Server header
	// handling and ServerName the name it answers with ("envoy" unset).
	ServerHeader hcmv3.HttpConnectionManager_ServerHeaderTransformation
	ServerName   string
	// TCP are a passthrough chain's clusters by weight.
	TCP []WeightedCluster
	// Upgrades are the HTTP/1.1 upgrades the connection manager lets
	// through (upgrade_configs: "websocket").
	Upgrades []string
	// ClientAuth and ClientCAs are how a terminating chain asks clients
	// for certificates and checks them.
	ClientAuth tls.ClientAuthType
	ClientCAs  *x509.CertPool
}

// WeightedCluster is a cluster and its share.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

// Cluster is one upstream cluster.
type Cluster struct {
	Name           string
	HTTP2          bool
	ConnectTimeout time.Duration
	Endpoints      []string // "ip:port"
	// Transport, when set, speaks TLS to the backends (an upstream TLS
	// transport socket).
	Transport *http.Transport
}

// Unsupported is a feature the stand-in cannot serve.
type Unsupported struct{ What string }

func (u Unsupported) Error() string { return "not served by the stand-in proxy: " + u.What }

// Check judges one xDS response before it is accepted: anything the
// stand-in cannot serve is refused, as Envoy refuses what it does not know.
func Check(typeURL string, resources map[string]proto.Message) error {
	for name, m := range resources {
		var err error
		switch r := m.(type) {
		case *listenerv3.Listener:
			_, err = listener(r, nil)
		case *routev3.RouteConfiguration:
			err = checkRoutes(r)
		case *clusterv3.Cluster:
			_, err = cluster(r, nil, nil)
		case *endpointv3.ClusterLoadAssignment, *tlsv3.Secret:
		default:
			err = Unsupported{fmt.Sprintf("resource type %s", typeURL)}
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", shortType(typeURL), name, err)
		}
	}
	return nil
}

// Resolve turns the accepted resources into a Config.
func Resolve(res map[string]map[string]proto.Message) (*Config, error) {
	secrets := map[string]tls.Certificate{}
	for name, m := range res[resource.SecretType] {
		s := m.(*tlsv3.Secret)
		c := s.GetTlsCertificate()
		if c == nil {
			continue
		}
		cert, err := tls.X509KeyPair(c.GetCertificateChain().GetInlineBytes(), c.GetPrivateKey().GetInlineBytes())
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		secrets[name] = cert
	}
	cfg := &Config{Listeners: map[string]*Listener{}, Routes: map[string]*routev3.RouteConfiguration{}, Clusters: map[string]*Cluster{}}
	for _, m := range res[resource.ListenerType] {
		l, err := listener(m.(*listenerv3.Listener), secrets)
		if err != nil {
			return nil, err
		}
		cfg.Listeners[l.Address] = l
	}
	for name, m := range res[resource.RouteType] {
		cfg.Routes[name] = m.(*routev3.RouteConfiguration)
	}
	for _, m := range res[resource.ClusterType] {
		c, err := cluster(m.(*clusterv3.Cluster), res[resource.EndpointType], secrets)
		if err != nil {
			return nil, err
		}
		cfg.Clusters[c.Name] = c
	}
	return cfg, nil
}

func listener(l *listenerv3.Listener, secrets map[string]tls.Certificate) (*Listener, error) {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, Unsupported{"a listener address that is not a socket address"}
	}
	out := &Listener{Name: l.GetName(), Address: fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())}
	for _, lf := range l.GetListenerFilters() {
		if lf.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" {
			return nil, Unsupported{"listener filter " + lf.GetTypedConfig().GetTypeUrl()}
		}
	}
	for _, fc := range l.GetFilterChains() {
		if len(fc.GetFilters()) != 1 {
			return nil, Unsupported{"a filter chain without exactly one network filter"}
		}
		var tp tcpproxyv3.TcpProxy
		if fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(&tp) == nil {
			ch := &Chain{ServerNames: fc.GetFilterChainMatch().GetServerNames()}
			if c := tp.GetCluster(); c != "" {
				ch.TCP = []WeightedCluster{{Name: c, Weight: 1}}
			}
			for _, w := range tp.GetWeightedClusters().GetClusters() {
				ch.TCP = append(ch.TCP, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight()})
			}
			if len(ch.TCP) == 0 {
				return nil, Unsupported{"a tcp_proxy chain without a cluster"}
			}
			if ts := fc.GetTransportSocket(); ts != nil {
				// Terminated, then forwarded as a plain stream.
				if err := ch.terminate(ts, secrets); err != nil {
					return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
				}
			}
			out.Passthrough = true
			out.Chains = append(out.Chains, ch)
			continue
		}
		var hcm hcmv3.HttpConnectionManager
		if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			return nil, Unsupported{"network filter " + fc.GetFilters()[0].GetTypedConfig().GetTypeUrl()}
		}
		for _, f := range hcm.GetHttpFilters() {
			if t := f.GetTypedConfig().GetTypeUrl(); t != "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" && t != corsFilterType {
				return nil, Unsupported{"HTTP filter " + t}
			}
		}
		if hcm.GetRds() == nil {
			return nil, Unsupported{"an HTTP connection manager without RDS"}
		}
		var upgrades []string
		for _, u := range hcm.GetUpgradeConfigs() {
			if !strings.EqualFold(u.GetUpgradeType(), "websocket") || len(u.GetFilters()) > 0 {
				return nil, Unsupported{"upgrade " + u.GetUpgradeType()}
			}
			if u.GetEnabled() == nil || u.GetEnabled().GetValue() {
				upgrades = append(upgrades, "websocket")
			}
		}
		ch := &Chain{
			ServerNames: fc.GetFilterChainMatch().GetServerNames(), RouteConfig: hcm.GetRds().GetRouteConfigName(), XFFTrustedHops: hcm.GetXffNumTrustedHops(),
			ServerHeader: hcm.GetServerHeaderTransformation(), ServerName: cmp.Or(hcm.GetServerName(), "envoy"), Upgrades: upgrades,
		}
		if ts := fc.GetTransportSocket(); ts != nil {
			out.TLS = true
			if err := ch.terminate(ts, secrets); err != nil {
				return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
			}
		}
		out.Chains = append(out.Chains, ch)
	}
	return out, nil
}

// terminate reads a chain's DownstreamTlsContext: its certificates (from
// secrets; nil only checks) and how it checks clients.
func (ch *Chain) terminate(ts *corev3.TransportSocket, secrets map[string]tls.Certificate) error {
	var ctx tlsv3.DownstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		return Unsupported{"transport socket " + ts.GetTypedConfig().GetTypeUrl()}
	}
	auth, cas, err := clientValidation(&ctx)
	if err != nil {
		return err
	}
	ch.ClientAuth, ch.ClientCAs = auth, cas
	for _, sds := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
		if secrets == nil {
			continue // checking only
		}
		cert, ok := secrets[sds.GetName()]
		if !ok {
			return fmt.Errorf("secret %s not received", sds.GetName())
		}
		ch.Certificates = append(ch.Certificates, cert)
	}
	return nil
}

// cluster reads a cluster; secrets nil only checks it.
func cluster(c *clusterv3.Cluster, endpoints map[string]proto.Message, secrets map[string]tls.Certificate) (*Cluster, error) {
	if c.GetType() != clusterv3.Cluster_EDS {
		return nil, Unsupported{"cluster discovery type " + c.GetType().String()}
	}
	if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
		return nil, Unsupported{"load-balancing policy " + c.GetLbPolicy().String()}
	}
	out := &Cluster{Name: c.GetName(), ConnectTimeout: c.GetConnectTimeout().AsDuration()}
	for name, a := range c.GetTypedExtensionProtocolOptions() {
		var opts httpv3.HttpProtocolOptions
		if name != "envoy.extensions.upstreams.http.v3.HttpProtocolOptions" || a.UnmarshalTo(&opts) != nil {
			return nil, Unsupported{"protocol options " + name}
		}
		out.HTTP2 = opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
	}
	if ts := c.GetTransportSocket(); ts != nil {
		t, err := upstreamTransport(ts, out.HTTP2, secrets)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.GetName(), err)
		}
		out.Transport = t
	}
	serviceName := c.GetEdsClusterConfig().GetServiceName()
	if serviceName == "" {
		serviceName = c.GetName()
	}
	if m, ok := endpoints[serviceName]; ok {
		for _, le := range m.(*endpointv3.ClusterLoadAssignment).GetEndpoints() {
			for _, e := range le.GetLbEndpoints() {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				out.Endpoints = append(out.Endpoints, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
			}
		}
	}
	return out, nil
}

// checkRoutes refuses route features the stand-in does not serve.
func checkRoutes(rc *routev3.RouteConfiguration) error {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if re := r.GetMatch().GetSafeRegex(); re != nil {
				if _, err := regexp.Compile(re.GetRegex()); err != nil {
					return fmt.Errorf("route %s: %w", r.GetName(), err)
				}
			}
			if err := checkCORS(r); err != nil {
				return err
			}
			if a := r.GetRoute(); a != nil && (len(a.GetHashPolicy()) > 0 || a.GetClusterHeader() != "") {
				return Unsupported{fmt.Sprintf("route %s: hash policies and cluster headers", r.GetName())}
			}
		}
	}
	return nil
}

func shortType(typeURL string) string {
	for i := len(typeURL) - 1; i >= 0; i-- {
		if typeURL[i] == '.' {
			return typeURL[i+1:]
		}
	}
	return typeURL
}
