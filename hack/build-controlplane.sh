#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries that tests and `make run` use
# (kube-apiserver, etcd, kubectl) from their Go modules, at the versions pinned
# in hack/controlplane/*/go.mod, into bin/k8s-<version>/. Nothing is downloaded
# from release sites. A binary that is already there is reused, so only the
# first run on a machine pays the ~5 minute build.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

k8s_version=$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit} $1=="require" && $2=="k8s.io/kubernetes" {print $3; exit}' hack/controlplane/k8s/go.mod)
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit} $1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3; exit}' hack/controlplane/etcd/go.mod)
out="bin/k8s-${k8s_version}-etcd-${etcd_version}"
mkdir -p "$out"

build() { # build <module dir> <package> <binary name>
	local dir=$1 pkg=$2 name=$3
	if [[ -x "$out/$name" ]]; then return; fi
	echo "building $name (first time on this machine; later runs reuse $out/$name)" >&2
	(cd "$dir" && go build -trimpath -ldflags='-s -w' -o "../../../$out/$name.tmp" "$pkg")
	mv "$out/$name.tmp" "$out/$name"
}

for name in "$@"; do
	case "$name" in
	etcd) build hack/controlplane/etcd . etcd ;;
	kube-apiserver | kubectl | kube-controller-manager | kube-scheduler | kube-proxy)
		build hack/controlplane/k8s "./$name" "$name" ;;
	*) echo "unknown component $name" >&2; exit 2 ;;
	esac
done
# The one line on stdout: the folder that holds the binaries (KUBEBUILDER_ASSETS).
echo "$(pwd)/$out"
