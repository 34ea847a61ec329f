package identity

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Label keys added to a pod's own labels before filtering, as Cilium adds
// them, so that policies can select by namespace, namespace labels,
// ServiceAccount and cluster.
const (
	LabelNamespace             = "io.kubernetes.pod.namespace"
	LabelNamespaceLabelsPrefix = "io.cilium.k8s.namespace.labels."
	LabelServiceAccount        = "io.cilium.k8s.policy.serviceaccount"
	LabelCluster               = "io.cilium.k8s.policy.cluster"
	// ciliumLabelPrefix starts every label only Cilium (here: Plexus) may
	// set; a pod's own labels with it are dropped, so a pod cannot claim
	// another namespace or ServiceAccount.
	ciliumLabelPrefix = "io.cilium.k8s"
)

// Label sources, the part before the colon of a security label's key.
const (
	SourceK8s      = "k8s"
	SourceReserved = "reserved"
)

// PodLabels are the labels a pod's identity is computed from, before
// filtering: its own labels (without those reserved to Cilium), its
// namespace's labels under io.cilium.k8s.namespace.labels., its namespace,
// its ServiceAccount (if any) and the cluster's name.
func PodLabels(own map[string]string, namespace string, namespaceLabels map[string]string, serviceAccount, cluster string) map[string]string {
	out := make(map[string]string, len(own)+len(namespaceLabels)+3)
	for k, v := range own {
		if !strings.HasPrefix(k, ciliumLabelPrefix) {
			out[k] = v
		}
	}
	for k, v := range namespaceLabels {
		out[LabelNamespaceLabelsPrefix+k] = v
	}
	out[LabelNamespace] = namespace
	if serviceAccount != "" {
		out[LabelServiceAccount] = serviceAccount
	}
	out[LabelCluster] = cluster
	return out
}

// Filter decides which labels count for identity. Rules are regular
// expressions matched at the start of a label's key, optionally limited to
// a source ("k8s:app"), and excluding when they start with "!". A label
// counts when the longest including rule that matches it is longer than
// the shortest excluding rule that matches it; with no including rule of
// the user's, a label counts unless an excluding rule matches it. These are
// Cilium's rules and defaults, so a label list written for Cilium's
// --labels (Helm `labels`) means the same here.
type Filter struct {
	rules []rule
	// onlyIncluded is set once the user gives an including rule: then
	// only labels that some including rule matches count.
	onlyIncluded bool
	// decided remembers counts for each label key seen: the rules are
	// fixed, keys are few, and every pass asks for every pod's labels.
	decided sync.Map // source + ":" + key → bool
	// remembered counts decided's keys, which stop growing at maxDecided.
	remembered atomic.Int64
}

const maxDecided = 1 << 16

type rule struct {
	source  string
	exclude bool
	expr    *regexp.Regexp
	text    string
}

// defaultRules are Cilium's default label rules: the namespace, namespace
// labels, app.kubernetes.io and the cluster count; labels that Kubernetes
// or controllers add per pod (pod-template-hash, StatefulSet pod names,
// job indices, …) do not, since they would give every pod its own identity.
var defaultRules = []string{
	SourceReserved + ":.*",
	regexp.QuoteMeta(LabelNamespace),
	regexp.QuoteMeta(strings.TrimSuffix(LabelNamespaceLabelsPrefix, ".")),
	regexp.QuoteMeta("app.kubernetes.io"),
	regexp.QuoteMeta(LabelCluster),
	`!io\.kubernetes`,
	`!kubernetes\.io`,
	"!" + regexp.QuoteMeta("statefulset.kubernetes.io/pod-name"),
	"!" + regexp.QuoteMeta("apps.kubernetes.io/pod-index"),
	"!" + regexp.QuoteMeta("batch.kubernetes.io/job-completion-index"),
	`!.*beta\.kubernetes\.io`,
	`!k8s\.io`,
	`!pod-template-generation`,
	`!pod-template-hash`,
	`!controller-revision-hash`,
	`!annotation.*`,
	`!etcd_node`,
}

// NewFilter is the default filter with the user's rules added.
func NewFilter(userRules []string) (*Filter, error) {
	f := &Filter{}
	for _, s := range defaultRules {
		r, err := parseRule(s)
		if err != nil {
			return nil, fmt.Errorf("default label rule %q: %w", s, err)
		}
		f.rules = append(f.rules, r)
	}
	for _, s := range userRules {
		if s == "" {
			continue
		}
		r, err := parseRule(s)
		if err != nil {
			return nil, fmt.Errorf("label rule %q: %w", s, err)
		}
		if !r.exclude {
			f.onlyIncluded = true
		}
		f.rules = append(f.rules, r)
	}
	return f, nil
}

// parseRule reads "[source:][!]regexp".
func parseRule(s string) (rule, error) {
	r := rule{text: s}
	expr := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		r.source, expr = s[:i], s[i+1:]
	}
	if strings.HasPrefix(expr, "!") {
		r.exclude, expr = true, expr[1:]
	}
	if expr == "" {
		return rule{}, fmt.Errorf("empty pattern")
	}
	re, err := regexp.Compile("^(?:" + expr + ")")
	if err != nil {
		return rule{}, err
	}
	r.expr = re
	return r, nil
}

// matchLen is how much of key r matches from its start (0: no match).
func (r rule) matchLen(source, key string) int {
	if r.source != "" && r.source != source {
		return 0
	}
	loc := r.expr.FindStringIndex(key)
	if loc == nil {
		return 0
	}
	return loc[1] // an empty match changes nothing, as in Cilium
}

// counts says whether the label source:key counts for identity.
func (f *Filter) counts(source, key string) bool {
	k := source + ":" + key
	if v, ok := f.decided.Load(k); ok {
		return v.(bool)
	}
	v := f.decide(source, key)
	if f.remembered.Add(1) <= maxDecided {
		f.decided.Store(k, v)
	}
	return v
}

func (f *Filter) decide(source, key string) bool {
	included, excluded := 0, 0
	for _, r := range f.rules {
		n := r.matchLen(source, key)
		switch {
		case n == 0:
		case r.exclude && (excluded == 0 || n < excluded):
			excluded = n
		case !r.exclude && n > included:
			included = n
		}
	}
	return (!f.onlyIncluded && excluded == 0) || included > excluded
}

// Rules are the filter's rules as given, defaults first (for logs and docs).
func (f *Filter) Rules() []string {
	out := make([]string, len(f.rules))
	for i, r := range f.rules {
		out[i] = r.text
	}
	return out
}

// Security is the security label set of a pod's labels (see PodLabels):
// those that count, keyed "k8s:<key>".
func (f *Filter) Security(podLabels map[string]string) Labels {
	out := make(Labels, len(podLabels))
	for k, v := range podLabels {
		if f.counts(SourceK8s, k) {
			out[SourceK8s+":"+k] = v
		}
	}
	return out
}

// HasOwnIdentity says whether a pod needs an identity of its own: pods on
// the host network have the host's, and finished pods none.
func HasOwnIdentity(pod *corev1.Pod) bool {
	return !pod.Spec.HostNetwork && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// PodSet is the security label set of pod, whose namespace has the labels
// nsLabels, in the cluster named cluster. Every component that maps pods
// to identities computes it here, with the same filter settings.
func (f *Filter) PodSet(pod *corev1.Pod, nsLabels map[string]string, cluster string) Labels {
	return f.Security(PodLabels(pod.Labels, pod.Namespace, nsLabels, pod.Spec.ServiceAccountName, cluster))
}

// Labels is a security label set as a CiliumIdentity's security-labels
// holds it: "<source>:<key>" to value.
type Labels map[string]string

// Key is the label set's canonical form: its labels sorted, one string, so
// equal sets have equal keys.
func (l Labels) Key() string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(l[k])
		b.WriteByte(';')
	}
	return b.String()
}

// ObjectLabels are the Kubernetes labels of the label set's CiliumIdentity,
// so that `kubectl get ciliumid -l app=web` finds it: the k8s-sourced
// labels without their source, where key and value are valid as
// Kubernetes labels (the others stay in security-labels only).
func (l Labels) ObjectLabels() map[string]string {
	out := map[string]string{}
	for k, v := range l {
		key, ok := strings.CutPrefix(k, SourceK8s+":")
		if !ok || len(validation.IsQualifiedName(key)) > 0 || len(validation.IsValidLabelValue(v)) > 0 {
			continue
		}
		out[key] = v
	}
	return out
}
