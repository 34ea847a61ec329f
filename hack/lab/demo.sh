#!/usr/bin/env bash
# The `make lab` demo, run against a lab that is up: six echo pods behind a
# ClusterIP Service (hack/lab/demo.yaml), then a one-shot client pod on every
# node asks the Service six times, and each answer says which pod on which
# node replied. Then the client namespace on the lab segment (a host outside
# the cluster) asks the LoadBalancer Service echo-lb, whose address one node
# announces with ARP. Usage: hack/lab/demo.sh <kubectl> [lab name]
set -euo pipefail
cd "$(dirname "$0")/../.."
kubectl=$1
name=${2:-plxlab}
export KUBECONFIG=/run/plexus-lab/$name/kubeconfig
k() { "$kubectl" "$@"; }

k apply -f hack/lab/demo.yaml
k rollout status deployment/echo --timeout=180s
ip=$(k get service echo -o jsonpath='{.spec.clusterIP}')
nodes=$(k get nodes -o jsonpath='{.items[*].metadata.name}')
for node in $nodes; do
	k delete pod "client-$node" --ignore-not-found --wait=true >/dev/null
	k run "client-$node" --image=plexus.dev/lab/client --restart=Never \
		--overrides="{\"apiVersion\":\"v1\",\"spec\":{\"nodeName\":\"$node\"}}" -- -count 6 -url "http://$ip/" >/dev/null
done
for node in $nodes; do
	k wait --for=jsonpath='{.status.phase}'=Succeeded "pod/client-$node" --timeout=120s >/dev/null
done

echo; echo "\$ kubectl get nodes -o wide"; k get nodes -o wide
echo; echo "\$ kubectl get pods -o wide"; k get pods -o wide
echo; echo "\$ kubectl get service echo"; k get service echo
for node in $nodes; do
	client_ip=$(k get pod "client-$node" -o jsonpath='{.status.podIP}')
	echo; echo "== client-$node ($client_ip on $node) -> http://$ip/ (Service echo):"
	bin/lab logs --name "$name" "default/client-$node" |
		sed -E 's/.*"pod":"([^"]*)".*"node":"([^"]*)".*"podIP":"([^"]*)".*"clientAddr":"([^"]*)".*/   answered by \1 (\3) on \2, saw client \4/'
done

# L2 announcements: the outside client reaches the LoadBalancer address.
if [[ -x bin/l2announcer && -x bin/plexus-l2announcer ]]; then
	for _ in $(seq 1 60); do
		msg=$(k get service echo-lb -o jsonpath='{.status.conditions[?(@.type=="plexus.dev/L2Announced")].message}')
		[[ "$(k get service echo-lb -o jsonpath='{.status.conditions[?(@.type=="plexus.dev/L2Announced")].status}')" == True ]] && break
		sleep 1
	done
	vip=$(k get service echo-lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
	echo; echo "\$ kubectl get service echo-lb"; k get service echo-lb
	echo; echo "== L2 announcement: $msg"
	echo; echo "== client namespace $name-client (outside the cluster, on the lab segment) -> http://$vip/ (Service echo-lb):"
	ip netns exec "$name-client" bin/lab-image client -count 6 -url "http://$vip/" |
		sed -E 's/.*"pod":"([^"]*)".*"node":"([^"]*)".*"podIP":"([^"]*)".*"clientAddr":"([^"]*)".*/   answered by \1 (\3) on \2, saw client \4/'
fi
