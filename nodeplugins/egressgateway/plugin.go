package egressgateway

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=egresses,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=egresses/status,verbs=get;update;patch

// Ready reasons of an Egress.
const (
	ReasonProgrammed = "Programmed"
	ReasonJoining    = "Joining"
	ReasonError      = "Error"
)

// CacheOptions restricts the manager's Egress informer to this node's own
// object.
func CacheOptions(nodeName string) cache.Options {
	return nodeplugin.OwnObject(&nodesv1alpha1.Egress{}, nodeName)
}

// Plugin connects an Agent to the API server: it feeds it the node's Egress
// and writes its Report into that object's status.
type Plugin struct {
	Client   client.Client
	NodeName string
	Agent    *Agent
	// Coalesce: after a report changes, wait this long for more changes
	// before writing. Default 100 ms.
	Coalesce time.Duration

	writer  statuswrite.Writer
	trigger chan struct{}
}

// SetupWithManager registers the spec feed, the agent and the status writer.
func (p *Plugin) SetupWithManager(mgr ctrl.Manager) error {
	if p.Coalesce <= 0 {
		p.Coalesce = 100 * time.Millisecond
	}
	p.writer.Client = p.Client
	p.trigger = make(chan struct{}, 1)
	own := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == p.NodeName })
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("egressgateway").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		For(&nodesv1alpha1.Egress{}, builder.WithPredicates(own)).
		Complete(reconcile.Func(p.reconcile)); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(p.Agent.Run)); err != nil {
		return err
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return nodeplugin.WriteStatus(ctx, log.FromContext(ctx).WithName("status"), p.Coalesce, p.Agent.Reports(), p.trigger, p.writeOnce)
	}))
}

func (p *Plugin) reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var obj nodesv1alpha1.Egress
	err := p.Client.Get(ctx, client.ObjectKey{Name: p.NodeName}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		p.Agent.SetDesired(Desired{}) // no policy concerns this node
	case err != nil:
		return reconcile.Result{}, err
	default:
		p.Agent.SetDesired(Desired{Generation: obj.Generation, Spec: obj.Spec})
	}
	select {
	case p.trigger <- struct{}{}:
	default:
	}
	return reconcile.Result{}, nil
}

func (p *Plugin) writeOnce(ctx context.Context) error {
	var obj nodesv1alpha1.Egress
	if err := p.Client.Get(ctx, client.ObjectKey{Name: p.NodeName}, &obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	rep := p.Agent.Report()
	if rep.Generation == 0 {
		return nil // the agent has not seen the spec yet
	}
	_, err := p.writer.Patch(ctx, &obj, func(o client.Object) { ApplyReport(&o.(*nodesv1alpha1.Egress).Status, rep) })
	return err
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
	c := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: ReasonProgrammed, Message: summary}
	switch {
	case len(rep.Problems) > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonError, strings.Join(rep.Problems, "; ")+"; "+summary
	case rep.Joining:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonJoining, "joining: this node counts itself alive once it has run for the rejoin time; "+summary
	}
	conditions.Set(&st.Conditions, rep.Generation, c)
}
