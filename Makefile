# Plexus. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
export GOTOOLCHAIN := local

TOOLS := $(CURDIR)/bin/tools
CONTROLLER_GEN_VERSION := v0.21.0
HELM_VERSION := v3.22.0
GOLANGCI_LINT_VERSION := v2.15.0
CONTROLLER_GEN := $(TOOLS)/controller-gen-$(CONTROLLER_GEN_VERSION)
HELM := $(TOOLS)/helm-$(HELM_VERSION)
GOLANGCI_LINT := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# Controllers (folders under controllers/): binary plexus-<name>-controller,
# ServiceAccount and ClusterRole plexus-<name>.
CONTROLLERS := lbipam ipam l2announcer egressgateway bgp identity policy nodeipam gateway
# Node plugins (folders under nodeplugins/): binary plexus-<name>-node,
# ServiceAccount and ClusterRole plexus-<name>-node.
NODEPLUGINS := datapath cni l2announcer egressgateway bgp policy l7proxy
# Kinds served at older versions too, with the same schema: file:version...
EXTRA_VERSIONS := cilium.io_ciliumloadbalancerippools.yaml:v2alpha1 cilium.io_ciliumbgpclusterconfigs.yaml:v2alpha1 \
  cilium.io_ciliumbgppeerconfigs.yaml:v2alpha1 cilium.io_ciliumbgpadvertisements.yaml:v2alpha1 \
  cilium.io_ciliumbgpnodeconfigs.yaml:v2alpha1 cilium.io_ciliumbgpnodeconfigoverrides.yaml:v2alpha1 \
  cilium.io_ciliumnodeconfigs.yaml:v2alpha1

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(CONTROLLER_GEN):
	GOBIN=$(TOOLS) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(TOOLS)/controller-gen $@

$(HELM):
	GOBIN=$(TOOLS) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(TOOLS)/helm $@

$(GOLANGCI_LINT):
	GOBIN=$(TOOLS) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS)/golangci-lint $@

.PHONY: tools
tools: $(CONTROLLER_GEN) $(HELM) $(GOLANGCI_LINT) ## build controller-gen, helm and golangci-lint from their Go modules

.PHONY: lint
lint: $(GOLANGCI_LINT) ## the lint gate (.golangci.yml): layering, netlink dumps through internal/nldump, unused code, error wrapping, doc comments
	$(GOLANGCI_LINT) run ./...
	hack/build-hubble.sh >/dev/null

.PHONY: bpf
bpf: ## recompile the eBPF programs (bpf/src) into their committed bpf2go bindings; needs clang and libbpf-dev (apt-get install clang llvm libbpf-dev)
	go generate ./bpf/...

.PHONY: generate
generate: $(CONTROLLER_GEN) ## deepcopy code, CRDs, per-controller RBAC, their copies in the chart, and docs/rows.md (checklist rows to tests, checked)
	$(CONTROLLER_GEN) object paths=./apis/...
	rm -rf config/crd/bases && $(CONTROLLER_GEN) crd paths=./apis/... output:crd:artifacts:config=config/crd/bases
	for spec in $(EXTRA_VERSIONS); do go run ./hack/crdpatch versions config/crd/bases/$${spec%%:*} $${spec#*:}; done
	go run ./hack/crdpatch policy config/crd/bases/cilium.io_ciliumnetworkpolicies.yaml config/crd/bases/cilium.io_ciliumclusterwidenetworkpolicies.yaml
	for c in $(CONTROLLERS); do \
	  rm -rf config/rbac/$$c; \
	  $(CONTROLLER_GEN) rbac:roleName=plexus-$$c paths=./controllers/$$c/... output:rbac:artifacts:config=config/rbac/$$c; \
	done
	for p in $(NODEPLUGINS); do \
	  rm -rf config/rbac/$$p-node; \
	  $(CONTROLLER_GEN) rbac:roleName=plexus-$$p-node paths=./nodeplugins/$$p/... output:rbac:artifacts:config=config/rbac/$$p-node; \
	done
	rm -rf charts/plexus/crds charts/plexus/files/rbac && mkdir -p charts/plexus/crds charts/plexus/files/rbac
	for f in config/crd/bases/*.yaml; do \
	  case " $(UNRELEASED_CRDS) " in *" $$(basename $$f) "*) ;; *) cp $$f charts/plexus/crds/ ;; esac; \
	done
	for c in $(CONTROLLERS) $(addsuffix -node,$(NODEPLUGINS)); do cp config/rbac/$$c/role.yaml charts/plexus/files/rbac/$$c.yaml; done
	rm -rf config/gateway-api && mkdir -p config/gateway-api
	for f in $$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)/config/crd/standard/gateway.networking.k8s.io_*s.yaml; do \
	  case $$f in *_vap_*) ;; *) install -m 0644 $$f config/gateway-api/ ;; esac; \
	done
	go run ./hack/rows -out docs/rows.md

# CRDs whose controller is not released yet: generated and tested, but not
# installed by the chart, so that no one applies an object that nothing acts
# on (file names under config/crd/bases, space-separated; none today).
UNRELEASED_CRDS :=

GENERATED := apis config/crd config/gateway-api config/rbac charts/plexus/crds charts/plexus/files docs/rows.md
generated_hash = find $(GENERATED) -type f | LC_ALL=C sort | xargs sha256sum | sha256sum

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## fail when `make generate` would change any generated file
	@before=$$($(generated_hash)); $(MAKE) --no-print-directory generate >/dev/null; \
	if [ "$$before" != "$$($(generated_hash))" ]; then \
	  git status --short -- $(GENERATED); \
	  echo "generated files were stale and have been regenerated: review and commit them" >&2; exit 1; fi

.PHONY: controlplane
controlplane: ## build etcd, the Kubernetes components and the reference CNI plugins from their Go modules into bin/ (once)
	hack/build-controlplane.sh etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kube-proxy >/dev/null
	hack/build-cniplugins.sh >/dev/null

.PHONY: build
build: ## build the controller, node plugin and CLI binaries into bin/ (each named after its folder under cmd/)
	for p in controllers/*/cmd/* nodeplugins/*/cmd/* cmd/*; do go build -o bin/$$(basename $$p) ./$$p; done

.PHONY: host-packages
host-packages: ## install the Debian packages the kernel tests and the lab use (nftables, conntrack, iproute2, util-linux, frr, bird2) when missing; needs root
	hack/host-packages.sh

.PHONY: test
test: tools controlplane host-packages verify-generated ## the whole test suite: generation check, vet, unit, envtest, kernel, chart and lab end-to-end tests (root runs them all), then the race detector (make race)
	go vet ./...
	$(GOLANGCI_LINT) run ./...
	hack/build-hubble.sh >/dev/null
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) HELM=$(HELM) GOLANGCI_LINT=$(GOLANGCI_LINT) \
	  HUBBLE=$$(hack/build-hubble.sh) go test -count=1 -timeout 45m ./...
	cd test/policyassistant && go vet ./... && go test -count=1 ./...
	$(MAKE) --no-print-directory race-only

# GoBGP v3.37 races with itself (docs/architecture.md, "How it is tested"):
# the packages that embed it run without -race.
RACE_WITHOUT := github.com/plexus-net/plexus/nodeplugins/bgp github.com/plexus-net/plexus/nodeplugins/bgp/speaker

.PHONY: race
race: tools controlplane host-packages race-only ## every package but the lab e2e tests and benchmarks under go test -race (GoBGP's own packages without it); make test ends with it

.PHONY: race-only
race-only: # race's tests, its set-up done (make test has done it)
	hack/build-hubble.sh >/dev/null
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) HELM=$(HELM) HUBBLE=$$(hack/build-hubble.sh) \
	  go test -race -count=1 -timeout 45m $$(go list ./... | grep -v -e /test/e2e -e /test/bench $(foreach p,$(RACE_WITHOUT),-e '^$(p)$$'))

.PHONY: hubble
hubble: ## build the upstream Hubble CLI from Cilium's Go module into bin/tools (make test does; point it at a node: --server <node>:4244)
	hack/build-hubble.sh

.PHONY: run
run: controlplane build ## start a local control plane with the controllers and the samples; Ctrl-C cleans up
	hack/run.sh

.PHONY: bench bench-lbipam bench-ipam bench-identity bench-cni bench-lab bench-l2 bench-egress bench-bgp bench-bgp-peers bench-policy bench-policy-change bench-gateway bench-gateway-scale
bench: bench-lbipam bench-ipam bench-identity bench-cni bench-lab bench-l2 bench-egress bench-bgp bench-policy bench-policy-change bench-gateway bench-gateway-scale ## every scale benchmark against the real API server (see docs/benchmarks.md)

bench-lbipam: controlplane ## LB-IPAM: addresses for a burst of Services, beside the API server's write ceiling
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) go run ./test/bench/lbipam $(BENCH_ARGS)

bench-ipam: controlplane ## IPAM: pod CIDRs for a burst of Nodes, beside the API server's write ceiling
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) go run ./test/bench/ipam $(BENCH_ARGS)

bench-identity: controlplane ## identities: CiliumIdentities for a burst of pods (10 per label set), beside the API server's write ceiling
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) go run ./test/bench/identity $(BENCH_ARGS)

bench-cni: controlplane ## CNI: ADD and DEL latency per pod of plexus-cni, beside ptp + host-local (needs root)
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) go run ./test/bench/cni $(BENCH_ARGS)

bench-lab: controlplane tools ## lab: pod creation to its first answered request, on a 3-node lab (needs root)
	go test -run '^$$' -bench PodToFirstAnswer -benchtime 30x -count 3 ./test/e2e

bench-policy: ## policy: compiling 5,000 policies over 5,000 identities; the eBPF verdict per packet with growing policy maps; pod-to-pod TCP with enforcement off and on, on one node and across two (interleaved rounds); the node plugin's memory at 100,000 endpoints (root)
	go test -run '^$$' -bench Compile -benchtime 10x -count 5 ./controllers/policy/compiler
	go test -run '^$$' -bench Verdict -benchtime 1000000x -count 5 ./nodeplugins/policy/datapath
	hack/bench-pod-to-pod.sh
	WHAT=throughput ROUNDS=12 hack/bench-pod-to-pod.sh
	go test -run '^$$' -bench EnforcerMemory -benchtime 1x -count 5 ./nodeplugins/policy

bench-policy-change: controlplane ## policy: a CiliumNetworkPolicy change until Ready (enforced on every node concerned), 1,000 policies over 5,000 pods on 50 simulated nodes
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) go run ./test/bench/policy $(BENCH_ARGS)

bench-gateway-scale: controlplane ## Gateway API at scale: 1,000 Gateways with 10,000 HTTPRoutes until all served and accepted, one edit after; controller CPU and peak RSS
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) go run ./test/bench/gateway $(BENCH_ARGS)

bench-gateway: ## Gateway API: a route edit until the node's proxy serves it (1, 100, 1,000 routes on one Gateway; one of 10 to 1,000 Gateways over delta and state-of-the-world xDS) and xDS bytes per edit; requests through the stand-in proxy vs direct
	go test -run '^$$' -bench . -benchtime 30x -count 5 ./test/l7standin

bench-l2: controlplane tools ## L2 announcements: failover time over 20 kills, API requests per node with 10/100/1,000 Services (needs root)
	go test -run '^$$' -bench 'L2' -benchtime 20x -count 1 -timeout 60m ./test/e2e

bench-egress: controlplane tools ## egress gateway: failover time over 20 kills; latency and throughput through the gateway vs direct; new-pod delay (needs root)
	go test -run '^$$' -bench 'EgressFailover' -benchtime 20x -count 3 -timeout 60m ./test/e2e
	go test -run '^$$' -bench 'EgressPath' -benchtime 3x -count 3 -timeout 30m ./test/e2e
	go test -run '^$$' -bench 'EgressNewPod' -benchtime 10x -count 3 -timeout 30m ./test/e2e

bench-bgp: controlplane tools bench-bgp-peers ## BGP: 10,000 prefixes to a peer (plugin vs GoBGP-to-GoBGP), plugin CPU and memory; 16 peers; Service address to route at FRR on the lab (needs root)
	go build -o bin/plexus-bgp-node ./nodeplugins/bgp/cmd/plexus-bgp-node
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) go run ./test/bench/bgp $(BENCH_ARGS)
	go test -run '^$$' -bench 'BGPServiceToRouter' -benchtime 20x -count 3 -timeout 30m ./test/e2e

bench-bgp-peers: ## BGP: 10,000 prefixes to 16 peers of one PeerConfig and one more prefix to all 16, beside GoBGP alone (5 runs)
	go test -run '^$$' -bench 'BenchmarkManyPeers' -benchtime 3x -count 5 -timeout 30m ./nodeplugins/bgp/speaker

LAB_NODES ?= 3
LAB_ARGS ?=

.PHONY: conformance
conformance: controlplane host-packages ## the upstream Gateway API conformance suite on a lab (root; about 5 minutes); writes docs/conformance/gateway-api-report.yaml
	@[[ $$(id -u) == 0 ]] || { echo "make conformance needs root (it runs a lab)" >&2; exit 1; }
	KUBEBUILDER_ASSETS=$$(hack/build-controlplane.sh etcd kube-apiserver kubectl) \
	  PLEXUS_CONFORMANCE_REPORT=$(CURDIR)/docs/conformance/gateway-api-report.yaml \
	  go test -count=1 -timeout 60m -v -run TestGatewayAPIConformance ./test/conformance $(CONFORMANCE_ARGS)

.PHONY: lab
lab: $(HELM) ## a whole cluster on this machine (no docker): control plane, Plexus, 3 node namespaces, a demo; see docs/lab.md
	@[[ $$(id -u) == 0 ]] || { echo "make lab needs root (network namespaces, links)" >&2; exit 1; }
	$(MAKE) --no-print-directory controlplane host-packages
	nice $(MAKE) --no-print-directory build
	nice go build -o bin/lab ./hack/lab
	nice go build -o bin/lab-image ./test/lab/images
	nice go build -o bin/echo-basic sigs.k8s.io/gateway-api/conformance/echo-basic
	bin/lab up --nodes $(LAB_NODES) $(LAB_ARGS)
	hack/lab/demo.sh $$(hack/build-controlplane.sh kubectl)/kubectl
	@echo
	@echo "== the lab keeps running. Use it with:"
	@echo "   export KUBECONFIG=/run/plexus-lab/plxlab/kubeconfig"
	@echo "   $$(hack/build-controlplane.sh kubectl)/kubectl get pods -o wide"
	@echo "   bin/lab status; bin/lab logs default/<pod>; docs/lab.md explains the rest"
	@echo "== remove it with: make lab-down"

.PHONY: lab-down
lab-down: ## stop and remove everything `make lab` made
	@if [[ -x bin/lab ]]; then bin/lab down; else go build -o bin/lab ./hack/lab && bin/lab down; fi
