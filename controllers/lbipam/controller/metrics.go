package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	reconcileDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "plexus_lbipam_reconcile_duration_seconds",
		Help:    "Time of one LB-IPAM pass over all pools and Services, status writes included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	servicesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plexus_lbipam_services",
		Help: "LoadBalancer Services LB-IPAM serves, by whether their request is satisfied.",
	}, []string{"state"})
)

func init() {
	metrics.Registry.MustRegister(reconcileDuration, servicesGauge)
}
