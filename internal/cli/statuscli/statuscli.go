// Package statuscli is `kubectl plexus status`: which controllers run,
// whether each node has applied what its plugins were given, and, per
// feature, how many objects are Ready and which are not, from the API server
// alone. Every Plexus kind reports health through a Ready condition (and
// per-node objects through status.observedGeneration), so one rule judges
// them all.
package statuscli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Controllers are the Plexus controllers, by the name their Deployment and
// leader-election Lease carry (plexus-<name>).
var Controllers = []string{"ipam", "lbipam", "nodeipam", "l2announcer", "egressgateway", "bgp", "identity", "policy"}

// State is an object's health.
type State string

// The states. Only StateReady counts as healthy.
const (
	StateReady   State = "Ready"
	StateFailing State = "NotReady"
	// StatePending: not judged yet (no Ready condition, or one for an older
	// generation), or not yet applied by its node.
	StatePending State = "Pending"
)

// Problem is one object that is not Ready.
type Problem struct {
	Name   string
	State  State
	Reason string
	// Message is the condition's message, cut to one line.
	Message string
}

// Kind is the health of every object of one kind.
type Kind struct {
	Feature, Kind string
	Total, Ready  int
	Problems      []Problem
}

// staleLease is how long after its last renewal a Lease with no Deployment
// beside it counts as left behind by a controller that was turned off.
const staleLease = time.Hour

// Controller is one Plexus controller.
type Controller struct {
	Name string
	// Deployment is "ready/desired", or "" when there is none (the lab runs
	// the binaries itself).
	Deployment string
	// Leader holds the leader-election Lease; "" when there is none.
	Leader string
	// LeaseAge is how long ago the Lease was renewed.
	LeaseAge time.Duration
	// Healthy: the Deployment (if any) has all replicas ready and the Lease
	// (if any) is renewed within its duration.
	Healthy bool
}

// Enabled says whether the controller is installed at all.
func (c Controller) Enabled() bool { return c.Deployment != "" || c.Leader != "" }

// Report is the whole status.
type Report struct {
	Namespace   string
	Controllers []Controller
	Kinds       []Kind
}

// Healthy says whether every enabled controller and every object is well.
func (r Report) Healthy() bool {
	for _, c := range r.Controllers {
		if c.Enabled() && !c.Healthy {
			return false
		}
	}
	for _, k := range r.Kinds {
		if len(k.Problems) > 0 {
			return false
		}
	}
	return true
}

// judge tells an object's state from its unstructured form.
type judge func(u *unstructured.Unstructured) (State, string, string, bool)

// kindSpec is a kind the report covers, and the controller whose kind it
// is: objects of a controller that is not installed are not judged (no one
// would make them Ready).
type kindSpec struct {
	feature, controller string
	gvk                 schema.GroupVersionKind
	judge               judge
}

func cilium(version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "cilium.io", Version: version, Kind: kind}
}

func nodes(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "nodes.plexus.dev", Version: "v1alpha1", Kind: kind}
}

// kinds lists what the report covers, feature by feature. Per-node
// objects (nodes.plexus.dev) are judged by whether their node's plugin has
// applied the current generation: that is each node plugin's health.
var kinds = []kindSpec{
	{"IPAM", "ipam", cilium("v2", "CiliumNode"), byCondition(conditionReady)},
	{"IPAM", "ipam", cilium("v2alpha1", "CiliumPodIPPool"), byCondition(conditionReady)},
	{"LB-IPAM", "lbipam", cilium("v2", "CiliumLoadBalancerIPPool"), byCondition(conditionReady)},
	{"LB-IPAM", "lbipam", schema.GroupVersionKind{Version: "v1", Kind: "Service"}, servedService(lbServiceCondition)},
	{"Node IPAM", "nodeipam", schema.GroupVersionKind{Version: "v1", Kind: "Service"}, servedService(nodeIPAMServiceCondition)},
	{"L2 announcements", "l2announcer", cilium("v2alpha1", "CiliumL2AnnouncementPolicy"), byCondition(conditionReady)},
	{"L2 announcements", "l2announcer", nodes("L2Announcement"), applied},
	{"Egress gateway", "egressgateway", cilium("v2", "CiliumEgressGatewayPolicy"), byCondition(conditionReady)},
	{"Egress gateway", "egressgateway", nodes("Egress"), applied},
	{"BGP", "bgp", cilium("v2", "CiliumBGPClusterConfig"), byCondition(conditionReady)},
	{"BGP", "bgp", cilium("v2", "CiliumBGPPeerConfig"), byCondition(conditionReady)},
	{"BGP", "bgp", cilium("v2", "CiliumBGPNodeConfig"), byCondition(conditionReady)},
	{"Network policy", "policy", cilium("v2", "CiliumNetworkPolicy"), byCondition(conditionReady)},
	{"Network policy", "policy", cilium("v2", "CiliumClusterwideNetworkPolicy"), byCondition(conditionReady)},
	{"Network policy", "policy", nodes("NodePolicy"), byCondition(conditionReady)},
	{"Identities", "identity", cilium("v2", "CiliumIdentity"), counted},
}

const conditionReady = "Ready"

// The conditions LB-IPAM and Node IPAM write on the Services they serve.
const (
	lbServiceCondition       = "cilium.io/IPAMRequestSatisfied"
	nodeIPAMServiceCondition = "plexus.dev/NodeIPAMSatisfied"
)

// byCondition judges an object by a condition of the current generation.
func byCondition(typ string) judge {
	return func(u *unstructured.Unstructured) (State, string, string, bool) {
		c := findCondition(u, typ)
		switch {
		case c == nil:
			return StatePending, "NoCondition", "no " + typ + " condition yet: its controller has not judged it", true
		case c.ObservedGeneration != 0 && c.ObservedGeneration < u.GetGeneration():
			return StatePending, c.Reason, fmt.Sprintf("%s is for generation %d, the object is at %d: its controller has not caught up", typ, c.ObservedGeneration, u.GetGeneration()), true
		case c.Status == metav1.ConditionTrue:
			return StateReady, c.Reason, c.Message, true
		case c.Status == metav1.ConditionUnknown:
			return StatePending, c.Reason, c.Message, true
		}
		return StateFailing, c.Reason, c.Message, true
	}
}

// applied judges a per-node object by whether its node has applied the
// current generation.
func applied(u *unstructured.Unstructured) (State, string, string, bool) {
	seen, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if seen >= u.GetGeneration() {
		return StateReady, "Applied", "", true
	}
	return StatePending, "NotApplied", fmt.Sprintf("node has applied generation %d of %d: is its node plugin running?", seen, u.GetGeneration()), true
}

// servedService judges the Services that carry the given condition (those
// LB-IPAM or Node IPAM serve); others are not counted.
func servedService(typ string) judge {
	return func(u *unstructured.Unstructured) (State, string, string, bool) {
		if findCondition(u, typ) == nil {
			return "", "", "", false
		}
		s, reason, msg, _ := byCondition(typ)(u)
		return s, reason, msg, true
	}
}

func counted(*unstructured.Unstructured) (State, string, string, bool) {
	return StateReady, "", "", true
}

func findCondition(u *unstructured.Unstructured, typ string) *metav1.Condition {
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		c := &metav1.Condition{Type: typ}
		c.Status = metav1.ConditionStatus(fmt.Sprint(m["status"]))
		c.Reason, _ = m["reason"].(string)
		c.Message, _ = m["message"].(string)
		if g, ok := m["observedGeneration"].(int64); ok {
			c.ObservedGeneration = g
		}
		return c
	}
	return nil
}

// Collect reads the report from the API server. Kinds whose CRD is not
// installed are left out: their feature is not installed.
func Collect(ctx context.Context, c client.Client, namespace string, now time.Time) (Report, error) {
	r := Report{Namespace: namespace}
	enabled := map[string]bool{}
	for _, name := range Controllers {
		ctl, err := controller(ctx, c, namespace, name, now)
		if err != nil {
			return r, err
		}
		r.Controllers = append(r.Controllers, ctl)
		enabled[name] = ctl.Enabled()
	}
	for _, ks := range kinds {
		if !enabled[ks.controller] {
			continue
		}
		k, ok, err := collectKind(ctx, c, ks)
		if err != nil {
			return r, err
		}
		if ok {
			r.Kinds = append(r.Kinds, k)
		}
	}
	return r, nil
}

func controller(ctx context.Context, c client.Client, namespace, name string, now time.Time) (Controller, error) {
	ctl := Controller{Name: name, Healthy: true}
	key := client.ObjectKey{Namespace: namespace, Name: "plexus-" + name}
	var d appsv1.Deployment
	switch err := c.Get(ctx, key, &d); {
	case err == nil:
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		ctl.Deployment = fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, want)
		ctl.Healthy = d.Status.ReadyReplicas >= want && want > 0
	case !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err):
		return ctl, fmt.Errorf("reading Deployment %s: %w", key, err)
	}
	var l coordinationv1.Lease
	switch err := c.Get(ctx, key, &l); {
	case err == nil:
		ctl.Leader = "(none)"
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			ctl.Leader = *l.Spec.HolderIdentity
		}
		duration := 15 * time.Second
		if l.Spec.LeaseDurationSeconds != nil {
			duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
		}
		if l.Spec.RenewTime != nil {
			ctl.LeaseAge = now.Sub(l.Spec.RenewTime.Time).Round(time.Second)
		}
		switch {
		case ctl.Deployment == "" && (ctl.Leader == "(none)" || ctl.LeaseAge > staleLease):
			// Released at a clean stop, or long expired, and no Deployment:
			// the controller was turned off; only its Lease is left.
			ctl.Leader, ctl.LeaseAge = "", 0
		case l.Spec.RenewTime == nil || ctl.LeaseAge > duration || ctl.Leader == "(none)":
			ctl.Healthy = false
		}
	case !apierrors.IsNotFound(err):
		return ctl, fmt.Errorf("reading Lease %s: %w", key, err)
	}
	return ctl, nil
}

func collectKind(ctx context.Context, c client.Client, ks kindSpec) (Kind, bool, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(ks.gvk.GroupVersion().WithKind(ks.gvk.Kind + "List"))
	if err := c.List(ctx, list); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return Kind{}, false, nil
		}
		return Kind{}, false, fmt.Errorf("listing %s: %w", ks.gvk.Kind, err)
	}
	k := Kind{Feature: ks.feature, Kind: ks.gvk.Kind}
	for i := range list.Items {
		u := &list.Items[i]
		state, reason, msg, counts := ks.judge(u)
		if !counts {
			continue
		}
		k.Total++
		if state == StateReady {
			k.Ready++
			continue
		}
		name := u.GetName()
		if ns := u.GetNamespace(); ns != "" {
			name = ns + "/" + name
		}
		k.Problems = append(k.Problems, Problem{Name: name, State: state, Reason: reason, Message: oneLine(msg)})
	}
	if ks.gvk.Kind == "Service" && k.Total == 0 {
		return k, false, nil // LB-IPAM serves no Service (or is not installed)
	}
	slices.SortFunc(k.Problems, func(a, b Problem) int { return cmp.Compare(a.Name, b.Name) })
	return k, true, nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// maxProblems caps the problems listed per kind; the rest are counted.
const maxProblems = 5

// Render writes the report for people.
func Render(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Controllers (namespace %s):\n", r.Namespace)
	fmt.Fprintln(tw, "  NAME\tDEPLOYMENT\tLEADER\tRENEWED\tSTATUS")
	for _, c := range r.Controllers {
		if !c.Enabled() {
			fmt.Fprintf(tw, "  %s\t-\t-\t-\tdisabled\n", c.Name)
			continue
		}
		status := "OK"
		if !c.Healthy {
			status = "NOT READY"
		}
		renewed := "-"
		if c.Leader != "" {
			renewed = c.LeaseAge.String() + " ago"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Name, dash(c.Deployment), dash(c.Leader), renewed, status)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "Features:")
	fmt.Fprintln(tw, "  FEATURE\tKIND\tREADY\tNOT READY")
	for _, k := range r.Kinds {
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%d\n", k.Feature, k.Kind, k.Ready, k.Total, len(k.Problems))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var problems []string
	for _, k := range r.Kinds {
		for i, p := range k.Problems {
			if i == maxProblems {
				problems = append(problems, fmt.Sprintf("  %s: %d more not ready", k.Kind, len(k.Problems)-maxProblems))
				break
			}
			line := fmt.Sprintf("  %s %s: %s %s", k.Kind, p.Name, p.State, p.Reason)
			if p.Message != "" {
				line += ": " + p.Message
			}
			problems = append(problems, line)
		}
	}
	for _, c := range r.Controllers {
		if !c.Enabled() || c.Healthy {
			continue
		}
		var why []string
		if c.Deployment != "" {
			why = append(why, "deployment "+c.Deployment+" ready")
		}
		if c.Leader != "" {
			why = append(why, fmt.Sprintf("lease held by %s, renewed %s ago", c.Leader, c.LeaseAge))
		}
		problems = append(problems, fmt.Sprintf("  controller %s: %s", c.Name, strings.Join(why, "; ")))
	}
	if len(problems) == 0 {
		_, err := fmt.Fprintln(w, "\nStatus: OK")
		return err
	}
	_, err := fmt.Fprintf(w, "\nStatus: %d not ready\n%s\n", len(problems), strings.Join(problems, "\n"))
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
