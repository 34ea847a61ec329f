package translate

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
	"github.com/plexus-net/plexus/internal/k8snames"
)

// Ingress support: Kubernetes Ingresses of the cilium class become the same
// IR as Gateways. Each dedicated Ingress gets a load balancer of its own;
// shared Ingresses are merged into one.

// IngressController is the seed's IngressClass controller name.
const IngressController = "cilium.io/ingress-controller"

// The seed's annotations (ingress.cilium.io/...) and Kubernetes' own.
const (
	IngressAnnotationPrefix    = "ingress.cilium.io/"
	annotationMode             = IngressAnnotationPrefix + "loadbalancer-mode"
	annotationLBClass          = IngressAnnotationPrefix + "loadbalancer-class"
	annotationServiceType      = IngressAnnotationPrefix + "service-type"
	annotationETP              = IngressAnnotationPrefix + "service-external-traffic-policy"
	annotationInsecureNodePort = IngressAnnotationPrefix + "insecure-node-port"
	annotationSecureNodePort   = IngressAnnotationPrefix + "secure-node-port"
	annotationPassthrough      = IngressAnnotationPrefix + "tls-passthrough"
	annotationForceHTTPS       = IngressAnnotationPrefix + "force-https"
	annotationHostListenerPort = IngressAnnotationPrefix + "host-listener-port"
	legacyClassAnnotation      = "kubernetes.io/ingress.class"
)

// IngressMode is where an Ingress's load balancer comes from.
type IngressMode string

// The load-balancer modes.
const (
	Dedicated IngressMode = "dedicated"
	Shared    IngressMode = "shared"
)

// IngressOptions are the Ingress controller's settings (Helm
// ingressController.*).
type IngressOptions struct {
	// DefaultMode applies to Ingresses without the mode annotation.
	DefaultMode IngressMode
	// EnforceHTTPS redirects plain HTTP for TLS hosts to HTTPS unless an
	// Ingress's force-https annotation says otherwise.
	EnforceHTTPS bool
	// DefaultCertificate serves TLS entries without a secretName (zero:
	// such entries are not served).
	DefaultCertificate types.NamespacedName
	// SharedService is the shared load balancer's Service.
	SharedService types.NamespacedName
	// AnnotationPrefixes are the Ingress annotation key prefixes copied to
	// a dedicated Ingress's Service.
	AnnotationPrefixes []string
}

// IngressFrontend is one load balancer: a dedicated Ingress's or the
// shared one.
type IngressFrontend struct {
	// Service is the generated LoadBalancer Service.
	Service types.NamespacedName
	// EnvoyConfig is the generated CiliumEnvoyConfig.
	EnvoyConfig types.NamespacedName
	// Owner is the dedicated Ingress (nil for the shared load balancer).
	Owner  *networkingv1.Ingress
	Config ir.Gateway
	// Ingresses are those it serves, in namespace/name order.
	Ingresses []types.NamespacedName
	// Settings are the dedicated Service's, from the Ingress's annotations
	// (node ports by Service port, 80 and 443).
	Settings    ServiceSettings
	Annotations map[string]string
}

// IngressOutput is the Ingress translation's result.
type IngressOutput struct {
	// Frontends in Service order; the shared one is always there.
	Frontends []IngressFrontend
	// FrontendOf names the Service that serves each of our Ingresses.
	FrontendOf map[types.NamespacedName]types.NamespacedName
	// Problems says, per Ingress, what of it is not served and why.
	Problems map[types.NamespacedName][]string
}

// DedicatedServiceName is a dedicated Ingress's Service (the seed's name).
func DedicatedServiceName(ingress string) string {
	return k8snames.ShortName("cilium-ingress-" + ingress)
}

// DedicatedEnvoyConfigName is a dedicated Ingress's CiliumEnvoyConfig.
func DedicatedEnvoyConfigName(namespace, ingress string) string {
	return "cilium-ingress-" + namespace + "-" + ingress
}

// TranslateIngresses computes what serves in's Ingresses of our class.
func TranslateIngresses(in Input, opts IngressOptions) IngressOutput {
	w := newWorld(in)
	out := IngressOutput{FrontendOf: map[types.NamespacedName]types.NamespacedName{}, Problems: map[types.NamespacedName][]string{}}
	ings := slices.Clone(in.Ingresses)
	slices.SortFunc(ings, func(a, b networkingv1.Ingress) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(keyOf(&a).String(), keyOf(&b).String()))
	})
	shared := newIngressBuild(opts.SharedService.String())
	fe := []IngressFrontend{}
	var sharedIngs []types.NamespacedName
	for i := range ings {
		ing := &ings[i]
		if ing.DeletionTimestamp != nil || !w.ingressIsOurs(ing) {
			continue
		}
		key := keyOf(ing)
		problem := func(format string, args ...any) {
			out.Problems[key] = append(out.Problems[key], fmt.Sprintf(format, args...))
		}
		a := parseIngressAnnotations(ing, opts, problem)
		if a.mode == Shared {
			shared.add(w, ing, a, opts, problem)
			sharedIngs = append(sharedIngs, key)
			out.FrontendOf[key] = opts.SharedService
			continue
		}
		svc := types.NamespacedName{Namespace: ing.Namespace, Name: DedicatedServiceName(ing.Name)}
		cec := types.NamespacedName{Namespace: ing.Namespace, Name: DedicatedEnvoyConfigName(ing.Namespace, ing.Name)}
		b := newIngressBuild(cec.String())
		b.add(w, ing, a, opts, problem)
		f := IngressFrontend{
			Service: svc, EnvoyConfig: cec, Owner: ing, Config: b.config(w), Ingresses: []types.NamespacedName{key},
			Settings:    a.service,
			Annotations: copiedAnnotations(ing.Annotations, opts.AnnotationPrefixes),
		}
		fe = append(fe, f)
		out.FrontendOf[key] = svc
	}
	slices.SortFunc(sharedIngs, func(a, b types.NamespacedName) int { return cmp.Compare(a.String(), b.String()) })
	fe = append(fe, IngressFrontend{
		Service: opts.SharedService, EnvoyConfig: opts.SharedService, Config: shared.config(w), Ingresses: sharedIngs,
		Settings: defaultServiceSettings(),
	})
	slices.SortFunc(fe, func(a, b IngressFrontend) int { return cmp.Compare(a.Service.String(), b.Service.String()) })
	out.Frontends = fe
	for k, ps := range out.Problems {
		out.Problems[k] = slices.Compact(ps)
	}
	return out
}

// ingressIsOurs says whether ing names our class, by spec, by the legacy
// annotation, or by naming none while our class is the default.
func (w *world) ingressIsOurs(ing *networkingv1.Ingress) bool {
	ours := func(name string) bool {
		for i := range w.in.IngressClasses {
			c := &w.in.IngressClasses[i]
			if c.Name == name {
				return c.Spec.Controller == IngressController
			}
		}
		return false
	}
	if name := ptr.Deref(ing.Spec.IngressClassName, ""); name != "" {
		return ours(name)
	}
	if name := ing.Annotations[legacyClassAnnotation]; name != "" {
		return name == "cilium" || ours(name)
	}
	for i := range w.in.IngressClasses {
		c := &w.in.IngressClasses[i]
		if c.Spec.Controller == IngressController && c.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true" {
			return true
		}
	}
	return false
}

// ingressAnnotations are an Ingress's settings after its annotations.
type ingressAnnotations struct {
	mode        IngressMode
	service     ServiceSettings
	passthrough bool
	forceHTTPS  bool
}

// parseIngressAnnotations reads the seed's annotations; a bad value is
// reported and the default used.
func parseIngressAnnotations(ing *networkingv1.Ingress, opts IngressOptions, problem func(string, ...any)) ingressAnnotations {
	a := ingressAnnotations{
		mode: opts.DefaultMode, service: defaultServiceSettings(), forceHTTPS: opts.EnforceHTTPS,
	}
	get := func(k string) (string, bool) {
		v, ok := ing.Annotations[k]
		return strings.TrimSpace(v), ok
	}
	if v, ok := get(annotationMode); ok {
		switch IngressMode(strings.ToLower(v)) {
		case Dedicated, Shared:
			a.mode = IngressMode(strings.ToLower(v))
		default:
			problem("annotation %s: %q is not dedicated or shared; using %s", annotationMode, v, a.mode)
		}
	}
	if v, ok := get(annotationServiceType); ok {
		switch corev1.ServiceType(v) {
		case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
			a.service.Type = corev1.ServiceType(v)
		default:
			problem("annotation %s: %q is not LoadBalancer or NodePort; using LoadBalancer", annotationServiceType, v)
		}
	}
	if v, ok := get(annotationLBClass); ok && v != "" {
		if a.service.Type == corev1.ServiceTypeLoadBalancer {
			a.service.LoadBalancerClass = &v
		} else {
			problem("annotation %s: ignored, a load-balancer class needs service-type LoadBalancer", annotationLBClass)
		}
	}
	if v, ok := get(annotationETP); ok {
		switch corev1.ServiceExternalTrafficPolicy(v) {
		case corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal:
			a.service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicy(v)
		default:
			problem("annotation %s: %q is not Cluster or Local; using Cluster", annotationETP, v)
		}
	}
	for ann, port := range map[string]int32{annotationInsecureNodePort: 80, annotationSecureNodePort: 443} {
		v, ok := get(ann)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 || n > 65535 {
			problem("annotation %s: %q is not a port number; the API server picks one", ann, v)
			continue
		}
		if a.service.NodePorts == nil {
			a.service.NodePorts = map[int32]int32{}
		}
		a.service.NodePorts[port] = int32(n)
	}
	enabled := func(ann string, def bool) bool {
		v, ok := get(ann)
		if !ok {
			return def
		}
		switch strings.ToLower(v) {
		case "enabled", "true":
			return true
		case "disabled", "false":
			return false
		}
		problem("annotation %s: %q is not enabled or disabled", ann, v)
		return def
	}
	a.passthrough = enabled(annotationPassthrough, false)
	a.forceHTTPS = enabled(annotationForceHTTPS, opts.EnforceHTTPS)
	if _, ok := get(annotationHostListenerPort); ok {
		problem("annotation %s: host-network mode is not supported; the Ingress is served through its Service", annotationHostListenerPort)
	}
	if a.mode == Shared {
		for _, ann := range []string{annotationServiceType, annotationLBClass, annotationETP, annotationInsecureNodePort, annotationSecureNodePort} {
			if _, ok := get(ann); ok {
				problem("annotation %s applies to dedicated Ingresses only; this one shares the load balancer", ann)
			}
		}
	}
	return a
}

func copiedAnnotations(in map[string]string, prefixes []string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if slices.ContainsFunc(prefixes, func(p string) bool { return p != "" && strings.HasPrefix(k, p) }) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// ingressBuild gathers the routes of the Ingresses of one load balancer.
type ingressBuild struct {
	name string
	// routes by host ("" for any), in the order the Ingresses came.
	routes   map[string][]ir.Route
	clusters map[string]ir.Cluster
	// tls are the terminating branches, by SNI name ("" for any); the
	// first Ingress to claim a name keeps it.
	tls map[string]*ir.TLSListener
	// redirect lists the hosts whose plain-HTTP requests go to HTTPS.
	redirect map[string]bool
	// passthrough are the SNI names forwarded unopened.
	passthrough map[string][]ir.WeightedBackend
	secrets     map[types.NamespacedName]bool
}

func newIngressBuild(name string) *ingressBuild {
	return &ingressBuild{
		name: name, routes: map[string][]ir.Route{}, clusters: map[string]ir.Cluster{}, tls: map[string]*ir.TLSListener{},
		redirect: map[string]bool{}, passthrough: map[string][]ir.WeightedBackend{}, secrets: map[types.NamespacedName]bool{},
	}
}

// add merges one Ingress in.
func (b *ingressBuild) add(w *world, ing *networkingv1.Ingress, a ingressAnnotations, opts IngressOptions, problem func(string, ...any)) {
	key := keyOf(ing)
	if a.passthrough {
		b.addPassthrough(w, ing, problem)
		return
	}
	var hosts []string
	for ri, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		if !slices.Contains(hosts, rule.Host) {
			hosts = append(hosts, rule.Host)
		}
		for pi, p := range rule.HTTP.Paths {
			field := fmt.Sprintf("spec.rules[%d].http.paths[%d]", ri, pi)
			r := ir.Route{Name: fmt.Sprintf("Ingress/%s/rule/%d/path/%d", key, ri, pi), Match: ingressMatch(p)}
			if r.Match.PathKind == ir.PathRegex {
				if _, err := regexp.Compile(r.Match.Path); err != nil {
					problem("%s.path: %q is not a regular expression (ImplementationSpecific paths are RE2): %v", field, p.Path, err)
					continue
				}
			}
			b.backend(w, &r, key.Namespace, p.Backend, field+".backend", problem)
			b.routes[rule.Host] = append(b.routes[rule.Host], r)
		}
	}
	if d := ing.Spec.DefaultBackend; d != nil {
		// The default backend takes what no rule of this Ingress takes,
		// whatever the host.
		for _, h := range append(slices.Clone(hosts), "") {
			r := ir.Route{Name: fmt.Sprintf("Ingress/%s/default/%s", key, cmp.Or(h, "*")), Match: ir.Match{PathKind: ir.PathPrefix, Path: "/"}}
			b.backend(w, &r, key.Namespace, *d, "spec.defaultBackend", problem)
			b.routes[h] = append(b.routes[h], r)
		}
	}
	for ti, t := range ing.Spec.TLS {
		field := fmt.Sprintf("spec.tls[%d]", ti)
		cert := types.NamespacedName{Namespace: ing.Namespace, Name: t.SecretName}
		if t.SecretName == "" {
			if opts.DefaultCertificate.Name == "" {
				problem("%s: no secretName, and no default certificate is configured (ingressController.defaultSecretName); not served over HTTPS", field)
				continue
			}
			cert = opts.DefaultCertificate
		}
		if msg := w.certificateProblem(cert); msg != "" {
			problem("%s.secretName: %s; not served over HTTPS", field, msg)
			continue
		}
		names := t.Hosts
		if len(names) == 0 {
			names = []string{""}
		}
		for _, h := range names {
			if _, passed := b.passthrough[h]; passed {
				problem("%s: host %q is passed through (%s) by an older Ingress on this load balancer", field, h, annotationPassthrough)
				continue
			}
			if l, taken := b.tls[h]; taken && l.Certificates[0] != cert.String() {
				problem("%s: host %q already has a certificate from an older Ingress on this load balancer", field, h)
				continue
			}
			b.tls[h] = &ir.TLSListener{Name: "tls/" + cmp.Or(h, "*"), Certificates: []string{cert.String()}}
			if h != "" {
				b.tls[h].ServerNames = []string{h}
			}
			b.secrets[cert] = true
			if a.forceHTTPS && h != "" {
				b.redirect[h] = true
			}
		}
	}
}

// addPassthrough forwards the TLS of each rule's host to the backend of its
// "/" path, unopened; other paths cannot be told apart and are ignored.
func (b *ingressBuild) addPassthrough(w *world, ing *networkingv1.Ingress, problem func(string, ...any)) {
	if ing.Spec.DefaultBackend != nil {
		problem("spec.defaultBackend: ignored with %s (routing is by SNI host only)", annotationPassthrough)
	}
	for ri, rule := range ing.Spec.Rules {
		field := fmt.Sprintf("spec.rules[%d]", ri)
		if rule.Host == "" {
			problem("%s.host: required with %s (routing is by SNI)", field, annotationPassthrough)
			continue
		}
		if rule.HTTP == nil {
			continue
		}
		for pi, p := range rule.HTTP.Paths {
			pf := fmt.Sprintf("%s.http.paths[%d]", field, pi)
			if p.Path != "" && p.Path != "/" {
				problem("%s.path: %q is ignored with %s; only / is", pf, p.Path, annotationPassthrough)
				continue
			}
			if _, terminated := b.tls[rule.Host]; terminated {
				problem("%s: host %q has TLS terminated by an older Ingress on this load balancer", pf, rule.Host)
				continue
			}
			if _, taken := b.passthrough[rule.Host]; taken {
				problem("%s: host %q is already passed through by an older rule or Ingress", pf, rule.Host)
				continue
			}
			var r ir.Route
			b.backend(w, &r, ing.Namespace, p.Backend, pf+".backend", problem)
			b.passthrough[rule.Host] = r.Backends
		}
	}
}

// backend resolves an Ingress backend into r; what cannot be resolved
// answers 503, the Ingress convention for a backend that is not there.
func (b *ingressBuild) backend(w *world, r *ir.Route, namespace string, be networkingv1.IngressBackend, field string, problem func(string, ...any)) {
	if be.Service == nil {
		problem("%s.resource: resource backends are not supported", field)
		r.DirectStatus = 503
		return
	}
	key := types.NamespacedName{Namespace: namespace, Name: be.Service.Name}
	svc, ok := w.services[key]
	if !ok {
		problem("%s.service: Service %s not found", field, key)
		r.DirectStatus = 503
		return
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
		if be.Service.Port.Name != "" {
			return sp.Name == be.Service.Port.Name
		}
		return sp.Port == be.Service.Port.Number
	})
	if i < 0 {
		problem("%s.service.port: Service %s has no port %s", field, key, cmp.Or(be.Service.Port.Name, strconv.Itoa(int(be.Service.Port.Number))))
		r.DirectStatus = 503
		return
	}
	sp := svc.Spec.Ports[i]
	c := ir.Cluster{
		Name:      fmt.Sprintf("%s/%s:%d", key.Namespace, key.Name, sp.Port),
		HTTP2:     appProtocols[ptr.Deref(sp.AppProtocol, "")],
		Endpoints: w.endpoints(key, sp),
	}
	b.clusters[c.Name] = c
	r.Backends = []ir.WeightedBackend{{Cluster: c.Name, Weight: 1}}
}

// certificateProblem says what keeps a Secret from terminating TLS.
func (w *world) certificateProblem(k types.NamespacedName) string {
	s, ok := w.secrets[k]
	switch {
	case !ok:
		return fmt.Sprintf("Secret %s not found", k)
	case len(s.Data[corev1.TLSCertKey]) == 0 || len(s.Data[corev1.TLSPrivateKeyKey]) == 0:
		return fmt.Sprintf("Secret %s has no %s and %s", k, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	return ""
}

// ingressMatch maps an Ingress path: Exact and Prefix as the API defines
// them, ImplementationSpecific as a regular expression (the seed's choice).
func ingressMatch(p networkingv1.HTTPIngressPath) ir.Match {
	path := cmp.Or(p.Path, "/")
	switch ptr.Deref(p.PathType, networkingv1.PathTypePrefix) {
	case networkingv1.PathTypeExact:
		return ir.Match{PathKind: ir.PathExact, Path: path}
	case networkingv1.PathTypeImplementationSpecific:
		return ir.Match{PathKind: ir.PathRegex, Path: path}
	}
	return ir.Match{PathKind: ir.PathPrefix, Path: path}
}

// config assembles the load balancer's IR: port 80 always (a load balancer
// with no rules answers 404), port 443 when a host has TLS.
func (b *ingressBuild) config(w *world) ir.Gateway {
	g := ir.Gateway{Name: b.name}
	hosts := slices.Sorted(maps.Keys(b.routes))
	vhost := func(h string, redirect bool) ir.VirtualHost {
		vh := ir.VirtualHost{Domains: []string{cmp.Or(h, "*")}}
		routes := slices.Clone(b.routes[h])
		slices.SortStableFunc(routes, precedence)
		if redirect {
			return ir.VirtualHost{Domains: vh.Domains, Routes: []ir.Route{{
				Name: "https-redirect/" + vh.Domains[0], Match: ir.Match{PathKind: ir.PathPrefix, Path: "/"},
				Redirect: &ir.Redirect{Scheme: "https", StatusCode: 301},
			}}}
		}
		vh.Routes = routes
		return vh
	}
	plain := ir.Port{Port: 80, Protocol: ir.HTTP, HTTP: []ir.VirtualHost{}}
	for _, h := range hosts {
		plain.HTTP = append(plain.HTTP, vhost(h, b.redirect[h]))
	}
	for _, h := range slices.Sorted(maps.Keys(b.redirect)) {
		if _, ok := b.routes[h]; !ok {
			plain.HTTP = append(plain.HTTP, vhost(h, true))
		}
	}
	g.Ports = append(g.Ports, plain)
	secure := ir.Port{Port: 443, Protocol: ir.HTTPS}
	for _, h := range slices.Sorted(maps.Keys(b.tls)) {
		t := *b.tls[h]
		if h == "" {
			for _, rh := range hosts {
				t.HTTP = append(t.HTTP, vhost(rh, false))
			}
		} else if _, ok := b.routes[h]; ok {
			t.HTTP = []ir.VirtualHost{vhost(h, false)}
		}
		secure.TLS = append(secure.TLS, t)
	}
	for _, h := range slices.Sorted(maps.Keys(b.passthrough)) {
		secure.TLS = append(secure.TLS, ir.TLSListener{Name: "passthrough", ServerNames: []string{h}, Passthrough: b.passthrough[h]})
	}
	if len(secure.TLS) > 0 {
		g.Ports = append(g.Ports, secure)
	}
	for _, name := range slices.Sorted(maps.Keys(b.clusters)) {
		g.Clusters = append(g.Clusters, b.clusters[name])
	}
	for _, k := range slices.SortedFunc(maps.Keys(b.secrets), func(x, y types.NamespacedName) int { return cmp.Compare(x.String(), y.String()) }) {
		s := w.secrets[k]
		g.Secrets = append(g.Secrets, ir.Secret{Name: k.String(), Certificate: s.Data[corev1.TLSCertKey], Key: s.Data[corev1.TLSPrivateKeyKey]})
	}
	return g
}
