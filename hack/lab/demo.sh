#!/usr/bin/env bash
# The `make lab` demo, run against a lab that is up: six echo pods behind a
# ClusterIP Service (hack/lab/demo.yaml), then a one-shot client pod on every
# node asks the Service six times, and each answer says which pod on which
# node replied. Then the client namespace on the lab segment (a host outside
# the cluster) asks the LoadBalancer Service echo-lb, whose address one node
# announces with ARP. Then two pods reach the external host, one through
# the egress gateway (egress IP .240), one directly (its node's address).
# Usage: hack/lab/demo.sh <kubectl> [lab name]
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

# Egress gateway: pods labelled egress=demo on the first node reach the
# external host through the gateway candidates (the other nodes), which
# translate them to the floating egress IP .240; other pods leave with
# their node's address (masquerading).
if [[ -x bin/egressgateway && -x bin/plexus-egressgateway ]]; then
	external=$(ip -n "$name-client" -4 -o addr show dev eth0 | awk '{print $4}' | head -1 | cut -d/ -f1)
	egress_ip=${external%.*}.240
	ip netns exec "$name-client" env POD_NAME=external-host bin/lab-image echo -listen "$external:8080" >/dev/null 2>&1 &
	server=$!
	trap 'kill $server 2>/dev/null || true' EXIT
	read -r first others <<<"$nodes"
	[[ -n "$others" ]] || others=$first
	for node in $others; do k label node "$node" egress-node=true --overwrite >/dev/null; done
	k apply -f - >/dev/null <<YAML
apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata:
  name: lab-egress
spec:
  selectors:
    - podSelector:
        matchLabels: {egress: demo}
  destinationCIDRs: ["$external/32"]
  egressGateways:
    - nodeSelector:
        matchLabels: {egress-node: "true"}
      egressIP: $egress_ip
YAML
	# The selected pod asks every half second from its start; the policy
	# applies once the controller and the node plugin have seen its address
	# (the seed system has the same delay for new pods), so the demo shows
	# its latest answers.
	for pod in egress-selected egress-other; do
		k delete pod "$pod" --ignore-not-found --wait=true >/dev/null
	done
	k run egress-selected --image=plexus.dev/lab/client --restart=Never --labels=app=egress-selected,egress=demo \
		--overrides="{\"apiVersion\":\"v1\",\"spec\":{\"nodeName\":\"$first\"}}" -- -interval 500ms -url "http://$external:8080/" >/dev/null
	for _ in $(seq 1 60); do
		[[ "$(k get cegp lab-egress -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] && break
		sleep 1
	done
	sleep 2
	k run egress-other --image=plexus.dev/lab/client --restart=Never --labels=app=egress-other \
		--overrides="{\"apiVersion\":\"v1\",\"spec\":{\"nodeName\":\"$first\"}}" -- -count 3 -url "http://$external:8080/" >/dev/null
	k wait --for=jsonpath='{.status.phase}'=Succeeded pod/egress-other --timeout=120s >/dev/null
	echo; echo "\$ kubectl get ciliumegressgatewaypolicy lab-egress"; k get cegp lab-egress
	echo "   $(k get cegp lab-egress -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')"
	echo; echo "\$ kubectl get egresses.nodes.plexus.dev"; k get egr
	for pod in egress-selected egress-other; do
		pod_ip=$(k get pod "$pod" -o jsonpath='{.status.podIP}')
		echo; echo "== $pod ($pod_ip on $first) -> external host http://$external:8080/:"
		bin/lab logs --name "$name" "default/$pod" | grep clientAddr | tail -3 |
			sed -E 's/.*"clientAddr":"([^"]*)".*/   the external host saw \1/'
	done
	k delete pod egress-selected --wait=false >/dev/null
fi
