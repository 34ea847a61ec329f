package l7standin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// upstreamTransport is the HTTP transport of a cluster whose transport
// socket originates TLS, verifying the backends as Envoy's
// UpstreamTlsContext says: the chain against trusted_ca, then (only when
// some are given) that the certificate carries one of the
// match_typed_subject_alt_names; a client certificate from SDS is presented
// when the backend asks for one. Anything else in the context is refused.
// secrets nil only checks the context.
func upstreamTransport(ts *corev3.TransportSocket, http2 bool, secrets map[string]tls.Certificate) (*http.Transport, error) {
	var ctx tlsv3.UpstreamTlsContext
	if ts.GetName() != "envoy.transport_sockets.tls" || ts.GetTypedConfig().UnmarshalTo(&ctx) != nil {
		return nil, Unsupported{"upstream transport socket " + ts.GetName()}
	}
	common := ctx.GetCommonTlsContext()
	if len(common.GetTlsCertificates()) > 0 || len(common.GetTlsCertificateSdsSecretConfigs()) > 1 || common.GetValidationContextSdsSecretConfig() != nil ||
		common.GetCombinedValidationContext() != nil || common.GetTlsParams() != nil {
		return nil, Unsupported{"upstream TLS beyond SNI, ALPN, an inline validation context and one client certificate from SDS"}
	}
	vc := common.GetValidationContext()
	cfg := &tls.Config{ServerName: ctx.GetSni(), NextProtos: common.GetAlpnProtocols(), MinVersion: tls.VersionTLS12,
		// Verification is done below, the way Envoy does it (no name check
		// unless subject alt names are listed).
		InsecureSkipVerify: true} //nolint:gosec // verified in VerifyConnection
	if vc != nil {
		roots, err := trustedCA(vc.GetTrustedCa())
		if err != nil {
			return nil, err
		}
		for _, m := range vc.GetMatchTypedSubjectAltNames() {
			if m.GetMatcher().GetExact() == "" || (m.GetSanType() != tlsv3.SubjectAltNameMatcher_DNS && m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI) {
				return nil, Unsupported{"subject alt name matchers other than exact DNS and URI names"}
			}
		}
		cfg.VerifyConnection = verifyBackend(roots, vc.GetMatchTypedSubjectAltNames())
	}
	for _, sds := range common.GetTlsCertificateSdsSecretConfigs() {
		if secrets == nil {
			continue // checking only
		}
		cert, ok := secrets[sds.GetName()]
		if !ok {
			return nil, fmt.Errorf("client certificate: secret %s not received", sds.GetName())
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	t := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	if http2 {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP2(true)
	}
	return t, nil
}

// trustedCA loads the roots of a validation context.
func trustedCA(ds *corev3.DataSource) (*x509.CertPool, error) {
	var pem []byte
	switch {
	case ds.GetInlineString() != "":
		pem = []byte(ds.GetInlineString())
	case len(ds.GetInlineBytes()) > 0:
		pem = ds.GetInlineBytes()
	case ds.GetFilename() != "":
		b, err := os.ReadFile(ds.GetFilename())
		if err != nil {
			return nil, fmt.Errorf("trusted_ca: %w", err)
		}
		pem = b
	default:
		return nil, errors.New("trusted_ca: a validation context without trusted CA certificates")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("trusted_ca: no PEM certificate")
	}
	return pool, nil
}

// verifyBackend checks a backend's chain and names.
func verifyBackend(roots *x509.CertPool, sans []*tlsv3.SubjectAltNameMatcher) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the backend sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		intermediates := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			intermediates.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates}); err != nil {
			return err
		}
		if len(sans) == 0 {
			return nil
		}
		for _, m := range sans {
			want := m.GetMatcher().GetExact()
			if m.GetSanType() == tlsv3.SubjectAltNameMatcher_URI {
				if slices.ContainsFunc(leaf.URIs, func(u *neturl.URL) bool { return u.String() == want }) {
					return nil
				}
			} else if leaf.VerifyHostname(want) == nil {
				return nil
			}
		}
		return fmt.Errorf("the backend's certificate (DNS %v, URI %v) carries none of the names wanted", leaf.DNSNames, leaf.URIs)
	}
}

// clientValidation is how a DownstreamTlsContext asks clients for
// certificates, in Go's terms, following Envoy: with a validation context a
// certificate is asked for and, when given, must verify (unless
// trust_chain_verification is ACCEPT_UNTRUSTED); require_client_certificate
// turns a missing one away. Envoy refuses to require a certificate it has no
// way to check, and so does this.
func clientValidation(ctx *tlsv3.DownstreamTlsContext) (tls.ClientAuthType, *x509.CertPool, error) {
	common := ctx.GetCommonTlsContext()
	if common.GetValidationContextSdsSecretConfig() != nil || common.GetCombinedValidationContext() != nil {
		return 0, nil, Unsupported{"client validation beyond an inline validation context"}
	}
	vc := common.GetValidationContext()
	require := ctx.GetRequireClientCertificate().GetValue()
	if vc == nil {
		if require {
			return 0, nil, errors.New("require_client_certificate without a validation context")
		}
		return tls.NoClientCert, nil, nil
	}
	if len(vc.GetMatchTypedSubjectAltNames()) > 0 || len(vc.GetVerifyCertificateHash()) > 0 || len(vc.GetVerifyCertificateSpki()) > 0 || vc.GetCrl() != nil {
		return 0, nil, Unsupported{"client validation beyond trusted_ca and trust_chain_verification"}
	}
	roots, err := trustedCA(vc.GetTrustedCa())
	if err != nil {
		return 0, nil, err
	}
	untrusted := vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	switch {
	case require && untrusted:
		return tls.RequireAnyClientCert, roots, nil
	case require:
		return tls.RequireAndVerifyClientCert, roots, nil
	case untrusted:
		return tls.RequestClientCert, roots, nil
	default:
		return tls.VerifyClientCertIfGiven, roots, nil
	}
}
