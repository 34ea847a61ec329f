// Package envoyxds holds what both sides of Plexus's xDS share: the gateway
// controller names and builds resources one way, the node's l7proxy plugin
// reads and serves them the same way.
package envoyxds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// SecretName is the SDS name of the Kubernetes Secret namespace/name.
func SecretName(namespace, name string) string { return namespace + "/" + name }

// TLSSecret is an SDS certificate from PEM bytes.
func TLSSecret(name string, cert, key []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: cert}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: key}},
	}}}
}
