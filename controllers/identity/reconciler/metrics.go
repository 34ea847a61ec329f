package reconciler

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/plexus-net/plexus/controllers/identity/allocator"
)

var (
	identities = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plexus_identity_identities",
		Help: "CiliumIdentities of this cluster's range after the last pass, by state: used (some pod carries the labels) or unused (waiting out the grace period, or about to be deleted).",
	}, []string{"state"})
	exhaustedSets = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "plexus_identity_exhausted_label_sets",
		Help: "Label sets in use that found no free identity in the cluster's range at the last pass.",
	})
	createdTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plexus_identity_created_total",
		Help: "CiliumIdentities created.",
	})
	deletedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plexus_identity_deleted_total",
		Help: "Unused CiliumIdentities deleted after the grace period.",
	})
)

func init() { metrics.Registry.MustRegister(identities, exhaustedSets, createdTotal, deletedTotal) }

// observe sets the gauges from a decision over held identities.
func observe(d allocator.Decision, held int) {
	used := d.Used
	identities.WithLabelValues("used").Set(float64(used))
	identities.WithLabelValues("unused").Set(float64(held + len(d.Create) - used))
}
