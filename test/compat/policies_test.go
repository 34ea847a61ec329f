// Package compat checks that manifests written for Cilium apply to Plexus's
// CRDs on a real API server.
package compat

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

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
