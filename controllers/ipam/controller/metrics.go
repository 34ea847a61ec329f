package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/plexus-net/plexus/controllers/ipam/allocator"
)

var (
	passDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "plexus_ipam_pass_compute_seconds",
		Help:    "Time a pass takes to read the cache and decide every node's CIDRs, writes excluded.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	nodesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plexus_ipam_nodes",
		Help: "Nodes by allocation state: allocated, or failed (see the CiliumNode's status.ipam.operator-status.error).",
	}, []string{"state"})
)

func init() { metrics.Registry.MustRegister(passDuration, nodesGauge) }

func recordPass(res allocator.Result, took time.Duration) {
	passDuration.Observe(took.Seconds())
	failed := 0
	for _, n := range res.Nodes {
		if len(n.Errors) > 0 {
			failed++
		}
	}
	nodesGauge.WithLabelValues("allocated").Set(float64(len(res.Nodes) - failed))
	nodesGauge.WithLabelValues("failed").Set(float64(failed))
}
