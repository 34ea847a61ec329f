package egressgateway

import (
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/l2announce"
	"github.com/plexus-net/plexus/internal/nodeplugin"
)

// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=egresses,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=egresses/status,verbs=get;update;patch

// ReasonProgrammed is the Ready reason of a node that does what its Egress
// says (the other reasons are l2announce's).
const ReasonProgrammed = "Programmed"

// Plugin connects an Agent to the API server: it feeds it the node's Egress
// and writes its Report into that object's status.
type Plugin struct {
	Client   client.Client
	NodeName string
	Agent    *Agent
}

// SetupWithManager registers the spec feed, the agent and the status writer.
func (p *Plugin) SetupWithManager(mgr ctrl.Manager) error {
	w := &nodeplugin.Wiring[nodesv1alpha1.Egress, *nodesv1alpha1.Egress]{
		Name: "egressgateway", Client: p.Client, NodeName: p.NodeName,
		Feed: func(e *nodesv1alpha1.Egress) {
			if e == nil {
				p.Agent.SetDesired(Desired{}) // no policy concerns this node
				return
			}
			p.Agent.SetDesired(Desired{Generation: e.Generation, Spec: e.Spec})
		},
		Run: p.Agent.Run, Reports: p.Agent.Reports(),
		HasReport: func() bool { return p.Agent.Report().Generation != 0 },
		Status:    func(e *nodesv1alpha1.Egress) { ApplyReport(&e.Status, p.Agent.Report()) },
	}
	return w.SetupWithManager(mgr)
}

// ApplyReport puts rep into status with the Ready condition.
func ApplyReport(st *nodesv1alpha1.EgressStatus, rep Report) {
	st.ObservedGeneration = rep.Generation
	st.SteeredSources = int32(rep.SteeredSources)
	st.Gateways = rep.Gateways
	st.LivePeers = rep.LivePeers
	active := 0
	for _, g := range rep.Gateways {
		if g.State == StateActive {
			active++
		}
	}
	summary := fmt.Sprintf("%d local pod addresses steered; active for %d of %d gateways", rep.SteeredSources, active, len(rep.Gateways))
	conditions.Set(&st.Conditions, rep.Generation, l2announce.ReadyCondition(rep.Problems, rep.Joining, ReasonProgrammed, summary))
}
