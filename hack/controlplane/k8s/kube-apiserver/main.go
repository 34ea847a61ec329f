// Command kube-apiserver is the upstream API server, built from its Go module so
// that tests and the lab need no downloaded release binary.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
