// Package policybpf holds the bpf2go bindings of bpf/src/policy.c, the
// network policy programs. The object and the Go file are generated
// (make bpf, needs clang) and committed, so building needs no clang.
package policybpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type policy_key -type ipcache_key -type endpoint_value -type policy_value -type ct_key -type ct_value -type event -type counter -type service_key -type service_value -type service_backend -type verdict_key -type verdict_value -output-stem policy Policy ../src/policy.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
