//go:build tools

// Package tools pins the reference CNI plugins module for `go build`.
package tools

import _ "github.com/containernetworking/plugins/pkg/ns"
