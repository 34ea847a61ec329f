package translate

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// build assembles a Gateway's result once every route has attached.
func (w *world) build(g *gatewayState, routes []*routeObject) GatewayResult {
	res := GatewayResult{Key: g.key, Conditions: g.conds, Service: g.class.service}
	for _, l := range g.listeners {
		kinds := l.kinds
		if kinds == nil {
			kinds = []gwv1.RouteGroupKind{}
		}
		res.Listeners = append(res.Listeners, gwv1.ListenerStatus{Name: l.spec.Name, SupportedKinds: kinds, AttachedRoutes: l.attached, Conditions: l.conds})
	}
	if !g.accepted {
		return res
	}
	var atts []attachment
	for _, r := range routes {
		for _, a := range r.attachments {
			if a.gateway == g {
				atts = append(atts, a)
			}
		}
	}
	cfg := &ir.Gateway{Name: g.key.String(), ServerHeader: g.class.serverHeader}
	clusters := map[string]ir.Cluster{}
	secrets := map[types.NamespacedName]bool{}
	if g.backendCert != nil {
		cfg.BackendClientCertificate = g.backendCert.String()
		secrets[*g.backendCert] = true
	}
	for _, port := range usablePorts(g) {
		ls := listenersOn(g, port)
		onPort := func(l *listenerState) []attachment {
			var out []attachment
			for _, a := range atts {
				if a.listener == l {
					out = append(out, a)
				}
			}
			return out
		}
		var all []attachment
		for _, a := range atts {
			if a.listener.serve && a.listener.spec.Port == port {
				all = append(all, a)
			}
		}
		p := ir.Port{Port: port, Protocol: ir.Protocol(ls[0].spec.Protocol)}
		switch ls[0].spec.Protocol {
		case gwv1.HTTPProtocolType:
			p.HTTP = virtualHosts(ls, all)
		case gwv1.TLSProtocolType:
			p.Protocol = ir.TLSPassthrough
			p.TLS = passthroughChains(ls, all)
			// A chain of a Terminate listener opens TLS with its
			// certificate and forwards the plain stream.
			for i := range p.TLS {
				l := ls[slices.IndexFunc(ls, func(l *listenerState) bool { return string(l.spec.Name) == p.TLS[i].Name })]
				for _, c := range l.certs {
					p.TLS[i].Certificates = append(p.TLS[i].Certificates, c.String())
					secrets[c] = true
				}
			}
		case gwv1.HTTPSProtocolType:
			for _, l := range ls {
				t := ir.TLSListener{Name: string(l.spec.Name), HTTP: misdirected(l, ls, virtualHosts([]*listenerState{l}, onPort(l))), ClientValidation: l.clientValidation}
				if h := l.hostname(); h != "" {
					t.ServerNames = []string{h}
				}
				for _, c := range l.certs {
					t.Certificates = append(t.Certificates, c.String())
					secrets[c] = true
				}
				p.TLS = append(p.TLS, t)
			}
		}
		cfg.Ports = append(cfg.Ports, p)
	}
	for _, a := range atts {
		for name, c := range a.route.clusters {
			clusters[name] = c
		}
	}
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		cfg.Clusters = append(cfg.Clusters, clusters[name])
	}
	keys := slices.SortedFunc(maps.Keys(secrets), func(a, b types.NamespacedName) int { return cmp.Compare(a.String(), b.String()) })
	for _, k := range keys {
		s := w.secrets[k]
		cfg.Secrets = append(cfg.Secrets, ir.Secret{Name: k.String(), Certificate: s.Data[corev1.TLSCertKey], Key: s.Data[corev1.TLSPrivateKeyKey]})
	}
	res.Config = cfg
	return res
}

// usablePorts lists the ports with a servable listener, in order.
func usablePorts(g *gatewayState) []int32 {
	var ports []int32
	for _, l := range g.listeners {
		if l.serve {
			ports = append(ports, l.spec.Port)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

func listenersOn(g *gatewayState, port int32) []*listenerState {
	var out []*listenerState
	for _, l := range g.listeners {
		if l.serve && l.spec.Port == port {
			out = append(out, l)
		}
	}
	return out
}

// virtualHosts groups the routes attached to listeners (which share a port)
// by host name. A host name goes only to the most specific listener that
// matches it, so a request is never answered by routes of a listener that a
// more specific one shadows (the Gateway API's listener isolation).
func virtualHosts(listeners []*listenerState, atts []attachment) []ir.VirtualHost {
	byDomain := map[string]*ir.VirtualHost{}
	for _, a := range atts {
		for _, h := range a.hostnames {
			if owner(listeners, h) != a.listener {
				continue
			}
			domain := h
			if domain == "" {
				domain = "*"
			}
			vh, ok := byDomain[domain]
			if !ok {
				vh = &ir.VirtualHost{Domains: []string{domain}}
				byDomain[domain] = vh
			}
			vh.Routes = append(vh.Routes, a.route.routes...)
		}
	}
	var out []ir.VirtualHost
	for _, d := range slices.Sorted(maps.Keys(byDomain)) {
		vh := byDomain[d]
		slices.SortStableFunc(vh.Routes, precedence)
		out = append(out, *vh)
	}
	return out
}

// misdirected adds to the virtual hosts of an HTTPS listener's TLS branch
// the host names that are not its own: a request for one of them on this
// branch's connection (the client's SNI picked this listener, and HTTP/2
// clients reuse a connection for other names) is answered 421 Misdirected
// Request, never with another listener's routes. For a listener with a
// hostname that is every name outside it (and the narrower names of other
// listeners within it); for one without, the other listeners' names. A
// name of its own without a route still gets 404.
func misdirected(l *listenerState, onPort []*listenerState, vhosts []ir.VirtualHost) []ir.VirtualHost {
	have := map[string]bool{}
	for _, vh := range vhosts {
		for _, d := range vh.Domains {
			have[d] = true
		}
	}
	own := l.hostname()
	if own != "" && !have[own] {
		vhosts = append(vhosts, ir.VirtualHost{Domains: []string{own}})
		have[own] = true
	}
	var domains []string
	for _, o := range onPort {
		if h := o.hostname(); o != l && h != "" && !have[h] && covers(own, h) {
			domains = append(domains, h)
			have[h] = true
		}
	}
	if own != "" && !have["*"] {
		domains = append(domains, "*")
	}
	if len(domains) == 0 {
		return vhosts
	}
	slices.Sort(domains)
	return append(vhosts, ir.VirtualHost{Domains: domains, Routes: []ir.Route{{
		Name: "misdirected", Match: ir.Match{PathKind: ir.PathPrefix, Path: "/"}, DirectStatus: http.StatusMisdirectedRequest,
	}}})
}

// passthroughChains gives each server name (SNI) the backends of the
// oldest TLSRoute that claims it, through the most specific listener that
// matches it; "" is the chain for any name.
func passthroughChains(listeners []*listenerState, atts []attachment) []ir.TLSListener {
	var out []ir.TLSListener
	taken := map[string]bool{}
	for _, a := range atts {
		for _, h := range a.hostnames {
			if taken[h] || owner(listeners, h) != a.listener {
				continue
			}
			taken[h] = true
			t := ir.TLSListener{Name: string(a.listener.spec.Name), Passthrough: a.route.passthrough}
			if h != "" {
				t.ServerNames = []string{h}
			}
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b ir.TLSListener) int {
		return cmp.Compare(strings.Join(a.ServerNames, ","), strings.Join(b.ServerNames, ","))
	})
	return out
}

// owner is the most specific listener whose host name covers h.
func owner(listeners []*listenerState, h string) *listenerState {
	var best *listenerState
	for _, l := range listeners {
		if covers(l.hostname(), h) && (best == nil || specificity(l.hostname()) > specificity(best.hostname())) {
			best = l
		}
	}
	return best
}

// precedence orders routes as the Gateway API ranks matches: exact paths,
// then regular expressions, then the longest prefix; then a method; then
// more headers; then more query parameters. Ties keep their order (oldest
// route first, then rule and match order).
func precedence(a, b ir.Route) int {
	rank := func(k ir.PathKind) int {
		switch k {
		case ir.PathExact:
			return 0
		case ir.PathRegex:
			return 1
		}
		return 2
	}
	return cmp.Or(
		cmp.Compare(rank(a.Match.PathKind), rank(b.Match.PathKind)),
		cmp.Compare(len(b.Match.Path), len(a.Match.Path)),
		cmp.Compare(boolRank(b.Match.Method != ""), boolRank(a.Match.Method != "")),
		cmp.Compare(len(b.Match.Headers), len(a.Match.Headers)),
		cmp.Compare(len(b.Match.Query), len(a.Match.Query)),
	)
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
