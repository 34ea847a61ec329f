package l7standin

import (
	"net/http"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
)

// corsFilterName and corsFilterType name Envoy's CORS filter, the one
// HTTP filter besides the router the stand-in runs.
const (
	corsFilterName = "envoy.filters.http.cors"
	corsFilterType = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
)

// routeCORS reads a route's CORS policy (nil: none). A per-filter config
// of another filter, or a policy the stand-in does not serve, is refused
// when the route configuration arrives (checkCORS).
func routeCORS(rt *routev3.Route) *corsv3.CorsPolicy {
	a := rt.GetTypedPerFilterConfig()[corsFilterName]
	if a == nil {
		return nil
	}
	var p corsv3.CorsPolicy
	if a.UnmarshalTo(&p) != nil {
		return nil
	}
	return &p
}

// checkCORS refuses per-filter configs the stand-in does not serve.
func checkCORS(rt *routev3.Route) error {
	for name, a := range rt.GetTypedPerFilterConfig() {
		if name != corsFilterName {
			return Unsupported{"route " + rt.GetName() + ": per-filter config of " + name}
		}
		var p corsv3.CorsPolicy
		if err := a.UnmarshalTo(&p); err != nil {
			return Unsupported{"route " + rt.GetName() + ": CORS config " + a.GetTypeUrl()}
		}
		if p.GetFilterEnabled() != nil || p.GetShadowEnabled() != nil || p.GetAllowPrivateNetworkAccess() != nil {
			return Unsupported{"route " + rt.GetName() + ": CORS runtime fractions and private network access"}
		}
		for _, m := range p.GetAllowOriginStringMatch() {
			if re := m.GetSafeRegex(); re != nil {
				if _, err := regexp.Compile(re.GetRegex()); err != nil {
					return err
				}
			} else if m.GetExact() == "" {
				return Unsupported{"route " + rt.GetName() + ": origin matchers other than exact and regex"}
			}
		}
	}
	return nil
}

// originAllowed is Envoy's origin check: a matcher matches the whole
// Origin header, or "*" (a matcher for "*" allows every origin).
func originAllowed(p *corsv3.CorsPolicy, origin string) bool {
	for _, m := range p.GetAllowOriginStringMatch() {
		if m.GetExact() == "*" {
			return true
		}
		if re := m.GetSafeRegex(); re != nil {
			if ok, _ := regexp.MatchString("^(?:"+re.GetRegex()+")$", origin); ok {
				return true
			}
			continue
		}
		if m.GetExact() == origin || (m.GetIgnoreCase() && strings.EqualFold(m.GetExact(), origin)) {
			return true
		}
	}
	return false
}

// corsPreflight answers a preflight request (OPTIONS with an Origin and an
// Access-Control-Request-Method) as Envoy's CORS filter does. From an
// origin not allowed it is passed on, unless forward_not_matching_preflights
// is false. Otherwise the proxy answers 200 with Access-Control-Allow-Origin
// (allowed origins only), -Allow-Credentials, -Allow-Methods and
// -Allow-Headers ("*" echoes what the request asked for) and -Max-Age; the
// filter's response pass then adds, for an allowed origin, what it adds to
// every answer (exposed headers). It says whether it answered.
func corsPreflight(p *corsv3.CorsPolicy, w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if p == nil || origin == "" || r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	allowed := originAllowed(p, origin)
	if f := p.GetForwardNotMatchingPreflights(); !allowed && (f == nil || f.GetValue()) {
		return false
	}
	h := w.Header()
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if p.GetAllowCredentials().GetValue() {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	echo := func(header, configured, requested string) {
		switch configured {
		case "":
		case "*":
			h.Set(header, r.Header.Get(requested))
		default:
			h.Set(header, configured)
		}
	}
	echo("Access-Control-Allow-Methods", p.GetAllowMethods(), "Access-Control-Request-Method")
	echo("Access-Control-Allow-Headers", p.GetAllowHeaders(), "Access-Control-Request-Headers")
	if m := p.GetMaxAge(); m != "" {
		h.Set("Access-Control-Max-Age", m)
	}
	if e := p.GetExposeHeaders(); allowed && e != "" {
		h.Set("Access-Control-Expose-Headers", e)
	}
	w.WriteHeader(http.StatusOK)
	return true
}

// corsWriter adds, to the answer of a request from an allowed origin, the
// headers Envoy's CORS filter adds (replacing the backend's).
type corsWriter struct {
	http.ResponseWriter
	policy  *corsv3.CorsPolicy
	origin  string
	written bool
}

func (c *corsWriter) WriteHeader(code int) {
	if !c.written {
		c.written = true
		h := c.Header()
		h.Set("Access-Control-Allow-Origin", c.origin)
		if c.policy.GetAllowCredentials().GetValue() {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if e := c.policy.GetExposeHeaders(); e != "" {
			h.Set("Access-Control-Expose-Headers", e)
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *corsWriter) Write(b []byte) (int, error) {
	if !c.written {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes).
func (c *corsWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// withCORS is w, marked by the route's policy when the request comes from
// an allowed origin.
func withCORS(p *corsv3.CorsPolicy, w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	origin := r.Header.Get("Origin")
	if p == nil || origin == "" || !originAllowed(p, origin) {
		return w
	}
	return &corsWriter{ResponseWriter: w, policy: p, origin: origin}
}
