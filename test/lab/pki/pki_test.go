package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("not PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServingCertVerifiesForEverySAN(t *testing.T) {
	ca, err := NewCA("plexus-lab")
	if err != nil {
		t.Fatal(err)
	}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	ips := []net.IP{net.ParseIP("198.18.0.1"), net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}
	kp, err := ca.Issue(Spec{CommonName: "kube-apiserver", DNSNames: dns, IPs: ips, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, kp.CertPEM)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, name := range append(dns, "198.18.0.1", "127.0.0.1", "10.96.0.1") {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving cert does not verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "198.18.0.2"}); err == nil {
		t.Error("serving cert verifies for an address it does not name")
	}
	if _, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM); err != nil {
		t.Errorf("cert and key do not match: %v", err)
	}
}

func TestClientCertCarriesIdentityAndVerifies(t *testing.T) {
	ca, err := NewCA("plexus-lab")
	if err != nil {
		t.Fatal(err)
	}
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:plexus-system"}
	kp, err := ca.Issue(Spec{CommonName: "system:serviceaccount:plexus-system:plexus-ipam", Organizations: groups, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, kp.CertPEM)
	if cert.Subject.CommonName != "system:serviceaccount:plexus-system:plexus-ipam" || !slices.Equal(cert.Subject.Organization, groups) {
		t.Errorf("subject = %v", cert.Subject)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not verify: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client-only cert verifies for server auth")
	}
	other, _ := NewCA("other")
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(other.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: otherRoots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("cert verifies against a foreign CA")
	}
}

func TestIssueRefusesBadSpecs(t *testing.T) {
	ca, _ := NewCA("plexus-lab")
	if _, err := ca.Issue(Spec{Client: true}); err == nil {
		t.Error("no common name accepted")
	}
	if _, err := ca.Issue(Spec{CommonName: "x"}); err == nil {
		t.Error("no usage accepted")
	}
}

func TestLoadCARoundTripsAndKubeconfigEmbedsCredentials(t *testing.T) {
	ca, _ := NewCA("plexus-lab")
	loaded, err := LoadCA(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := loaded.Issue(Spec{CommonName: "admin", Organizations: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := parse(t, kp.CertPEM).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("cert from loaded CA does not verify: %v", err)
	}
	raw, err := Kubeconfig("https://198.18.0.1:6443", ca.CertPEM, "admin", kp)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://198.18.0.1:6443" || string(rc.CAData) != string(ca.CertPEM) || string(rc.CertData) != string(kp.CertPEM) {
		t.Errorf("kubeconfig does not carry server, CA and client cert: host %q", rc.Host)
	}
}

func TestServiceAccountKeyIsAMatchingPair(t *testing.T) {
	kp, err := NewServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := pem.Decode(kp.CertPEM)
	kb, _ := pem.Decode(kp.KeyPEM)
	pub, err := x509.ParsePKIXPublicKey(pb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(key.(crypto.Signer).Public()) {
		t.Error("public key does not belong to the private key")
	}
}
