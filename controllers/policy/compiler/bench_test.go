package compiler

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/identity"
)

// BenchmarkCompile compiles a cluster of 100 namespaces with 50 apps
// each (5,000 identities), one policy per app letting the next app of its
// namespace in on 8080 plus a clusterwide DNS allow, and reports what a
// node hosting 30 identities would be sent.
func BenchmarkCompile(b *testing.B) {
	const namespaces, apps = 100, 50
	in := Input{Mode: ModeDefault, Pods: map[identity.Number]identity.Labels{}}
	n := identity.Number(identity.MinLocal)
	for ns := range namespaces {
		for app := range apps {
			in.Pods[n] = identity.Labels{"k8s:app": fmt.Sprintf("app-%d", app), "k8s:" + identity.LabelNamespace: fmt.Sprintf("ns-%d", ns)}
			n++
		}
		for app := range apps {
			in.CiliumPolicies = append(in.CiliumPolicies, ciliumv2.CiliumNetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", ns), Name: fmt.Sprintf("app-%d", app)},
				Spec: &ciliumv2.PolicyRule{
					EndpointSelector: &ciliumv2.EndpointSelector{MatchLabels: map[string]ciliumv2.MatchLabelsValue{"app": ciliumv2.MatchLabelsValue(fmt.Sprintf("app-%d", app))}},
					Ingress: []ciliumv2.PolicyIngressRule{{
						PolicyIngressCommon: ciliumv2.PolicyIngressCommon{FromEndpoints: []ciliumv2.EndpointSelector{{MatchLabels: map[string]ciliumv2.MatchLabelsValue{"app": ciliumv2.MatchLabelsValue(fmt.Sprintf("app-%d", (app+1)%apps))}}}},
						ToPorts:             []ciliumv2.PortRule{{Ports: []ciliumv2.PortProtocol{{Port: "8080", Protocol: "TCP"}}}},
					}},
				},
			})
		}
	}
	in.ClusterwidePolicies = []ciliumv2.CiliumClusterwideNetworkPolicy{{
		ObjectMeta: metav1.ObjectMeta{Name: "dns"},
		Spec: &ciliumv2.PolicyRule{
			EndpointSelector: &ciliumv2.EndpointSelector{},
			Egress: []ciliumv2.PolicyEgressRule{
				{PolicyEgressCommon: ciliumv2.PolicyEgressCommon{ToEntities: []ciliumv2.Entity{"cluster"}}, ToPorts: []ciliumv2.PortRule{{Ports: []ciliumv2.PortProtocol{{Port: "53", Protocol: "UDP"}}}}},
				{PolicyEgressCommon: ciliumv2.PolicyEgressCommon{ToEndpoints: []ciliumv2.EndpointSelector{{}}}},
			},
		},
	}}
	local := make([]identity.Number, 0, 30)
	for i := range 30 {
		local = append(local, identity.Number(identity.MinLocal+i*167))
	}
	var out *Output
	b.ResetTimer()
	for b.Loop() {
		out = Compile(in)
	}
	b.StopTimer()
	spec := out.NodeSpec("n1", local)
	ids := 0
	for _, ps := range spec.PeerSets {
		ids += len(ps.Identities)
	}
	b.ReportMetric(float64(len(in.Pods)), "identities")
	b.ReportMetric(float64(len(in.CiliumPolicies)+len(in.ClusterwidePolicies)), "policies")
	b.ReportMetric(float64(len(spec.PeerSets)), "node-peer-sets")
	b.ReportMetric(float64(ids), "node-peer-identities")
}
