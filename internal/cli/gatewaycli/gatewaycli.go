// Package gatewaycli renders what `kubectl plexus gateway status <name>`
// shows: a Gateway's conditions and addresses, and for every node whose
// proxy serves it, which generation of its Envoy configuration (and which
// xDS version) that node's proxy has acknowledged, or why it has not.
package gatewaycli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/k8snames"
)

// View is everything the status shows.
type View struct {
	Gateway *gwv1.Gateway
	// Config is the Gateway's CiliumEnvoyConfig (nil: not written yet).
	Config *ciliumv2.CiliumEnvoyConfig
	// Proxies are the nodes' L7Proxies.
	Proxies []nodesv1alpha1.L7Proxy
}

// Render writes the view.
func Render(w io.Writer, v View) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	gw := v.Gateway
	fmt.Fprintf(tw, "Gateway:\t%s/%s (class %s, generation %d)\n", gw.Namespace, gw.Name, gw.Spec.GatewayClassName, gw.Generation)
	var addrs []string
	for _, a := range gw.Status.Addresses {
		addrs = append(addrs, a.Value)
	}
	if len(addrs) == 0 {
		addrs = []string{"none yet"}
	}
	fmt.Fprintf(tw, "Addresses:\t%s\n", strings.Join(addrs, ", "))
	for _, c := range gw.Status.Conditions {
		fmt.Fprintf(tw, "%s:\t%s", c.Type, c.Status)
		if c.Reason != "" && c.Reason != c.Type {
			fmt.Fprintf(tw, " (%s)", c.Reason)
		}
		if c.Status != metav1.ConditionTrue && c.Message != "" {
			fmt.Fprintf(tw, ": %s", c.Message)
		}
		fmt.Fprintln(tw)
	}
	if v.Config == nil {
		fmt.Fprintf(tw, "Envoy config:\tnone yet (CiliumEnvoyConfig %s is written once the Gateway is accepted)\n", k8snames.Gateway(gw.Name))
		return tw.Flush()
	}
	ref := nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: v.Config.Namespace, Name: v.Config.Name}
	want := v.Config.Generation
	fmt.Fprintf(tw, "Envoy config:\t%s (generation %d, %d resources)\n", ref, want, len(v.Config.Spec.Resources))
	if err := tw.Flush(); err != nil {
		return err
	}
	rows := [][]string{}
	for i := range v.Proxies {
		p := &v.Proxies[i]
		if !slices.Contains(p.Spec.Configs, ref) {
			continue
		}
		var served nodesv1alpha1.EnvoyConfigServed
		for _, s := range p.Status.Configs {
			if s.EnvoyConfigRef == ref {
				served = s
			}
		}
		state := "serving"
		switch {
		case served.Error != "":
			state = "not served: " + served.Error
		case served.Generation < want:
			state = fmt.Sprintf("waiting (has generation %d)", served.Generation)
		}
		version := p.Status.Version
		if version == "" {
			version = "-"
		}
		rows = append(rows, []string{p.Name, fmt.Sprint(served.Generation), version, state})
	}
	slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tACKED GENERATION\tXDS VERSION\tSTATE")
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no node's proxy serves it yet)")
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}
