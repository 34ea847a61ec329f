#!/usr/bin/env bash
# Builds the reference CNI plugins (bridge, ptp, host-local, loopback) from
# their Go module, at the version pinned in hack/cniplugins/go.mod, into
# bin/cni-plugins-<version>/. The Plexus CNI plugin is tested chained under
# bridge and ptp, and pods get their loopback from `loopback`. Reused once
# built. Prints the folder on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
version=$(awk '$1=="require" && $2=="github.com/containernetworking/plugins" {print $3; exit}' hack/cniplugins/go.mod)
out="bin/cni-plugins-${version}"
mkdir -p "$out"
for p in main/bridge main/ptp ipam/host-local main/loopback; do
	name=${p#*/}
	[[ -x "$out/$name" ]] && continue
	echo "building CNI plugin $name" >&2
	(cd hack/cniplugins && go build -trimpath -ldflags='-s -w' -o "../../$out/$name.tmp" "github.com/containernetworking/plugins/plugins/$p")
	mv "$out/$name.tmp" "$out/$name"
done
echo "$(pwd)/$out"
