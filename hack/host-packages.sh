#!/usr/bin/env bash
# Installs the Debian packages the kernel tests and the lab use, when they are
# missing: nft, conntrack, ip, nsenter, ping, and the lab's BGP routers (FRR, BIRD).
# Without root it only says what is missing: the tests that need them skip.
set -euo pipefail
declare -A need=([nft]=nftables [conntrack]=conntrack [ip]=iproute2 [nsenter]=util-linux [ping]=iputils-ping
  [/usr/lib/frr/bgpd]=frr [/usr/sbin/bird]=bird2)
missing=()
for bin in "${!need[@]}"; do
  if [[ $bin == /* ]]; then [[ -x $bin ]] || missing+=("${need[$bin]}")
  else command -v "$bin" >/dev/null || missing+=("${need[$bin]}"); fi
done
((${#missing[@]})) || exit 0
if [[ $(id -u) != 0 ]]; then
  echo "host packages missing (not root, not installing): ${missing[*]}" >&2
  exit 0
fi
echo "== installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
