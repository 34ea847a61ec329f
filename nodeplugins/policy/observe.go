package policy

import (
	"context"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
	"github.com/plexus-net/plexus/nodeplugins/policy/flows"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliumidentities,verbs=get;list;watch

// Observer turns the datapath's verdict events into Hubble flows, named
// with the enforcer's view of the node (pods, the policies behind each
// verdict) and the identities' labels.
type Observer struct {
	Maps     *datapath.Maps
	Enforcer *Enforcer
	// Identities reads CiliumIdentities, for their labels; nil leaves
	// pod identities without labels.
	Identities client.Reader
	Store      *flows.Store
	NodeName   string
}

// Run reads events into the store until ctx ends.
func (o *Observer) Run(ctx context.Context) error {
	l := flows.Lookup{NodeName: o.NodeName, PodOf: o.Enforcer.PodOf, PodAt: o.Enforcer.PodAt, Explain: o.Enforcer.Explain,
		Labels: func(id uint32) []string { return o.labels(ctx, id) }}
	return o.Maps.ReadEvents(ctx, func(e datapath.Event) { o.Store.Add(flows.Flow(e, l)) })
}

// labels are an identity's labels as Hubble shows them ("k8s:app=web").
func (o *Observer) labels(ctx context.Context, id uint32) []string {
	if name := identity.ReservedName(identity.Number(id)); name != "" {
		return []string{identity.SourceReserved + ":" + name}
	}
	if o.Identities == nil {
		return nil
	}
	var ci ciliumv2.CiliumIdentity
	if err := o.Identities.Get(ctx, client.ObjectKey{Name: strconv.FormatUint(uint64(id), 10)}, &ci); err != nil {
		return nil
	}
	out := make([]string, 0, len(ci.SecurityLabels))
	for k, v := range ci.SecurityLabels {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// Metrics exports the programs' verdict counters. They are read from the
// pinned counters map at each scrape, so they count every verdict even
// when the events ring buffer overflows, and survive plugin restarts.
type Metrics struct {
	Maps *datapath.Maps
}

var (
	dropsDesc = prometheus.NewDesc("plexus_policy_drops_total",
		"Packets dropped by network policy, by reason (policy-denied: no rule allows it; policy-deny: a deny rule matched; invalid-packet) and the local pod's direction.",
		[]string{"reason", "direction"}, nil)
	dropBytesDesc = prometheus.NewDesc("plexus_policy_drop_bytes_total",
		"Bytes dropped by network policy, by reason and direction.", []string{"reason", "direction"}, nil)
	flowsDesc = prometheus.NewDesc("plexus_policy_allowed_flows_total",
		"New flows (first packets) allowed by network policy, by direction; later packets pass by connection tracking.",
		[]string{"direction"}, nil)
	lostDesc = prometheus.NewDesc("plexus_policy_events_lost_total",
		"Verdict events lost because the events ring buffer was full (flows then miss them; the counters above do not).", nil, nil)
	scrapeErrorDesc = prometheus.NewDesc("plexus_policy_counters_read_errors",
		"1 when the last scrape could not read the verdict counters map.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dropsDesc, dropBytesDesc, flowsDesc, lostDesc, scrapeErrorDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m Metrics) Collect(ch chan<- prometheus.Metric) {
	counters, lost, err := m.Maps.Counters()
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, failed)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(lost))
	for k, c := range counters {
		dir := k.Direction.String()
		if !k.Kind.Dropped() {
			ch <- prometheus.MustNewConstMetric(flowsDesc, prometheus.CounterValue, float64(c.Packets), dir)
			continue
		}
		ch <- prometheus.MustNewConstMetric(dropsDesc, prometheus.CounterValue, float64(c.Packets), k.Kind.Reason(), dir)
		ch <- prometheus.MustNewConstMetric(dropBytesDesc, prometheus.CounterValue, float64(c.Bytes), k.Kind.Reason(), dir)
	}
}
