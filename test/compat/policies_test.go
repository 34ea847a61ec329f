// Package compat checks that manifests written for Cilium apply to Plexus's
// CRDs on a real API server.
package compat

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// apply creates every document of manifest as a dry run with strict field
// validation: the API server checks it whole (schema, oneOf groups,
// unknown fields refused rather than dropped) and stores nothing.
func apply(ctx context.Context, manifest []byte) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var errs []error
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetNamespace() == "" && u.GetKind() != "CiliumClusterwideNetworkPolicy" {
			u.SetNamespace("default")
		}
		opts := &client.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}
		if err := env.Client.Create(ctx, &u, opts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// The schema refuses what Cilium's refuses, naming the field.
func TestNP23_PolicySchemaRefusesBadRules(t *testing.T) {
	testenv.Require(t, env)
	const head = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad}\nspec:\n"
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"port above 65535", `  endpointSelector: {}
  ingress: [{toPorts: [{ports: [{port: "70000", protocol: TCP}]}]}]`, "spec.ingress[0].toPorts[0].ports[0].port"},
		{"endPort above 65535", `  endpointSelector: {}
  ingress: [{toPorts: [{ports: [{port: "80", endPort: 70000}]}]}]`, "endPort"},
		{"unknown protocol", `  endpointSelector: {}
  egress: [{toPorts: [{ports: [{port: "80", protocol: QUIC}]}]}]`, "protocol"},
		{"no subject", `  ingress: [{}]`, "spec"},
		{"two subjects", `  endpointSelector: {}
  nodeSelector: {}
  ingress: [{}]`, "spec"},
		{"no direction", `  endpointSelector: {}`, "spec"},
		{"cidr and group", `  endpointSelector: {}
  egress: [{toCIDRSet: [{cidr: 10.0.0.0/8, cidrGroupRef: vpn}]}]`, "spec.egress[0].toCIDRSet[0]"},
		{"bad CIDR", `  endpointSelector: {}
  egress: [{toCIDR: [10.0.0.0]}]`, "spec.egress[0].toCIDR[0]"},
		{"unknown entity", `  endpointSelector: {}
  egress: [{toEntities: [internet]}]`, "spec.egress[0].toEntities[0]"},
		{"empty L7 rules", `  endpointSelector: {}
  ingress: [{toPorts: [{ports: [{port: "80"}], rules: {}}]}]`, "spec.ingress[0].toPorts[0].rules"},
		{"fqdn name and pattern", `  endpointSelector: {}
  egress: [{toFQDNs: [{matchName: a.example, matchPattern: "*.example"}]}]`, "spec.egress[0].toFQDNs[0]"},
		{"label value too long", `  endpointSelector: {matchLabels: {app: ` + strings.Repeat("x", 64) + `}}
  ingress: [{}]`, "matchLabels"},
		{"deprecated fromRequires", `  endpointSelector: {}
  ingress: [{fromRequires: [{matchLabels: {a: b}}]}]`, "fromRequires"},
		{"unknown field", `  endpointSelector: {}
  ingress: [{fromPods: [{}]}]`, "fromPods"},
	} {
		err := apply(t.Context(), []byte(head+tc.spec+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}

// The rules that the oneOf/anyOf groups and the schema allow apply,
// including the idioms Cilium documents: an explicitly empty direction,
// ingress [{}], a specs list, a host policy, ports as names and ranges.
func TestPolicySchemaAcceptsCiliumIdioms(t *testing.T) {
	testenv.Require(t, env)
	for name, doc := range map[string]string{
		"empty ingress list": `kind: CiliumNetworkPolicy
spec: {endpointSelector: {}, ingress: []}`,
		"specs": `kind: CiliumNetworkPolicy
specs:
- {endpointSelector: {matchLabels: {"k8s:app": web}}, ingress: [{fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system}}]}]}
- {endpointSelector: {}, egressDeny: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]}]}`,
		"host policy": `kind: CiliumClusterwideNetworkPolicy
spec: {nodeSelector: {}, ingress: [{fromEntities: [cluster], toPorts: [{ports: [{port: "6443", protocol: TCP}]}]}]}`,
		"named port, range, ICMP, default deny": `kind: CiliumNetworkPolicy
spec:
  endpointSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
  enableDefaultDeny: {egress: false}
  ingress:
  - toPorts: [{ports: [{port: http-alt}, {port: "8000", endPort: 8100, protocol: UDP}]}]
    icmps: [{fields: [{type: 8}, {type: EchoRequest, family: IPv6}]}]`,
		"L7": `kind: CiliumNetworkPolicy
spec:
  endpointSelector: {}
  egress:
  - toPorts: [{ports: [{port: "53", protocol: ANY}], rules: {dns: [{matchPattern: "*"}]}}]
  - toFQDNs: [{matchName: api.example.com}]
  - toPorts: [{ports: [{port: "9092"}], rules: {kafka: [{role: produce, topic: orders}]}}]
  ingress:
  - toPorts: [{ports: [{port: "80"}], rules: {http: [{method: GET, path: "/api/v1/.*"}]}}]`,
	} {
		manifest := "apiVersion: cilium.io/v2\nmetadata: {name: ok}\n" + doc + "\n"
		if err := apply(t.Context(), []byte(manifest)); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

// outOfSchema lists the example files that are refused, with the field the
// refusal names: written for older schemas (which Cilium's current CRDs
// refuse too under strict validation), carrying placeholders, or using the
// deprecated fromRequires, which Plexus refuses rather than not enforce.
// Every other example must apply unchanged.
var outOfSchema = map[string]string{
	// A top-level "description" beside spec: Cilium's CRD has no such
	// field; kubectl's default strict validation refuses it, as here.
	"examples__minikube__sw_l3_l4_policy.yaml":                                  `unknown field "description"`,
	"examples__policies__kubernetes__clusterwide__wildcard-from-endpoints.yaml": `unknown field "description"`,
	"examples__policies__l3__host__host-policy.yaml":                            `unknown field "description"`,
	"examples__policies__kubernetes__clustermesh__cross-cluster-policy.yaml":    `unknown field "metadata.description"`,
	// Cilium's authentication field is "authentication" since 1.14.
	"examples__policies__auth__auth.yaml": `unknown field "spec.egress[0].auth"`,
	// fromRequires, deprecated by Cilium, is refused rather than left unenforced.
	"examples__policies__l3__requires__requires.yaml": "fromRequires",
	// Label selector operators are case-sensitive ("In", not "in").
	"examples__policies__l3__match-expressions__and-statement.yaml": "operator",
	"examples__policies__l3__match-expressions__or-statement.yaml":  "operator",
	// A documentation placeholder where the port number goes.
	"examples__policies__host__lock-down-ingress.yaml": "port",
}

// Cilium's example policies (copied with their source in
// testdata/cilium-policies/SOURCES.md) apply to Plexus's CRDs unchanged,
// except those Cilium's own schema refuses, which are refused naming the
// same field.
func TestCiliumPolicyExamplesApply(t *testing.T) {
	testenv.Require(t, env)
	for _, ns := range []string{"ns1", "ns2", "public"} {
		err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	applyCorpus(t, "testdata/cilium-policies", 50, outOfSchema)
}

// applyCorpus applies every manifest of dir: each must apply, except those
// named in refused, which must be refused with an error containing the
// given text. It fails if dir holds fewer than least manifests.
func applyCorpus(t *testing.T, dir string, least int, refused map[string]string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) < least {
		t.Fatalf("%s: %d manifests, want at least %d (%v)", dir, len(files), least, err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		manifest, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		err = apply(t.Context(), manifest)
		want, isRefused := refused[name]
		seen[name] = true
		switch {
		case !isRefused && err != nil:
			t.Errorf("%s refused: %v", name, err)
		case isRefused && err == nil:
			t.Errorf("%s applied; it is listed as refused: remove it from the list", name)
		case isRefused && !strings.Contains(err.Error(), want):
			t.Errorf("%s refused with %v, want an error naming %s", name, err, want)
		}
	}
	for name := range refused {
		if !seen[name] {
			t.Errorf("the list of refused manifests names %s, which is not in %s", name, dir)
		}
	}
}
