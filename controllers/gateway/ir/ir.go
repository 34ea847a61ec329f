// Package ir is the middle of the gateway translation: what one Gateway (or
// Ingress) asks its proxy to serve, with every Kubernetes reference already
// resolved and every choice already made. The translator fills it from the
// Gateway API objects; the Envoy builder turns it into xDS resources. Neither
// side needs the other's types, so each can be tested alone, and what a user
// asked for can be read here before any Envoy detail.
package ir

import "time"

// Gateway is everything one Gateway's proxy serves: one Port per distinct
// listener port.
type Gateway struct {
	// Name is "<namespace>/<name>"; it prefixes every xDS resource name.
	Name  string
	Ports []Port
	// Clusters and Secrets are those the ports use, in name order.
	Clusters []Cluster
	Secrets  []Secret
	// ServerHeader is what the proxy does with the Server response
	// header; empty is Overwrite.
	ServerHeader ServerHeader
	// BackendClientCertificate names the Secret ("<namespace>/<name>",
	// one of Secrets) whose certificate the proxy presents to the backends
	// it opens TLS to; empty: none.
	BackendClientCertificate string
}

// ServerHeader is Envoy's handling of the Server response header, by its
// enum's name: OVERWRITE (the proxy's own name), APPEND_IF_ABSENT (only
// where the backend sent none), PASS_THROUGH (the backend's, or none).
type ServerHeader string

// Protocol is what a port speaks on the wire.
type Protocol string

const (
	// HTTP is plain HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
	HTTP Protocol = "HTTP"
	// HTTPS terminates TLS and serves HTTP inside it.
	HTTPS Protocol = "HTTPS"
	// TLSPassthrough picks a backend by the ClientHello's SNI and forwards
	// the TLS stream unopened, or, for a branch with Certificates (a
	// TLSRoute on a Terminate listener), decrypted.
	TLSPassthrough Protocol = "TLSPassthrough"
)

// Port is one listening port of a Gateway.
type Port struct {
	// Port is the Gateway's listener port (what clients connect to).
	Port     int32
	Protocol Protocol
	// HTTP holds the virtual hosts of a plain-HTTP port.
	HTTP []VirtualHost
	// TLS holds, for HTTPS and TLSPassthrough, one entry per Gateway
	// listener on the port, picked by SNI.
	TLS []TLSListener
}

// TLSListener is one SNI-selected branch of a TLS port. A branch with
// Certificates terminates TLS and serves HTTP, or with Passthrough
// backends forwards the decrypted stream to them; one without passes the
// stream through unopened to its Passthrough backends (an Ingress load
// balancer can mix these on one port).
type TLSListener struct {
	// Name is the Gateway listener's name (its sectionName).
	Name string
	// ServerNames are the SNI names it serves; empty serves any.
	ServerNames []string
	// Certificates name the Secrets (as "<namespace>/<name>") whose
	// certificate and key terminate TLS.
	Certificates []string
	// HTTP holds the virtual hosts served inside the TLS.
	HTTP []VirtualHost
	// Passthrough are the backends a passthrough branch forwards to.
	Passthrough []WeightedBackend
	// ClientValidation, when set, asks clients of a terminating branch
	// for a certificate.
	ClientValidation *ClientValidation
}

// ClientValidation is how a TLS-terminating branch checks client
// certificates (mutual TLS).
type ClientValidation struct {
	// CACertificates are the PEM certificates a client certificate must
	// chain to.
	CACertificates string
	// Optional lets clients in without a certificate, or with one that
	// does not verify (the Gateway API's AllowInsecureFallback); otherwise
	// only clients with a valid certificate get through the handshake.
	Optional bool
}

// VirtualHost is the routes served for a set of host names.
type VirtualHost struct {
	// Domains are the Host/:authority values served ("*" for any).
	Domains []string
	// Routes in the order they are tried (the Gateway API's precedence).
	Routes []Route
}

// Route is one match of one rule of one route object.
type Route struct {
	// Name is "<kind>/<namespace>/<name>/rule/<i>/match/<j>", unique in
	// its virtual host.
	Name  string
	Match Match
	// Exactly one of Backends (possibly empty: nothing valid to send to),
	// Redirect or DirectStatus says what happens.
	Backends     []WeightedBackend
	Redirect     *Redirect
	DirectStatus uint32

	RequestHeaders  HeaderEdits
	ResponseHeaders HeaderEdits
	Rewrite         *Rewrite
	Mirrors         []Mirror
	// Timeout bounds the whole request: nil leaves the proxy's default,
	// zero turns the limit off.
	Timeout *time.Duration
	// BackendTimeout bounds each try to a backend (nil: no own limit).
	BackendTimeout *time.Duration
	Retry          *Retry
	// CORS, when set, answers browsers' cross-origin checks.
	CORS *CORS
	// GRPC marks routes of GRPCRoutes (their backends speak HTTP/2).
	GRPC bool
}

// CORS is a route's cross-origin policy: preflight requests from an
// allowed origin are answered by the proxy, and answers to other requests
// from it carry the Access-Control-* headers.
type CORS struct {
	// AllowOrigins are origins ("https://www.example.com"), with "*"
	// standing for any characters but "/" ("https://*.example.com"),
	// or "*" alone for any origin.
	AllowOrigins  []string
	AllowMethods  []string
	AllowHeaders  []string
	ExposeHeaders []string
	// MaxAge is how long a preflight answer may be cached, in seconds
	// (0: not said).
	MaxAge           int32
	AllowCredentials bool
}

// PathKind is how a route matches the request path.
type PathKind string

// The path kinds, named as in the Gateway API.
const (
	PathExact  PathKind = "Exact"
	PathPrefix PathKind = "PathPrefix"
	PathRegex  PathKind = "RegularExpression"
)

// Match is what a request must carry for a route to take it; all parts
// must hold.
type Match struct {
	PathKind PathKind
	Path     string
	Headers  []ValueMatch
	Query    []ValueMatch
	// Method is an HTTP method, or "" for any.
	Method string
}

// ValueMatch matches one header or query parameter.
type ValueMatch struct {
	Name  string
	Value string
	// Regex says Value is an RE2 regular expression (Envoy's dialect).
	Regex bool
}

// HeaderEdits changes a request's or response's headers.
type HeaderEdits struct {
	Set    []Header
	Add    []Header
	Remove []string
}

// Empty says there is nothing to change.
func (h HeaderEdits) Empty() bool { return len(h.Set)+len(h.Add)+len(h.Remove) == 0 }

// Header is one header name and value.
type Header struct{ Name, Value string }

// Redirect answers with a redirect instead of forwarding.
type Redirect struct {
	Scheme   string
	Hostname string
	// Port is 0 when the redirect does not name one.
	Port int32
	// FullPath replaces the whole path; PrefixPath replaces the matched
	// prefix. At most one is set.
	FullPath   *string
	PrefixPath *string
	StatusCode int
}

// Rewrite changes the request before it is forwarded.
type Rewrite struct {
	Hostname   string
	FullPath   *string
	PrefixPath *string
}

// Mirror sends a copy of each request (the answer is discarded).
type Mirror struct {
	Cluster string
	// Numerator/Denominator is the share of requests mirrored.
	Numerator, Denominator uint32
}

// Retry retries failed tries.
type Retry struct {
	Codes []uint32
	// Attempts is the number of retries; nil leaves the proxy's default.
	Attempts *uint32
	Backoff  time.Duration
}

// WeightedBackend is one destination with its share of requests.
type WeightedBackend struct {
	// Cluster names the destination; "" is a backend that could not be
	// resolved, whose share of requests gets 500 (the Gateway API's rule).
	Cluster string
	Weight  uint32
	// RequestHeaders and ResponseHeaders are this backend's own header
	// edits (a backendRef's filters), applied before the route's.
	RequestHeaders  HeaderEdits
	ResponseHeaders HeaderEdits
}

// HasEdits says whether the backend edits headers itself.
func (b WeightedBackend) HasEdits() bool {
	return !b.RequestHeaders.Empty() || !b.ResponseHeaders.Empty()
}

// Cluster is one set of backend endpoints, named "<namespace>/<service>:<port>".
type Cluster struct {
	Name string
	// HTTP2 sends requests to the backends over HTTP/2 (h2c or, with TLS,
	// ALPN h2): gRPC backends and Services whose appProtocol says so.
	HTTP2 bool
	// TLS, when set, originates TLS to the backends (BackendTLSPolicy).
	TLS       *BackendTLS
	Endpoints []Endpoint
}

// BackendTLS is how the proxy opens TLS to its backends and verifies them.
type BackendTLS struct {
	// SNI is sent in the ClientHello.
	SNI string
	// CACertificates are the PEM certificates trusted for the backend;
	// with System the system roots are trusted instead.
	CACertificates string
	System         bool
	// SubjectAltNames are the names the backend's certificate must carry
	// (one is enough); the translator always sets at least one, since a
	// proxy told none checks no name at all.
	SubjectAltNames []SubjectAltName
}

// SubjectAltName is one name a backend certificate may carry.
type SubjectAltName struct {
	// URI says Value is a URI SAN; otherwise it is a DNS name, which may
	// be a wildcard ("*.example.com").
	URI   bool
	Value string
}

// Endpoint is one backend address.
type Endpoint struct {
	Address string
	Port    int32
}

// Secret is a TLS certificate and key the proxy serves, named
// "<namespace>/<name>" after the Kubernetes Secret.
type Secret struct {
	Name        string
	Certificate []byte
	Key         []byte
}
