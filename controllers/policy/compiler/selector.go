package compiler

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/identity"
)

// sourceAny is the label source that matches a key of any source; a key
// written without a source ("app") means the same.
const sourceAny = "any"

// selector matches security label sets ("<source>:<key>" → value). It is
// an EndpointSelector after the namespace scoping of its policy.
type selector struct {
	reqs []requirement
	// reserved is set when the selector names a reserved: key; only such
	// selectors can match reserved identities (host, world, …), so that
	// {} or a NotIn never selects the world by accident. Entities are the
	// way to name those.
	reserved bool
}

type requirement struct {
	source, key string
	op          metav1.LabelSelectorOperator
	values      []string
}

// splitKey reads "source:key"; a key without a known source is "any".
func splitKey(k string) (source, key string) {
	if i := strings.IndexByte(k, ':'); i > 0 {
		switch src := k[:i]; src {
		case identity.SourceK8s, identity.SourceReserved, sourceAny, "cidr", "unspec", "container":
			return src, k[i+1:]
		}
	}
	return sourceAny, k
}

// newSelector compiles an EndpointSelector. namespace, when set, confines
// a selector that does not name the namespace key itself to that namespace
// (a namespaced policy's subjects and peers).
func newSelector(es *ciliumv2.EndpointSelector, namespace string) (selector, error) {
	var s selector
	if es != nil {
		keys := make([]string, 0, len(es.MatchLabels))
		for k := range es.MatchLabels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			src, key := splitKey(k)
			s.reqs = append(s.reqs, requirement{source: src, key: key, op: metav1.LabelSelectorOpIn, values: []string{string(es.MatchLabels[k])}})
		}
		for _, e := range es.MatchExpressions {
			src, key := splitKey(e.Key)
			r := requirement{source: src, key: key, op: metav1.LabelSelectorOperator(e.Operator), values: e.Values}
			if err := r.validate(); err != nil {
				return selector{}, err
			}
			s.reqs = append(s.reqs, r)
		}
	}
	for _, r := range s.reqs {
		if r.source == identity.SourceReserved {
			s.reserved = true
		}
	}
	if namespace != "" && !s.namesNamespace() {
		s.reqs = append(s.reqs, requirement{source: identity.SourceK8s, key: identity.LabelNamespace, op: metav1.LabelSelectorOpIn, values: []string{namespace}})
	}
	return s, nil
}

func (r requirement) validate() error {
	switch r.op {
	case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
		if len(r.values) == 0 {
			return fmt.Errorf("operator %s on %q needs values", r.op, r.key)
		}
	case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
		if len(r.values) > 0 {
			return fmt.Errorf("operator %s on %q takes no values", r.op, r.key)
		}
	default:
		return fmt.Errorf("unknown operator %q on %q", r.op, r.key)
	}
	return nil
}

func (s selector) namesNamespace() bool {
	for _, r := range s.reqs {
		if r.key == identity.LabelNamespace && (r.source == identity.SourceK8s || r.source == sourceAny) {
			return true
		}
	}
	return false
}

// matches says whether the label set l (of an identity whose reserved-ness
// is given) is selected.
func (s selector) matches(l identity.Labels, reserved bool) bool {
	if reserved && !s.reserved {
		return false
	}
	for _, r := range s.reqs {
		if !r.matches(l) {
			return false
		}
	}
	return true
}

func (r requirement) matches(l identity.Labels) bool {
	var found bool
	var value string
	if r.source == sourceAny && r.op == metav1.LabelSelectorOpIn {
		// The common case first: a Kubernetes label of that key.
		if v, ok := l[identity.SourceK8s+":"+r.key]; ok && slices.Contains(r.values, v) {
			return true
		}
	}
	if r.source == sourceAny {
		for k, v := range l {
			if _, key := splitKey(k); key == r.key {
				found, value = true, v
				if r.op != metav1.LabelSelectorOpIn || slices.Contains(r.values, v) {
					break
				}
			}
		}
	} else {
		value, found = l[r.source+":"+r.key]
	}
	switch r.op {
	case metav1.LabelSelectorOpIn:
		return found && slices.Contains(r.values, value)
	case metav1.LabelSelectorOpNotIn:
		return !found || !slices.Contains(r.values, value)
	case metav1.LabelSelectorOpExists:
		return found
	default: // DoesNotExist; validate refused the rest
		return !found
	}
}

// k8sSelector compiles a Kubernetes LabelSelector over a prefix of k8s:
// keys: "" for pod labels, identity.LabelNamespaceLabelsPrefix for a
// namespaceSelector. A nil selector is nil (the caller decides).
func k8sSelector(ls *metav1.LabelSelector, prefix string) (selector, error) {
	var s selector
	keys := make([]string, 0, len(ls.MatchLabels))
	for k := range ls.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s.reqs = append(s.reqs, requirement{source: identity.SourceK8s, key: prefix + k, op: metav1.LabelSelectorOpIn, values: []string{ls.MatchLabels[k]}})
	}
	for _, e := range ls.MatchExpressions {
		r := requirement{source: identity.SourceK8s, key: prefix + e.Key, op: e.Operator, values: e.Values}
		if err := r.validate(); err != nil {
			return selector{}, err
		}
		s.reqs = append(s.reqs, r)
	}
	return s, nil
}

// and is a selector that requires both.
func (s selector) and(o selector) selector {
	return selector{reqs: append(slices.Clone(s.reqs), o.reqs...), reserved: s.reserved || o.reserved}
}

// labelIndex maps label keys and values to the pod identities that carry
// them: key (without its source, as "any" matches) → value → identities,
// and the same under "source:key" for requirements of one source.
type labelIndex map[string]map[string][]identity.Number

func (x labelIndex) add(n identity.Number, l identity.Labels) {
	put := func(key, value string) {
		if x[key] == nil {
			x[key] = map[string][]identity.Number{}
		}
		x[key][value] = append(x[key][value], n)
	}
	for k, v := range l {
		src, key := splitKey(k)
		put(sourceAny+":"+key, v)
		if src != sourceAny {
			put(src+":"+key, v)
		}
	}
}

// candidates are the pods that s's most selective In requirement admits,
// sorted: every pod s selects is among them (ok is false when s has no In
// requirement, and every pod is a candidate).
func (x labelIndex) candidates(s selector) ([]identity.Number, bool) {
	var best []identity.Number
	found := false
	for _, r := range s.reqs {
		if r.op != metav1.LabelSelectorOpIn {
			continue
		}
		values := x[r.source+":"+r.key]
		var ids []identity.Number
		for _, v := range r.values {
			ids = append(ids, values[v]...)
		}
		if !found || len(ids) < len(best) {
			best, found = ids, true
		}
	}
	if !found {
		return nil, false
	}
	best = slices.Clone(best)
	slices.Sort(best)
	return slices.Compact(best), true
}
