package reconciler

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var servicesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "plexus_lbipam_services",
	Help: "LoadBalancer Services LB-IPAM serves, by whether their request is satisfied.",
}, []string{"state"})

func init() {
	metrics.Registry.MustRegister(servicesGauge)
}
