// Package envoy builds the Envoy xDS resources (Listener, RouteConfiguration,
// Cluster, ClusterLoadAssignment, Secret) that serve one Gateway's IR. Every
// resource is checked with its ValidateAll before it is returned, and so is
// every typed config packed inside one (Any hides it from the outer check),
// so what reaches a proxy has passed Envoy's own proto constraints.
//
// Names are "<gateway namespace>/<gateway name>/..." so that the resources
// of many Gateways (and of users' CiliumEnvoyConfigs) merge into one proxy
// without clashes.
package envoy

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
	"github.com/plexus-net/plexus/internal/envoyxds"
)

// Resources are one Gateway's xDS resources, each kind in name order.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret
}

// Raw is the resources as a CiliumEnvoyConfig holds them (secrets
// excepted: those travel as Secrets): each an Any in protobuf JSON ("@type"
// and the fields), listeners, routes, clusters, then endpoints, in a
// canonical form (sorted keys, no spaces): protojson varies its spacing on
// purpose, and a resync must compare equal.
func (r Resources) Raw() ([]runtime.RawExtension, error) {
	var msgs []proto.Message
	for _, m := range r.Listeners {
		msgs = append(msgs, m)
	}
	for _, m := range r.Routes {
		msgs = append(msgs, m)
	}
	for _, m := range r.Clusters {
		msgs = append(msgs, m)
	}
	for _, m := range r.Endpoints {
		msgs = append(msgs, m)
	}
	out := make([]runtime.RawExtension, 0, len(msgs))
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			return nil, err
		}
		data, err := protojson.Marshal(a)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		canonical, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out = append(out, runtime.RawExtension{Raw: canonical})
	}
	return out, nil
}

// Options are the choices that are the proxy's, not the Gateway's.
type Options struct {
	// ProxyPort maps a Gateway listener port to the port the node proxy
	// listens on for it.
	ProxyPort func(port int32) (uint32, bool)
	// BindAddress is the address the proxy's listeners bind to.
	BindAddress string
	// XFFTrustedHops is how many X-Forwarded-For hops the proxy trusts
	// (the seed's default: 0, the connection's source is the client).
	XFFTrustedHops uint32
	// SecretName maps a certificate Secret ("<namespace>/<name>") to the
	// SDS name the proxy gets it under; nil keeps the name.
	SecretName func(string) string
}

const (
	// InvalidBackendCluster is referenced, never defined, for a backend
	// share that could not be resolved; routes answer a missing cluster
	// with 500, as the Gateway API asks.
	invalidBackendCluster = "invalid-backend"
	connectTimeoutSeconds = 5
)

// validatable is what go-control-plane's generated types offer.
type validatable interface {
	proto.Message
	ValidateAll() error
}

// builder collects resources and the first validation errors.
type builder struct {
	gw   ir.Gateway
	opts Options
	errs []error
	res  Resources
}

// Build returns gw's resources, or an error naming each resource that fails
// validation (none is returned then: a proxy gets all or nothing).
func Build(gw ir.Gateway, opts Options) (Resources, error) {
	b := &builder{gw: gw, opts: opts}
	for _, p := range gw.Ports {
		b.port(p)
	}
	for _, c := range gw.Clusters {
		b.cluster(c)
	}
	for _, s := range gw.Secrets {
		b.secret(s)
	}
	if len(b.errs) > 0 {
		return Resources{}, errors.Join(b.errs...)
	}
	return b.res, nil
}

func (b *builder) secretName(s string) string {
	if b.opts.SecretName == nil {
		return s
	}
	return b.opts.SecretName(s)
}

func (b *builder) name(parts ...string) string {
	return b.gw.Name + "/" + strings.Join(parts, "/")
}

// check validates m, recording a failure under what.
func (b *builder) check(what string, m validatable) {
	if err := m.ValidateAll(); err != nil {
		b.errs = append(b.errs, fmt.Errorf("%s: %w", what, err))
	}
}

// typed validates m and packs it into an Any.
func (b *builder) typed(what string, m validatable) *anypb.Any {
	b.check(what, m)
	a, err := anypb.New(m)
	if err != nil {
		b.errs = append(b.errs, fmt.Errorf("%s: %w", what, err))
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func (b *builder) port(p ir.Port) {
	listenPort, ok := b.opts.ProxyPort(p.Port)
	if !ok {
		b.errs = append(b.errs, fmt.Errorf("port %d: no proxy port assigned", p.Port))
		return
	}
	name := b.name(fmt.Sprint(p.Port))
	l := &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: b.opts.BindAddress, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: listenPort},
		}}},
	}
	switch p.Protocol {
	case ir.HTTP:
		l.FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{b.hcm(name, name, hasCORS(p.HTTP))}}}
		b.routeConfig(name, p.HTTP)
	case ir.HTTPS, ir.TLSPassthrough:
		l.ListenerFilters = []*listenerv3.ListenerFilter{{
			Name:       "envoy.filters.listener.tls_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: b.typed(name+" tls_inspector", &tlsinspectorv3.TlsInspector{})},
		}}
		for _, t := range p.TLS {
			l.FilterChains = append(l.FilterChains, b.tlsChain(p.Port, t))
		}
	default:
		b.errs = append(b.errs, fmt.Errorf("port %d: protocol %s is not built", p.Port, p.Protocol))
		return
	}
	b.check("listener "+name, l)
	b.res.Listeners = append(b.res.Listeners, l)
}

// tlsChain is one SNI branch of a TLS port: a branch with certificates
// terminates TLS and serves HTTP; one without passes the stream through.
func (b *builder) tlsChain(port int32, t ir.TLSListener) *listenerv3.FilterChain {
	match := &listenerv3.FilterChainMatch{ServerNames: t.ServerNames}
	if len(t.Certificates) == 0 || len(t.Passthrough) > 0 {
		chain := b.name(fmt.Sprint(port), t.Name, strings.Join(t.ServerNames, ","))
		fc := &listenerv3.FilterChain{Name: chain, FilterChainMatch: match, Filters: []*listenerv3.Filter{b.tcpProxy(chain, t.Passthrough)}}
		if len(t.Certificates) > 0 {
			// Terminated: no ALPN, the stream is not HTTP.
			fc.TransportSocket = b.downstreamTLS(chain, t.Certificates, t.ClientValidation, nil)
		}
		return fc
	}
	rc := b.name(fmt.Sprint(port), t.Name)
	b.routeConfig(rc, t.HTTP)
	return &listenerv3.FilterChain{
		// h2 lets gRPC clients in; http/1.1 keeps everyone else.
		Name: rc, FilterChainMatch: match, TransportSocket: b.downstreamTLS(rc, t.Certificates, t.ClientValidation, []string{"h2", "http/1.1"}),
		Filters: []*listenerv3.Filter{b.hcm(rc, rc, hasCORS(t.HTTP))},
	}
}

// serverHeader maps the IR's Server header handling to Envoy's enum
// (empty: Envoy's default, overwrite).
func serverHeader(h ir.ServerHeader) hcmv3.HttpConnectionManager_ServerHeaderTransformation {
	if v, ok := hcmv3.HttpConnectionManager_ServerHeaderTransformation_value[string(h)]; ok {
		return hcmv3.HttpConnectionManager_ServerHeaderTransformation(v)
	}
	return hcmv3.HttpConnectionManager_OVERWRITE
}

// corsFilter is Envoy's CORS filter, which routes configure.
const corsFilter = "envoy.filters.http.cors"

// hasCORS says whether a route of vhosts has a CORS policy (its connection
// manager then runs the CORS filter).
func hasCORS(vhosts []ir.VirtualHost) bool {
	for _, vh := range vhosts {
		for _, r := range vh.Routes {
			if r.CORS != nil {
				return true
			}
		}
	}
	return false
}

// hcm is the HTTP connection manager of a filter chain, taking its routes
// from routeConfig over ADS; cors adds the CORS filter before the router.
func (b *builder) hcm(statPrefix, routeConfig string, cors bool) *listenerv3.Filter {
	m := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeConfig, ConfigSource: ads(),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: b.typed(statPrefix+" router", &routerv3.Router{})},
		}},
		// The client's address is the connection's source (plus the
		// trusted hops): Envoy appends it to X-Forwarded-For and sets
		// X-Envoy-External-Address, so backends see who called.
		UseRemoteAddress:  wrapperspb.Bool(true),
		XffNumTrustedHops: b.opts.XFFTrustedHops,
		// Host names match with or without a port (Host: a.com:8080).
		StripPortMode:              &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		NormalizePath:              wrapperspb.Bool(true),
		ServerHeaderTransformation: serverHeader(b.gw.ServerHeader),
		UpgradeConfigs:             []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	}
	if cors {
		m.HttpFilters = append([]*hcmv3.HttpFilter{{
			Name: corsFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: b.typed(statPrefix+" cors", &corsv3.Cors{})},
		}}, m.HttpFilters...)
	}
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: b.typed(statPrefix+" http_connection_manager", m)},
	}
}

// tcpProxy forwards a connection, unopened, to the backends by weight.
func (b *builder) tcpProxy(statPrefix string, backends []ir.WeightedBackend) *listenerv3.Filter {
	clusterName := func(c string) string {
		if c == "" {
			return b.name(invalidBackendCluster)
		}
		return b.name(c)
	}
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statPrefix}
	switch len(backends) {
	case 0:
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: b.name(invalidBackendCluster)}
	case 1:
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: clusterName(backends[0].Cluster)}
	default:
		wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, be := range backends {
			wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: clusterName(be.Cluster), Weight: be.Weight})
		}
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: b.typed(statPrefix+" tcp_proxy", tp)},
	}
}

func (b *builder) downstreamTLS(what string, certs []string, clients *ir.ClientValidation, alpn []string) *corev3.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{AlpnProtocols: alpn}}
	for _, c := range certs {
		ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs = append(ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs,
			&tlsv3.SdsSecretConfig{Name: b.secretName(c), SdsConfig: ads()})
	}
	if clients != nil {
		vc := &tlsv3.CertificateValidationContext{TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: clients.CACertificates}}}
		if clients.Optional {
			// A certificate that does not verify is let in too, as is no
			// certificate (require_client_certificate false).
			vc.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
		}
		ctx.RequireClientCertificate = wrapperspb.Bool(!clients.Optional)
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: b.typed(what+" tls", ctx)},
	}
}

// systemCABundle is where Envoy's images (and Debian's) keep the system's
// trusted roots, for wellKnownCACertificates: System.
const systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

// upstreamTLS originates TLS to a cluster's backends: the policy's SNI,
// its CA certificates, and the names the certificate must carry (Envoy
// checks no name unless told some).
func (b *builder) upstreamTLS(what string, t *ir.BackendTLS, http2 bool) *corev3.TransportSocket {
	vc := &tlsv3.CertificateValidationContext{}
	if t.System {
		vc.TrustedCa = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: systemCABundle}}
	} else {
		vc.TrustedCa = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: t.CACertificates}}
	}
	for _, san := range t.SubjectAltNames {
		kind := tlsv3.SubjectAltNameMatcher_DNS
		if san.URI {
			kind = tlsv3.SubjectAltNameMatcher_URI
		}
		vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: kind, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san.Value}},
		})
	}
	ctx := &tlsv3.UpstreamTlsContext{Sni: t.SNI, CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
	}}
	if http2 {
		ctx.CommonTlsContext.AlpnProtocols = []string{"h2"}
	}
	if c := b.gw.BackendClientCertificate; c != "" {
		ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: b.secretName(c), SdsConfig: ads()}}
	}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: b.typed(what+" tls", ctx)},
	}
}

func (b *builder) routeConfig(name string, vhosts []ir.VirtualHost) {
	rc := &routev3.RouteConfiguration{Name: name, IgnorePortInHostMatching: true}
	for _, vh := range vhosts {
		v := &routev3.VirtualHost{Name: name + "/" + vh.Domains[0], Domains: vh.Domains}
		for _, r := range vh.Routes {
			v.Routes = append(v.Routes, b.route(r))
		}
		rc.VirtualHosts = append(rc.VirtualHosts, v)
	}
	b.check("route configuration "+name, rc)
	b.res.Routes = append(b.res.Routes, rc)
}

func (b *builder) route(r ir.Route) *routev3.Route {
	out := &routev3.Route{
		Name:                    r.Name,
		Match:                   match(r.Match),
		RequestHeadersToAdd:     headersToAdd(r.RequestHeaders),
		RequestHeadersToRemove:  lower(r.RequestHeaders.Remove),
		ResponseHeadersToAdd:    headersToAdd(r.ResponseHeaders),
		ResponseHeadersToRemove: lower(r.ResponseHeaders.Remove),
	}
	if r.CORS != nil {
		out.TypedPerFilterConfig = map[string]*anypb.Any{corsFilter: b.typed("route "+r.Name+" cors", corsPolicy(r.CORS))}
	}
	switch {
	case r.Redirect != nil:
		out.Action = &routev3.Route_Redirect{Redirect: redirect(r.Redirect, r.Match)}
	case r.DirectStatus != 0:
		out.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: r.DirectStatus}}
	default:
		out.Action = &routev3.Route_Route{Route: b.routeAction(r)}
	}
	return out
}

// corsPolicy is a route's CORS policy. Origins match without regard to
// case; a "*" in one stands for any characters but "/". A preflight from
// an origin not allowed is answered by the proxy too (without
// Access-Control-Allow-Origin), not passed to the backend. Envoy answers
// "*" methods or headers with those the preflight asked for.
func corsPolicy(c *ir.CORS) *corsv3.CorsPolicy {
	p := &corsv3.CorsPolicy{
		AllowMethods: strings.Join(c.AllowMethods, ", "), AllowHeaders: strings.Join(c.AllowHeaders, ", "),
		ExposeHeaders: strings.Join(c.ExposeHeaders, ", "), ForwardNotMatchingPreflights: wrapperspb.Bool(false),
	}
	if c.MaxAge > 0 {
		p.MaxAge = fmt.Sprint(c.MaxAge)
	}
	if c.AllowCredentials {
		p.AllowCredentials = wrapperspb.Bool(true)
	}
	for _, o := range c.AllowOrigins {
		switch {
		case o == "*": // Envoy allows every origin when a matcher matches "*"
			p.AllowOriginStringMatch = append(p.AllowOriginStringMatch, &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "*"}})
		case strings.Contains(o, "*"):
			parts := strings.Split(o, "*")
			for i := range parts {
				parts[i] = regexp.QuoteMeta(strings.ToLower(parts[i]))
			}
			p.AllowOriginStringMatch = append(p.AllowOriginStringMatch, &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(?i)" + strings.Join(parts, "[^/]*")}}})
		default:
			p.AllowOriginStringMatch = append(p.AllowOriginStringMatch, &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}, IgnoreCase: true})
		}
	}
	return p
}

func (b *builder) routeAction(r ir.Route) *routev3.RouteAction {
	a := &routev3.RouteAction{ClusterNotFoundResponseCode: routev3.RouteAction_INTERNAL_SERVER_ERROR}
	clusterName := func(c string) string {
		if c == "" {
			return b.name(invalidBackendCluster)
		}
		return b.name(c)
	}
	// A backend's own header edits live on its cluster weight, so such a
	// route names its backends as weighted clusters even when alone.
	if len(r.Backends) == 1 && !r.Backends[0].HasEdits() {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: clusterName(r.Backends[0].Cluster)}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, be := range r.Backends {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name: clusterName(be.Cluster), Weight: wrapperspb.UInt32(be.Weight),
				RequestHeadersToAdd: headersToAdd(be.RequestHeaders), RequestHeadersToRemove: lower(be.RequestHeaders.Remove),
				ResponseHeadersToAdd: headersToAdd(be.ResponseHeaders), ResponseHeadersToRemove: lower(be.ResponseHeaders.Remove),
			})
		}
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if rw := r.Rewrite; rw != nil {
		if rw.Hostname != "" {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Hostname}
		}
		switch {
		case rw.FullPath != nil:
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/.*$"}, Substitution: *rw.FullPath}
		case rw.PrefixPath != nil:
			a.PrefixRewrite, a.RegexRewrite = prefixRewrite(r.Match, *rw.PrefixPath)
		}
	}
	if r.Timeout != nil {
		a.Timeout = durationpb.New(*r.Timeout)
	}
	if r.Retry != nil || r.BackendTimeout != nil {
		a.RetryPolicy = retryPolicy(r.Retry, r.BackendTimeout)
	}
	for _, m := range r.Mirrors {
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster: b.name(m.Cluster),
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
				Numerator:   uint32(uint64(m.Numerator) * 1_000_000 / uint64(max(m.Denominator, 1))), //nolint:gosec // at most 1,000,000
				Denominator: typev3.FractionalPercent_MILLION,
			}},
		})
	}
	return a
}

// prefixRewrite replaces the matched path prefix. Envoy's prefix_rewrite
// keeps what follows the prefix as it is, which joins "/" onto it wrongly
// when either side is "/"; those cases go through a regular expression.
func prefixRewrite(m ir.Match, to string) (string, *matcherv3.RegexMatchAndSubstitute) {
	from := m.Path
	switch {
	case from == "/":
		return "", &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/"}, Substitution: strings.TrimSuffix(to, "/") + "/"}
	case to == "/":
		return "", &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^" + regexp.QuoteMeta(from) + "/*"}, Substitution: "/"}
	}
	return to, nil
}

func retryPolicy(r *ir.Retry, perTry *time.Duration) *routev3.RetryPolicy {
	p := &routev3.RetryPolicy{}
	if perTry != nil && *perTry > 0 { // zero: no limit per try, Envoy's unset
		p.PerTryTimeout = durationpb.New(*perTry)
	}
	if r == nil {
		// No retries: the policy only bounds the one try.
		p.NumRetries = wrapperspb.UInt32(0)
		return p
	}
	p.RetryOn = "connect-failure,refused-stream"
	if len(r.Codes) > 0 {
		p.RetryOn += ",retriable-status-codes"
		p.RetriableStatusCodes = r.Codes
	}
	if r.Attempts != nil {
		p.NumRetries = wrapperspb.UInt32(*r.Attempts)
	}
	if r.Backoff > 0 {
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(r.Backoff)}
	}
	return p
}

func match(m ir.Match) *routev3.RouteMatch {
	out := &routev3.RouteMatch{}
	switch {
	case m.PathKind == ir.PathExact:
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Path}
	case m.PathKind == ir.PathRegex:
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Path}}
	case m.Path == "/":
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	default:
		// Whole path segments: "/foo" matches "/foo" and "/foo/bar",
		// never "/foobar".
		out.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: m.Path}
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, &routev3.HeaderMatcher{
			Name:                 strings.ToLower(h.Name),
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatch(h)},
		})
	}
	if m.Method != "" {
		out.Headers = append(out.Headers, &routev3.HeaderMatcher{
			Name:                 ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatch(ir.ValueMatch{Value: m.Method})},
		})
	}
	for _, q := range m.Query {
		out.QueryParameters = append(out.QueryParameters, &routev3.QueryParameterMatcher{
			Name:                         q.Name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatch(q)},
		})
	}
	return out
}

func stringMatch(v ir.ValueMatch) *matcherv3.StringMatcher {
	if v.Regex {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v.Value}}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v.Value}}
}

func redirect(r *ir.Redirect, m ir.Match) *routev3.RedirectAction {
	a := &routev3.RedirectAction{HostRedirect: r.Hostname}
	if r.Scheme != "" {
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	if r.Port != 0 {
		a.PortRedirect = uint32(r.Port) //nolint:gosec // a port number
	}
	switch {
	case r.FullPath != nil:
		a.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: *r.FullPath}
	case r.PrefixPath != nil:
		prefix, re := prefixRewrite(m, *r.PrefixPath)
		if re != nil {
			a.PathRewriteSpecifier = &routev3.RedirectAction_RegexRewrite{RegexRewrite: re}
		} else {
			a.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: prefix}
		}
	}
	a.ResponseCode = map[int]routev3.RedirectAction_RedirectResponseCode{
		301: routev3.RedirectAction_MOVED_PERMANENTLY,
		302: routev3.RedirectAction_FOUND,
		303: routev3.RedirectAction_SEE_OTHER,
		307: routev3.RedirectAction_TEMPORARY_REDIRECT,
		308: routev3.RedirectAction_PERMANENT_REDIRECT,
	}[r.StatusCode]
	return a
}

func headersToAdd(e ir.HeaderEdits) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, h := range e.Set {
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: strings.ToLower(h.Name), Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	for _, h := range e.Add {
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: strings.ToLower(h.Name), Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD})
	}
	return out
}

func lower(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, strings.ToLower(n))
	}
	return out
}

func (b *builder) cluster(c ir.Cluster) {
	name := b.name(c.Name)
	cl := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		ConnectTimeout:       durationpb.New(connectTimeoutSeconds * 1e9),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
	if c.HTTP2 {
		opts := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			},
		}}
		cl.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": b.typed("cluster "+name+" protocol options", opts),
		}
	}
	if c.TLS != nil {
		cl.TransportSocket = b.upstreamTLS("cluster "+name, c.TLS, c.HTTP2)
	}
	b.check("cluster "+name, cl)
	b.res.Clusters = append(b.res.Clusters, cl)

	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	if len(c.Endpoints) > 0 {
		loc := &endpointv3.LocalityLbEndpoints{}
		for _, e := range c.Endpoints {
			loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: e.Address, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(e.Port)}, //nolint:gosec // a port number
				}}},
			}}})
		}
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{loc}
	}
	b.check("endpoints "+name, cla)
	b.res.Endpoints = append(b.res.Endpoints, cla)
}

func (b *builder) secret(s ir.Secret) {
	sec := envoyxds.TLSSecret(b.secretName(s.Name), s.Certificate, s.Key)
	b.check("secret "+sec.Name, sec)
	b.res.Secrets = append(b.res.Secrets, sec)
}
