package identity

import (
	"errors"
	"flag"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Settings are what every component that maps pods to identities must
// agree on: the label rules, the cluster's name and its numbers. The
// identity controller allocates with them, the policy controller looks
// pods up with them; the chart gives both the same values.
type Settings struct {
	// Filter decides which labels count (NewFilter).
	Filter *Filter
	// Cluster is the cluster's name (the io.cilium.k8s.policy.cluster label).
	Cluster string
	// Range is the cluster's numbers (RangeOf its cluster ID).
	Range Range
}

// Valid says whether every setting is there.
func (s Settings) Valid() bool { return s.Filter != nil && s.Cluster != "" && s.Range.Max != 0 }

// PodSet is the security label set of pod, whose namespace has nsLabels.
func (s Settings) PodSet(pod *corev1.Pod, nsLabels map[string]string) Labels {
	return s.Filter.PodSet(pod, nsLabels, s.Cluster)
}

// Flags are the command-line flags of Settings.
type Flags struct {
	cluster   string
	clusterID uint
	labels    string
}

// Bind registers --cluster-name, --cluster-id and --labels on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.StringVar(&f.cluster, "cluster-name", "default", "the cluster's name, in every identity as the label io.cilium.k8s.policy.cluster; the same in every Plexus component")
	fs.UintVar(&f.clusterID, "cluster-id", 0, "the cluster's ID (0–255), the high bits of its identities' numbers; unique per cluster in a Cluster Mesh, the same in every Plexus component")
	fs.StringVar(&f.labels, "labels", "", "label rules added to the defaults, space-separated, Cilium's --labels syntax: [source:]regexp includes, [source:]!regexp excludes; with an including rule only included labels count; the same in every Plexus component")
}

// Settings checks the flags and builds the Settings.
func (f *Flags) Settings() (Settings, error) {
	filter, err := NewFilter(strings.Fields(f.labels))
	if err != nil {
		return Settings{}, err
	}
	r, err := RangeOf(uint32(f.clusterID))
	if err != nil {
		return Settings{}, err
	}
	if f.cluster == "" {
		return Settings{}, errors.New("--cluster-name is empty")
	}
	return Settings{Filter: filter, Cluster: f.cluster, Range: r}, nil
}
