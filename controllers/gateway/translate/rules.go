package translate

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// ruleInput is one rule of an HTTPRoute or GRPCRoute in a shared shape.
type ruleInput struct {
	matches  []ir.Match
	filters  []gwv1.HTTPRouteFilter
	backends []gwv1.HTTPBackendRef
	timeouts *gwv1.HTTPRouteTimeouts
	retry    *gwv1.HTTPRouteRetry
	session  *gwv1.SessionPersistence
}

func (w *world) httpRoute(hr *gwv1.HTTPRoute) *routeObject {
	r := &routeObject{key: RouteKey{Kind: "HTTPRoute", NamespacedName: keyOf(hr)}, meta: &hr.ObjectMeta, parents: hr.Spec.ParentRefs}
	for _, h := range hr.Spec.Hostnames {
		r.hostnames = append(r.hostnames, string(h))
	}
	rules := make([]ruleInput, len(hr.Spec.Rules))
	for i, rule := range hr.Spec.Rules {
		in := ruleInput{filters: rule.Filters, backends: rule.BackendRefs, timeouts: rule.Timeouts, retry: rule.Retry, session: rule.SessionPersistence}
		for _, m := range rule.Matches {
			in.matches = append(in.matches, httpMatch(m))
		}
		rules[i] = in
	}
	w.convertRules(r, rules, false)
	return r
}

func (w *world) grpcRoute(gr *gwv1.GRPCRoute) *routeObject {
	r := &routeObject{key: RouteKey{Kind: "GRPCRoute", NamespacedName: keyOf(gr)}, meta: &gr.ObjectMeta, parents: gr.Spec.ParentRefs}
	for _, h := range gr.Spec.Hostnames {
		r.hostnames = append(r.hostnames, string(h))
	}
	rules := make([]ruleInput, len(gr.Spec.Rules))
	for i, rule := range gr.Spec.Rules {
		in := ruleInput{session: rule.SessionPersistence}
		for _, m := range rule.Matches {
			in.matches = append(in.matches, grpcMatch(m))
		}
		for _, f := range rule.Filters {
			in.filters = append(in.filters, httpFilter(f))
		}
		for _, b := range rule.BackendRefs {
			hb := gwv1.HTTPBackendRef{BackendRef: b.BackendRef}
			for _, f := range b.Filters {
				hb.Filters = append(hb.Filters, httpFilter(f))
			}
			in.backends = append(in.backends, hb)
		}
		rules[i] = in
	}
	w.convertRules(r, rules, true)
	return r
}

// httpFilter is a GRPCRoute filter in the HTTPRoute shape (the same kinds
// of filter, under the same names).
func httpFilter(f gwv1.GRPCRouteFilter) gwv1.HTTPRouteFilter {
	return gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterType(f.Type),
		RequestHeaderModifier: f.RequestHeaderModifier, ResponseHeaderModifier: f.ResponseHeaderModifier,
		RequestMirror: f.RequestMirror, ExtensionRef: f.ExtensionRef}
}

// tlsRoute reads a TLSRoute: host names matched against SNI and the
// backends of its one rule, weighted.
func (w *world) tlsRoute(tr *gwv1.TLSRoute) *routeObject {
	r := &routeObject{key: RouteKey{Kind: "TLSRoute", NamespacedName: keyOf(tr)}, meta: &tr.ObjectMeta, parents: tr.Spec.ParentRefs, clusters: map[string]ir.Cluster{}}
	for _, h := range tr.Spec.Hostnames {
		r.hostnames = append(r.hostnames, string(h))
	}
	var problems []refProblem
	for ri, rule := range tr.Spec.Rules {
		for bi, b := range rule.BackendRefs {
			weight := ptr.Deref(b.Weight, 1)
			if weight == 0 {
				continue
			}
			c, p := w.resolveBackend(r, b.BackendObjectReference, false, fmt.Sprintf("spec.rules[%d].backendRefs[%d]", ri, bi))
			if p != nil {
				problems = append(problems, *p)
				r.passthrough = append(r.passthrough, ir.WeightedBackend{Weight: uint32(weight)}) //nolint:gosec // the schema bounds weights
				continue
			}
			r.clusters[c.Name] = c
			r.passthrough = append(r.passthrough, ir.WeightedBackend{Cluster: c.Name, Weight: uint32(weight)}) //nolint:gosec // as above
		}
	}
	r.resolved = routeResolved(tr.Generation, problems)
	return r
}

func httpMatch(m gwv1.HTTPRouteMatch) ir.Match {
	out := ir.Match{PathKind: ir.PathPrefix, Path: "/"}
	if m.Path != nil {
		out.PathKind = ir.PathKind(ptr.Deref(m.Path.Type, gwv1.PathMatchPathPrefix))
		out.Path = ptr.Deref(m.Path.Value, "/")
		if out.PathKind == ir.PathPrefix && len(out.Path) > 1 {
			// "/foo/" and "/foo" both match "/foo" and "/foo/bar".
			out.Path = strings.TrimRight(out.Path, "/")
			if out.Path == "" {
				out.Path = "/"
			}
		}
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, ir.ValueMatch{Name: string(h.Name), Value: h.Value,
			Regex: ptr.Deref(h.Type, gwv1.HeaderMatchExact) == gwv1.HeaderMatchRegularExpression})
	}
	for _, q := range m.QueryParams {
		out.Query = append(out.Query, ir.ValueMatch{Name: string(q.Name), Value: q.Value,
			Regex: ptr.Deref(q.Type, gwv1.QueryParamMatchExact) == gwv1.QueryParamMatchRegularExpression})
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
	}
	return out
}

// grpcMatch matches a gRPC method by the request path "/<service>/<method>".
func grpcMatch(m gwv1.GRPCRouteMatch) ir.Match {
	out := ir.Match{PathKind: ir.PathPrefix, Path: "/"}
	if mm := m.Method; mm != nil {
		svc, method := ptr.Deref(mm.Service, ""), ptr.Deref(mm.Method, "")
		if ptr.Deref(mm.Type, gwv1.GRPCMethodMatchExact) == gwv1.GRPCMethodMatchRegularExpression {
			out.PathKind, out.Path = ir.PathRegex, "/"+orAny(svc)+"/"+orAny(method)
		} else {
			switch {
			case svc != "" && method != "":
				out.PathKind, out.Path = ir.PathExact, "/"+svc+"/"+method
			case svc != "":
				out.PathKind, out.Path = ir.PathPrefix, "/"+svc
			case method != "":
				out.PathKind, out.Path = ir.PathRegex, "/[^/]+/"+regexp.QuoteMeta(method)
			}
		}
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, ir.ValueMatch{Name: string(h.Name), Value: h.Value,
			Regex: ptr.Deref(h.Type, gwv1.GRPCHeaderMatchExact) == gwv1.GRPCHeaderMatchRegularExpression})
	}
	return out
}

func orAny(re string) string {
	if re == "" {
		return "[^/]+"
	}
	return re
}

// convertRules turns rules into IR routes, resolving backends, and sets
// r's ResolvedRefs and unsupported fields.
func (w *world) convertRules(r *routeObject, rules []ruleInput, grpc bool) {
	r.clusters = map[string]ir.Cluster{}
	var problems []refProblem
	var unsupported []string
	for ri, rule := range rules {
		base := ir.Route{GRPC: grpc}
		field := fmt.Sprintf("spec.rules[%d]", ri)
		if rule.session != nil {
			unsupported = append(unsupported, field+".sessionPersistence")
		}
		invalidFilter := false
		for fi, f := range rule.filters {
			ff := fmt.Sprintf("%s.filters[%d]", field, fi)
			switch f.Type {
			case gwv1.HTTPRouteFilterRequestHeaderModifier:
				base.RequestHeaders = headerEdits(f.RequestHeaderModifier)
			case gwv1.HTTPRouteFilterResponseHeaderModifier:
				base.ResponseHeaders = headerEdits(f.ResponseHeaderModifier)
			case gwv1.HTTPRouteFilterRequestRedirect:
				base.Redirect = redirect(f.RequestRedirect)
			case gwv1.HTTPRouteFilterURLRewrite:
				base.Rewrite = rewrite(f.URLRewrite)
			case gwv1.HTTPRouteFilterRequestMirror:
				m := f.RequestMirror
				c, p := w.resolveBackend(r, m.BackendRef, grpc, ff+".requestMirror.backendRef")
				if p != nil {
					problems = append(problems, *p)
					continue
				}
				r.clusters[c.Name] = c
				base.Mirrors = append(base.Mirrors, mirror(c.Name, m))
			case gwv1.HTTPRouteFilterCORS:
				base.CORS = cors(f.CORS)
			case gwv1.HTTPRouteFilterExtensionRef:
				invalidFilter = true
				problems = append(problems, refProblem{gwv1.RouteReasonInvalidKind,
					fmt.Sprintf("%s.extensionRef: no extension filters are served (%s %s)", ff, f.ExtensionRef.Kind, f.ExtensionRef.Name)})
			default:
				unsupported = append(unsupported, fmt.Sprintf("%s (type %s)", ff, f.Type))
			}
		}
		if err := timeouts(&base, rule.timeouts); err != "" {
			unsupported = append(unsupported, field+".timeouts: "+err)
		}
		if rule.retry != nil {
			base.Retry = retry(rule.retry)
		}
		if base.Redirect == nil {
			var total int32
			for bi, b := range rule.backends {
				bf := fmt.Sprintf("%s.backendRefs[%d]", field, bi)
				var wb ir.WeightedBackend
				for fi, f := range b.Filters {
					switch f.Type {
					case gwv1.HTTPRouteFilterRequestHeaderModifier:
						wb.RequestHeaders = headerEdits(f.RequestHeaderModifier)
					case gwv1.HTTPRouteFilterResponseHeaderModifier:
						wb.ResponseHeaders = headerEdits(f.ResponseHeaderModifier)
					default:
						unsupported = append(unsupported, fmt.Sprintf("%s.filters[%d] (type %s)", bf, fi, f.Type))
					}
				}
				weight := ptr.Deref(b.Weight, 1)
				if weight == 0 {
					continue
				}
				total += weight
				wb.Weight = uint32(weight) //nolint:gosec // the schema bounds weights to 0..1,000,000
				c, p := w.resolveBackend(r, b.BackendRef.BackendObjectReference, grpc, bf)
				if p != nil {
					problems = append(problems, *p)
					base.Backends = append(base.Backends, wb)
					continue
				}
				r.clusters[c.Name] = c
				wb.Cluster = c.Name
				base.Backends = append(base.Backends, wb)
			}
			allInvalid := !slices.ContainsFunc(base.Backends, func(b ir.WeightedBackend) bool { return b.Cluster != "" })
			if total == 0 || allInvalid || invalidFilter {
				// Nothing to send to: the Gateway API answers 500.
				base.Backends, base.DirectStatus = nil, 500
			}
		}
		matches := rule.matches
		if len(matches) == 0 {
			matches = []ir.Match{{PathKind: ir.PathPrefix, Path: "/"}}
		}
		for mi, m := range matches {
			route := base
			route.Name = fmt.Sprintf("%s/%s/%s/rule/%d/match/%d", r.key.Kind, r.key.Namespace, r.key.Name, ri, mi)
			route.Match = m
			r.routes = append(r.routes, route)
		}
	}
	if len(unsupported) > 0 {
		r.unsupported = "not supported: " + strings.Join(unsupported, ", ")
	}
	r.resolved = routeResolved(r.meta.Generation, problems)
}

func headerEdits(f *gwv1.HTTPHeaderFilter) ir.HeaderEdits {
	var e ir.HeaderEdits
	if f == nil {
		return e
	}
	for _, h := range f.Set {
		e.Set = append(e.Set, ir.Header{Name: string(h.Name), Value: h.Value})
	}
	for _, h := range f.Add {
		e.Add = append(e.Add, ir.Header{Name: string(h.Name), Value: h.Value})
	}
	e.Remove = append(e.Remove, f.Remove...)
	return e
}

func redirect(f *gwv1.HTTPRequestRedirectFilter) *ir.Redirect {
	r := &ir.Redirect{Scheme: ptr.Deref(f.Scheme, ""), Hostname: string(ptr.Deref(f.Hostname, "")), Port: ptr.Deref(f.Port, 0), StatusCode: ptr.Deref(f.StatusCode, 302)}
	if r.Port == 0 {
		// A new scheme without a port goes to the scheme's well-known
		// port (the proxy leaves a default port out of Location); with
		// neither, the request's own port (the listener's) stays.
		r.Port = map[string]int32{"http": 80, "https": 443}[r.Scheme]
	}
	if p := f.Path; p != nil {
		r.FullPath, r.PrefixPath = p.ReplaceFullPath, p.ReplacePrefixMatch
	}
	return r
}

func rewrite(f *gwv1.HTTPURLRewriteFilter) *ir.Rewrite {
	r := &ir.Rewrite{Hostname: string(ptr.Deref(f.Hostname, ""))}
	if p := f.Path; p != nil {
		r.FullPath, r.PrefixPath = p.ReplaceFullPath, p.ReplacePrefixMatch
	}
	return r
}

func mirror(cluster string, f *gwv1.HTTPRequestMirrorFilter) ir.Mirror {
	m := ir.Mirror{Cluster: cluster, Numerator: 100, Denominator: 100}
	switch {
	case f.Percent != nil:
		m.Numerator = uint32(*f.Percent) //nolint:gosec // the schema bounds it to 0..100
	case f.Fraction != nil:
		m.Numerator, m.Denominator = uint32(f.Fraction.Numerator), uint32(ptr.Deref(f.Fraction.Denominator, 100)) //nolint:gosec // the schema bounds both
	}
	return m
}

// timeouts sets r's timeouts and returns what it could not read.
func timeouts(r *ir.Route, t *gwv1.HTTPRouteTimeouts) string {
	if t == nil {
		return ""
	}
	if t.Request != nil {
		d, err := time.ParseDuration(string(*t.Request))
		if err != nil {
			return err.Error()
		}
		r.Timeout = &d
	}
	if t.BackendRequest != nil {
		d, err := time.ParseDuration(string(*t.BackendRequest))
		if err != nil {
			return err.Error()
		}
		r.BackendTimeout = &d
	}
	return ""
}

func cors(f *gwv1.HTTPCORSFilter) *ir.CORS {
	if f == nil {
		return nil
	}
	c := &ir.CORS{MaxAge: f.MaxAge, AllowCredentials: ptr.Deref(f.AllowCredentials, false)}
	for _, o := range f.AllowOrigins {
		c.AllowOrigins = append(c.AllowOrigins, string(o))
	}
	for _, m := range f.AllowMethods {
		c.AllowMethods = append(c.AllowMethods, string(m))
	}
	for _, h := range f.AllowHeaders {
		c.AllowHeaders = append(c.AllowHeaders, string(h))
	}
	for _, h := range f.ExposeHeaders {
		c.ExposeHeaders = append(c.ExposeHeaders, string(h))
	}
	return c
}

func retry(f *gwv1.HTTPRouteRetry) *ir.Retry {
	r := &ir.Retry{}
	for _, c := range f.Codes {
		r.Codes = append(r.Codes, uint32(c)) //nolint:gosec // the schema bounds codes to 400..599
	}
	if f.Attempts != nil {
		n := uint32(max(*f.Attempts, 0)) //nolint:gosec // clamped
		r.Attempts = &n
	}
	if f.Backoff != nil {
		if d, err := time.ParseDuration(string(*f.Backoff)); err == nil {
			r.Backoff = d
		}
	}
	return r
}
