package lab

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/plexus-net/plexus/test/lab/pki"
)

// kubeletClientName is the API server's certificate name towards the pod
// runners' log servers, the only client they answer.
const kubeletClientName = "kube-apiserver-kubelet-client"

// kubeletServingFiles are a node's pod runner serving certificate and key.
func kubeletServingFiles(l Layout, node string) (crt, key string) {
	return filepath.Join(l.PKIDir(), node+"-kubelet.crt"), filepath.Join(l.PKIDir(), node+"-kubelet.key")
}

// componentKubeconfig is where the kubeconfig of one component lives.
func componentKubeconfig(l Layout, component, node string) string {
	if node != "" {
		return filepath.Join(l.PKIDir(), node+"-"+component+".kubeconfig")
	}
	return filepath.Join(l.PKIDir(), component+".kubeconfig")
}

// writePKI writes the CA, the API server's serving certificate, the
// service-account key pair, the admin kubeconfig, and a kubeconfig for every
// component that talks to the API server.
func writePKI(l Layout, s *State) error {
	dir := l.PKIDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := pki.NewCA("plexus-lab-" + l.Name)
	if err != nil {
		return err
	}
	files := map[string][]byte{"ca.crt": ca.CertPEM, "ca.key": ca.KeyPEM}
	serving, err := ca.Issue(pki.Spec{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs: []net.IP{net.IP(l.GatewayIP().AsSlice()), net.IP(l.GatewayIPv6().AsSlice()), net.ParseIP("127.0.0.1"),
			net.ParseIP("10.96.0.1"), net.ParseIP(firstServiceIPv6)},
		Server: true,
	})
	if err != nil {
		return err
	}
	files["apiserver.crt"], files["apiserver.key"] = serving.CertPEM, serving.KeyPEM
	// The API server's identity towards the nodes' log servers (pods/log).
	kubeletClient, err := ca.Issue(pki.Spec{CommonName: kubeletClientName, Client: true})
	if err != nil {
		return err
	}
	files["apiserver-kubelet-client.crt"], files["apiserver-kubelet-client.key"] = kubeletClient.CertPEM, kubeletClient.KeyPEM
	sa, err := pki.NewServiceAccountKey()
	if err != nil {
		return err
	}
	files["sa.pub"], files["sa.key"] = sa.CertPEM, sa.KeyPEM
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	if err := writeKubeconfig(l.APIServerURL(s), ca, Identity{User: "lab-admin", Groups: []string{"system:masters"}}, l.Kubeconfig()); err != nil {
		return err
	}
	for _, c := range append(controlPlaneComponents(), plexusControllers()...) {
		if c.Identity.User == "" {
			continue
		}
		if err := writeKubeconfig(l.APIServerURL(s), ca, c.Identity, componentKubeconfig(l, c.Name, "")); err != nil {
			return err
		}
	}
	for _, n := range s.Nodes {
		if err := writeNodeCredentials(l, s, ca, n); err != nil {
			return err
		}
	}
	return nil
}

// writeNodeCredentials writes a node's component kubeconfigs and its pod
// runner's serving certificate (for the kubelet's log API).
func writeNodeCredentials(l Layout, s *State, ca *pki.CA, n Node) error {
	var ips []net.IP
	for _, ip := range n.IPs() {
		ips = append(ips, net.ParseIP(ip))
	}
	serving, err := ca.Issue(pki.Spec{CommonName: "system:node:" + n.Name, DNSNames: []string{n.Name}, IPs: ips, Server: true})
	if err != nil {
		return err
	}
	crt, key := kubeletServingFiles(l, n.Name)
	if err := os.WriteFile(crt, serving.CertPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(key, serving.KeyPEM, 0o600); err != nil {
		return err
	}
	for _, c := range nodeComponents(s) {
		if c.Identity.User == "" {
			continue // no API access (the stand-in proxy)
		}
		if err := writeKubeconfig(l.APIServerURL(s), ca, identityFor(c, n.Name), componentKubeconfig(l, c.Name, n.Name)); err != nil {
			return err
		}
	}
	return nil
}

func writeKubeconfig(server string, ca *pki.CA, id Identity, path string) error {
	kp, err := ca.Issue(pki.Spec{CommonName: id.User, Organizations: id.Groups, Client: true})
	if err != nil {
		return err
	}
	b, err := pki.Kubeconfig(server, ca.CertPEM, id.User, kp)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
