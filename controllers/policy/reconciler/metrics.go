package reconciler

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/plexus-net/plexus/controllers/policy/compiler"
)

var (
	endpointPolicies = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "plexus_policy_enforcing_identities",
		Help: "Pod identities whose policy enforces or denies anything, after the last pass.",
	})
	policyProblems = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plexus_policy_problems",
		Help: "Rules not enforced as written after the last pass, by reason (Unsupported, Invalid, NotFound, HostFirewallDisabled).",
	}, []string{"reason"})
	unresolvedPods = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "plexus_policy_pods_without_identity",
		Help: "Running pods whose label set has no CiliumIdentity yet at the last pass: no policy applies to them until it has.",
	})
)

func init() { metrics.Registry.MustRegister(endpointPolicies, policyProblems, unresolvedPods) }

func observe(out *compiler.Output, unresolved int) {
	endpointPolicies.Set(float64(len(out.Endpoints)))
	counts := map[string]int{compiler.ReasonUnsupported: 0, compiler.ReasonInvalid: 0, compiler.ReasonNotFound: 0, compiler.ReasonHostFirewallDisabled: 0}
	for _, res := range out.Policies {
		for _, p := range res.Problems {
			counts[p.Reason]++
		}
	}
	for reason, n := range counts {
		policyProblems.WithLabelValues(reason).Set(float64(n))
	}
	unresolvedPods.Set(float64(unresolved))
}
