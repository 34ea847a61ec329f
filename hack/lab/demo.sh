#!/usr/bin/env bash
# The `make lab` demo, run against a lab that is up: six echo pods behind a
# ClusterIP Service (hack/lab/demo.yaml), then a one-shot client pod on every
# node asks the Service six times, and each answer says which pod on which
# node replied. Then the client namespace on the lab segment (a host outside
# the cluster) asks the LoadBalancer Service echo-lb, whose address one node
# announces with ARP. Then two pods reach the external host, one through
# the egress gateway (egress IP .240), one directly (its node's address).
# Last, BGP: every node peers with the lab's router (FRR), advertises its pod
# CIDR and the address of Service echo-bgp (from a pool only BGP makes
# reachable), and the external client behind the router reaches it.
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
if [[ -x bin/plexus-l2announcer-controller && -x bin/plexus-l2announcer-node ]]; then
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
if [[ -x bin/plexus-egressgateway-controller && -x bin/plexus-egressgateway-node ]]; then
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

# BGP: every node peers with the router (FRR, AS 65000, .254 on the segment)
# as AS 65001 and advertises its pod CIDR and echo-bgp's address; the
# external client behind the router reaches echo-bgp over those routes.
if [[ -x bin/plexus-bgp-controller && -x bin/plexus-bgp-node && -x bin/kubectl-plexus && -d /run/plexus-lab/$name/router ]]; then
	node_ip=$(k get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
	seg=$(cut -d. -f3 <<<"$node_ip")
	k apply -f - >/dev/null <<EOF
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {name: lab-bgp}
spec:
  blocks: [{cidr: 198.19.$seg.96/27}]
  serviceSelector: {matchLabels: {bgp: demo}}
---
apiVersion: cilium.io/v2
kind: CiliumBGPPeerConfig
metadata: {name: lab-router}
spec:
  timers: {connectRetryTimeSeconds: 1}
  gracefulRestart: {enabled: true}
  families:
  - {afi: ipv4, safi: unicast, advertisements: {matchLabels: {advertise: lab-router}}}
---
apiVersion: cilium.io/v2
kind: CiliumBGPAdvertisement
metadata: {name: lab-router, labels: {advertise: lab-router}}
spec:
  advertisements:
  - advertisementType: PodCIDR
  - advertisementType: Service
    service: {addresses: [LoadBalancerIP]}
    selector: {matchLabels: {bgp: demo}}
    attributes: {communities: {standard: ["65000:100"]}}
---
apiVersion: cilium.io/v2
kind: CiliumBGPClusterConfig
metadata: {name: lab}
spec:
  bgpInstances:
  - name: main
    localASN: 65001
    peers:
    - {name: lab-router, peerAddress: 198.18.$seg.254, peerASN: 65000, peerConfigRef: {name: lab-router}}
---
apiVersion: v1
kind: Service
metadata:
  name: echo-bgp
  labels: {bgp: demo}
  annotations: {lbipam.cilium.io/ips: 198.19.$seg.100}
spec:
  type: LoadBalancer
  allocateLoadBalancerNodePorts: false
  selector: {app: echo}
  ports: [{port: 80, targetPort: http}]
EOF
	for _ in $(seq 1 60); do
		[[ "$(k get ciliumbgpclusterconfig lab -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] && break
		sleep 1
	done
	echo; echo "\$ kubectl get ciliumbgpclusterconfigs,ciliumbgpnodeconfigs"; k get ciliumbgpclusterconfigs,ciliumbgpnodeconfigs
	echo; echo "\$ kubectl plexus bgp peers"; bin/kubectl-plexus bgp peers
	echo; echo "\$ kubectl plexus bgp routes advertised ipv4 unicast"; bin/kubectl-plexus bgp routes advertised ipv4 unicast
	for _ in $(seq 1 30); do
		ip netns exec "$name-router" ip route show "198.19.$seg.100" | grep -q bgp && break
		sleep 1
	done
	echo; echo "== the router's BGP routes (FRR in netns $name-router, ECMP over the nodes):"
	ip netns exec "$name-router" ip route show proto bgp | sed 's/^/   /'
	echo; echo "== external client namespace $name-ext (behind the router) -> http://198.19.$seg.100/ (Service echo-bgp):"
	ip netns exec "$name-ext" bin/lab-image client -count 6 -url "http://198.19.$seg.100/" |
		sed -E 's/.*"pod":"([^"]*)".*"node":"([^"]*)".*"podIP":"([^"]*)".*"clientAddr":"([^"]*)".*/   answered by \1 (\3) on \2, saw client \4/'
fi
