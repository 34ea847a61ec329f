package compiler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/plexus-net/plexus/internal/identity"
)

// Render writes out as text, one line per fact in a stable order, for
// golden files and for people reading a diff.
func (out *Output) Render(labels map[identity.Number]identity.Labels) string {
	var b strings.Builder
	ids := make([]identity.Number, 0, len(out.Endpoints))
	for n := range out.Endpoints {
		ids = append(ids, n)
	}
	slices.Sort(ids)
	for _, n := range ids {
		fmt.Fprintf(&b, "identity %s %s\n", n, labelText(labels[n]))
		for _, ref := range out.Endpoints[n].Sources {
			fmt.Fprintf(&b, "  selected by %s\n", ref)
		}
		out.Endpoints[n].render(&b)
	}
	nodes := make([]string, 0, len(out.Hosts))
	for n := range out.Hosts {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		fmt.Fprintf(&b, "host %s\n", n)
		out.Hosts[n].render(&b)
	}
	refs := make([]PolicyRef, 0, len(out.Policies))
	for r := range out.Policies {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(a, b PolicyRef) int { return strings.Compare(a.String(), b.String()) })
	for _, r := range refs {
		res := out.Policies[r]
		fmt.Fprintf(&b, "policy %s selects %v nodes %v\n", r, res.Endpoints, res.Nodes)
		for _, p := range res.Problems {
			fmt.Fprintf(&b, "  %s %s: %s\n", p.Reason, p.Path, p.Message)
		}
	}
	return b.String()
}

func (p *Policy) render(b *strings.Builder) {
	for _, d := range []struct {
		name string
		dir  Direction
	}{{"ingress", p.Ingress}, {"egress", p.Egress}} {
		state := "open"
		if d.dir.Enforced {
			state = "enforced"
		}
		fmt.Fprintf(b, "  %s %s\n", d.name, state)
		for _, e := range d.dir.Entries {
			verdict := "allow"
			if e.Deny {
				verdict = "deny"
			}
			by := ""
			if e.Source != (PolicyRef{}) {
				by = " by " + e.Source.String()
			}
			fmt.Fprintf(b, "    %s %s peers %s%s\n", verdict, e.Port, e.Peers.Key(), by)
		}
	}
}

func labelText(l identity.Labels) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}
