package reconciler

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/plexus-net/plexus/controllers/ipam/allocator"
)

var (
	nodesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plexus_ipam_nodes",
		Help: "Nodes by allocation state: allocated, or failed (see the CiliumNode's status.ipam.operator-status.error).",
	}, []string{"state"})
)

func init() { metrics.Registry.MustRegister(nodesGauge) }

func recordNodes(res allocator.Result) {
	failed := 0
	for _, n := range res.Nodes {
		if len(n.Errors) > 0 {
			failed++
		}
	}
	nodesGauge.WithLabelValues("allocated").Set(float64(len(res.Nodes) - failed))
	nodesGauge.WithLabelValues("failed").Set(float64(failed))
}
