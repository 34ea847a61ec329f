// Command kube-controller-manager is k8s.io/kubernetes's kube-controller-manager, built from its Go module for
// the lab (see hack/build-controlplane.sh).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
