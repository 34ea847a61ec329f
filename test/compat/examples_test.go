package compat

import (
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plexus-net/plexus/test/testenv"
)

// Cilium's own example manifests for the kinds Plexus serves (BGP, LB-IPAM,
// L2 announcements, egress gateway, pod IP pools, nodes, GatewayClass
// parameters and the policies of its guides), as a user copies them from
// the release's examples/ and documentation, apply unchanged to Plexus's
// CRDs. They are copied under
// testdata/cilium-<version> by hack/ciliumexamples, with their sources.
//
// The few that are refused are refused by Cilium's own CRDs too, under the
// strict field validation kubectl applies by default:
const (
	// Fragments of a larger example, with no metadata.
	noName = "name or generateName is required"
	// The guide writes CiliumPodIPPool at cilium.io/v2, a version no
	// Cilium release serves (it is v2alpha1).
	podIPPoolV2 = `no matches for kind "CiliumPodIPPool" in version "cilium.io/v2"`
	// `kubectl get -o yaml` of a policy Cilium derives itself, with a
	// status.nodes that Cilium's CRD no longer has.
	derivedOutput = `unknown field "status.nodes"`
)

func TestCiliumExamplesApply(t *testing.T) {
	testenv.Require(t, env)
	for _, tc := range []struct {
		version string
		least   int
		refused map[string]string
	}{
		{"v1.18.5", 60, map[string]string{
			"Documentation__network__bgp-control-plane__bgp-control-plane-v1.rst__block4.yaml":  noName,
			"Documentation__network__bgp-control-plane__bgp-control-plane-v1.rst__block8.yaml":  noName,
			"Documentation__network__bgp-control-plane__bgp-control-plane-v1.rst__block9.yaml":  noName,
			"Documentation__network__bgp-control-plane__bgp-control-plane-v1.rst__block10.yaml": noName,
			"Documentation__network__bgp-control-plane__bgp-control-plane-v1.rst__block12.yaml": noName,
			// A typo in the guide (connetRetryTimeSeconds).
			"Documentation__network__bgp-control-plane__bgp-control-plane-v1.rst__block11.yaml":       `unknown field "spec.virtualRouters[0].neighbors[0].connetRetryTimeSeconds"`,
			"Documentation__network__bgp-control-plane__bgp-control-plane-v2.rst__block13__doc1.yaml": podIPPoolV2,
			"Documentation__security__aws.rst__block4.yaml":                                           derivedOutput,
		}},
		{"v1.20.2", 50, map[string]string{
			"Documentation__network__bgp-control-plane__bgp-control-plane-configuration.rst__block13.yaml": podIPPoolV2,
			// A policy with fromEndpoints directly under spec, outside any
			// ingress rule: not a policy in any Cilium version.
			"Documentation__operations__performance__scalability__report.rst__block1.yaml": `unknown field "spec.fromEndpoints"`,
			"Documentation__operations__performance__scalability__report.rst__block2.yaml": `unknown field "spec.fromEndpoints"`,
			"Documentation__security__aws.rst__block4.yaml":                                derivedOutput,
		}},
	} {
		t.Run(tc.version, func(t *testing.T) {
			applyCorpus(t, "testdata/cilium-"+tc.version, tc.least, tc.refused)
		})
	}
}

// warnings records the API server's warnings.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

// The versions Cilium 1.20 deprecates still apply, with the API server's
// deprecation warning (as kubectl shows it), including v2alpha1's
// transport.localPort, which has no effect; v2 kinds apply without one.
func TestDeprecatedVersionsApplyWithAWarning(t *testing.T) {
	testenv.Require(t, env)
	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ manifest, warning string }{
		{`apiVersion: cilium.io/v2alpha1
kind: CiliumBGPPeerConfig
metadata: {name: old-peer}
spec: {transport: {localPort: 179, peerPort: 179}}`, "cilium.io/v2alpha1 CiliumBGPPeerConfig is deprecated; use cilium.io/v2"},
		{`apiVersion: cilium.io/v2alpha1
kind: CiliumBGPPeeringPolicy
metadata: {name: old-policy}
spec: {virtualRouters: [{localASN: 64512, neighbors: [{peerAddress: 198.18.0.1/32, peerASN: 64512}]}]}`, "cilium.io/v2alpha1 CiliumBGPPeeringPolicy is deprecated; use cilium.io/v2 CRDs"},
		{`apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: {name: old-pool}
spec: {blocks: [{cidr: 198.18.200.0/24}]}`, "cilium.io/v2alpha1 CiliumLoadBalancerIPPool is deprecated; use cilium.io/v2"},
		{`apiVersion: cilium.io/v2
kind: CiliumBGPPeerConfig
metadata: {name: new-peer}
spec: {transport: {sourceInterface: lo}}`, ""},
	} {
		w.mu.Lock()
		w.got = nil
		w.mu.Unlock()
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(tc.manifest), &u.Object); err != nil {
			t.Fatal(err)
		}
		opts := &client.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}
		if err := c.Create(t.Context(), &u, opts); err != nil {
			t.Errorf("%s %s refused: %v", u.GetAPIVersion(), u.GetKind(), err)
			continue
		}
		w.mu.Lock()
		got := strings.Join(w.got, "\n")
		w.mu.Unlock()
		if (tc.warning == "") != (got == "") || !strings.Contains(got, tc.warning) {
			t.Errorf("%s %s: warnings %q, want %q", u.GetAPIVersion(), u.GetKind(), got, tc.warning)
		}
	}
}
