package passes

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	decideSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plexus_pass_decide_seconds",
		Help:    "Time a pass takes to list the cache and decide, writes excluded.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"controller"})
	passSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plexus_pass_seconds",
		Help:    "Time of a whole pass, writes included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"controller"})
	writeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plexus_pass_write_failures_total",
		Help: "Failed writes by outcome: retry (with backoff), repass (decide again: the write raced another change), drop (refused as invalid; not retried).",
	}, []string{"controller", "outcome"})
)

func init() { metrics.Registry.MustRegister(decideSeconds, passSeconds, writeFailures) }
