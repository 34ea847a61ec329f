package l2announce

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	descAddresses  = prometheus.NewDesc("plexus_l2announcer_addresses", "Addresses this node is a candidate for.", nil, nil)
	descAnnouncing = prometheus.NewDesc("plexus_l2announcer_announcing", "Addresses this node answers ARP for now.", nil, nil)
	descLivePeers  = prometheus.NewDesc("plexus_l2announcer_live_peers", "Members alive as this node sees them, itself included.", nil, nil)
	descAnswered   = prometheus.NewDesc("plexus_l2announcer_arp_replies_total", "ARP requests answered, per address and interface, while held.", []string{"ip", "interface"}, nil)
	descGARPs      = prometheus.NewDesc("plexus_l2announcer_gratuitous_arps_total", "Gratuitous ARPs sent, per address and interface, while held.", []string{"ip", "interface"}, nil)
)

// collector reads the announcer at scrape time, so announcing never touches
// metrics.
type collector struct{ a *Announcer }

// RegisterMetrics registers a's metrics with controller-runtime's registry
// (served on --metrics-bind-address).
func RegisterMetrics(a *Announcer) error { return metrics.Registry.Register(collector{a}) }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAddresses, descAnnouncing, descLivePeers, descAnswered, descGARPs} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	rep := c.a.Report()
	ch <- prometheus.MustNewConstMetric(descAddresses, prometheus.GaugeValue, float64(rep.AddressCount))
	ch <- prometheus.MustNewConstMetric(descAnnouncing, prometheus.GaugeValue, float64(len(rep.Announcing)))
	ch <- prometheus.MustNewConstMetric(descLivePeers, prometheus.GaugeValue, float64(len(rep.LivePeers)))
	for p, s := range c.a.Stats() {
		ch <- prometheus.MustNewConstMetric(descAnswered, prometheus.CounterValue, float64(s.Answered), p.IP.String(), p.Interface)
		ch <- prometheus.MustNewConstMetric(descGARPs, prometheus.CounterValue, float64(s.GARPs), p.IP.String(), p.Interface)
	}
}
