#!/usr/bin/env bash
# Builds the upstream Hubble CLI from Cilium's Go module, at the version
# pinned in hack/hubble/go.mod, into bin/tools/hubble-<version>. The lab's
# e2e tests run it against the policy node plugin's Hubble Observer API.
# Reused once built (about 3 minutes on 2 cores). Prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
version=$(awk '$1=="require" && $2=="github.com/cilium/cilium" {print $3; exit}' hack/hubble/go.mod)
out="bin/tools/hubble-${version}"
if [[ ! -x "$out" ]]; then
	echo "building the hubble CLI ${version}" >&2
	mkdir -p bin/tools
	(cd hack/hubble && go build -trimpath -ldflags='-s -w' -o "../../$out.tmp" github.com/cilium/cilium/hubble)
	mv "$out.tmp" "$out"
fi
echo "$(pwd)/$out"
