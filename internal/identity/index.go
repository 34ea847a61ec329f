package identity

import (
	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// Index finds a label set's number among the CiliumIdentity objects of a
// cluster's range. Two objects may carry one label set (an allocator that
// raced another, or identities restored from a backup); the lowest number
// wins, in every component that resolves identities, so they agree and a
// restart changes nothing.
type Index struct {
	byKey  map[string]Number
	labels map[Number]Labels
	// Duplicates are the numbers that lost to a lower one for the same labels.
	Duplicates []Number
	// Foreign are the objects whose name is no number of this cluster's
	// range; they are left alone.
	Foreign []string
}

// NewIndex indexes the identities of r among objs.
func NewIndex(r Range, objs []ciliumv2.CiliumIdentity) *Index {
	ix := &Index{byKey: make(map[string]Number, len(objs)), labels: make(map[Number]Labels, len(objs))}
	for i := range objs {
		n, err := Parse(objs[i].Name)
		if err != nil || !r.Contains(n) {
			ix.Foreign = append(ix.Foreign, objs[i].Name)
			continue
		}
		l := Labels(objs[i].SecurityLabels)
		ix.labels[n] = l
		key := l.Key()
		switch held, ok := ix.byKey[key]; {
		case !ok:
			ix.byKey[key] = n
		case n < held:
			ix.byKey[key] = n
			ix.Duplicates = append(ix.Duplicates, held)
		default:
			ix.Duplicates = append(ix.Duplicates, n)
		}
	}
	return ix
}

// Lookup is the number of the label set with key (Labels.Key).
func (ix *Index) Lookup(key string) (Number, bool) {
	n, ok := ix.byKey[key]
	return n, ok
}

// Labels are the security labels of number n.
func (ix *Index) Labels(n Number) (Labels, bool) {
	l, ok := ix.labels[n]
	return l, ok
}

// Numbers are every number the index holds, duplicates included.
func (ix *Index) Numbers() map[Number]Labels { return ix.labels }
