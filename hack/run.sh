#!/usr/bin/env bash
# `make run`: a local control plane built from Go modules, the enabled Plexus
# controllers running against it, and the samples in config/samples applied;
# then `kubectl get` shows what the controllers did. Interactive, it keeps
# running until Ctrl-C (use the printed kubeconfig meanwhile); otherwise, or
# with RUN_ONCE=1, it stops after printing. Everything it starts is stopped
# and everything it writes is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

CONTROLLERS=${CONTROLLERS:-lbipam}
assets=$(hack/build-controlplane.sh etcd kube-apiserver kubectl)
work=$(mktemp -d "${TMPDIR:-/tmp}/plexus-run.XXXXXX")
export KUBECONFIG="$work/kubeconfig"
kubectl() { "$assets/kubectl" "$@"; }
pids=()

cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$work/localcluster" ./hack/localcluster
KUBEBUILDER_ASSETS="$assets" "$work/localcluster" -write-kubeconfig "$KUBECONFIG" >"$work/localcluster.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
	[[ -s "$KUBECONFIG" ]] && break
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/localcluster.log" >&2; exit 1; }
	sleep 0.5
done
[[ -s "$KUBECONFIG" ]] || { echo "control plane did not start" >&2; cat "$work/localcluster.log" >&2; exit 1; }
echo "== control plane up (etcd, kube-apiserver); CRDs installed"

kubectl create namespace plexus-system >/dev/null
port=18080
for c in $CONTROLLERS; do
	bin/"$c" --kubeconfig "$KUBECONFIG" --leader-election-namespace plexus-system \
		--metrics-bind-address "127.0.0.1:$port" --health-probe-bind-address "127.0.0.1:$((port + 1))" \
		--enable-ipv6 >"$work/$c.log" 2>&1 &
	pids+=($!)
	echo "== controller $c started (metrics http://127.0.0.1:$port/metrics, log $work/$c.log)"
	port=$((port + 10))
done

kubectl apply -f config/samples/
echo "== waiting for the Services to be served"
for _ in $(seq 1 60); do
	pending=$(kubectl get svc -n demo -o jsonpath='{range .items[?(@.spec.loadBalancerClass!="example.com/other-lb")]}{.metadata.name}{" "}{.status.conditions[0].type}{"\n"}{end}' | awk 'NF < 2' | wc -l)
	[[ "$pending" == 0 ]] && break
	sleep 0.5
done

echo; echo "\$ kubectl get ippools"; kubectl get ippools
echo; echo "\$ kubectl get svc -n demo"; kubectl get svc -n demo
echo; echo "\$ kubectl get svc -n demo -o custom-columns=..."
kubectl get svc -n demo -o custom-columns='NAME:.metadata.name,EXTERNAL-IP:.status.loadBalancer.ingress[*].ip,SATISFIED:.status.conditions[?(@.type=="cilium.io/IPAMRequestSatisfied")].status,REASON:.status.conditions[?(@.type=="cilium.io/IPAMRequestSatisfied")].reason'
echo; echo "\$ kubectl describe ippool overlapping-pool | sed -n '/Conditions/,\$p'"
kubectl describe ippool overlapping-pool | sed -n '/Conditions/,$p'

if [[ -t 0 && -z "${RUN_ONCE:-}" ]]; then
	echo
	echo "== running; try: KUBECONFIG=$KUBECONFIG $assets/kubectl get ippools,svc -A"
	echo "== Ctrl-C stops everything and removes $work"
	while :; do sleep 3600; done
fi
