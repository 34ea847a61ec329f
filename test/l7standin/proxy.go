package l7standin

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/plexus-net/plexus/internal/envoyxds"
	"github.com/plexus-net/plexus/test/xdsclient"
)

// defaultRouteTimeout is Envoy's route timeout when none is set.
const defaultRouteTimeout = 15 * time.Second

// Proxy is the stand-in data plane.
type Proxy struct {
	NodeID string
	// StateOfTheWorld speaks state-of-the-world ADS; by default the
	// stand-in speaks delta xDS, as the chart's Envoy bootstrap asks.
	StateOfTheWorld bool

	client    xdsclient.Client
	cfg       atomic.Pointer[Config]
	mu        sync.Mutex
	listeners map[string]*bound // by address
	// lds are the addresses of the last listeners accepted: a socket
	// bound for them stays open until a newer LDS drops it, even while
	// an older state is being applied.
	lds     map[string]bool
	h1, h2  *http.Transport
	applied atomic.Int64
	// inService is the client state the config in service was built from.
	inService atomic.Pointer[xdsclient.State]
}

type bound struct {
	mode    string // http, tls, tcp or mixed: see Listener.mode
	ln      net.Listener
	srv     *http.Server // http and tls
	started bool
}

// Applied counts the configurations put in service.
func (p *Proxy) Applied() int64 { return p.applied.Load() }

// Serves says whether the configuration in service is snapshot version:
// over state of the world every type carries it; over delta xDS, which
// sends only the types that changed, the config in service was built from
// everything accepted so far and the last response accepted carried it.
func (p *Proxy) Serves(version string) bool {
	st := p.inService.Load()
	if st == nil {
		return false
	}
	if p.StateOfTheWorld {
		if len(st.Versions) < len(envoyxds.Types) {
			return false // some type has not arrived yet
		}
		for _, got := range st.Versions {
			if got != version {
				return false
			}
		}
		return true
	}
	return st.Last == version && st.Accepted == p.client.Accepted()
}

// Run serves until ctx ends, holding an xDS stream on conn. When the
// stream ends (the plugin restarts) it keeps serving what it has and
// reconnects, as Envoy does.
func (p *Proxy) Run(ctx context.Context, conn grpc.ClientConnInterface) error {
	p.listeners = map[string]*bound{}
	p.h1 = &http.Transport{MaxIdleConnsPerHost: 64}
	p.h2 = &http.Transport{Protocols: new(http.Protocols)}
	p.h2.Protocols.SetUnencryptedHTTP2(true)
	p.client = xdsclient.Client{NodeID: p.NodeID, Check: p.check, Delta: !p.StateOfTheWorld}
	updates := p.client.Updates()
	defer p.closeAll()
	for ctx.Err() == nil {
		done := make(chan error, 1)
		go func() { done <- p.client.Run(ctx, conn) }()
	stream:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-done:
				break stream
			case <-updates:
				p.apply()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// check refuses what cannot be served, and binds new listeners' ports
// first: a port that cannot be bound refuses the listeners, as in Envoy.
func (p *Proxy) check(typeURL string, res map[string]proto.Message) error {
	if err := Check(typeURL, res); err != nil {
		return err
	}
	if typeURL != resource.ListenerType {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var opened []string
	addrs := map[string]bool{}
	for name, m := range res {
		l, _ := listener(m.(*listenerv3.Listener), nil)
		addrs[l.Address] = true
		if b, ok := p.listeners[l.Address]; ok {
			if b.mode == l.mode() {
				continue
			}
			// The address changes hands (HTTP to TLS, say): Envoy binds
			// the new listener beside the draining one (SO_REUSEPORT); the
			// stand-in closes the old socket first.
			b.ln.Close()
			if b.srv != nil {
				go b.srv.Close()
			}
			delete(p.listeners, l.Address)
		}
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			for _, a := range opened {
				p.listeners[a].ln.Close()
				delete(p.listeners, a)
			}
			return fmt.Errorf("listener %s: %w", name, err)
		}
		p.listeners[l.Address] = &bound{mode: l.mode(), ln: ln}
		opened = append(opened, l.Address)
	}
	p.lds = addrs
	return nil
}

// apply puts the accepted resources in service once they are complete
// (every route configuration and cluster they name has arrived), as Envoy
// warms listeners and clusters before it uses them.
func (p *Proxy) apply() {
	st := p.client.State()
	cfg, err := Resolve(st.Resources)
	if err != nil || !complete(cfg) {
		return
	}
	p.cfg.Store(cfg)
	p.inService.Store(&st)
	p.mu.Lock()
	for addr, b := range p.listeners {
		l, wanted := cfg.Listeners[addr]
		switch {
		case !wanted && !p.lds[addr]:
			b.ln.Close()
			if b.srv != nil {
				go b.srv.Close()
			}
			delete(p.listeners, addr)
		case wanted && !b.started:
			p.serve(l, b)
		}
	}
	p.mu.Unlock()
	p.applied.Add(1)
}

// complete says every route configuration a listener names has arrived.
// (A cluster that never arrives is answered at request time with the
// route's cluster_not_found_response_code, as in Envoy.)
func complete(cfg *Config) bool {
	for _, l := range cfg.Listeners {
		for _, ch := range l.Chains {
			if _, ok := cfg.Routes[ch.RouteConfig]; !ok && ch.TCP == nil {
				return false
			}
		}
	}
	return true
}

func (p *Proxy) serve(l *Listener, b *bound) {
	addr := l.Address
	b.started = true
	ln := b.ln
	switch {
	case l.Passthrough && l.TLS:
		// Each connection goes by its SNI: forwarded unopened, or handed
		// to the TLS-terminating HTTP server below.
		split := &handoffListener{Listener: b.ln, conns: make(chan net.Conn), done: make(chan struct{})}
		go p.serveSplit(addr, b.ln, split)
		ln = split
	case l.Passthrough:
		go p.servePassthrough(addr, b.ln)
		return
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.handle(addr, w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	if l.TLS {
		ln = tls.NewListener(ln, &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				cur := p.cfg.Load().Listeners[addr]
				if cur == nil {
					return nil, errors.New("listener gone")
				}
				ch := pickChain(cur, hello.ServerName)
				if ch == nil || len(ch.Certificates) == 0 {
					return nil, fmt.Errorf("no filter chain for server name %q", hello.ServerName)
				}
				return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: ch.Certificates, NextProtos: []string{"h2", "http/1.1"},
					ClientAuth: ch.ClientAuth, ClientCAs: ch.ClientCAs}, nil
			},
		})
	}
	b.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.listeners {
		b.ln.Close()
		if b.srv != nil {
			b.srv.Close()
		}
	}
	p.listeners = map[string]*bound{}
}

// pickChain chooses a filter chain by SNI as Envoy does: an exact name,
// then the longest wildcard, then a chain without names.
func pickChain(l *Listener, sni string) *Chain {
	var best *Chain
	bestRank := -1
	for _, ch := range l.Chains {
		rank := -1
		if len(ch.ServerNames) == 0 {
			rank = 0
		}
		for _, n := range ch.ServerNames {
			switch {
			case n == sni:
				rank = max(rank, 1<<20)
			case strings.HasPrefix(n, "*") && strings.HasSuffix(sni, n[1:]):
				rank = max(rank, len(n))
			}
		}
		if rank > bestRank {
			best, bestRank = ch, rank
		}
	}
	return best
}

// handle serves one request through the listener at addr.
func (p *Proxy) handle(addr string, w http.ResponseWriter, r *http.Request) {
	cfg := p.cfg.Load()
	l := cfg.Listeners[addr]
	if l == nil {
		http.Error(w, "listener gone", http.StatusServiceUnavailable)
		return
	}
	sni := ""
	if r.TLS != nil {
		sni = r.TLS.ServerName
	}
	ch := pickChain(l, sni)
	rc := cfg.Routes[ch.RouteConfig]
	// Envoy names itself in every response it makes, and in forwarded ones
	// as its server_header_transformation says (see forward).
	if ch.ServerHeader != hcmv3.HttpConnectionManager_PASS_THROUGH {
		w.Header().Set("Server", ch.ServerName)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// use_remote_address with no trusted hops: the connection's source is
	// the client.
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	if ch.XFFTrustedHops == 0 {
		if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
			r.Header.Set("X-Forwarded-For", prior+","+client)
		} else {
			r.Header.Set("X-Forwarded-For", client)
		}
		r.Header.Set("X-Envoy-External-Address", client)
	}
	r.Header.Set("X-Forwarded-Proto", scheme)
	if r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", requestID())
	}
	vh := pickVirtualHost(rc, r.Host)
	if vh == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	rt := pickRoute(vh, r)
	if rt == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	upgrade := upgradeOf(r)
	if upgrade != "" && !slices.Contains(ch.Upgrades, upgrade) {
		// Envoy's local reply to an upgrade its connection manager does
		// not allow.
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "upgrade failed")
		return
	}
	cors := routeCORS(rt)
	if corsPreflight(cors, w, r) {
		return
	}
	w = withCORS(cors, w, r)
	switch {
	case rt.GetDirectResponse() != nil:
		w.WriteHeader(int(rt.GetDirectResponse().GetStatus()))
		_, _ = io.WriteString(w, rt.GetDirectResponse().GetBody().GetInlineString())
	case rt.GetRedirect() != nil:
		w.Header().Set("Location", location(rt.GetRedirect(), rt.GetMatch(), r, scheme))
		w.WriteHeader(redirectCode(rt.GetRedirect().GetResponseCode()))
	default:
		p.forward(cfg, rt, w, r, ch.ServerHeader)
	}
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redirectCode(c routev3.RedirectAction_RedirectResponseCode) int {
	return map[routev3.RedirectAction_RedirectResponseCode]int{
		routev3.RedirectAction_MOVED_PERMANENTLY: 301, routev3.RedirectAction_FOUND: 302, routev3.RedirectAction_SEE_OTHER: 303,
		routev3.RedirectAction_TEMPORARY_REDIRECT: 307, routev3.RedirectAction_PERMANENT_REDIRECT: 308,
	}[c]
}

// location builds a redirect's Location from the request, Envoy-style: a
// scheme change drops the port when it is the new scheme's default.
func location(a *routev3.RedirectAction, m *routev3.RouteMatch, r *http.Request, scheme string) string {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, ""
	}
	if s := a.GetSchemeRedirect(); s != "" {
		scheme = s
		if (s == "https" && (port == "80" || port == "443")) || (s == "http" && (port == "80" || port == "443")) {
			port = ""
		}
	}
	if h := a.GetHostRedirect(); h != "" {
		host = h
	}
	if pr := a.GetPortRedirect(); pr != 0 {
		port = fmt.Sprint(pr)
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	path := r.URL.Path
	switch {
	case a.GetPathRedirect() != "":
		path = a.GetPathRedirect()
	default:
		path = rewritePath(m, a.GetPrefixRewrite(), a.GetRegexRewrite(), path)
	}
	hostport := host
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	u := scheme + "://" + hostport + path
	if r.URL.RawQuery != "" && !a.GetStripQuery() {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// forward sends r to the route's cluster and copies the answer back.
func (p *Proxy) forward(cfg *Config, rt *routev3.Route, w http.ResponseWriter, r *http.Request,
	serverHeader hcmv3.HttpConnectionManager_ServerHeaderTransformation) {
	a := rt.GetRoute()
	notFound := map[routev3.RouteAction_ClusterNotFoundResponseCode]int{
		routev3.RouteAction_SERVICE_UNAVAILABLE: 503, routev3.RouteAction_NOT_FOUND: 404, routev3.RouteAction_INTERNAL_SERVER_ERROR: 500,
	}[a.GetClusterNotFoundResponseCode()]
	name, weight := pickCluster(a)
	cl := cfg.Clusters[name]
	if cl == nil {
		w.WriteHeader(notFound)
		return
	}
	timeout := defaultRouteTimeout
	if a.GetTimeout() != nil {
		timeout = a.GetTimeout().AsDuration()
	}
	ctx := r.Context()
	// An upgraded connection (WebSocket) lives past its response: the
	// route timeout is Envoy's bound on a response, not on a tunnel.
	if timeout > 0 && upgradeOf(r) == "" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body = b
	}
	path := rewritePath(rt.GetMatch(), a.GetPrefixRewrite(), a.GetRegexRewrite(), r.URL.Path)
	host := r.Host
	if h := a.GetHostRewriteLiteral(); h != "" {
		host = h
	}
	header := r.Header.Clone()
	// Envoy edits the weighted cluster's headers first, then the route's.
	editHeaders(header, weight.GetRequestHeadersToAdd(), weight.GetRequestHeadersToRemove())
	editHeaders(header, rt.GetRequestHeadersToAdd(), rt.GetRequestHeadersToRemove())
	for _, m := range a.GetRequestMirrorPolicies() {
		if mc := cfg.Clusters[m.GetCluster()]; mc != nil && sampled(m.GetRuntimeFraction().GetDefaultValue()) {
			go p.mirror(mc, r.Method, path, r.URL.RawQuery, host, header, body)
		}
	}
	policy := a.GetRetryPolicy()
	tries := 1
	if policy != nil && policy.GetNumRetries() != nil {
		tries += int(policy.GetNumRetries().GetValue())
	} else if policy != nil {
		tries++ // Envoy's default is one retry
	}
	var resp *http.Response
	var err error
	for try := 0; try < tries; try++ {
		tctx := ctx
		if policy.GetPerTryTimeout().AsDuration() > 0 { // zero is Envoy's unset
			var cancel context.CancelFunc
			tctx, cancel = context.WithTimeout(ctx, policy.GetPerTryTimeout().AsDuration())
			defer cancel()
		}
		resp, err = p.send(tctx, cl, r.Method, path, r.URL.RawQuery, host, header, body)
		if !retriable(policy, resp, err) || try == tries-1 {
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		if b := policy.GetRetryBackOff().GetBaseInterval(); b != nil {
			time.Sleep(b.AsDuration())
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = io.WriteString(w, "upstream request timeout")
		return
	case err != nil:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "upstream connect error or disconnect/reset before headers")
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		splice(w, resp)
		return
	}
	for k, vs := range resp.Header {
		if k == "Server" {
			if serverHeader == hcmv3.HttpConnectionManager_OVERWRITE {
				continue
			}
			w.Header().Del(k) // the backend's wins over ours
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	editHeaders(w.Header(), weight.GetResponseHeadersToAdd(), weight.GetResponseHeadersToRemove())
	editHeaders(w.Header(), rt.GetResponseHeadersToAdd(), rt.GetResponseHeadersToRemove())
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
			_ = rc.Flush()
		}
		if rerr != nil {
			break
		}
	}
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			w.Header().Add(http.TrailerPrefix+k, v)
		}
	}
}

// upgradeOf is the protocol an HTTP/1.1 request asks to switch to
// (Connection: upgrade, Upgrade: <protocol>), lower case, or "".
func upgradeOf(r *http.Request) string {
	if r.ProtoMajor != 1 || r.Header.Get("Upgrade") == "" {
		return ""
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return strings.ToLower(r.Header.Get("Upgrade"))
			}
		}
	}
	return ""
}

// splice answers the client with the backend's 101 Switching Protocols
// and then copies bytes both ways until either side closes: what Envoy
// does once an upgrade (WebSocket) is accepted.
func splice(w http.ResponseWriter, resp *http.Response) {
	backend, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer backend.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\n"); err != nil {
		return
	}
	if err := resp.Header.Write(brw); err != nil {
		return
	}
	if _, err := brw.WriteString("\r\n"); err != nil || brw.Flush() != nil {
		return
	}
	// Reads go through brw, which first hands over what the server had
	// read ahead.
	join(backend, struct {
		io.Reader
		io.Writer
	}{brw, conn})
}

// join copies bytes both ways between a and b until either direction
// ends (the caller then closes both).
func join(a, b io.ReadWriter) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	<-done
}

// pickCluster picks the route's cluster, by weight among weighted ones
// (whose entry is returned too, for its header edits).
func pickCluster(a *routev3.RouteAction) (string, *routev3.WeightedCluster_ClusterWeight) {
	if c := a.GetCluster(); c != "" {
		return c, nil
	}
	var total uint32
	for _, c := range a.GetWeightedClusters().GetClusters() {
		total += c.GetWeight().GetValue()
	}
	if total == 0 {
		return "", nil
	}
	n := mrand.Uint32N(total) //nolint:gosec // load balancing, not security
	for _, c := range a.GetWeightedClusters().GetClusters() {
		if n < c.GetWeight().GetValue() {
			return c.GetName(), c
		}
		n -= c.GetWeight().GetValue()
	}
	return "", nil
}

func sampled(f *typev3.FractionalPercent) bool {
	if f == nil {
		return true
	}
	den := map[typev3.FractionalPercent_DenominatorType]uint32{
		typev3.FractionalPercent_HUNDRED: 100, typev3.FractionalPercent_TEN_THOUSAND: 10_000, typev3.FractionalPercent_MILLION: 1_000_000,
	}[f.GetDenominator()]
	return mrand.Uint32N(den) < f.GetNumerator() //nolint:gosec // sampling
}

func retriable(p *routev3.RetryPolicy, resp *http.Response, err error) bool {
	if p == nil {
		return false
	}
	on := strings.Split(p.GetRetryOn(), ",")
	has := func(s string) bool {
		for _, o := range on {
			if strings.TrimSpace(o) == s {
				return true
			}
		}
		return false
	}
	if err != nil {
		return has("connect-failure") || has("reset") || has("5xx")
	}
	if has("5xx") && resp.StatusCode >= 500 {
		return true
	}
	if has("retriable-status-codes") {
		for _, c := range p.GetRetriableStatusCodes() {
			if int(c) == resp.StatusCode {
				return true
			}
		}
	}
	return false
}

var rr atomic.Uint64

func (p *Proxy) send(ctx context.Context, cl *Cluster, method, path, query, host string, header http.Header, body []byte) (*http.Response, error) {
	if len(cl.Endpoints) == 0 {
		return nil, errors.New("no healthy upstream")
	}
	ep := cl.Endpoints[rr.Add(1)%uint64(len(cl.Endpoints))]
	scheme := "http"
	if cl.Transport != nil {
		scheme = "https"
	}
	u := scheme + "://" + ep + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header = header.Clone()
	req.Host = host
	if len(body) == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	t := p.h1
	switch {
	case cl.Transport != nil:
		t = cl.Transport
	case cl.HTTP2:
		t = p.h2
	}
	return t.RoundTrip(req)
}

// mirror sends a copy whose answer is dropped; Envoy marks the Host of a
// shadowed request with "-shadow".
func (p *Proxy) mirror(cl *Cluster, method, path, query, host string, header http.Header, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, port, err := net.SplitHostPort(host)
	if err == nil {
		host = net.JoinHostPort(h+"-shadow", port)
	} else {
		host += "-shadow"
	}
	resp, err := p.send(ctx, cl, method, path, query, host, header, body)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// servePassthrough forwards each TLS connection, unopened, to a cluster of
// the chain its ClientHello's server name picks (tcp_proxy).
func (p *Proxy) servePassthrough(addr string, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.passthrough(addr, c)
	}
}

func (p *Proxy) passthrough(addr string, c net.Conn) {
	defer c.Close()
	sni, hello := peekServerName(c)
	cfg := p.cfg.Load()
	l := cfg.Listeners[addr]
	if l == nil {
		return
	}
	ch := pickChain(l, sni)
	if ch == nil {
		return // no chain: Envoy closes the connection
	}
	p.forwardStream(cfg, ch, c, hello)
}

// forwardStream forwards a tcp_proxy chain's connection: unopened, or
// when the chain has certificates, decrypted (TLSRoute mode Terminate).
func (p *Proxy) forwardStream(cfg *Config, ch *Chain, c net.Conn, hello []byte) {
	if len(ch.Certificates) == 0 {
		p.forwardTCP(cfg, ch, c, hello)
		return
	}
	tc := tls.Server(&replayConn{Conn: c, pending: hello}, &tls.Config{MinVersion: tls.VersionTLS12,
		Certificates: ch.Certificates, ClientAuth: ch.ClientAuth, ClientCAs: ch.ClientCAs})
	if err := tc.Handshake(); err != nil {
		return
	}
	p.forwardTCP(cfg, ch, tc, nil)
}

// serveSplit peeks at each connection's SNI: a passthrough chain's
// connections are forwarded, the rest are handed on (with the ClientHello
// replayed) to be terminated.
func (p *Proxy) serveSplit(addr string, ln net.Listener, to *handoffListener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			sni, hello := peekServerName(c)
			cfg := p.cfg.Load()
			var ch *Chain
			if l := cfg.Listeners[addr]; l != nil {
				ch = pickChain(l, sni)
			}
			if ch != nil && ch.TCP != nil {
				defer c.Close()
				p.forwardStream(cfg, ch, c, hello)
				return
			}
			select {
			case to.conns <- &replayConn{Conn: c, pending: hello}:
			case <-to.done:
				c.Close()
			}
		}()
	}
}

// handoffListener accepts the connections serveSplit hands on.
type handoffListener struct {
	net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return h.Listener.Close()
}

// replayConn reads the bytes already peeked before the connection's own.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(b []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(b, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(b)
}

// forwardTCP sends a connection, its ClientHello first, to a cluster of ch.
func (p *Proxy) forwardTCP(cfg *Config, ch *Chain, c net.Conn, hello []byte) {
	var total uint32
	for _, w := range ch.TCP {
		total += w.Weight
	}
	if total == 0 {
		return
	}
	n := mrand.Uint32N(total) //nolint:gosec // load balancing
	var cl *Cluster
	for _, w := range ch.TCP {
		if n < w.Weight {
			cl = cfg.Clusters[w.Name]
			break
		}
		n -= w.Weight
	}
	if cl == nil || len(cl.Endpoints) == 0 {
		return
	}
	up, err := net.DialTimeout("tcp", cl.Endpoints[rr.Add(1)%uint64(len(cl.Endpoints))], 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := up.Write(hello); err != nil {
		return
	}
	join(up, c)
}

// peekServerName reads a connection's ClientHello and returns its server
// name with the bytes read, to be replayed to the backend. The TLS stack
// parses the hello and is stopped right after; nothing is written back.
func peekServerName(c net.Conn) (string, []byte) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	rec := &recordingConn{Conn: c}
	var sni string
	errStop := errors.New("stop after the ClientHello")
	_ = tls.Server(rec, &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni = h.ServerName
		return nil, errStop
	}}).Handshake()
	return sni, rec.read
}

// recordingConn keeps what is read and writes nothing.
type recordingConn struct {
	net.Conn
	read []byte
}

func (r *recordingConn) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.read = append(r.read, b[:n]...)
	return n, err
}

func (r *recordingConn) Write(b []byte) (int, error) { return len(b), nil }
