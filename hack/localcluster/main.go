// Command localcluster runs a Kubernetes control plane (etcd and
// kube-apiserver from bin/, see hack/build-controlplane.sh) with Plexus's CRDs
// installed, writes an admin kubeconfig, and stops everything it started on
// SIGINT or SIGTERM. `make run` uses it until the lab replaces it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "", "where to write the admin kubeconfig (required)")
	crds := flag.String("crds", "config/crd/bases", "folder of CRDs to install")
	flag.Parse()
	if *kubeconfig == "" || os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "usage: KUBEBUILDER_ASSETS=<dir with etcd and kube-apiserver> localcluster -write-kubeconfig FILE")
		os.Exit(2)
	}
	if err := run(*kubeconfig, *crds); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, crds string) error {
	env := &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112")
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()
	admin, err := env.AddUser(envtest.User{Name: "plexus-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	cfg, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, cfg, 0o600); err != nil {
		return err
	}
	fmt.Println("control plane ready; kubeconfig:", kubeconfig)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	return nil
}
