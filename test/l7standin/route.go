package l7standin

import (
	"net"
	"net/http"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// pickVirtualHost chooses as Envoy does: an exact domain, then the longest
// suffix wildcard ("*.a.com"), then the longest prefix wildcard ("a.*"),
// then "*". The port is ignored (strip_any_host_port).
func pickVirtualHost(rc *routev3.RouteConfiguration, host string) *routev3.VirtualHost {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	var best *routev3.VirtualHost
	bestRank, bestLen := -1, -1
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			rank, n := -1, len(d)
			switch {
			case d == host:
				rank = 3
			case d == "*":
				rank = 0
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
				rank = 2
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]):
				rank = 1
			}
			if rank > bestRank || (rank == bestRank && n > bestLen) {
				best, bestRank, bestLen = vh, rank, n
			}
		}
	}
	if bestRank < 0 {
		return nil
	}
	return best
}

// pickRoute returns the first route of vh whose match holds for r.
func pickRoute(vh *routev3.VirtualHost, r *http.Request) *routev3.Route {
	for _, rt := range vh.GetRoutes() {
		if matches(rt.GetMatch(), r) {
			return rt
		}
	}
	return nil
}

func matches(m *routev3.RouteMatch, r *http.Request) bool {
	path := r.URL.Path
	switch {
	case m.GetPath() != "":
		if path != m.GetPath() {
			return false
		}
	case m.GetPathSeparatedPrefix() != "":
		p := m.GetPathSeparatedPrefix()
		if path != p && !strings.HasPrefix(path, p+"/") {
			return false
		}
	case m.GetSafeRegex() != nil:
		if !fullMatch(m.GetSafeRegex().GetRegex(), path) {
			return false
		}
	case m.GetPrefix() != "" || m.GetPathSpecifier() != nil:
		if !strings.HasPrefix(path, m.GetPrefix()) {
			return false
		}
	}
	for _, h := range m.GetHeaders() {
		var value string
		var present bool
		switch h.GetName() {
		case ":method":
			value, present = r.Method, true
		case ":authority", "host":
			value, present = r.Host, true
		default:
			vs := r.Header.Values(h.GetName())
			value, present = strings.Join(vs, ","), len(vs) > 0
		}
		if !present || !stringMatches(h.GetStringMatch(), value) {
			return false
		}
	}
	q := r.URL.Query()
	for _, qm := range m.GetQueryParameters() {
		vs, ok := q[qm.GetName()]
		if !ok || !stringMatches(qm.GetStringMatch(), vs[0]) {
			return false
		}
	}
	return true
}

func stringMatches(sm *matcherv3.StringMatcher, v string) bool {
	switch {
	case sm == nil:
		return true
	case sm.GetSafeRegex() != nil:
		return fullMatch(sm.GetSafeRegex().GetRegex(), v)
	case sm.GetPrefix() != "":
		return strings.HasPrefix(v, sm.GetPrefix())
	case sm.GetSuffix() != "":
		return strings.HasSuffix(v, sm.GetSuffix())
	case sm.GetContains() != "":
		return strings.Contains(v, sm.GetContains())
	}
	return v == sm.GetExact()
}

// fullMatch is Envoy's safe_regex match: RE2, the whole value.
func fullMatch(re, v string) bool {
	c, err := regexp.Compile("^(?:" + re + ")$")
	return err == nil && c.MatchString(v)
}

// editHeaders applies header_value_options and removals to h.
func editHeaders(h http.Header, add []*corev3.HeaderValueOption, remove []string) {
	for _, name := range remove {
		h.Del(name)
	}
	for _, o := range add {
		k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h.Add(k, v)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if h.Get(k) == "" {
				h.Set(k, v)
			}
		default:
			h.Set(k, v)
		}
	}
}

// rewritePath applies a route's prefix_rewrite or regex_rewrite to path.
func rewritePath(m *routev3.RouteMatch, prefix string, re *matcherv3.RegexMatchAndSubstitute, path string) string {
	switch {
	case re != nil:
		c, err := regexp.Compile(re.GetPattern().GetRegex())
		if err != nil {
			return path
		}
		return c.ReplaceAllString(path, envoySubstitution(re.GetSubstitution()))
	case prefix != "":
		matched := m.GetPrefix()
		if p := m.GetPathSeparatedPrefix(); p != "" {
			matched = p
		}
		if p := m.GetPath(); p != "" {
			matched = p
		}
		return prefix + strings.TrimPrefix(path, matched)
	}
	return path
}

// envoySubstitution turns Envoy's "\1" capture references into Go's "${1}".
func envoySubstitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			b.WriteString("${" + string(s[i+1]) + "}")
			i++
			continue
		}
		if s[i] == '$' {
			b.WriteString("$$")
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
