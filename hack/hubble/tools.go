//go:build tools

// Package tools pins the Cilium module whose `hubble` command (the real
// Hubble CLI) the lab and its e2e tests point at the policy node plugin's
// Observer API. Built by hack/build-hubble.sh; kept out of the product's
// go.mod, which takes only the API types from the same module.
package tools

import _ "github.com/cilium/cilium/hubble/cmd"
